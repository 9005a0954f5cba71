"""The golden outputs of the redesign (issue 16): what auditspan writes for fixed inputs, byte for byte.

``python -m tests.golden.generate OUT_DIR`` writes every case below into ``OUT_DIR``;
``tests/golden/expected/`` holds what the code wrote before the redesign, and
``tests/golden/test_outputs.py`` checks that it still writes exactly that. The chain is off (its ids are
random per writer) and ``service.instance.id`` is fixed; everything else is as users run it.

Cases:

* ``replay-{redacted,full,none}``: ``auditspan replay`` of the seed system's log under each capture policy;
* ``replay-canonical``: a replay of ``replay-redacted``'s own audit log (the canonical-record path);
* ``emitter``: the same events emitted live through ``AuditEmitter`` into a ``SpanCollector`` with
  ``DeterministicIds``, the PII rule, span events *and* log records.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

_OBSERVED = re.compile(rb'"observedTimeUnixNano":"[0-9]+"')
SEED_LOG = Path(__file__).resolve().parents[1] / "data" / "logs" / "seed-run.jsonl"
ENVIRON = {
    "AUDITSPAN_CHAIN": "false",
    "OTEL_RESOURCE_ATTRIBUTES": "service.instance.id=golden",
    "OTEL_SERVICE_NAME": "auditspan-golden",
}


def _replay(out: Path, name: str, source: Path, capture: str) -> Path:
    from auditspan.replay import replay_files

    folder = out / name
    folder.mkdir(parents=True)
    summary = replay_files(
        [source],
        output_dir=folder,
        audit_log=str(folder / "audit.jsonl"),
        environ=dict(ENVIRON),
        capture=capture,
    )
    assert summary.lines_skipped == 0, summary
    return folder


def _emitter(out: Path) -> None:
    from opentelemetry.sdk._logs import LoggerProvider
    from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    from auditspan import AuditEmitter, DeterministicIds, JsonLinesAuditLog, SpanCollector
    from auditspan.events import parse_event
    from auditspan.otlp_file import OtlpJsonFileLogExporter, OtlpJsonFileSpanExporter
    from auditspan.rules import PII_EXFILTRATION_RULE

    folder = out / "emitter"
    folder.mkdir(parents=True)
    resource = Resource.create({"service.name": "auditspan-golden", "service.instance.id": "golden"})
    tracer_provider = TracerProvider(resource=resource)
    tracer_provider.add_span_processor(SimpleSpanProcessor(OtlpJsonFileSpanExporter(folder / "traces.jsonl")))
    logger_provider = LoggerProvider(resource=resource)
    logger_provider.add_log_record_processor(
        SimpleLogRecordProcessor(OtlpJsonFileLogExporter(folder / "logs.jsonl"))
    )
    collector = SpanCollector(
        tracer_provider=tracer_provider,
        logger_provider=logger_provider,
        audit_log=JsonLinesAuditLog(folder / "audit.jsonl", chain=False),
        events_as="both",
        ids=DeterministicIds(),
        rules=[PII_EXFILTRATION_RULE],
    )
    emitter = AuditEmitter(collector)
    for line in SEED_LOG.read_text(encoding="utf-8").splitlines():
        if line.strip():
            emitter.emit(parse_event(line))
    collector.shutdown()
    tracer_provider.shutdown()
    logger_provider.shutdown()
    # A log record's observed time is the wall clock's (rightly): the one field normalised away.
    logs = folder / "logs.jsonl"
    logs.write_bytes(_OBSERVED.sub(b'"observedTimeUnixNano":"0"', logs.read_bytes()))


def generate(out: Path) -> None:
    """Write every golden case into ``out`` (which must not hold them yet)."""
    # The SDK's resource detector reads OTEL_RESOURCE_ATTRIBUTES from the process environment.
    saved = os.environ.get("OTEL_RESOURCE_ATTRIBUTES")
    os.environ["OTEL_RESOURCE_ATTRIBUTES"] = ENVIRON["OTEL_RESOURCE_ATTRIBUTES"]
    try:
        _generate(out)
    finally:
        if saved is None:
            del os.environ["OTEL_RESOURCE_ATTRIBUTES"]
        else:
            os.environ["OTEL_RESOURCE_ATTRIBUTES"] = saved


def _generate(out: Path) -> None:
    redacted = _replay(out, "replay-redacted", SEED_LOG, "redacted")
    _replay(out, "replay-full", SEED_LOG, "full")
    _replay(out, "replay-none", SEED_LOG, "none")
    _replay(out, "replay-canonical", redacted / "audit.jsonl", "redacted")
    _emitter(out)


if __name__ == "__main__":
    generate(Path(sys.argv[1]))

"""In-process benchmarks: per-event overhead, classification, the canonical log, and scaling.

Each function runs its cases interleaved (``timing.interleave``) and returns a
plain dict of medians and ratios against a baseline of the same run. Every
repetition also counts what it produced -- spans exported, records written,
lines in the file -- and any shortfall is noted in ``Checks`` (a benchmark
that silently lost events would look fast).
"""

from __future__ import annotations

import itertools
import json
import os
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from opentelemetry import trace

from auditspan.audit_log import AuditLogExportResult, JsonLinesAuditLog
from auditspan.classification import Classifier
from auditspan.collector import SpanCollector
from auditspan.events import AuditEvent
from auditspan.records import encode_record

from .baseline import BareSdkAgent, make_provider
from .timing import Case, Measured, Sample, Stopwatch, interleave
from .workload import concurrent_turns, event_stream, events_per_turn, preview_pairs, spans_per_turn

__all__ = [
    "Checks",
    "RecordCapture",
    "canonical_log",
    "capture_records",
    "classification",
    "count_checkpoints",
    "count_lines",
    "per_event",
    "scaling_calls_per_turn",
    "scaling_open_turns",
]

_CALLS_PER_TURN = 4
_SPANS_PER_TURN = spans_per_turn(_CALLS_PER_TURN)


class Checks:
    """Counts that did not match what a run should have produced (empty when all did)."""

    def __init__(self) -> None:
        self.problems: list[str] = []
        self.checked = 0

    def expect(self, what: str, expected: int, got: int) -> None:
        """Note ``what`` when ``got`` differs from ``expected``."""
        self.checked += 1
        if expected != got:
            self.problems.append(f"{what}: expected {expected}, got {got}")


class RecordCapture:
    """An audit-log exporter that keeps the canonical records in memory (to replay them into a log)."""

    def __init__(self) -> None:
        self.records: list[dict[str, Any]] = []

    def export(self, records: Sequence[dict[str, Any]]) -> AuditLogExportResult:
        """Keep the records."""
        self.records.extend(records)
        return AuditLogExportResult.SUCCESS

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        """Nothing buffered."""
        return True

    def shutdown(self) -> None:
        """Nothing to release."""


#: How a chain's checkpoint line starts (the chain is on by default): it is no event's record.
_CHECKPOINT_PREFIX = b'{"event_type":"audit_checkpoint"'


def count_lines(path: Path) -> int:
    """Newline-terminated record lines in ``path``, the chain's checkpoint lines not counted."""
    with path.open("rb") as f:
        return sum(1 for line in f if line.endswith(b"\n") and not line.startswith(_CHECKPOINT_PREFIX))


def count_checkpoints(path: Path) -> int:
    """The chain's checkpoint lines in ``path`` (each also a witness span ``auditspan.checkpoint``)."""
    with path.open("rb") as f:
        return sum(1 for line in f if line.startswith(_CHECKPOINT_PREFIX))


def capture_records(events: Sequence[AuditEvent]) -> list[dict[str, Any]]:
    """The canonical records the collector makes for ``events``."""
    provider, _ = make_provider()
    capture = RecordCapture()
    collector = SpanCollector(tracer_provider=provider, audit_log=capture)
    for event in events:
        collector.emit(event)
    collector.shutdown()
    provider.shutdown()
    return capture.records


class _Files:
    """Fresh audit-log paths in a work directory, removed after each repetition."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self._n = itertools.count()

    def new(self) -> Path:
        return self.workdir / f"audit-{next(self._n)}.jsonl"


def _feed(
    handle: Callable[[AuditEvent], object],
    before: Sequence[AuditEvent],
    events: Sequence[AuditEvent],
    after: Sequence[AuditEvent],
) -> Stopwatch:
    """Hand ``before``, ``events``, ``after`` to ``handle``; only ``events`` are timed."""
    for event in before:
        handle(event)
    with Stopwatch() as watch:
        for event in events:
            handle(event)
    for event in after:
        handle(event)
    return watch


def _collector_case(
    events: Sequence[AuditEvent],
    files: _Files | None,
    checks: Checks,
    label: str,
    *,
    spans: int,
    before: Sequence[AuditEvent] = (),
    after: Sequence[AuditEvent] = (),
    sdk_spans: bool = True,
) -> Case:
    """One repetition: a fresh provider + collector (+ a new log file); only ``events`` are timed.

    ``sdk_spans=False`` gives the collector the API's no-op tracer provider: what auditspan
    itself does per event (fields, redaction, classification, matching, records, the log)
    without the SDK's span work.
    """

    def run() -> Sample:
        provider, exporter = make_provider()
        path = files.new() if files is not None else None
        collector = SpanCollector(
            tracer_provider=provider if sdk_spans else trace.NoOpTracerProvider(), audit_log=path
        )
        watch = _feed(collector.emit, before, events, after)
        collector.shutdown()
        provider.shutdown()
        total = len(before) + len(events) + len(after)
        checks.expect(f"{label}: spans exported", spans if sdk_spans else 0, exporter.spans)
        checks.expect(f"{label}: records", total, collector.stats.records)
        checks.expect(f"{label}: internal errors", 0, collector.stats.internal_errors)
        if path is not None:
            checks.expect(f"{label}: lines in the audit log", total, count_lines(path))
            path.unlink()
        return watch.sample(len(events))

    return run


def _bare_case(
    events: Sequence[AuditEvent],
    checks: Checks,
    label: str,
    *,
    spans: int,
    before: Sequence[AuditEvent] = (),
    after: Sequence[AuditEvent] = (),
) -> Case:
    def run() -> Sample:
        provider, exporter = make_provider()
        watch = _feed(BareSdkAgent(provider).handle, before, events, after)
        provider.shutdown()
        checks.expect(f"{label}: spans exported", spans, exporter.spans)
        return watch.sample(len(events))

    return run


def _export_case(records: Sequence[dict[str, Any]], files: _Files, checks: Checks, label: str) -> Case:
    """The agent thread's part of the log: ``export`` of one record at a time (writing is untimed)."""

    def run() -> Sample:
        path = files.new()
        log = JsonLinesAuditLog(path)
        export = log.export
        with Stopwatch() as watch:
            for record in records:
                export((record,))
        log.shutdown()
        checks.expect(f"{label}: records written", len(records), log.stats.records_written)
        checks.expect(f"{label}: lines", len(records), count_lines(path))
        path.unlink()
        return watch.sample(len(records))

    return run


def _loop_case(items: Sequence[Any], fn: Callable[[Any], object]) -> Case:
    def run() -> Sample:
        with Stopwatch() as watch:
            for item in items:
                fn(item)
        return watch.sample(len(items))

    return run


def per_event(turns: int, reps: int, workdir: Path, checks: Checks) -> dict[str, Any]:
    """Per-event cost of auditspan (collector + canonical log) against the bare SDK, with the split."""
    events = list(event_stream(turns))
    records = capture_records(events)
    files = _Files(workdir)
    spans = turns * _SPANS_PER_TURN
    measured = interleave(
        {
            "bare_sdk": _bare_case(events, checks, "per-event bare SDK", spans=spans),
            "auditspan": _collector_case(events, files, checks, "per-event collector+log", spans=spans),
            "collector_only": _collector_case(events, None, checks, "per-event collector", spans=spans),
            "audit_log_only": _export_case(records, files, checks, "per-event audit log"),
            "without_sdk_spans": _collector_case(
                events, files, checks, "per-event collector+log, no-op tracer", spans=spans, sdk_spans=False
            ),
        },
        reps,
    )
    return {"events": len(events), "turns": turns, "reps": reps, "cases": measured.summary("bare_sdk")}


def _classify_case(pairs: Sequence[tuple[str, str]], classifier: Callable[[], Classifier]) -> Case:
    def run() -> Sample:
        classify = classifier().classify
        with Stopwatch() as watch:
            for name, preview in pairs:
                classify(name, preview, {})
        return watch.sample(len(pairs))

    return run


def classification(count: int, reps: int) -> dict[str, Any]:
    """``Classifier.classify`` per call against ``json.dumps`` of an event.

    Three cases: a default classifier meeting every preview for the first time
    (the collector's situation: argument previews rarely repeat), the memo
    cache off, and cache hits (the first 1,000 previews again and again).
    """
    pairs = preview_pairs(count)
    attempts = [e for e in event_stream(-(-count // _CALLS_PER_TURN)) if e.event_type == "tool_call_attempt"]
    dicts = [e.to_dict() for e in attempts[:count]]
    repeated = list(itertools.islice(itertools.cycle(pairs[:1_000]), count))
    types = Counter(Classifier().classify(name, preview, {}).type for name, preview in pairs)
    warm = Classifier()
    for name, preview in pairs[:1_000]:
        warm.classify(name, preview, {})
    measured = interleave(
        {
            "json_dumps_event": _loop_case(dicts, lambda d: json.dumps(d, default=str)),
            "classify_new_previews": _classify_case(pairs, Classifier),
            "classify_cache_off": _classify_case(pairs, lambda: Classifier(cache_size=0)),
            "classify_cache_hit": _classify_case(repeated, lambda: warm),
        },
        reps,
    )
    return {
        "calls": len(pairs),
        "reps": reps,
        "types": dict(types),
        "cases": measured.summary("json_dumps_event"),
    }


def canonical_log(records_count: int, reps: int, workdir: Path, checks: Checks) -> dict[str, Any]:
    """The canonical log alone: agent-thread time per record and records/s written, against plain json."""
    base = capture_records(list(event_stream(max(1, min(records_count, 22_000) // 22))))
    records = list(itertools.islice(itertools.cycle(base), records_count))
    files = _Files(workdir)

    agent = interleave(
        {
            "json_dumps_record": _loop_case(records, lambda r: json.dumps(r, default=str)),
            "encode_record": _loop_case(records, encode_record),
            "export": _export_case(records, files, checks, "canonical log export"),
        },
        reps,
    )

    def naive() -> Sample:
        path = files.new()
        with Stopwatch() as watch, path.open("w", encoding="utf-8") as f:
            for record in records:
                f.write(json.dumps(record, default=str))
                f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        checks.expect("naive writer: lines", len(records), count_lines(path))
        path.unlink()
        return watch.sample(len(records))

    def audit_log() -> Sample:
        path = files.new()
        log = JsonLinesAuditLog(path)
        export = log.export
        with Stopwatch() as watch:
            for record in records:
                export((record,))
            flushed = log.force_flush(60_000)
        log.shutdown()
        checks.expect("canonical log throughput: flushed", 1, int(flushed))
        checks.expect("canonical log throughput: lines", len(records), count_lines(path))
        path.unlink()
        return watch.sample(len(records))

    throughput = interleave({"naive_json_writer": naive, "json_lines_audit_log": audit_log}, reps)
    return {
        "records": len(records),
        "reps": reps,
        "agent_thread": agent.summary("json_dumps_record"),
        # Records/s to disk: wall time, writer thread and fsync included.
        "records_per_s": {name: 1.0 / throughput.median(name) for name in throughput.wall},
        "throughput_ratio_vs_naive": throughput.median("naive_json_writer")
        / throughput.median("json_lines_audit_log"),
    }


def _scaling(measured: Measured, sizes: Sequence[int]) -> dict[str, Any]:
    """Per-size medians, and the last size's cost over the first's per variant and clock."""
    first, last = sizes[0], sizes[-1]
    return {
        "cases": measured.summary(),
        "last_over_first": {
            f"{variant}_{clock}": measured.ratio(f"{variant}@{last}", f"{variant}@{first}", clock)
            for variant in ("auditspan", "bare_sdk")
            for clock in ("wall", "cpu")
        },
    }


def scaling_calls_per_turn(
    sizes: Sequence[int], events_target: int, reps: int, workdir: Path, checks: Checks
) -> dict[str, Any]:
    """Cost per event as one turn grows from ``sizes[0]`` to ``sizes[-1]`` tool calls."""
    files = _Files(workdir)
    cases: dict[str, Case] = {}
    for size in sizes:
        turns = max(1, events_target // events_per_turn(size))
        events = list(event_stream(turns, calls=size))
        spans = turns * (1 + size)
        cases[f"auditspan@{size}"] = _collector_case(events, files, checks, f"{size} calls/turn", spans=spans)
        cases[f"bare_sdk@{size}"] = _bare_case(events, checks, f"{size} calls/turn bare", spans=spans)
    return {"sizes": list(sizes), "reps": reps, **_scaling(interleave(cases, reps), sizes)}


def scaling_open_turns(
    sizes: Sequence[int], calls: int, reps: int, workdir: Path, checks: Checks
) -> dict[str, Any]:
    """Cost per tool-call event with ``sizes[0]`` .. ``sizes[-1]`` turns open at once (calls timed only)."""
    files = _Files(workdir)
    cases: dict[str, Case] = {}
    for size in sizes:
        starts, middle, ends = concurrent_turns(size, calls)
        spans = size + calls
        cases[f"auditspan@{size}"] = _collector_case(
            middle, files, checks, f"{size} open turns", spans=spans, before=starts, after=ends
        )
        cases[f"bare_sdk@{size}"] = _bare_case(
            middle, checks, f"{size} open turns bare", spans=spans, before=starts, after=ends
        )
    return {"sizes": list(sizes), "calls": calls, "reps": reps, **_scaling(interleave(cases, reps), sizes)}

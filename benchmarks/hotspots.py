"""Profile the per-event path and the audit-log path with pyinstrument (a sampling profiler).

``python benchmarks/hotspots.py [--turns N] [--flat] [--interval S]`` prints,
for the workload stream through ``SpanCollector`` + ``JsonLinesAuditLog``
and for ``JsonLinesAuditLog.export`` alone, where the agent thread's time
goes: a call tree, or with ``--flat`` the functions by their own time.
pyinstrument is not a dependency of auditspan: ``.venv/bin/pip install pyinstrument``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from auditspan.audit_log import JsonLinesAuditLog
from auditspan.collector import SpanCollector
from benchmarks.baseline import make_provider
from benchmarks.micro import capture_records
from benchmarks.workload import event_stream

__all__ = ["main", "profile"]


def profile(label: str, work: Callable[[], None], *, flat: bool, interval: float) -> str:
    """Run ``work`` under pyinstrument; the rendered profile, headed by ``label``."""
    try:
        from pyinstrument import Profiler
    except ImportError:  # pragma: no cover - depends on the environment
        raise SystemExit("pyinstrument is needed: .venv/bin/pip install pyinstrument") from None
    profiler = Profiler(interval=interval)
    profiler.start()
    work()
    profiler.stop()
    text = profiler.output_text(unicode=False, color=False, flat=flat, show_all=False)
    return f"==== {label}\n{text}"


def main(argv: list[str] | None = None) -> int:
    """Profile both paths and print the results."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--turns", type=int, default=2_000, help="turns of 22 events (default %(default)s)")
    parser.add_argument("--flat", action="store_true", help="functions by own time instead of a call tree")
    parser.add_argument("--interval", type=float, default=0.0002, help="sampling interval in seconds")
    args = parser.parse_args(argv)
    events = list(event_stream(args.turns))
    records = capture_records(events)
    with tempfile.TemporaryDirectory(prefix="auditspan-profile-") as tmp:
        provider, _ = make_provider()
        collector = SpanCollector(tracer_provider=provider, audit_log=Path(tmp) / "audit.jsonl")

        def per_event() -> None:
            for event in events:
                collector.emit(event)

        print(
            profile(
                f"per-event path: {len(events):,} events", per_event, flat=args.flat, interval=args.interval
            )
        )
        collector.shutdown()
        provider.shutdown()

        log = JsonLinesAuditLog(Path(tmp) / "replay.jsonl")

        def audit_log() -> None:
            for record in records:
                log.export((record,))

        print(
            profile(
                f"audit-log path: {len(records):,} records", audit_log, flat=args.flat, interval=args.interval
            )
        )
        log.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())

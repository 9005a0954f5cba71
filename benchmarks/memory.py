"""Resident memory growth: a long stream of events, and many turns that never end.

Each measurement runs in a fresh interpreter (``python -m benchmarks.memory
...``, started by ``measure``) so that one run's heap does not hide another's
growth. After a warm-up the resident set size (RSS, from ``/proc/self/statm``)
is read, the events are emitted (generated lazily, never held), everything is
flushed and collected, and RSS is read again; the peak is sampled on the way.

Scenarios:

* ``stream`` -- ``events`` events of complete turns (4 tool calls each).
* ``open_turns`` -- ``turns`` turns that start, make one tool call and never
  end (they stay open in the collector, up to its ``max_open_turns``).

Variants: ``auditspan`` (collector + canonical log file) and ``bare_sdk``.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import random
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from auditspan.collector import SpanCollector
from auditspan.events import AuditEvent

from .baseline import BareSdkAgent, make_provider
from .isolated import run_module
from .workload import event_stream, events_per_turn, turn_events

__all__ = ["measure", "rss_bytes", "run_scenario"]

_WARMUP_TURNS = 500
_SAMPLE_EVERY = 10_000


def rss_bytes() -> int:
    """Resident set size of this process now, in bytes (Linux ``/proc``)."""
    with open("/proc/self/statm", encoding="ascii") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _open_turn_events(turns: int) -> Iterator[AuditEvent]:
    rng = random.Random(3)
    for index in range(turns):
        yield from turn_events(rng, 1_000_000 + index, calls=1, with_end=False)


def run_scenario(
    scenario: str, variant: str, size: int, workdir: Path, *, warmup_turns: int = _WARMUP_TURNS
) -> dict[str, Any]:
    """Measure one scenario in this process; returns RSS before/after/peak in bytes and the counts.

    ``size`` is events for ``stream`` (rounded down to whole turns) and turns for ``open_turns``.
    """
    provider, exporter = make_provider()
    emit: Any
    collector: SpanCollector | None = None
    agent: BareSdkAgent | None = None
    if variant == "auditspan":
        collector = SpanCollector(tracer_provider=provider, audit_log=workdir / f"audit-{scenario}.jsonl")
        emit = collector.emit
    elif variant == "bare_sdk":
        agent = BareSdkAgent(provider)
        emit = agent.handle
    else:
        raise ValueError(f"unknown variant {variant!r}")

    def flush() -> None:
        if collector is not None:
            collector.force_flush(60_000)
        provider.force_flush(60_000)
        gc.collect()

    for event in event_stream(warmup_turns, seed=99, first_turn=10_000_000):
        emit(event)
    flush()
    before = rss_bytes()
    peak = before
    events: Iterable[AuditEvent]
    if scenario == "stream":
        turns = max(1, size // events_per_turn(4))
        events = event_stream(turns)
        spans = turns * 5
    elif scenario == "open_turns":
        events = _open_turn_events(size)
        spans = size * 2  # each turn and its one call; the turns end at shutdown
    else:
        raise ValueError(f"unknown scenario {scenario!r}")
    count = 0
    for event in events:
        emit(event)
        count += 1
        if count % _SAMPLE_EVERY == 0:
            peak = max(peak, rss_bytes())
    flush()
    after = rss_bytes()
    peak = max(peak, after)
    result: dict[str, Any] = {
        "scenario": scenario,
        "variant": variant,
        "size": size,
        "events": count,
        "events_total": events_per_turn(4) * warmup_turns + count,
        "spans_total": 5 * warmup_turns + spans,
        "rss_before": before,
        "rss_after": after,
        "rss_peak": peak,
        "growth": after - before,
        "peak_growth": peak - before,
    }
    if collector is not None:
        result["open_turns"] = collector.open_turns
        collector.shutdown()
        result["records"] = collector.stats.records
        result["internal_errors"] = collector.stats.internal_errors
    if agent is not None:
        result["open_turns"] = agent.open_turns
        agent.end_open_turns()
    provider.shutdown()
    result["spans_exported"] = exporter.spans
    return result


def measure(scenario: str, variant: str, size: int, *, warmup_turns: int = _WARMUP_TURNS) -> dict[str, Any]:
    """``run_scenario`` in a fresh interpreter (so RSS is this scenario's alone)."""
    with tempfile.TemporaryDirectory(prefix="auditspan-mem-") as tmp:
        args = [scenario, variant, str(size), tmp, "--warmup-turns", str(warmup_turns)]
        return run_module("benchmarks.memory", args, timeout=3_600)


def main(argv: list[str] | None = None) -> None:
    """Command line of the child process: ``scenario variant size workdir``; prints one JSON line."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("scenario", choices=("stream", "open_turns"))
    parser.add_argument("variant", choices=("auditspan", "bare_sdk"))
    parser.add_argument("size", type=int)
    parser.add_argument("workdir", type=Path)
    parser.add_argument("--warmup-turns", type=int, default=_WARMUP_TURNS)
    args = parser.parse_args(argv)
    result = run_scenario(
        args.scenario, args.variant, args.size, args.workdir, warmup_turns=args.warmup_turns
    )
    print(json.dumps(result))


if __name__ == "__main__":
    main()

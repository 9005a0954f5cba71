"""Instructions per event, counted by valgrind's callgrind: a ratio that machine noise does not move.

Wall-clock figures on these shared machines drift by 20% from one run to the
next; an instruction count does not (the same interpreter, inputs and
environment give the same total, whatever else the machine is doing). So
``measure(turns)`` runs the workload stream in fresh interpreters under
``valgrind --tool=callgrind``, one subject per run:

* ``none``: every subject set up and warmed, no event emitted (what the others are counted against);
* ``bare_sdk``: the baseline's spans;
* ``auditspan``: collector + canonical log;
* ``no_sdk_spans``: collector + canonical log on the API's no-op tracer (auditspan's own work).

A subject's instructions per event are its count minus ``none``'s, over the
events; every thread counts (the batch processor's, the log writer's).
Instructions are not time -- cache misses and mispredicted branches are not in
them, and the wall-clock ratio stays the target's measure -- but they tell
whether a change made the work itself smaller::

    result = measure(100)   # about a minute and a half on 2 cores
    result["ratio"]["auditspan"]   # instructions per event over the bare SDK's
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from .isolated import REPO
from .workload import events_per_turn, spans_per_turn

__all__ = ["SUBJECTS", "collected", "measure", "run_subject"]

#: What ``measure`` counts, besides ``none``.
SUBJECTS = ("bare_sdk", "auditspan", "no_sdk_spans")
_COLLECTED = re.compile(r"^==\d+== Collected : (\d+)$", re.M)
_WARMUP_TURNS = 5
_CALLS_PER_TURN = 4  # event_stream's default


def collected(valgrind_stderr: str) -> int:
    """The instruction count callgrind reports at the end of a run (``Collected : N``)."""
    found = _COLLECTED.search(valgrind_stderr)
    if found is None:
        raise RuntimeError(f"callgrind reported no count:\n{valgrind_stderr[-2000:]}")
    return int(found.group(1))


def run_subject(subject: str, turns: int, workdir: Path) -> dict[str, int]:
    """Set up every subject, warm them, emit ``turns`` turns through ``subject`` only; count what came out.

    Runs in the counted interpreter (``python -m benchmarks.instructions``).
    Every subject is built and shut down whichever one emits, so that the
    difference between two runs is the events' work alone.
    """
    from opentelemetry import trace

    from auditspan.collector import SpanCollector

    from .baseline import BareSdkAgent, make_provider
    from .micro import count_lines
    from .workload import event_stream

    # Module-level caches (compiled patterns, tool-name tables) fill on the first events.
    warm = list(event_stream(_WARMUP_TURNS, seed=1))
    provider, _ = make_provider()
    warm_collector = SpanCollector(tracer_provider=provider, audit_log=workdir / "warm.jsonl")
    warm_bare = BareSdkAgent(provider)
    for event in warm:
        warm_collector.emit(event)
        warm_bare.handle(event)
    warm_collector.shutdown()
    provider.shutdown()

    events = list(event_stream(turns, first_turn=_WARMUP_TURNS))
    provider, exporter = make_provider()
    paths = {name: workdir / f"{name}.jsonl" for name in ("auditspan", "no_sdk_spans")}
    collectors = {
        "auditspan": SpanCollector(tracer_provider=provider, audit_log=paths["auditspan"]),
        "no_sdk_spans": SpanCollector(
            tracer_provider=trace.NoOpTracerProvider(), audit_log=paths["no_sdk_spans"]
        ),
    }
    emitters = {"bare_sdk": BareSdkAgent(provider).handle, **{k: c.emit for k, c in collectors.items()}}
    emit = emitters.get(subject)
    # The prebuilt stream is most of the heap: kept out of the collector's full passes, which would
    # otherwise scan it at points that shift with every allocation a change adds or removes.
    gc.collect()
    gc.freeze()
    if emit is not None:
        for event in events:
            emit(event)
    for collector in collectors.values():
        collector.shutdown()
    provider.shutdown()
    return {
        "events": len(events) if emit is not None else 0,
        "spans_exported": exporter.spans,
        "records_written": sum(count_lines(path) for path in paths.values()),
    }


def _count(subject: str, turns: int) -> dict[str, int]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    env["PYTHONHASHSEED"] = "0"  # the same dict and set layouts in every run, so that the counts repeat
    with tempfile.TemporaryDirectory(prefix="auditspan-instructions-") as tmp:
        done = subprocess.run(
            [
                "valgrind",
                "--tool=callgrind",
                "--callgrind-out-file=/dev/null",
                sys.executable,
                "-m",
                "benchmarks.instructions",
                subject,
                str(turns),
                tmp,
            ],
            capture_output=True,
            text=True,
            env=env,
            cwd=REPO,
            check=False,
            timeout=1_800,
        )
    if done.returncode != 0:
        raise RuntimeError(f"instructions {subject} failed:\n{done.stderr[-3000:]}")
    result: dict[str, int] = json.loads(done.stdout.strip().splitlines()[-1])
    result["instructions"] = collected(done.stderr)
    return result


def measure(turns: int, *, subjects: tuple[str, ...] = SUBJECTS) -> dict[str, Any]:
    """Instructions per event of each subject and their ratio to the bare SDK's (see the module doc).

    Returns ``{"skipped": reason}`` when valgrind is not installed.
    """
    if shutil.which("valgrind") is None:
        return {"skipped": "valgrind is not installed"}
    names = ("none", *subjects)
    with ThreadPoolExecutor(max_workers=2) as pool:  # the runs are independent; counts do not depend on load
        runs = dict(zip(names, pool.map(lambda name: _count(name, turns), names), strict=True))
    base = runs["none"]["instructions"]
    per_event = {
        name: (runs[name]["instructions"] - base) / runs[name]["events"]
        for name in subjects
        if runs[name]["events"]
    }
    bare = per_event.get("bare_sdk")
    return {
        "turns": turns,
        "events": turns * events_per_turn(_CALLS_PER_TURN),
        "spans": turns * spans_per_turn(_CALLS_PER_TURN),
        "runs": runs,
        "per_event": per_event,
        "ratio": {name: value / bare for name, value in per_event.items()} if bare else {},
    }


def main(argv: list[str] | None = None) -> None:
    """Child process: ``subject turns workdir``; prints one JSON line of counts."""
    parser = argparse.ArgumentParser(description="one counted run (see benchmarks/instructions.py)")
    parser.add_argument("subject", choices=("none", *SUBJECTS))
    parser.add_argument("turns", type=int)
    parser.add_argument("workdir", type=Path)
    args = parser.parse_args(argv)
    print(json.dumps(run_subject(args.subject, args.turns, args.workdir)))


if __name__ == "__main__":
    main()

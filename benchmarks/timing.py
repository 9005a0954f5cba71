"""Interleaved repetitions and medians: how every figure of the benchmark is measured.

A *case* is a callable that does one repetition and returns a ``Sample``:
wall-clock seconds, the CPU seconds of the calling thread (the agent
thread), and how many operations the timed part did (set-up and flushing
stay outside it). Wall time is what the agent waits; thread CPU time leaves
out time the thread was descheduled or waiting for the GIL, so it is the
steadier figure on a busy machine -- both are reported.
``interleave`` runs all cases of a comparison in turn, rotating which goes
first, so drift of a noisy machine (other tenants, CPU boost, page cache)
hits baseline and subject alike; the medians of the repetitions are compared::

    result = interleave({"baseline": run_sdk, "auditspan": run_collector}, reps=7)
    result.ratio("auditspan", "baseline")          # median wall seconds-per-op ratio
    result.ratio("auditspan", "baseline", "cpu")   # the same in agent-thread CPU time
"""

from __future__ import annotations

import gc
import statistics
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

__all__ = ["Case", "Measured", "Sample", "Stopwatch", "interleave"]


@dataclass(frozen=True)
class Sample:
    """One repetition's timed part: wall seconds, agent-thread CPU seconds, operations."""

    wall: float
    cpu: float
    ops: int


#: One repetition of a case.
Case = Callable[[], Sample]


class Stopwatch:
    """Wall and thread-CPU time of a ``with`` block::

    with Stopwatch() as watch:
        work()
    sample = watch.sample(ops=1_000)
    """

    def __init__(self) -> None:
        self.wall = self.cpu = 0.0
        self._wall0 = self._cpu0 = 0.0

    def __enter__(self) -> Stopwatch:
        self._cpu0 = time.thread_time()
        self._wall0 = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall = time.perf_counter() - self._wall0
        self.cpu = time.thread_time() - self._cpu0

    def sample(self, ops: int) -> Sample:
        """The block's times with the number of operations it did."""
        return Sample(self.wall, self.cpu, ops)


@dataclass
class Measured:
    """Seconds per operation of every repetition, per case, on both clocks."""

    wall: dict[str, list[float]] = field(default_factory=dict)
    cpu: dict[str, list[float]] = field(default_factory=dict)
    ops: dict[str, int] = field(default_factory=dict)

    def median(self, name: str, clock: str = "wall") -> float:
        """Median seconds per operation of ``name`` (``clock``: ``"wall"`` or ``"cpu"``)."""
        return statistics.median((self.wall if clock == "wall" else self.cpu)[name])

    def us(self, name: str, clock: str = "wall") -> float:
        """Median µs per operation of ``name``."""
        return self.median(name, clock) * 1e6

    def ratio(self, subject: str, baseline: str, clock: str = "wall") -> float:
        """Median per-op time of ``subject`` over that of ``baseline``."""
        return self.median(subject, clock) / self.median(baseline, clock)

    def spread(self, name: str, clock: str = "wall") -> float:
        """(max - min) / median of the repetitions: how noisy the figure was."""
        values = (self.wall if clock == "wall" else self.cpu)[name]
        return (max(values) - min(values)) / statistics.median(values)

    def summary(self, baseline: str | None = None) -> dict[str, dict[str, float]]:
        """Medians (µs per op, both clocks), spreads and -- given a baseline -- ratios, per case."""
        out: dict[str, dict[str, float]] = {}
        for name in self.wall:
            row = {
                "us_wall": self.us(name),
                "us_cpu": self.us(name, "cpu"),
                "spread_wall": self.spread(name),
            }
            if baseline is not None:
                row["ratio_wall"] = self.ratio(name, baseline)
                row["ratio_cpu"] = self.ratio(name, baseline, "cpu")
            out[name] = row
        return out


def interleave(cases: Mapping[str, Case], reps: int, *, warmup: bool = True) -> Measured:
    """Run every case ``reps`` times, interleaved with a rotating start; return the per-op samples.

    With ``warmup`` every case runs once first, untimed (imports, caches, JIT-free but
    allocator warm-up still matters).
    """
    names = list(cases)
    result = Measured(wall={name: [] for name in names}, cpu={name: [] for name in names})
    if warmup:
        for name in names:
            cases[name]()
    for rep in range(reps):
        shift = rep % len(names)
        for name in names[shift:] + names[:shift]:
            gc.collect()
            sample = cases[name]()
            ops = max(sample.ops, 1)
            result.wall[name].append(sample.wall / ops)
            result.cpu[name].append(sample.cpu / ops)
            result.ops[name] = sample.ops
    return result

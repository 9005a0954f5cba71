"""The whole benchmark: every section, the table, the JSON file and the verdict on each target.

``benchmarks/run.py`` is the command line; ``run_suite(config)`` is the same
from Python (the smoke test runs it with tiny sizes). ``QUICK`` and ``FULL``
are the two presets.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path
from typing import IO, Any

from . import endtoend, instructions, memory, micro

__all__ = ["FULL", "QUICK", "Config", "machine", "render", "run_suite", "sustained", "verdicts"]

#: The per-event target: collector + canonical log per event, over the bare SDK.
MAX_OVERHEAD_RATIO = 1.5
#: The agent thread's time per canonical record.
MAX_EXPORT_US = 5.0
#: Events/s into rotel that must be sustained with nothing lost.
MIN_EVENTS_PER_S = 10_000
#: Pace of the sustained run: 2% above the target, so reaching the target is not a rounding matter.
PACED_RATE = MIN_EVENTS_PER_S * 1.02
_PROTOCOLS = ("grpc", "http/protobuf")
_PACED = "auditspan_paced"
_COUNTED = ("rotel_received", "spans_produced", "records_written", "events")
#: RSS growth allowed over the long stream.
MAX_RSS_GROWTH_MB = 50.0
#: "Flat": per-event cost at the largest size over the smallest.
MAX_SCALING_RATIO = 1.25
_MB = 1024 * 1024


@dataclass(frozen=True)
class Config:
    """Sizes of every section (``e2e_seconds=0`` / ``instruction_turns=0`` leave those sections out)."""

    name: str
    reps: int
    per_event_turns: int
    classification_calls: int
    log_records: int
    e2e_seconds: float
    #: Sustained (paced) runs per protocol; the target's verdict takes their median.
    e2e_paced_reps: int
    memory_events: int
    memory_open_turns: int
    memory_warmup_turns: int
    scaling_reps: int
    calls_per_turn_sizes: tuple[int, ...]
    calls_per_turn_events: int
    open_turn_sizes: tuple[int, ...]
    open_turn_calls: int
    instruction_turns: int


QUICK = Config(
    name="quick",
    reps=5,
    per_event_turns=150,
    classification_calls=1_000,
    log_records=10_000,
    e2e_seconds=3.0,
    e2e_paced_reps=1,
    memory_events=50_000,
    memory_open_turns=10_000,
    memory_warmup_turns=500,
    scaling_reps=3,
    calls_per_turn_sizes=(1, 10, 100, 1_000),
    calls_per_turn_events=5_000,
    open_turn_sizes=(1, 100, 10_000),
    open_turn_calls=1_000,
    instruction_turns=20,
)

FULL = Config(
    name="full",
    reps=9,
    per_event_turns=1_000,
    classification_calls=5_000,
    log_records=100_000,
    e2e_seconds=60.0,
    e2e_paced_reps=3,
    memory_events=1_000_000,
    memory_open_turns=10_000,
    memory_warmup_turns=500,
    scaling_reps=5,
    calls_per_turn_sizes=(1, 10, 100, 1_000, 10_000),
    calls_per_turn_events=25_000,
    open_turn_sizes=(1, 10, 100, 1_000, 10_000),
    open_turn_calls=5_000,
    instruction_turns=100,
)


def machine() -> dict[str, Any]:
    """Where the figures were measured: CPUs, CPU model, Python, package versions, load."""
    model = platform.processor() or "unknown"
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    versions = {}
    for package in ("opentelemetry-sdk", "orjson", "protobuf", "grpcio", "rotel"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = "not installed"
    return {
        "nproc": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "cpu_model": model,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "packages": versions,
        "load_average": list(os.getloadavg()),
    }


def _e2e(config: Config, workdir: Path) -> dict[str, Any]:
    runs: dict[str, Any] = {}
    with endtoend.Rotel(workdir) as rotel:
        for protocol in _PROTOCOLS:
            # Capacity: the bare SDK's, then auditspan's, unpaced.
            for label, variant in (("bare_sdk_unpaced", "bare_sdk"), ("auditspan_unpaced", "auditspan")):
                runs[f"{protocol}:{label}"] = endtoend.measure(
                    rotel, protocol, config.e2e_seconds, 0.0, variant
                )
        # The sustained runs, the protocols taking turns: a noisy minute on the machine falls on one run
        # of one of them, and the median sets it aside.
        for rep in range(1, config.e2e_paced_reps + 1):
            for protocol in _PROTOCOLS:
                runs[f"{protocol}:{_PACED}#{rep}"] = endtoend.measure(
                    rotel, protocol, config.e2e_seconds, PACED_RATE, "auditspan"
                )
    return runs


def _paced_runs(e2e: dict[str, Any], protocol: str) -> list[dict[str, Any]]:
    """The sustained runs of ``protocol``, in the order they ran."""
    return [run for key, run in e2e.items() if key.startswith(f"{protocol}:{_PACED}#")]


def _delivered_everything(run: dict[str, Any]) -> bool:
    """Every span produced reached rotel and every event's record was written."""
    return (
        run["spans_dropped"] == 0
        and run["spans_failed"] == 0
        and run["rotel_received"] == run["spans_produced"]
        and run["records_written"] == run["events"]
    )


def sustained(runs: list[dict[str, Any]]) -> tuple[float, bool]:
    """The median events/s of the sustained runs, and whether every one of them delivered everything."""
    return statistics.median(run["events_per_s"] for run in runs), all(map(_delivered_everything, runs))


def _memory(config: Config) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for scenario, size in (("stream", config.memory_events), ("open_turns", config.memory_open_turns)):
        for variant in ("bare_sdk", "auditspan"):
            out[f"{scenario}:{variant}"] = memory.measure(
                scenario, variant, size, warmup_turns=config.memory_warmup_turns
            )
    return out


def run_suite(config: Config, *, json_path: Path | None = None, out: IO[str] | None = None) -> dict[str, Any]:
    """Run every section of ``config``, print progress and the table; return (and write) the JSON report."""
    stream = out if out is not None else sys.stdout

    def say(text: str) -> None:
        print(text, file=stream, flush=True)

    checks = micro.Checks()
    report: dict[str, Any] = {
        "config": asdict(config),
        "machine": machine(),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "results": {},
    }
    results = report["results"]
    with tempfile.TemporaryDirectory(prefix="auditspan-bench-") as tmp:
        workdir = Path(tmp)
        sections: list[tuple[str, Callable[[], dict[str, Any]]]] = [
            ("per_event", lambda: micro.per_event(config.per_event_turns, config.reps, workdir, checks)),
            ("classification", lambda: micro.classification(config.classification_calls, config.reps)),
            ("canonical_log", lambda: micro.canonical_log(config.log_records, config.reps, workdir, checks)),
            (
                "scaling_calls_per_turn",
                lambda: micro.scaling_calls_per_turn(
                    config.calls_per_turn_sizes,
                    config.calls_per_turn_events,
                    config.scaling_reps,
                    workdir,
                    checks,
                ),
            ),
            (
                "scaling_open_turns",
                lambda: micro.scaling_open_turns(
                    config.open_turn_sizes, config.open_turn_calls, config.scaling_reps, workdir, checks
                ),
            ),
            ("memory", lambda: _memory(config)),
        ]
        if config.instruction_turns > 0:
            sections.append(("instructions", lambda: instructions.measure(config.instruction_turns)))
        if config.e2e_seconds > 0:
            sections.append(("end_to_end", lambda: _e2e(config, workdir)))
        for name, section in sections:
            say(f"... {name}")
            began = time.perf_counter()
            results[name] = section()
            say(f"    done in {time.perf_counter() - began:.1f} s")
    report["machine"]["load_average_after"] = list(os.getloadavg())
    report["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    _check_end_to_end(results.get("end_to_end", {}), checks)
    _check_memory(results["memory"], checks)
    _check_instructions(results.get("instructions", {}), checks)
    report["checks"] = {"checked": checks.checked, "problems": checks.problems}
    report["targets"] = verdicts(report, config)
    say(render(report))
    if json_path is not None:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
        say(f"JSON written to {json_path}")
    return report


def _check_end_to_end(runs: dict[str, Any], checks: micro.Checks) -> None:
    for label, run in runs.items():
        if run["variant"] == "auditspan":
            checks.expect(f"e2e {label}: records written", run["events"], run["records_written"])
        checks.expect(f"e2e {label}: internal errors", 0, run["internal_errors"])


def _check_memory(runs: dict[str, Any], checks: micro.Checks) -> None:
    for label, run in runs.items():
        if "records" in run:
            checks.expect(f"memory {label}: records", run["events_total"], run["records"])
        checks.expect(f"memory {label}: spans exported", run["spans_total"], run["spans_exported"])


def _check_instructions(result: dict[str, Any], checks: micro.Checks) -> None:
    for name, run in result.get("runs", {}).items():
        events = result["events"] if name != "none" else 0
        checks.expect(f"instructions {name}: events", events, run["events"])
        spans = result["spans"] if name in ("bare_sdk", "auditspan") else 0
        checks.expect(f"instructions {name}: spans exported", spans, run["spans_exported"])
        records = events if name in ("auditspan", "no_sdk_spans") else 0
        checks.expect(f"instructions {name}: records written", records, run["records_written"])


def verdicts(report: dict[str, Any], config: Config) -> list[dict[str, Any]]:
    """PASS / FAIL per target (SKIP when its section did not run). Timings are wall-clock medians."""
    results = report["results"]
    out: list[dict[str, Any]] = []

    def verdict(name: str, value: float | None, limit: float, ok: bool | None, shown: str) -> None:
        status = "SKIP" if ok is None else ("PASS" if ok else "FAIL")
        out.append({"target": name, "value": value, "limit": limit, "status": status, "shown": shown})

    auditspan = results["per_event"]["cases"]["auditspan"]
    ratio = auditspan["ratio_wall"]
    verdict(
        f"collector + canonical log <= {MAX_OVERHEAD_RATIO}x bare SDK per event",
        ratio,
        MAX_OVERHEAD_RATIO,
        ratio <= MAX_OVERHEAD_RATIO,
        f"{ratio:.2f}x (agent-thread CPU: {auditspan['ratio_cpu']:.2f}x)",
    )
    export = results["canonical_log"]["agent_thread"]["export"]
    verdict(
        f"agent thread <= {MAX_EXPORT_US:g} us per canonical record",
        export["us_wall"],
        MAX_EXPORT_US,
        export["us_wall"] <= MAX_EXPORT_US,
        f"{export['us_wall']:.2f} us (CPU {export['us_cpu']:.2f} us)",
    )
    e2e = results.get("end_to_end")
    for protocol, label in (("grpc", "gRPC"), ("http/protobuf", "HTTP")):
        name = (
            f">= {MIN_EVENTS_PER_S:,} events/s into rotel ({label}), {config.e2e_seconds:g} s, nothing lost"
        )
        if not e2e:
            verdict(name, None, MIN_EVENTS_PER_S, None, "not run")
            continue
        runs = _paced_runs(e2e, protocol)
        rate, complete = sustained(runs)
        rates = ", ".join(f"{run['events_per_s']:,.0f}" for run in runs)
        total = {key: sum(run[key] for run in runs) for key in _COUNTED}
        shown = (
            f"{rate:,.0f}/s{f' (median of {rates})' if len(runs) > 1 else ''}; "
            f"spans {total['rotel_received']:,}/{total['spans_produced']:,}; "
            f"records {total['records_written']:,}/{total['events']:,}"
        )
        verdict(name, rate, MIN_EVENTS_PER_S, rate >= MIN_EVENTS_PER_S and complete, shown)
    stream = results["memory"]["stream:auditspan"]
    growth = stream["growth"] / _MB
    verdict(
        f"RSS growth < {MAX_RSS_GROWTH_MB:g} MB over {stream['events']:,} events",
        growth,
        MAX_RSS_GROWTH_MB,
        growth < MAX_RSS_GROWTH_MB,
        f"{growth:.1f} MB (peak {stream['peak_growth'] / _MB:.1f} MB)",
    )
    for section, what in (
        ("scaling_calls_per_turn", "tool calls per turn"),
        ("scaling_open_turns", "open turns"),
    ):
        data = results[section]
        flat = data["last_over_first"]
        sizes = data["sizes"]
        verdict(
            f"cost per event flat from {sizes[0]:,} to {sizes[-1]:,} {what} (<= {MAX_SCALING_RATIO}x)",
            flat["auditspan_wall"],
            MAX_SCALING_RATIO,
            flat["auditspan_wall"] <= MAX_SCALING_RATIO,
            f"{flat['auditspan_wall']:.2f}x (CPU {flat['auditspan_cpu']:.2f}x)",
        )
    problems = report["checks"]["problems"]
    verdict(
        "every run produced every span and record it should (counts)",
        len(problems),
        0,
        not problems,
        f"{report['checks']['checked']} counts checked, {len(problems)} wrong",
    )
    return out


_COLUMNS = ("", "wall", "baseline", "ratio", "CPU ratio")


def _row(label: str, *cells: str) -> str:
    padded = [*cells, "", "", "", ""][:4]
    return f"  {label:<56}" + "".join(f"{cell:>14}" for cell in padded)


def _timed_rows(cases: dict[str, Any], baseline: str, rows: list[tuple[str, str]], unit: str) -> list[str]:
    base = cases[baseline]
    lines = [_row(rows[0][1], f"{base['us_wall']:.2f} {unit}")]
    for key, label in rows[1:]:
        case = cases[key]
        lines.append(
            _row(
                label,
                f"{case['us_wall']:.2f} {unit}",
                f"{base['us_wall']:.2f} {unit}",
                f"{case['ratio_wall']:.2f}x",
                f"{case['ratio_cpu']:.2f}x",
            )
        )
    return lines


def render(report: dict[str, Any]) -> str:
    """The human-readable table of a report."""
    r = report["results"]
    m = report["machine"]
    lines = [
        f"auditspan benchmarks ({report['config']['name']}) -- {m['nproc']} CPUs, {m['cpu_model']}, "
        f"Python {m['python']}, opentelemetry-sdk {m['packages']['opentelemetry-sdk']}",
        f"load average {m['load_average'][0]:.2f} before, {m.get('load_average_after', [0.0])[0]:.2f} after. "
        "Medians of interleaved repetitions; ratio = subject / baseline of the same run",
        "(wall clock; 'CPU ratio' uses the agent thread's CPU time, steadier on a busy machine).",
        "",
        _row(*_COLUMNS),
    ]
    pe = r["per_event"]
    lines.append(f"per event ({pe['events']:,} events of {pe['turns']:,} turns, {pe['reps']} reps), us/event")
    lines += _timed_rows(
        pe["cases"],
        "bare_sdk",
        [
            ("bare_sdk", "bare SDK: same spans, BatchSpanProcessor, no-op exporter"),
            ("auditspan", "auditspan: collector + canonical log"),
            ("collector_only", "  collector without audit log"),
            ("audit_log_only", "  audit log alone (export of each record)"),
            ("without_sdk_spans", "  collector + log on a no-op tracer (auditspan's own work)"),
        ],
        "us",
    )
    cl = r["classification"]
    lines.append(f"classification ({cl['calls']:,} realistic previews, {cl['reps']} reps), us/call")
    lines += _timed_rows(
        cl["cases"],
        "json_dumps_event",
        [
            ("json_dumps_event", "json.dumps of one event (yardstick)"),
            ("classify_new_previews", "classify, every preview new (the collector's case)"),
            ("classify_cache_off", "classify, memo cache off"),
            ("classify_cache_hit", "classify, cache hit"),
        ],
        "us",
    )
    lg = r["canonical_log"]
    lines.append(
        f"canonical log ({lg['records']:,} records, {lg['reps']} reps), us/record on the agent thread"
    )
    lines += _timed_rows(
        lg["agent_thread"],
        "json_dumps_record",
        [
            ("json_dumps_record", "json.dumps of one record (yardstick)"),
            ("encode_record", "encode_record (orjson)"),
            ("export", "JsonLinesAuditLog.export, one record a call"),
        ],
        "us",
    )
    rps = lg["records_per_s"]
    lines.append(
        _row(
            "records/s to disk (vs json.dumps+write+fsync; higher=better)",
            f"{rps['json_lines_audit_log']:,.0f}",
            f"{rps['naive_json_writer']:,.0f}",
            f"{lg['throughput_ratio_vs_naive']:.2f}x",
        )
    )
    for section, title in (
        ("scaling_calls_per_turn", "scaling: tool calls per turn"),
        ("scaling_open_turns", "scaling: turns open at once"),
    ):
        sc = r[section]
        cases = sc["cases"]
        first = sc["sizes"][0]
        lines.append(f"{title} ({sc['reps']} reps), us/event; ratio = auditspan / auditspan at {first:,}")
        for size in sc["sizes"]:
            ours, bare = cases[f"auditspan@{size}"], cases[f"bare_sdk@{size}"]
            base = cases[f"auditspan@{first}"]
            lines.append(
                _row(
                    f"{size:>7,}: auditspan (baseline: bare SDK)",
                    f"{ours['us_wall']:.1f} us",
                    f"{bare['us_wall']:.1f} us",
                    f"{ours['us_wall'] / base['us_wall']:.2f}x",
                    f"{ours['us_cpu'] / base['us_cpu']:.2f}x",
                )
            )
        flat = sc["last_over_first"]
        lines.append(
            _row(
                "last / first: auditspan (baseline: bare SDK's own)",
                "",
                f"{flat['bare_sdk_wall']:.2f}x",
                f"{flat['auditspan_wall']:.2f}x",
                f"{flat['auditspan_cpu']:.2f}x",
            )
        )
    mem = r["memory"]
    lines.append("memory: RSS growth after flush (peak), fresh interpreter each")
    for scenario, label in (("stream", "events of complete turns"), ("open_turns", "never-ended turns")):
        a, b = mem[f"{scenario}:auditspan"], mem[f"{scenario}:bare_sdk"]
        count = a["events"] if scenario == "stream" else a["size"]
        # A ratio of two growths under a megabyte says nothing.
        ratio_text = f"{a['growth'] / b['growth']:.2f}x" if b["growth"] >= _MB else "-"
        lines.append(
            _row(
                f"{count:,} {label}",
                f"{a['growth'] / _MB:.1f} ({a['peak_growth'] / _MB:.1f}) MB",
                f"{b['growth'] / _MB:.1f} MB",
                ratio_text,
            )
        )
    ins = r.get("instructions")
    if ins and "skipped" not in ins:
        lines.append(
            f"instructions per event (callgrind, {ins['events']:,} events of {ins['turns']:,} turns, "
            "every thread); ratio = subject / bare SDK"
        )
        bare_ins = ins["per_event"]["bare_sdk"]
        for key, label in (
            ("bare_sdk", "bare SDK: same spans"),
            ("auditspan", "auditspan: collector + canonical log"),
            ("no_sdk_spans", "  collector + log on a no-op tracer (auditspan's own work)"),
        ):
            lines.append(
                _row(label, f"{ins['per_event'][key]:,.0f}", f"{bare_ins:,.0f}", f"{ins['ratio'][key]:.2f}x")
            )
    elif ins:
        lines.append(f"instructions per event: skipped ({ins['skipped']})")
    e2e = r.get("end_to_end")
    if e2e:
        lines.append(
            "end to end into rotel (blackhole exporter): events/s; spans rotel got / produced; records"
        )
        for protocol in _PROTOCOLS:
            bare = e2e[f"{protocol}:bare_sdk_unpaced"]
            labelled = [
                (bare, "bare SDK, unpaced"),
                (e2e[f"{protocol}:auditspan_unpaced"], "auditspan, unpaced"),
            ]
            runs = _paced_runs(e2e, protocol)
            labelled += [
                (run, f"auditspan, paced at {PACED_RATE:,.0f}/s" + (f" #{i}" if len(runs) > 1 else ""))
                for i, run in enumerate(runs, start=1)
            ]
            for run, label in labelled:
                lost = run["spans_produced"] - run["rotel_received"]
                detail = f"spans {run['rotel_received']:,}/{run['spans_produced']:,}"
                if run["variant"] == "auditspan":
                    detail += f", records {run['records_written']:,}/{run['events']:,}"
                if lost:
                    detail += f", {lost:,} spans LOST"
                lines.append(
                    _row(
                        f"{protocol} {label} ({run['seconds']:.0f} s)",
                        f"{run['events_per_s']:,.0f}/s",
                        f"{bare['events_per_s']:,.0f}/s",
                        f"{run['events_per_s'] / bare['events_per_s']:.2f}x",
                    )
                )
                lines.append(f"      {detail}")
    lines += ["", "targets"]
    for v in report["targets"]:
        lines.append(f"  {v['status']:<5} {v['target']:<76} {v['shown']}")
    if report["checks"]["problems"]:
        lines.append("count mismatches:")
        lines.extend(f"  - {p}" for p in report["checks"]["problems"])
    return "\n".join(lines)

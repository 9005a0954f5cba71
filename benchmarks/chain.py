"""What the audit log's hash chain costs the agent, and how fast ``auditspan verify`` reads.

The chain is computed on the writer thread (``fsync`` other than ``"always"``), so the agent's
thread should pay nothing for it. Three measures, chain on and off in the same run:

* **agent-thread instructions per record** (valgrind's callgrind, ``--separate-threads``: the
  main thread's count alone, minus a run that sets up the same log and exports nothing) -- a
  figure machine noise does not move;
* **agent-thread CPU per record** (``time.thread_time`` around the export loop, interleaved
  repetitions, medians) and the **writer thread's** CPU per record (process CPU minus the agent's);
* **verify**: records per second of ``verify_logs`` over a 200,000-record signed log, by the
  wall clock and by the process's CPU time (steadier on a shared machine).

::

    .venv/bin/python -m benchmarks.chain             # about two minutes on 2 cores
    .venv/bin/python -m benchmarks.chain --quick     # smaller sizes, no valgrind
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from .isolated import REPO

__all__ = ["agent_cpu", "agent_instructions", "verify_rate"]

_TOTALS = re.compile(r"^(?:summary|totals): (\d+)", re.M)


def _records(count: int) -> list[dict[str, Any]]:
    from auditspan.records import build_record

    return [
        build_record(
            {
                "event_type": "tool_call_attempt",
                "timestamp": "2026-12-07T01:00:00.000000+00:00",
                "agent_id": "planner",
                "turn_id": f"turn-{n // 20}",
                "session_id": "sess-01",
                "severity": "info",
                "metadata": {"step": n},
                "tool_name": "run_sql",
                "arguments_preview": f"select * from customers where id = {n}",
            },
            event_id=f"evt_{n:012d}",
            operation_type="DATABASE_READ",
            target="customers",
            trace_id="4bf92f3577b34da6a3ce929d0e0e4736",
            span_id="00f067aa0ba902b7",
        )
        for n in range(count)
    ]


def _run_log(chain: bool, count: int, workdir: Path) -> dict[str, float]:
    """Export ``count`` records one by one on this thread; the agent's and the process's CPU."""
    from auditspan.audit_log import JsonLinesAuditLog

    records = _records(count)
    path = workdir / f"audit-{chain}-{time.monotonic_ns()}.jsonl"
    log = JsonLinesAuditLog(path, chain=chain)
    log.export(records[:100])  # warm: the writer thread is running, caches are filled
    assert log.force_flush(30_000)
    process0, agent0 = time.process_time(), time.thread_time()
    for record in records:
        log.export((record,))
    agent = time.thread_time() - agent0
    assert log.force_flush(60_000)
    process = time.process_time() - process0
    log.shutdown()
    path.unlink()
    return {"agent_us": agent / count * 1e6, "writer_us": (process - agent) / count * 1e6}


def agent_cpu(count: int = 50_000, reps: int = 5) -> dict[str, Any]:
    """Median agent-thread and writer-thread CPU per record, chain off and on (interleaved)."""
    samples: dict[str, list[dict[str, float]]] = {"off": [], "on": []}
    with tempfile.TemporaryDirectory(prefix="auditspan-chain-") as tmp:
        for rep in range(reps):
            order = ("off", "on") if rep % 2 == 0 else ("on", "off")
            for name in order:
                samples[name].append(_run_log(name == "on", count, Path(tmp)))
    result: dict[str, Any] = {"records": count, "reps": reps}
    for name, runs in samples.items():
        result[name] = {key: statistics.median(run[key] for run in runs) for key in ("agent_us", "writer_us")}
    return result


def _count_main_thread(chain: bool, count: int) -> int:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "AUDITSPAN_"))}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    env["PYTHONHASHSEED"] = "0"
    with tempfile.TemporaryDirectory(prefix="auditspan-chain-cg-") as tmp:
        out = Path(tmp) / "cg.out"
        done = subprocess.run(
            [
                "valgrind",
                "--tool=callgrind",
                "--separate-threads=yes",
                f"--callgrind-out-file={out}",
                sys.executable,
                "-m",
                "benchmarks.chain",
                "--child",
                "on" if chain else "off",
                str(count),
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
            raise RuntimeError(f"callgrind run failed:\n{done.stderr[-3000:]}")
        main_thread = sorted(glob.glob(f"{out}*-01"))  # thread 1: the main (agent) thread
        if not main_thread:
            raise RuntimeError(f"no per-thread callgrind output in {tmp}: {os.listdir(tmp)}")
        found = _TOTALS.search(Path(main_thread[0]).read_text())
        if found is None:
            raise RuntimeError("no totals in the callgrind output")
        return int(found.group(1))


def agent_instructions(count: int = 20_000) -> dict[str, Any]:
    """Instructions per record on the agent's (main) thread alone, chain off and on."""
    if shutil.which("valgrind") is None:
        return {"skipped": "valgrind is not installed"}
    result: dict[str, Any] = {"records": count}
    for name in ("off", "on"):
        base = _count_main_thread(name == "on", 0)
        full = _count_main_thread(name == "on", count)
        result[name] = (full - base) / count
    result["on_over_off"] = result["on"] / result["off"]
    return result


def _child(chain: bool, count: int, workdir: Path) -> None:
    """Under callgrind: set up the log, export ``count`` records on this thread, shut down."""
    from auditspan.audit_log import JsonLinesAuditLog

    records = _records(max(count, 1))
    log = JsonLinesAuditLog(workdir / "audit.jsonl", chain=chain)
    log.export(_records(100))
    log.force_flush(60_000)
    for record in records[:count]:
        log.export((record,))
    log.shutdown()


def verify_rate(count: int = 200_000) -> dict[str, Any]:
    """Records per second of ``verify_logs`` over a signed ``count``-record log (median of 3)."""
    from auditspan.audit_log import JsonLinesAuditLog
    from auditspan.records import encode_record
    from auditspan.signing import generate_key_pair, load_public_keys, load_signer
    from auditspan.verify import verify_logs

    with tempfile.TemporaryDirectory(prefix="auditspan-verify-") as tmp:
        key, public, _ = generate_key_pair(tmp)
        path = Path(tmp) / "audit.jsonl"
        log = JsonLinesAuditLog(path, chain=True, fsync="none", signer=load_signer(key))
        lines = [encode_record(record) for record in _records(1_000)]
        for _ in range(count // 1_000):
            log.export_lines(lines)
        log.shutdown()
        keys = load_public_keys([public])
        rates, cpu_rates, report = [], [], None
        for _ in range(3):
            started, cpu = time.perf_counter(), time.process_time()
            report = verify_logs([path], public_keys=keys)
            rates.append(report.records / (time.perf_counter() - started))
            cpu_rates.append(report.records / (time.process_time() - cpu))
        assert report is not None and report.intact
        return {
            "records": report.records,
            "bytes": path.stat().st_size,
            "checkpoints": report.checkpoints,
            "records_per_s": statistics.median(rates),
            # CPU time: what the verifier costs, without the wait for a core on a shared machine
            "records_per_cpu_s": statistics.median(cpu_rates),
        }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes, no valgrind")
    parser.add_argument("--child", nargs=3, metavar=("CHAIN", "COUNT", "DIR"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        _child(args.child[0] == "on", int(args.child[1]), Path(args.child[2]))
        return
    results: dict[str, Any] = {
        "agent_cpu": agent_cpu(10_000 if args.quick else 50_000, 3 if args.quick else 5),
        "verify": verify_rate(50_000 if args.quick else 200_000),
    }
    if not args.quick:
        results["agent_instructions"] = agent_instructions()
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()

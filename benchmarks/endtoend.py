"""End to end: events/s sustained into a real collector (rotel) over OTLP gRPC or HTTP.

``Rotel`` runs ``rotel-agent`` (from the ``rotel`` package) on free loopback
ports with its ``blackhole`` exporter, so the receiver is a real OTLP
collector and nothing downstream limits it; its basic debug log prints one
``Received traces ... spans=N`` line per request, which gives rotel's own
count of what arrived (``Rotel.received_spans``).

``run`` drives ``auditspan.configure()`` -- the real OTLP exporter behind the
default ``BatchSpanProcessor``, the canonical log to a file -- with whole
turns of the workload stream for ``seconds``, unpaced (as fast as the agent
thread goes) or paced at ``rate`` events/s, then shuts down and counts:
spans produced (a processor that counts span ends), spans the exporter
reported exported / failed (``handle.span_stats``), spans rotel received,
and lines in the audit log. ``measure`` does the same in a fresh interpreter.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import signal
import socket
import subprocess
import tempfile
import time
from importlib.util import find_spec
from pathlib import Path
from types import TracebackType
from typing import Any

from .isolated import run_module

__all__ = ["Rotel", "free_ports", "measure", "rotel_agent", "run"]

_LOOPBACK = "127.0.0.1"
_RECEIVED = re.compile(r"Received traces\..*?\bspans=(\d+)")


def free_ports(count: int) -> list[int]:
    """``count`` distinct TCP ports free on 127.0.0.1 right now."""
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind((_LOOPBACK, 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def _accepting(port: int) -> bool:
    try:
        with socket.create_connection((_LOOPBACK, port), timeout=0.2):
            return True
    except OSError:
        return False


def rotel_agent() -> Path:
    """The ``rotel-agent`` binary of the installed ``rotel`` package."""
    spec = find_spec("rotel")  # the Python package only ships the binary
    if spec is None or spec.origin is None:
        raise RuntimeError("rotel is not installed: .venv/bin/pip install rotel==0.0.1a15")
    return Path(spec.origin).resolve().parent / "rotel-agent"


class Rotel:
    """A ``rotel-agent`` with the blackhole exporter on loopback; stop it with ``stop()`` or a ``with``.

    >>> with Rotel() as collector:                     # doctest: +SKIP
    ...     ...  # export to collector.grpc_endpoint or collector.http_endpoint
    ...     collector.wait_for_spans(1_000, timeout=10)
    """

    def __init__(self, workdir: Path, *, startup_timeout: float = 20.0) -> None:
        self.workdir = workdir
        self.grpc_port, self.http_port = free_ports(2)
        self.log_path = workdir / "rotel.out"
        self._startup_timeout = startup_timeout
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def grpc_endpoint(self) -> str:
        """OTLP/gRPC endpoint, ``http://127.0.0.1:<port>``."""
        return f"http://{_LOOPBACK}:{self.grpc_port}"

    @property
    def http_endpoint(self) -> str:
        """OTLP/HTTP base endpoint (the exporter appends ``/v1/traces``)."""
        return f"http://{_LOOPBACK}:{self.http_port}"

    def endpoint(self, protocol: str) -> str:
        """The endpoint for ``"grpc"`` or ``"http/protobuf"``."""
        return self.grpc_endpoint if protocol == "grpc" else self.http_endpoint

    def start(self) -> Rotel:
        """Start rotel and wait until both ports accept connections."""
        command = [
            str(rotel_agent()),
            "start",
            "--otlp-grpc-endpoint", f"{_LOOPBACK}:{self.grpc_port}",
            "--otlp-http-endpoint", f"{_LOOPBACK}:{self.http_port}",
            "--exporter", "blackhole",
            "--debug-log", "traces",
            "--debug-log-verbosity", "basic",
            "--pid-file", str(self.workdir / "rotel.pid"),
            "--log-file", str(self.workdir / "rotel.log"),
        ]  # fmt: skip
        env = {k: v for k, v in os.environ.items() if not k.startswith(("ROTEL_", "OTEL_"))}
        env["NO_COLOR"] = "1"
        with self.log_path.open("wb") as out:
            self._process = subprocess.Popen(
                command, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True
            )
        deadline = time.monotonic() + self._startup_timeout
        while not (_accepting(self.grpc_port) and _accepting(self.http_port)):
            if self._process.poll() is not None or time.monotonic() > deadline:
                tail = self.log_path.read_text(errors="replace")[-2000:]
                self.stop()
                raise RuntimeError(f"rotel did not start:\n{tail}")
            time.sleep(0.05)
        return self

    def received_spans(self) -> int:
        """Spans rotel reports having received so far (sum over its debug-log lines)."""
        text = self.log_path.read_text(errors="replace")
        return sum(int(n) for n in _RECEIVED.findall(text))

    def wait_for_spans(self, count: int, timeout: float) -> int:
        """Poll until rotel has received ``count`` spans or ``timeout`` s passed; return its count."""
        deadline = time.monotonic() + timeout
        while True:
            seen = self.received_spans()
            if seen >= count or time.monotonic() > deadline:
                return seen
            time.sleep(0.1)

    def stop(self) -> None:
        """Stop rotel's process group (SIGTERM, then SIGKILL after 5 s)."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(5)

    def __enter__(self) -> Rotel:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def run(
    endpoint: str, protocol: str, seconds: float, rate: float, variant: str, workdir: Path
) -> dict[str, Any]:
    """Emit whole turns for ``seconds`` (paced at ``rate`` events/s, or unpaced when 0); count everything.

    ``variant`` is ``"auditspan"`` (``configure()``'s collector and audit log) or
    ``"bare_sdk"`` (the baseline's spans, through the same provider and exporter, no log).
    """
    from auditspan.configuration import configure

    from .baseline import BareSdkAgent, CountingProcessor
    from .micro import count_checkpoints, count_lines
    from .workload import events_per_turn, turn_events

    audit_path = workdir / "audit.jsonl"
    handle = configure(
        service_name="auditspan-benchmark",
        audit_log=audit_path if variant == "auditspan" else None,
        otlp_endpoint=endpoint,
        otlp_protocol=protocol,
        set_global=False,
        environ={} if variant == "auditspan" else {"AUDITSPAN_AUDIT_LOG": "none"},
    )
    produced = CountingProcessor()
    handle.tracer_provider.add_span_processor(produced)
    emit = (
        handle.emitter("sess-e2e").emit
        if variant == "auditspan"
        else BareSdkAgent(handle.tracer_provider).handle
    )
    rng = random.Random(5)
    per_turn = events_per_turn(4)
    interval = per_turn / rate if rate > 0 else 0.0
    events = turns = 0
    start = time.perf_counter()
    deadline = start + seconds
    next_turn = start
    while True:
        if interval:
            wait = next_turn - time.perf_counter()
            if wait > 0:
                time.sleep(wait)
            next_turn += interval
        if time.perf_counter() >= deadline:
            break
        for event in turn_events(rng, turns, start_ns=time.time_ns(), session_id="sess-e2e"):
            emit(event)
        events += per_turn
        turns += 1
    elapsed = time.perf_counter() - start
    flush_start = time.perf_counter()
    handle.shutdown()
    flush_s = time.perf_counter() - flush_start
    stats = handle.collector.stats
    exported, failed = handle.span_stats.exported, handle.span_stats.failed
    return {
        "variant": variant,
        "protocol": protocol,
        "paced_rate": rate,
        "seconds": elapsed,
        "turns": turns,
        "events": events,
        "events_per_s": events / elapsed,
        "spans_produced": produced.ended,  # with one witness span per checkpoint of the chain
        "checkpoints": count_checkpoints(audit_path) if variant == "auditspan" else 0,
        "spans_exported": exported,
        "spans_failed": failed,
        "spans_dropped": produced.ended - exported - failed,
        "records": stats.records,
        "records_written": count_lines(audit_path) if variant == "auditspan" else 0,
        "internal_errors": stats.internal_errors,
        "shutdown_s": flush_s,
    }


def measure(
    rotel: Rotel, protocol: str, seconds: float, rate: float, variant: str = "auditspan"
) -> dict[str, Any]:
    """``run`` in a fresh interpreter against ``rotel``; adds rotel's own count of received spans."""
    before = rotel.received_spans()
    with tempfile.TemporaryDirectory(prefix="auditspan-e2e-") as tmp:
        result = run_module(
            "benchmarks.endtoend",
            [rotel.endpoint(protocol), protocol, str(seconds), str(rate), variant, tmp],
            timeout=seconds + 300,
        )
    result["rotel_received"] = rotel.wait_for_spans(before + result["spans_exported"], timeout=15.0) - before
    return result


def main(argv: list[str] | None = None) -> None:
    """Child process: ``endpoint protocol seconds rate variant workdir``; prints one JSON line."""
    parser = argparse.ArgumentParser(description="one end-to-end run (see benchmarks/endtoend.py)")
    parser.add_argument("endpoint")
    parser.add_argument("protocol", choices=("grpc", "http/protobuf"))
    parser.add_argument("seconds", type=float)
    parser.add_argument("rate", type=float)
    parser.add_argument("variant", choices=("auditspan", "bare_sdk"))
    parser.add_argument("workdir", type=Path)
    args = parser.parse_args(argv)
    print(json.dumps(run(args.endpoint, args.protocol, args.seconds, args.rate, args.variant, args.workdir)))


if __name__ == "__main__":
    main()

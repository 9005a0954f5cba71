"""The collector goes away and comes back: the agent never waits, every span is accounted for.

auditspan is configured through environment variables (OTLP/gRPC to a real rotel collector
that forwards to Phoenix) and an agent emits turns while:

* rotel is killed mid-run (its process group, SIGKILL) and a new rotel comes back on the
  same ports;
* no collector listens at start-up, and one appears later;
* the endpoint never answers at all (refused, or a socket that accepts and stays silent).

Checked each time: no ``emit`` call takes long (the slowest is measured; bound 1 s),
``shutdown`` returns in bounded time, the spans read back in Phoenix equal
``span_stats.exported``, ``ended == exported + failed + dropped`` against an independent
count, and every canonical record is in the audit log. The measured figures are printed
(``pytest -s``) for the README.
"""

from __future__ import annotations

import os
import signal
import socket
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

import auditspan

from ..conftest import checkpoint_count, event_records, event_spans
from .servers import (
    PHOENIX_PROJECT_ATTRIBUTE,
    Phoenix,
    Rotel,
    RotelFactory,
    free_ports,
    poll_until,
    port_accepting,
)

EMIT_BOUND_S = 1.0  # generous: an emit call only encodes and queues
SPANS_PER_TURN = 2
EVENTS_PER_TURN = 4


class PinnedRotel(Rotel):
    """A rotel on ports chosen beforehand: where the agent's exporter already points."""

    def __init__(self, upstream: str, ports: list[int], **options: Any) -> None:
        super().__init__(upstream, **options)
        self._pinned = list(ports)

    def _launch(self) -> None:
        self.ports = list(self._pinned)
        super()._launch()


def start_pinned(phoenix: Phoenix, ports: list[int], started: list[Rotel]) -> Rotel:
    """Start a rotel on ``ports`` (retrying while the old sockets are released)."""
    errors: list[str] = []

    def attempt() -> Rotel | None:
        server = PinnedRotel(phoenix.grpc_endpoint, ports, upstream_protocol="grpc")
        started.append(server)
        try:
            return server.start()
        except Exception as exc:  # a port not free yet: try again until the deadline
            errors.append(str(exc)[:300])
            server.stop()
            return None

    server, _ = poll_until(attempt, timeout=20.0, interval=0.5)
    assert server is not None, f"rotel did not come back on {ports}: {errors[-1:]}"
    return server


@dataclass
class Agent:
    """Emits turns through an emitter and times every emit call."""

    audit: auditspan.AuditEmitter
    latencies: list[float] = field(default_factory=list)
    turns: Counter[str] = field(default_factory=Counter)

    def _timed(self, call: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        result = call(*args, **kwargs)
        self.latencies.append(time.perf_counter() - started)
        return result

    def turn(self, phase: str) -> None:
        n = self.turns[phase]
        self.turns[phase] += 1
        turn = self._timed(self.audit.emit_turn_start, agent_id=phase, turn_id=f"{phase}-{n}", prompt="go")
        self._timed(
            self.audit.emit_tool_call_attempt, f"tool_{phase}", args=f"n={n}", agent_id=phase, turn_id=turn
        )
        self._timed(
            self.audit.emit_tool_call_complete, f"tool_{phase}", duration_ms=1.0, result="ok", turn_id=turn
        )
        self._timed(self.audit.emit_turn_end, agent_id=phase, turn_id=turn, fc_count=1)

    def run(
        self, phase: str, turns: int | None = None, seconds: float | None = None, pace_s: float = 0.01
    ) -> None:
        """``turns`` turns, or as many as fit in ``seconds``, one every ``pace_s`` (an agent's pace)."""
        deadline = time.monotonic() + (seconds or 0)
        while (turns is not None and self.turns[phase] < turns) or (
            seconds is not None and time.monotonic() < deadline
        ):
            self.turn(phase)
            time.sleep(pace_s)

    @property
    def events(self) -> int:
        return sum(self.turns.values()) * EVENTS_PER_TURN

    @property
    def spans(self) -> int:
        return sum(self.turns.values()) * SPANS_PER_TURN


@pytest.fixture
def otel_env(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, phoenix_project: str, fresh_global_provider: None
) -> Iterator[Callable[[str], None]]:
    """Set the environment a deployment would (endpoint given later), with no global provider yet."""
    for name, value in {
        "OTEL_SERVICE_NAME": "outage-agent",
        "OTEL_RESOURCE_ATTRIBUTES": f"{PHOENIX_PROJECT_ATTRIBUTE}={phoenix_project}",
        "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
        "OTEL_EXPORTER_OTLP_TIMEOUT": "3000",  # ms: a dead collector costs each batch ~3 s of retries
        "OTEL_BSP_SCHEDULE_DELAY": "200",
        "OTEL_BSP_MAX_QUEUE_SIZE": "512",
        "OTEL_BSP_MAX_EXPORT_BATCH_SIZE": "64",
        "OTEL_LOGS_EXPORTER": "none",
        "AUDITSPAN_AUDIT_LOG": str(tmp_path / "audit.jsonl"),
        "AUDITSPAN_RULES": "none",
    }.items():
        monkeypatch.setenv(name, value)

    def set_endpoint(endpoint: str) -> None:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint)

    yield set_endpoint


def audit_records(path: Path) -> list[dict[str, Any]]:
    return event_records(path.read_bytes().splitlines())


def kill_group(server: Rotel) -> None:
    assert server.pid is not None
    os.killpg(server.pid, signal.SIGKILL)
    gone, _ = poll_until(lambda: True if not port_accepting(server.ports[0]) else None, timeout=10.0)
    assert gone, "rotel still accepting after SIGKILL"


def spans_by_phase(spans: list[dict[str, Any]]) -> Counter[str]:
    """invoke_agent {phase} / execute_tool tool_{phase} -> phase (the chain's witness spans apart)."""
    return Counter(str(s["name"]).split(" ", 1)[1].removeprefix("tool_") for s in event_spans(spans))


def check_accounting(handle: auditspan.AuditSpanHandle, agent: Agent, delivered: int, witnessed: int) -> None:
    stats = handle.span_stats
    # Every span the agent made entered the pipeline, and one witness span per checkpoint of the chain.
    assert stats.ended == agent.spans + witnessed
    assert stats.ended == stats.exported + stats.failed + stats.dropped
    assert delivered == stats.exported  # what the receiver has is what was counted as exported


def finish_and_read_back(
    handle: auditspan.AuditSpanHandle,
    agent: Agent,
    phoenix: Phoenix,
    project: str,
    audit_path: Path,
    *,
    timeout: float,
) -> tuple[list[dict[str, Any]], Counter[str], list[dict[str, Any]], float]:
    """Shut down (timed), read the spans back from Phoenix and the audit log, and check what every
    outage must keep: the span accounting, every record once, emits and shutdown bounded."""
    started = time.monotonic()
    handle.shutdown(timeout_s=10.0)
    shutdown_s = time.monotonic() - started
    spans = phoenix.wait_for_spans(project, count=max(handle.span_stats.exported, 1), timeout=timeout)
    check_accounting(handle, agent, len(spans), checkpoint_count(audit_path))
    records = audit_records(audit_path)
    assert len(records) == agent.events and len({r["event_id"] for r in records}) == agent.events
    assert max(agent.latencies) < EMIT_BOUND_S
    assert shutdown_s < 30.0
    return spans, spans_by_phase(spans), records, shutdown_s


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_collector_killed_and_restarted_mid_run(
    protocol: str,
    phoenix: Phoenix,
    phoenix_project: str,
    rotel: RotelFactory,
    otel_env: Callable[[str], None],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    first = rotel("grpc")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", protocol)
    otel_env(first.grpc_endpoint if protocol == "grpc" else first.http_endpoint)
    handle = auditspan.configure(set_global=False)
    agent = Agent(handle.emitter(session_id="outage"))
    started: list[Rotel] = []
    try:
        agent.run("before", turns=40)
        assert handle.force_flush(10_000)
        phoenix.wait_for_spans(phoenix_project, count=40 * SPANS_PER_TURN, timeout=60)

        kill_group(first)  # the collector dies mid-run
        agent.run("outage", seconds=5.0)
        outage_failed_calls = handle.span_stats.failed_calls

        second = start_pinned(phoenix, first.ports, started)  # and comes back on the same ports
        agent.run("after", turns=40)

        spans, by_phase, records, shutdown_s = finish_and_read_back(
            handle, agent, phoenix, phoenix_project, tmp_path / "audit.jsonl", timeout=90
        )
        stats = handle.span_stats
        assert by_phase["before"] == 40 * SPANS_PER_TURN  # all delivered before the outage
        assert by_phase["after"] > 0  # delivery resumed after the restart
        assert stats.failed > 0 or stats.dropped > 0, "the outage must have cost something"
        assert outage_failed_calls > 0 or stats.failed_calls > 0
        print(
            f"\n[outage {protocol}] turns {dict(agent.turns)}; spans ended {stats.ended}, "
            f"exported {stats.exported} (= {len(spans)} read back), failed {stats.failed} "
            f"in {stats.failed_calls} calls, dropped {stats.dropped}; delivered by phase {dict(by_phase)}; "
            f"slowest emit {max(agent.latencies) * 1000:.1f} ms over {len(agent.latencies)} calls; "
            f"shutdown {shutdown_s:.2f} s; audit records {len(records)}/{agent.events}"
        )
        second.stop()
    finally:
        handle.shutdown(timeout_s=5.0)
        for server in started:
            server.stop()


def test_collector_absent_at_start_then_appearing(
    phoenix: Phoenix, phoenix_project: str, otel_env: Callable[[str], None], tmp_path: Path
) -> None:
    ports = free_ports(2)
    otel_env(f"http://127.0.0.1:{ports[0]}")  # nothing listens there yet
    handle = auditspan.configure(set_global=False)
    agent = Agent(handle.emitter(session_id="late"))
    started: list[Rotel] = []
    try:
        agent.run("early", turns=20)
        failed, _ = poll_until(lambda: handle.span_stats.failed_calls or None, timeout=30.0, interval=0.2)
        assert failed, "the exporter should have tried and failed while nothing listened"

        start_pinned(phoenix, ports, started)
        agent.run("late", turns=20)
        _spans, by_phase, _records, shutdown_s = finish_and_read_back(
            handle, agent, phoenix, phoenix_project, tmp_path / "audit.jsonl", timeout=60
        )
        stats = handle.span_stats
        assert by_phase["late"] == 20 * SPANS_PER_TURN  # everything after the collector appeared
        assert stats.failed >= 1
        print(
            f"\n[late collector] spans ended {stats.ended}, exported {stats.exported}, "
            f"failed {stats.failed}, dropped {stats.dropped}; delivered by phase {dict(by_phase)}; "
            f"slowest emit {max(agent.latencies) * 1000:.1f} ms; shutdown {shutdown_s:.2f} s"
        )
    finally:
        handle.shutdown(timeout_s=5.0)
        for server in started:
            server.stop()


@pytest.fixture
def silent_endpoint() -> Iterator[str]:
    """A TCP port that accepts connections (kernel backlog) and never says a word."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        sock.close()


@pytest.mark.parametrize("kind", ["refused", "silent"])
def test_shutdown_with_an_unreachable_endpoint_is_bounded(
    kind: str,
    otel_env: Callable[[str], None],
    silent_endpoint: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With the default timeouts (OTLP 10 s, flush 10 s, shutdown 10 s per provider)."""
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_TIMEOUT")
    endpoint = silent_endpoint if kind == "silent" else f"http://127.0.0.1:{free_ports(1)[0]}"
    otel_env(endpoint)
    handle = auditspan.configure(set_global=False)
    agent = Agent(handle.emitter(session_id=kind))
    agent.run(kind, turns=100, pace_s=0.0)
    started = time.monotonic()
    handle.shutdown()
    shutdown_s = time.monotonic() - started
    stats = handle.span_stats
    records = audit_records(tmp_path / "audit.jsonl")
    assert len(records) == agent.events  # the audit log does not depend on the collector
    assert stats.exported == 0
    assert max(agent.latencies) < EMIT_BOUND_S
    assert shutdown_s < 35.0
    print(
        f"\n[unreachable: {kind}] shutdown {shutdown_s:.1f} s with default timeouts; spans ended "
        f"{stats.ended}, failed {stats.failed}, still in flight/dropped {stats.dropped}; slowest emit "
        f"{max(agent.latencies) * 1000:.1f} ms; audit records {len(records)}/{agent.events}"
    )

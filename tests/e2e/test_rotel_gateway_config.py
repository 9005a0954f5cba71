"""One real hop through ``collector-config/rotel/``: the ready-to-copy rotel gateway, run for real.

rotel started from ``collector-config/rotel/gateway.env`` (through ``run-rotel``) receives
spans and a log record from the plain OpenTelemetry SDK and forwards them to a second rotel
acting as the receiver. (The static checks of the collector configs are in
``tests/collector_config/``.)
"""

from __future__ import annotations

import importlib.util
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from auditspan import attributes as attrs

from ..conftest import event_records

REPO = Path(__file__).resolve().parents[2]
CONFIG_DIR = REPO / "collector-config"
ROTEL_ENV = CONFIG_DIR / "rotel" / "gateway.env"
RUN_ROTEL = CONFIG_DIR / "rotel" / "run-rotel"


# --- rotel ------------------------------------------------------------------------------------------


def rotel_agent() -> Path:
    """The rotel-agent binary the ``rotel`` wheel ships inside its package (test extra)."""
    spec = importlib.util.find_spec("rotel")
    assert spec is not None and spec.origin, (
        "the rotel package is not installed (pip install rotel==0.0.1a15)"
    )
    agent = Path(spec.origin).parent / "rotel-agent"
    assert os.access(agent, os.X_OK), f"rotel-agent is not executable at {agent}"
    return agent


def env_file_settings() -> dict[str, str]:
    settings: dict[str, str] = {}
    for raw in ROTEL_ENV.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, value = line.split("=", 1)
        settings[key] = value
    return settings


def test_rotel_env_file_uses_only_settings_rotel_knows() -> None:
    help_text = subprocess.run(
        [str(rotel_agent()), "start", "--help"], capture_output=True, text=True, timeout=30, check=True
    ).stdout
    known = set(re.findall(r"\[env: (ROTEL_[A-Z0-9_]+)=", help_text))
    assert len(known) > 50, "could not read rotel's settings from --help"
    settings = env_file_settings()
    assert set(settings) <= known, f"unknown to rotel: {sorted(set(settings) - known)}"
    for key in ("ROTEL_OTLP_GRPC_ENDPOINT", "ROTEL_OTLP_HTTP_ENDPOINT"):
        assert settings[key].startswith("127.0.0.1:"), f"{key} must stay on loopback"
    assert settings["ROTEL_EXPORTER"] == "otlp"


def test_run_rotel_refuses_a_malformed_env_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.env"
    bad.write_text("ROTEL_EXPORTER=otlp\nexport PATH=/nowhere\n", encoding="utf-8")
    env = {**_clean_env(), "AUDITSPAN_ROTEL_ENV_FILE": str(bad), "AUDITSPAN_PYTHON": sys.executable}
    result = subprocess.run([str(RUN_ROTEL)], env=env, capture_output=True, text=True, timeout=30)
    assert result.returncode == 1
    assert "bad.env:2: expected ROTEL_NAME=value" in result.stderr


def _clean_env() -> dict[str, str]:
    """This process's environment without any ROTEL_* / OTEL_* setting leaking in."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("ROTEL_", "OTEL_"))}


def _free_ports(count: int) -> list[int]:
    """``count`` distinct free loopback ports (all held open while choosing, so none repeats)."""
    sockets = [socket.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [int(s.getsockname()[1]) for s in sockets]
    finally:
        for s in sockets:
            s.close()


def _start(cmd: list[str], env: dict[str, str], output: Path) -> subprocess.Popen[bytes]:
    with output.open("wb") as sink:
        return subprocess.Popen(
            cmd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def _stop(process: subprocess.Popen[bytes]) -> None:
    """Stop the process group this test started (SIGTERM, then SIGKILL)."""
    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=5)
    except ProcessLookupError:
        pass
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=5)


def _wait_for_port(
    port: int, process: subprocess.Popen[bytes], output: Path, deadline_s: float = 15.0
) -> None:
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"process exited ({process.returncode}):\n{output.read_text(errors='replace')}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    pytest.fail(f"nothing listens on 127.0.0.1:{port}:\n{output.read_text(errors='replace')}")


def _debug_blocks(text: str, header: str) -> list[str]:
    """The blocks of rotel's detailed debug output that start with ``header`` (``Span #``, ...)."""
    chunks = re.split(
        r"^(?=ResourceSpans #|ScopeSpans #|Span #|ResourceLog #|ScopeLogs #|LogRecord #)", text, flags=re.M
    )
    return [c for c in chunks if c.startswith(header)]


def _parse_spans(text: str) -> dict[str, dict[str, Any]]:
    spans: dict[str, dict[str, Any]] = {}
    for block in _debug_blocks(text, "Span #"):
        fields = dict(
            re.findall(r"^\s*(Trace ID|Parent ID|ID|Name|Status code)\s*: ?(.*?)\s*$", block, flags=re.M)
        )
        fields["attributes"] = dict(re.findall(r"^\s*-> (\S+): \w+\((.*)\)\s*$", block, flags=re.M))
        spans[fields["ID"]] = fields
    return spans


def _parse_log_records(text: str) -> list[dict[str, str]]:
    records = []
    for block in _debug_blocks(text, "LogRecord #"):
        records.append(
            dict(
                re.findall(
                    r"^\s*(EventName|Trace ID|Span ID|SeverityText|Body)\s*: ?(.*?)\s*$", block, flags=re.M
                )
            )
        )
    return records


@pytest.fixture
def rotel_pair(tmp_path: Path) -> Iterator[tuple[int, int, Path]]:
    """A receiving rotel (prints what arrives) and the gateway rotel from gateway.env in front of it.

    Yields (gateway gRPC port, gateway HTTP port, receiver output file).
    """
    agent = rotel_agent()
    sink_grpc, sink_http, gw_grpc, gw_http = _free_ports(4)
    sink_out, gateway_out = tmp_path / "receiver.out", tmp_path / "gateway.out"
    started: list[subprocess.Popen[bytes]] = []
    try:
        # The receiver: a second rotel that decodes what arrives and prints it in detail.
        sink = _start(
            [
                str(agent), "start",
                "--otlp-grpc-endpoint", f"127.0.0.1:{sink_grpc}",
                "--otlp-http-endpoint", f"127.0.0.1:{sink_http}",
                "--exporter", "blackhole",
                "--debug-log", "traces", "--debug-log", "logs",
                "--debug-log-verbosity", "detailed",
            ],
            _clean_env(),
            sink_out,
        )  # fmt: skip
        started.append(sink)
        _wait_for_port(sink_grpc, sink, sink_out)
        # The gateway under test: run-rotel + gateway.env, only the addresses overridden.
        env = {
            **_clean_env(),
            "AUDITSPAN_PYTHON": sys.executable,
            "ROTEL_OTLP_GRPC_ENDPOINT": f"127.0.0.1:{gw_grpc}",
            "ROTEL_OTLP_HTTP_ENDPOINT": f"127.0.0.1:{gw_http}",
            "ROTEL_OTLP_EXPORTER_ENDPOINT": f"http://127.0.0.1:{sink_grpc}",
        }
        gateway = _start([str(RUN_ROTEL)], env, gateway_out)
        started.append(gateway)
        _wait_for_port(gw_grpc, gateway, gateway_out)
        _wait_for_port(gw_http, gateway, gateway_out)
        yield gw_grpc, gw_http, sink_out
    finally:
        for process in reversed(started):
            _stop(process)


def test_rotel_gateway_forwards_the_demo(rotel_pair: tuple[int, int, Path], tmp_path: Path) -> None:
    """``auditspan demo``, configured by environment only, through the gateway into a real receiver."""
    gw_grpc, _, received = rotel_pair
    env = {
        **_clean_env(),
        "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{gw_grpc}",
        "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
        "AUDITSPAN_EVENTS_AS": "both",  # the audit events as OTLP log records too
    }
    demo = subprocess.run(
        [sys.executable, "-m", "auditspan", "demo", "--output-dir", str(tmp_path), "--no-tree", "--fast"],
        env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert demo.returncode == 0, demo.stdout + demo.stderr
    records = event_records((tmp_path / "audit.jsonl").read_text().splitlines())
    span_ids = {r["telemetry"]["span_id"] for r in records}

    # force_flush says nothing about delivery: read back what the receiver decoded, with a deadline.
    deadline = time.monotonic() + 30
    while True:
        text = received.read_text(errors="replace")
        spans, logs = _parse_spans(text), _parse_log_records(text)
        if span_ids <= spans.keys() and len(logs) >= len(records):
            break
        if time.monotonic() > deadline:
            missing = len(span_ids - spans.keys())
            pytest.fail(
                f"{missing} spans and {len(records) - len(logs)} log records did not arrive:\n{text[-3000:]}"
            )
        time.sleep(0.1)

    for record in records:  # every record's ids resolve to a span the receiver decoded
        span = spans[record["telemetry"]["span_id"]]
        assert span["Trace ID"] == record["telemetry"]["trace_id"]
    denied = [s for s in spans.values() if s["attributes"].get(attrs.TOOL_OUTCOME) == attrs.OUTCOME_DENIED]
    assert denied and all(s["Status code"] == "STATUS_CODE_ERROR" for s in denied)
    turns = {s["ID"] for s in spans.values() if s["Name"].startswith("invoke_agent ")}
    assert all(s["Parent ID"] in turns for s in spans.values() if s["Name"].startswith("execute_tool "))
    policy_logs = [r for r in logs if r.get("EventName") == attrs.EVENT_NAME_PREFIX + "tool_policy_decision"]
    policy_records = [r for r in records if r["event_type"] == "tool_policy_decision"]
    assert sorted((r["Trace ID"], r["Span ID"]) for r in policy_logs) == sorted(
        (r["telemetry"]["trace_id"], r["telemetry"]["span_id"]) for r in policy_records
    )

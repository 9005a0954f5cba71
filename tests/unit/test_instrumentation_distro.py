"""Zero code with ``opentelemetry-distro``: the README's first run, in a subprocess with the real
``opentelemetry-instrument`` and the distro installed (it is in the test extra).

With no ``OTEL_*`` setting the distro defaults every exporter to OTLP on
``localhost:4317``, where nothing listens on a first run; auditspan's spans go
to ``./auditspan-output/traces.jsonl`` as the README promises. When spans
cannot be delivered, auditspan says so once, in one line.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

from auditspan.otlp_file import read_spans

from ..conftest import event_records, event_spans
from ..fixtures.zero_code import OPENTELEMETRY_INSTRUMENT, zero_code_env

AGENT = Path(__file__).resolve().parents[1] / "fixtures" / "seed_standin" / "agent.py"


def _first_run_env(tmp_path: Path, **settings: str) -> dict[str, str]:
    """The environment of a first run: the distro's entry points, no OTEL_* and no AUDITSPAN_* set."""
    env = zero_code_env(tmp_path, tmp_path / "unused")
    for name in list(env):
        if name.startswith(("OTEL_", "AUDITSPAN_")):
            del env[name]
    env.update(settings)
    return env


def _instrument(env: dict[str, str], cwd: Path, app_log: Path) -> subprocess.CompletedProcess[str]:
    instrument = Path(sys.executable).parent / "opentelemetry-instrument"
    if not instrument.exists():
        instrument = OPENTELEMETRY_INSTRUMENT
    return subprocess.run(
        [str(instrument), sys.executable, str(AGENT), str(app_log)],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _auditspan_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if "auditspan" in line]


def test_the_distro_is_installed_at_the_instrumentations_version() -> None:
    assert version("opentelemetry-distro") == version("opentelemetry-instrumentation")


def test_first_run_with_the_distro_writes_the_files_the_readme_promises(tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    result = _instrument(_first_run_env(tmp_path), work, tmp_path / "app.jsonl")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"collector": "JSONLSinkCollector", "same_sink": True}
    out = work / "auditspan-output"
    spans = event_spans(read_spans(out / "traces.jsonl"))
    assert len(spans) == 8  # 2 turns and 6 tool calls of the stand-in scenario
    records = event_records((out / "audit.jsonl").read_text(encoding="utf-8").splitlines())
    assert len(records) == 31
    by_id = {(s["traceId"], s["spanId"]) for s in spans}
    assert all((r["telemetry"]["trace_id"], r["telemetry"]["span_id"]) in by_id for r in records)
    assert not (out / "logs.jsonl").exists()  # auditspan sends no log records unless asked to
    assert "4317" not in result.stderr and not _auditspan_lines(result.stderr), result.stderr


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_undeliverable_spans_are_reported_once_in_one_line(tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    endpoint = f"http://127.0.0.1:{_closed_port()}"
    env = _first_run_env(
        tmp_path,
        OTEL_METRICS_EXPORTER="none",
        OTEL_LOGS_EXPORTER="none",
        OTEL_EXPORTER_OTLP_ENDPOINT=endpoint,
        OTEL_EXPORTER_OTLP_TIMEOUT="500",
        OTEL_BSP_SCHEDULE_DELAY="50",
        AUDITSPAN_AUDIT_LOG=str(tmp_path / "audit.jsonl"),
    )
    result = _instrument(env, work, tmp_path / "app.jsonl")
    assert result.returncode == 0, result.stderr
    lines = [line for line in _auditspan_lines(result.stderr) if "could not be delivered" in line]
    assert len(lines) == 1, result.stderr
    assert endpoint in lines[0] and str(tmp_path / "audit.jsonl") in lines[0]
    assert len(event_records((tmp_path / "audit.jsonl").read_text(encoding="utf-8").splitlines())) == 31

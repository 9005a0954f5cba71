"""The command line as a new user meets it: commands they can run, plurals, honest destinations, durations."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from auditspan.cli import main

from ..conftest import checkpoint_count, event_records

pytestmark = pytest.mark.usefixtures("clean_environment")

README = Path(__file__).resolve().parents[2] / "README.md"
VENV_BIN = Path(sys.executable).parent


def test_the_demo_suggests_an_auditspan_command_that_runs_when_it_is_not_on_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PATH", "/usr/bin:/bin")  # as after `bash scripts/demo`: .venv/bin is not on PATH
    monkeypatch.chdir(tmp_path)
    assert main(["demo", "--output-dir", "out", "--fast", "--turns", "1", "--no-tree"]) == 0
    out = capsys.readouterr().out
    line = next(line for line in out.splitlines() if line.startswith("explore: "))
    command = line.removeprefix("explore: ").split()
    assert command[0] != "auditspan" and Path(command[0]).resolve() == (VENV_BIN / "auditspan").resolve()
    assert f"source {VENV_BIN / 'activate'}" in out or "source .venv/bin/activate" in out
    # The suggested command runs as printed.
    result = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    assert "session demo-" in result.stdout


def test_the_demo_says_auditspan_when_it_is_on_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PATH", f"{VENV_BIN}{os.pathsep}/usr/bin:/bin")
    assert main(["demo", "--output-dir", str(tmp_path), "--fast", "--turns", "1", "--no-tree"]) == 0
    out = capsys.readouterr().out
    assert f"explore: auditspan show {tmp_path.resolve() / 'audit.jsonl'}" in out
    assert "not on PATH" not in out


def test_counts_are_in_the_singular_for_one(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--output-dir", str(tmp_path), "--fast", "--turns", "1"]) == 0
    out = capsys.readouterr().out
    assert "auditspan demo: 1 turn in 1 session, 5 tool calls," in out
    assert "(1 turn)" in out
    assert not re.search(r"\b1 (turns|sessions|behavioural-rule matches|events)\b", out), out


def test_the_demo_names_no_log_endpoint_when_it_sends_no_logs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "300")
    main(["demo", "--output-dir", str(tmp_path), "--fast", "--turns", "1", "--no-tree"])
    out = capsys.readouterr().out
    assert f"traces:      http://127.0.0.1:{port}/v1/traces" in out
    assert "log records" not in out and "/v1/logs" not in out
    # Asked for log events, it names the logs endpoint.
    monkeypatch.setenv("AUDITSPAN_EVENTS_AS", "logs")
    main(["demo", "--output-dir", str(tmp_path), "--fast", "--turns", "1", "--no-tree"])
    assert f"log records: http://127.0.0.1:{port}/v1/logs" in capsys.readouterr().out


def test_show_gives_an_event_without_a_timestamp_the_time_of_its_neighbours(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = {"agent_id": "a", "turn_id": "t1", "session_id": "s", "severity": "info", "metadata": {}}
    lines = [
        {**base, "event_type": "turn_start", "prompt_preview": "hi"},  # no timestamp at all
        {
            **base,
            "event_type": "tool_call_attempt",
            "timestamp": "2026-03-02T09:00:01+00:00",
            "tool_name": "x",
        },
        {
            **base,
            "event_type": "tool_call_complete",
            "timestamp": "2026-03-02T09:00:02+00:00",
            "tool_name": "x",
        },
        {**base, "event_type": "turn_end"},  # none either
    ]
    log = tmp_path / "log.jsonl"
    log.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    assert main(["show", str(log)]) == 0
    out = capsys.readouterr().out
    assert ' "hi"  1.00 s' in out, out
    assert " m " not in out


def test_the_readme_use_it_snippet_says_where_its_output_went(tmp_path: Path) -> None:
    text = README.read_text(encoding="utf-8")
    section = text.split("## Use it", 1)[1]
    snippet = section.split("```python\n", 1)[1].split("```", 1)[0]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "AUDITSPAN_"))}
    result = subprocess.run(
        [sys.executable, "-c", snippet], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    out = tmp_path / "auditspan-output"
    assert result.stdout.strip() == (
        f"auditspan: 5 audit records -> {out.resolve() / 'audit.jsonl'}; "
        # The turn's 2 spans and the witness span of the chain's one checkpoint (at shutdown).
        f"3 spans -> {out.resolve() / 'traces.jsonl'} (OTLP/JSON lines)"
    )
    lines = (out / "audit.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(event_records(lines)) == 5 and checkpoint_count(out / "audit.jsonl") == 1 and len(lines) == 6


def test_otlp_json_ids_are_hex_which_protobufs_own_parser_misreads(tmp_path: Path) -> None:
    from google.protobuf import json_format
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    from auditspan.otlp_file import read_spans

    assert main(["demo", "--output-dir", str(tmp_path), "--fast", "--turns", "1", "--no-tree"]) == 0
    line = (tmp_path / "traces.jsonl").read_text(encoding="utf-8").splitlines()[0]
    span = json.loads(line)["resourceSpans"][0]["scopeSpans"][0]["spans"][0]
    assert re.fullmatch(r"[0-9a-f]{32}", span["traceId"]) and re.fullmatch(r"[0-9a-f]{16}", span["spanId"])
    assert span["traceId"] in {s["traceId"] for s in read_spans(tmp_path / "traces.jsonl")}
    # protobuf's JSON parser takes bytes fields for base64: the ids it reads are not the spans' ids.
    parsed = json_format.Parse(line, ExportTraceServiceRequest())
    misread = parsed.resource_spans[0].scope_spans[0].spans[0].trace_id
    assert misread.hex() != span["traceId"]
    # ... which the README says, where it describes the file.
    text = " ".join(README.read_text(encoding="utf-8").split())
    assert "trace and span ids are lowercase hex strings" in text and "reads `bytes` fields as base64" in text

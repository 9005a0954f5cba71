"""Every example runs as it stands, in a subprocess, and writes the traces and audit log it promises."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

from auditspan.otlp_file import read_spans

from ..conftest import event_records, event_spans
from ..fixtures.zero_code import zero_code_env
from ..unit.test_instrumentation import _lines

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _run_example(name: str, output_dir: Path, env: dict[str, str]) -> str:
    import subprocess

    done = subprocess.run(
        [sys.executable, str(EXAMPLES / name), str(output_dir)],
        env=env,
        cwd=output_dir.parent,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def _outputs(output_dir: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    spans = event_spans(read_spans(output_dir / "traces.jsonl"))
    records = event_records(json.dumps(r) for r in _lines(output_dir / "audit.jsonl"))
    span_ids = {s["spanId"] for s in spans}
    assert all(r["telemetry"]["span_id"] in span_ids for r in records), "every record points at a span"
    return spans, records


def _tree(spans: list[dict[str, Any]]) -> set[tuple[str, str | None, str | None]]:
    names = {s["spanId"]: s["name"] for s in spans}
    return {
        (s["name"], names.get(s.get("parentSpanId", "")), s["attributeMap"].get("auditspan.tool.outcome"))
        for s in spans
    }


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return zero_code_env(tmp_path, tmp_path / "unused")


def test_decorators_example(tmp_path: Path, env: dict[str, str]) -> None:
    out = tmp_path / "decorators"
    stdout = _run_example("decorators.py", out, env)
    assert "refused: tool call 'delete_records' refused (deny)" in stdout
    spans, records = _outputs(out)
    assert _tree(spans) >= {
        ("invoke_agent planner", None, None),
        ("execute_tool delete_records", "invoke_agent planner", "denied"),
        ("execute_tool fetch_url", "invoke_agent planner", "failure"),
        ("execute_tool fetch_url", "invoke_agent planner", "success"),
        ("execute_tool read_lines", "invoke_agent planner", "success"),
    }
    assert len(spans) == 11
    # The two web searches of the second turn ran in threads and still belong to it.
    second_turn = [s for s in spans if s["name"] == "invoke_agent planner"][1]
    threaded = [
        s for s in spans if s["name"] == "execute_tool web_search" and s["traceId"] == second_turn["traceId"]
    ]
    assert [s["parentSpanId"] for s in threaded] == [second_turn["spanId"]] * 2
    assert {r["session_id"] for r in records} == {"sess-decorators"}
    assert [r["event_type"] for r in records].count("turn_end") == 2


def test_seed_emitter_example(tmp_path: Path, env: dict[str, str]) -> None:
    out = tmp_path / "seed"
    _run_example("seed_emitter.py", out, env)
    spans, records = _outputs(out)
    own = _lines(out / "seed-events.jsonl")  # the runtime's own log is still written, event for event
    assert [e["event_type"] for e in own] == [r["event_type"] for r in records]
    assert len(spans) == 8
    assert ("execute_tool delete_records", "invoke_agent planner", "denied") in _tree(spans)


def test_zero_code_example(tmp_path: Path) -> None:
    out = tmp_path / "zero"
    env = zero_code_env(tmp_path, out)  # declares the entry points if the installed package does not yet
    stdout = _run_example("zero_code.py", out, env)
    assert "own collector: JSONLSinkCollector" in stdout
    spans, records = _outputs(out)
    assert _tree(spans) == {
        ("invoke_agent concierge", None, None),
        ("execute_tool web_search", "invoke_agent concierge", "success"),
        ("execute_tool read_file", "invoke_agent concierge", "success"),
        ("execute_tool send_email", "invoke_agent concierge", "denied"),
    }
    own = _lines(out / "seed-events.jsonl")
    assert [e["event_type"] for e in own] == [r["event_type"] for r in records]
    assert {s["resource"]["service.name"] for s in spans} == {"zero-code-agent"}


def test_openai_agents_example(tmp_path: Path, env: dict[str, str]) -> None:
    pytest.importorskip("agents", reason="openai-agents is not installed")
    out = tmp_path / "openai"
    stdout = _run_example("openai_agents_offline.py", out, env)
    assert "final output: Booked hotel A." in stdout
    spans, records = _outputs(out)
    assert _tree(spans) == {
        ("invoke_agent planner", None, None),
        ("execute_tool web_search", "invoke_agent planner", "success"),
        ("execute_tool delete_records", "invoke_agent planner", "denied"),
        ("execute_tool fetch_url", "invoke_agent planner", "failure"),
        ("execute_tool fetch_url", "invoke_agent planner", "success"),
        ("invoke_agent booker", "invoke_agent planner", None),
        ("execute_tool find_hotels", "invoke_agent booker", "success"),
    }
    switch = [r for r in records if r["event_type"] == "agent_switch"]
    assert [(r["from_agent"], r["to_agent"]) for r in switch] == [("planner", "booker")]
    assert json.dumps(records)  # plain JSON all the way

"""The scripted demo agent: its spans and records, live and through the ``demo`` command."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.trace import StatusCode

from auditspan import AuditEmitter
from auditspan import attributes as attr
from auditspan.cli import main
from auditspan.demo import DemoRun, run_demo_agent
from auditspan.otlp_file import read_spans
from auditspan.validate import validate_files

from ..conftest import checkpoint_count, event_records, event_spans

ANSI = re.compile(r"\x1b\[[0-9;]*m")


pytestmark = pytest.mark.usefixtures("clean_environment")


def _run(harness: Any, **options: Any) -> DemoRun:
    run = run_demo_agent(lambda session: AuditEmitter(harness.collector, session), latency_scale=0, **options)
    harness.collector.shutdown()
    return run


def _calls_of(run: DemoRun) -> Counter[tuple[str, str, int]]:
    return Counter((c.tool, c.outcome, c.attempt) for t in run.turns for c in t.calls)


def test_the_script_covers_every_kind_of_event(harness: Any) -> None:
    run = _run(harness, run_id="t1")
    assert [t.scenario for t in run.turns] == ["support", "rates", "weather", "docs", "ops"]
    assert run.sessions == ["demo-t1-support", "demo-t1-travel", "demo-t1-ops"]
    records = harness.records()
    assert len(records) == run.events  # the harness collector has no rules: one record per event
    assert Counter(r["event_type"] for r in records) == Counter(
        {
            "tool_loop_warning": 16,
            "tool_policy_decision": 16,
            "tool_call_attempt": 15,  # 4 + 3 + 3 + 3 + 2 (the denied and the blocked call have none)
            "sandbox_decision": 15,
            "tool_call_complete": 14,
            "turn_start": 5,
            "turn_end": 5,
            "hook_mutation": 2,
            "tool_call_failure": 1,
            "tool_loop_block": 1,
            "error": 1,
        }
    )
    types = {r["type"] for r in records if r["event_type"] == "tool_call_attempt"}
    assert types >= {"DATABASE_READ", "EXTERNAL_API_CALL", "FILE_WRITE", "EMAIL_SEND", "LLM_CALL"}
    pii = next(r for r in records if r["event_type"] == "tool_call_attempt" and r["type"] == "DATABASE_READ")
    assert pii["target"] == "customers.pii_emails"


def test_spans_match_what_the_script_did(harness: Any) -> None:
    run = _run(harness)
    spans = harness.spans()
    assert len(spans) == run.expected_spans == 22
    seen = Counter(
        (
            str(s.attributes[attr.GEN_AI_TOOL_NAME]),
            str(s.attributes[attr.TOOL_OUTCOME]),
            int(s.attributes[attr.TOOL_ATTEMPT]),
        )
        for s in spans
        if s.attributes and s.name.startswith("execute_tool")
    )
    assert seen == _calls_of(run)
    assert seen[("send_email", "denied", 1)] == 1
    assert seen[("fetch_rates", "failure", 1)] == seen[("fetch_rates", "success", 2)] == 1
    assert seen[("search_docs", "blocked", 1)] == 1
    assert seen[("get_weather", "success", 1)] == 3
    turns = [s for s in spans if s.name.startswith("invoke_agent")]
    assert (
        sorted(s.name for s in turns)
        == ["invoke_agent Ops Agent"] * 2 + ["invoke_agent Support Agent"] + ["invoke_agent Travel Agent"] * 2
    )


def test_denied_retried_and_blocked_calls(harness: Any) -> None:
    _run(harness)
    spans = harness.spans()
    denied = next(s for s in spans if s.attributes and s.attributes.get(attr.TOOL_OUTCOME) == "denied")
    assert denied.status.status_code is StatusCode.ERROR
    assert denied.attributes is not None and denied.attributes[attr.POLICY_SOURCE] == "pii_exfiltration_guard"
    failed = next(s for s in spans if s.attributes and s.attributes.get(attr.TOOL_OUTCOME) == "failure")
    retry = next(s for s in spans if s.attributes and s.attributes.get(attr.TOOL_ATTEMPT) == 2)
    assert failed.context is not None
    assert [link.context.span_id for link in retry.links] == [failed.context.span_id]
    docs_turn = next(
        s
        for s in spans
        if s.attributes and str(s.attributes.get(attr.TURN_PROMPT_PREVIEW, "")).startswith("Find")
    )
    assert docs_turn.status.status_code is StatusCode.ERROR  # the LLM rate-limit error event
    assert "audit.error" in [e.name for e in docs_turn.events]


def test_parallel_calls_each_get_their_own_events(harness: Any) -> None:
    _run(harness)
    weather = [s for s in harness.spans() if s.name == "execute_tool get_weather"]
    assert len(weather) == 3
    cities = sorted(
        str(s.attributes[attr.TOOL_ARGUMENTS_PREVIEW]).split("city=")[1][:5] for s in weather if s.attributes
    )
    assert cities == ["Faro'", "Lisbo", "Porto"]
    for span in weather:
        names = [e.name for e in span.events]
        assert names.count("audit.tool_policy_decision") == 1 and names.count("audit.sandbox_decision") == 1
    # The three calls overlapped in time: each started before any ended.
    assert max(s.start_time or 0 for s in weather) < min(s.end_time or 0 for s in weather)


def test_hooks_and_sandbox_decisions(harness: Any) -> None:
    _run(harness)
    spans = harness.spans()
    write = next(s for s in spans if s.name == "execute_tool write_file")
    assert write.attributes is not None and write.attributes[attr.SANDBOX_BACKEND] == "docker"
    assert "<redacted>" in str(write.attributes[attr.TOOL_ARGUMENTS_PREVIEW])  # the argument hook
    hooks = [e for s in spans for e in s.events if e.name == "audit.hook_mutation"]
    assert sorted(str((e.attributes or {})["auditspan.mutated_field"]) for e in hooks) == [
        "arguments",
        "result",
    ]


def test_the_structure_is_the_same_on_every_run(make_harness: Any) -> None:
    runs: list[tuple[DemoRun, list[str]]] = []
    for _ in range(2):
        h = make_harness()

        def factory(session: str, h: Any = h) -> AuditEmitter:
            return AuditEmitter(h.collector, session)

        run = run_demo_agent(factory, latency_scale=0)
        h.collector.shutdown()
        runs.append((run, sorted(s.name for s in h.spans())))
    (run1, names1), (run2, names2) = runs
    assert names1 == names2
    assert _calls_of(run1) == _calls_of(run2) and run1.events == run2.events
    assert run1.run_id != run2.run_id


def test_more_turns_start_new_sessions(harness: Any) -> None:
    run = _run(harness, turns=7, run_id="x")
    assert run.sessions == [
        "demo-x-support",
        "demo-x-travel",
        "demo-x-ops",
        "demo-x-support-2",
        "demo-x-travel-2",
    ]
    assert len([s for s in harness.spans() if s.name.startswith("invoke_agent")]) == 7


def test_turns_must_be_positive() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        run_demo_agent(lambda s: AuditEmitter(None, s), turns=0)  # type: ignore[arg-type]


# ------------------------------------------------------------------ command
def test_demo_command_on_the_embedded_default(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status = main(["demo", "--output-dir", str(tmp_path), "--fast"])
    out = capsys.readouterr().out
    assert status == 0
    every_span = list(read_spans(tmp_path / "traces.jsonl"))
    spans = event_spans(every_span)
    assert len(spans) == 22
    witnessed = checkpoint_count(tmp_path / "audit.jsonl")
    assert len(every_span) == 22 + witnessed and witnessed >= 1  # the chain's checkpoints, witnessed
    assert {s["resource"]["service.name"] for s in every_span} == {"auditspan-demo"}
    records = event_records((tmp_path / "audit.jsonl").read_text(encoding="utf-8").splitlines())
    events = int(re.search(r"(\d+) audit events", out).group(1))  # type: ignore[union-attr]
    rule_matches = sum(1 for r in records if r["event_type"] == attr.EVENT_TYPE_RULE_MATCH)
    assert len(records) == events + rule_matches and rule_matches > 0
    # Every record points at a span that was exported.
    span_ids = {s["spanId"] for s in spans}
    assert {r["telemetry"]["span_id"] for r in records} <= span_ids
    assert validate_files([tmp_path / "audit.jsonl"], schema_only=True).ok

    assert f"audit log:   {(tmp_path / 'audit.jsonl').resolve()}" in out
    assert f"traces:      {(tmp_path / 'traces.jsonl').resolve()} (OTLP/JSON lines)" in out
    assert f"spans:        {22 + witnessed} exported, 0 failed" in out
    assert (
        f"audit records: {len(records)} written ({events} events + {rule_matches} behavioural-rule match)"
        in out
    )
    tree = out.split("\n\n", 1)[1]
    assert "send_email  EMAIL_SEND  DENIED  DENY by pii_exfiltration_guard" in tree
    assert re.search(r"fetch_rates  EXTERNAL_API_CALL  retry 2  [\d.]+ ms  success", tree)
    assert "BLOCKED" in tree and "RateLimitError" in tree
    assert not ANSI.search(out)


def test_demo_command_appends_and_shows_only_its_own_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["demo", "--output-dir", str(tmp_path), "--fast", "--turns", "1"]) == 0
    first = capsys.readouterr().out
    assert main(["demo", "--output-dir", str(tmp_path), "--fast", "--turns", "1"]) == 0
    second = capsys.readouterr().out
    assert len(event_spans(read_spans(tmp_path / "traces.jsonl"))) == 2 * 6
    for out in (first, second):
        assert out.count("session demo-") == 1 and out.count("── turn ") == 1


def test_demo_without_tree(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--output-dir", str(tmp_path), "--fast", "--no-tree", "--turns", "2"]) == 0
    out = capsys.readouterr().out
    assert "session " not in out and "2 turns in 2 sessions," in out


def test_demo_rejects_bad_turns(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--turns", "0"]) == 2
    assert "--turns: must be at least 1, got 0" in capsys.readouterr().err


def test_demo_reports_undeliverable_spans(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "300")
    status = main(["demo", "--output-dir", str(tmp_path), "--fast", "--no-tree"])
    captured = capsys.readouterr()
    assert status == 3
    witnessed = checkpoint_count(tmp_path / "audit.jsonl")  # one witness span per checkpoint
    assert f"spans:        0 exported, {22 + witnessed} failed" in captured.out
    assert f"traces:      http://127.0.0.1:{port}/v1/traces (OTLP http/protobuf)" in captured.out
    assert "could not be delivered" in captured.err


def test_verify_finds_the_demos_chained_log_intact_against_its_traces(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["demo", "--output-dir", str(tmp_path), "--fast", "--no-tree"]) == 0
    capsys.readouterr()
    log, traces = tmp_path / "audit.jsonl", tmp_path / "traces.jsonl"
    assert all('"chain":' in line for line in log.read_text(encoding="utf-8").splitlines())  # the default
    assert main(["verify", str(log), "--witness", str(traces)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("intact:") and "witnessed checkpoint(s) matched" in out
    for command in (["show"], ["validate"]):
        assert main([*command, str(log)]) == 0, command
    capsys.readouterr()
    assert main(["replay", str(log), "--output-dir", str(tmp_path / "replayed")]) == 0

"""Wiring of the ingesting processor and the scrubbing exporters: configure() and opentelemetry-instrument."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from opentelemetry._logs import LogRecord
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import auditspan
from auditspan import attributes as attr
from auditspan.ingest import AuditSampler, AuditSpanProcessor

from ...conftest import event_records

SECRET = "sk-proj-abcDEF1234567890abcDEF12XYZ"
HIDDEN = SECRET[len("sk-proj-") :]


def _framework_call(provider: object, tool: str = "http_post") -> None:
    """What a runtime that emits the GenAI conventions' spans does: an agent span, a tool span."""
    tracer = provider.get_tracer("a-runtime")  # type: ignore[attr-defined]
    with (
        tracer.start_as_current_span(
            "invoke_agent planner",
            attributes={attr.GEN_AI_OPERATION_NAME: "invoke_agent", attr.GEN_AI_AGENT_NAME: "planner"},
        ),
        pytest.raises(PermissionError),
        tracer.start_as_current_span(
            f"execute_tool {tool}",
            attributes={
                attr.GEN_AI_OPERATION_NAME: "execute_tool",
                attr.GEN_AI_TOOL_NAME: tool,
                attr.GEN_AI_TOOL_CALL_ARGUMENTS: json.dumps({"url": "https://x.example.com", "key": SECRET}),
                "http.request.header.authorization": f"Bearer {HIDDEN}",
            },
        ),
    ):
        raise PermissionError(f"upstream refused {SECRET}")


def _records(path: Path) -> list[dict[str, object]]:
    return event_records(path.read_text(encoding="utf-8").splitlines()) if path.exists() else []


def test_configure_adds_the_processor_and_scrubs_what_other_instrumentations_export(tmp_path: Path) -> None:
    memory = InMemorySpanExporter()
    handle = auditspan.configure(
        audit_log=tmp_path / "audit.jsonl",
        span_exporter=memory,
        environ={},
        set_global=False,
        flush_on_signal=False,
    )
    assert isinstance(handle.ingest, AuditSpanProcessor)
    assert isinstance(handle.tracer_provider.sampler, AuditSampler)
    _framework_call(handle.tracer_provider)
    handle.shutdown()
    records = _records(tmp_path / "audit.jsonl")
    assert [(r["event_type"], r.get("tool_name"), r.get("error_type")) for r in records] == [
        ("turn_start", None, None),
        ("tool_call_attempt", "http_post", None),
        ("tool_call_failure", "http_post", "PermissionError"),
        ("turn_end", None, None),
    ]
    assert HIDDEN not in (tmp_path / "audit.jsonl").read_text()
    spans = {span.name: span for span in memory.get_finished_spans()}
    text = "\n".join(span.to_json() for span in spans.values())
    assert HIDDEN not in text  # the framework's own attributes, exception event and status
    tool = spans["execute_tool http_post"]
    assert tool.attributes is not None and tool.attributes[attr.OPERATION_TYPE] == "EXTERNAL_API_CALL"
    assert records[1]["telemetry"]["span_id"] == format(tool.context.span_id, "016x")


@pytest.mark.parametrize(
    ("kwargs", "env"),
    [
        ({"ingest_spans": False, "scrubbing": False}, {}),
        ({}, {"AUDITSPAN_INGEST": "false", "AUDITSPAN_SCRUBBING": "0"}),
    ],
    ids=["keywords", "settings"],
)
def test_both_can_be_turned_off(tmp_path: Path, kwargs: dict[str, bool], env: dict[str, str]) -> None:
    memory = InMemorySpanExporter()
    handle = auditspan.configure(
        audit_log=tmp_path / "audit.jsonl", span_exporter=memory, environ=env, set_global=False, **kwargs
    )
    assert handle.ingest is None and not isinstance(handle.tracer_provider.sampler, AuditSampler)
    _framework_call(handle.tracer_provider)
    handle.shutdown()
    assert _records(tmp_path / "audit.jsonl") == []
    tool = next(s for s in memory.get_finished_spans() if s.name == "execute_tool http_post")
    assert tool.attributes is not None and SECRET in str(tool.attributes[attr.GEN_AI_TOOL_CALL_ARGUMENTS])


def test_a_bad_switch_names_the_setting(tmp_path: Path) -> None:
    with pytest.raises(auditspan.ConfigurationError, match="AUDITSPAN_INGEST / ingest_spans"):
        auditspan.configure(
            audit_log=tmp_path / "a.jsonl", environ={"AUDITSPAN_INGEST": "maybe"}, set_global=False
        )
    with pytest.raises(auditspan.ConfigurationError, match="AUDITSPAN_SCRUBBING / scrubbing"):
        auditspan.configure(
            audit_log=tmp_path / "a.jsonl", environ={"AUDITSPAN_SCRUBBING": "yes please"}, set_global=False
        )


def test_records_do_not_depend_on_the_configured_sampler(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_TRACES_SAMPLER", "parentbased_always_off")  # the SDK reads it from the process
    memory = InMemorySpanExporter()
    handle = auditspan.configure(
        audit_log=tmp_path / "audit.jsonl", span_exporter=memory, environ={}, set_global=False
    )
    _framework_call(handle.tracer_provider)
    handle.shutdown()
    assert [r["event_type"] for r in _records(tmp_path / "audit.jsonl")] == [
        "turn_start",
        "tool_call_attempt",
        "tool_call_failure",
        "turn_end",
    ]
    assert [
        s.name for s in memory.get_finished_spans() if s.name.startswith(("invoke_agent", "execute_tool"))
    ] == []


def test_a_reused_provider_gets_one_processor_however_often_configure_runs(tmp_path: Path) -> None:
    provider = TracerProvider()
    first = auditspan.configure(audit_log=tmp_path / "audit.jsonl", tracer_provider=provider, environ={})
    second = auditspan.configure(audit_log=tmp_path / "other.jsonl", tracer_provider=provider, environ={})
    assert first.ingest is not None and second.ingest is None
    _framework_call(provider)
    first.shutdown()
    assert first.ingest.closed  # the application's provider keeps it, closed
    third = auditspan.configure(audit_log=tmp_path / "third.jsonl", tracer_provider=provider, environ={})
    _framework_call(provider, tool="send_email")
    second.shutdown()
    third.shutdown()
    assert len(_records(tmp_path / "audit.jsonl")) == 4
    assert _records(tmp_path / "other.jsonl") == []
    assert [r.get("tool_name") for r in _records(tmp_path / "third.jsonl")] == [
        None,
        "send_email",
        "send_email",
        None,
    ]


def test_log_records_of_other_instrumentations_are_scrubbed(tmp_path: Path) -> None:
    handle = auditspan.configure(
        output_dir=tmp_path,
        events_as="logs",
        environ={"OTEL_LOGS_EXPORTER": "auditspan_file", "OTEL_TRACES_EXPORTER": "none"},
        set_global=False,
    )
    handle.logger_provider.get_logger("a-framework").emit(
        LogRecord(body=f"tool failed with {SECRET}", attributes={"api_key": HIDDEN})
    )
    handle.shutdown()
    text = (tmp_path / "logs.jsonl").read_text()
    assert "tool failed with [REDACTED:openai_key]" in text
    assert HIDDEN not in text


_ZERO_CODE_APP = textwrap.dedent(
    """
    import json
    from opentelemetry import trace

    tracer = trace.get_tracer("a-runtime")
    agent_attributes = {"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "planner"}
    with tracer.start_as_current_span("invoke_agent planner", attributes=agent_attributes) as agent:
        with tracer.start_as_current_span(
            "execute_tool run_sql",
            attributes={
                "gen_ai.operation.name": "execute_tool",
                "gen_ai.tool.name": "run_sql",
                "gen_ai.tool.call.arguments": '{"query": "SELECT email FROM crm.pii_emails"}',
            },
        ) as tool:
            ids = {
                "trace_id": format(tool.get_span_context().trace_id, "032x"),
                "agent": format(agent.get_span_context().span_id, "016x"),
                "tool": format(tool.get_span_context().span_id, "016x"),
            }
    print(json.dumps(ids))
    """
)


@pytest.mark.parametrize("ingest", ["", "false"], ids=["default", "AUDITSPAN_INGEST=false"])
def test_zero_code_with_the_distro_audits_other_instrumentations_spans(tmp_path: Path, ingest: str) -> None:
    """opentelemetry-instrument with the distro: a runtime's own spans go to the distro's provider."""
    from ...fixtures.zero_code import OPENTELEMETRY_INSTRUMENT, zero_code_env

    app = tmp_path / "app.py"
    app.write_text(_ZERO_CODE_APP, encoding="utf-8")
    out = tmp_path / "out"
    settings = {"OTEL_TRACES_EXPORTER": "none", "OTEL_METRICS_EXPORTER": "none", "OTEL_LOGS_EXPORTER": "none"}
    if ingest:
        settings["AUDITSPAN_INGEST"] = ingest
    env = zero_code_env(tmp_path, out, sdk_configurator=True, **settings)
    done = subprocess.run(
        [str(OPENTELEMETRY_INSTRUMENT), sys.executable, str(app)],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    ids = json.loads(done.stdout.strip().splitlines()[-1])
    log = out / "audit.jsonl"
    records = event_records(log.read_text(encoding="utf-8").splitlines()) if log.exists() else []
    if ingest == "false":
        assert records == []
        return
    assert [(r["event_type"], r.get("tool_name"), r["telemetry"]["span_id"]) for r in records] == [
        ("turn_start", None, ids["agent"]),
        ("tool_call_attempt", "run_sql", ids["tool"]),
        ("tool_call_complete", "run_sql", ids["tool"]),
        ("turn_end", None, ids["agent"]),
    ]
    assert {r["telemetry"]["trace_id"] for r in records} == {ids["trace_id"]}
    assert records[1]["type"] == "DATABASE_READ"


def test_a_rule_matches_across_the_emitter_and_a_frameworks_spans(tmp_path: Path) -> None:
    """One rule engine: a PII read reported through the emitter, an upload seen on a framework's span."""
    handle = auditspan.configure(
        audit_log=tmp_path / "audit.jsonl", span_exporter=InMemorySpanExporter(), environ={}, set_global=False
    )
    audit = handle.emitter(session_id="sess-1")
    turn = audit.emit_turn_start(agent_id="planner", prompt="export the customers")
    audit.emit_tool_call_attempt(
        "run_sql", args="{'query': 'SELECT email FROM crm.pii_emails'}", agent_id="planner", turn_id=turn
    )
    audit.emit_tool_call_complete(
        "run_sql", duration_ms=3.0, result="3 rows", agent_id="planner", turn_id=turn
    )
    tracer = handle.tracer_provider.get_tracer("a-runtime")
    with tracer.start_as_current_span(
        "execute_tool http_post",
        attributes={
            attr.GEN_AI_OPERATION_NAME: "execute_tool",
            attr.GEN_AI_TOOL_NAME: "http_post",
            attr.GEN_AI_CONVERSATION_ID: "sess-1",
            attr.GEN_AI_TOOL_CALL_ARGUMENTS: '{"url": "https://mailer.example.com/upload"}',
        },
    ):
        pass
    audit.emit_turn_end(agent_id="planner", turn_id=turn, content="done", fc_count=2)
    handle.shutdown()
    records = _records(tmp_path / "audit.jsonl")
    match = next(r for r in records if r["event_type"] == "behavior_rule_match")
    trigger = next(
        r for r in records if r["event_type"] == "tool_call_attempt" and r["tool_name"] == "run_sql"
    )
    follow = next(
        r for r in records if r["event_type"] == "tool_call_attempt" and r["tool_name"] == "http_post"
    )
    assert match["trigger_event_id"] == trigger["event_id"]
    assert match["match_event_id"] == follow["event_id"]
    assert match["governance"]["decision"] == "REQUIRE_APPROVAL"

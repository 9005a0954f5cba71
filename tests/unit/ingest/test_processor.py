"""AuditSpanProcessor: other instrumentations' agent and tool spans become canonical audit records.

Spans are made through a real ``TracerProvider`` with the attribute sets each convention defines
(GenAI, MCP, OpenInference, OpenLLMetry); the records go through a real ``JsonLinesAuditLog`` and
are read back from its file. Tests of real frameworks (Pydantic AI, the MCP SDK, LangChain) are in
their own files.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ParentBased, TraceIdRatioBased
from opentelemetry.trace import SpanKind, Status, StatusCode

import auditspan
from auditspan import (
    PII_EXFILTRATION_RULE,
    AuditLogExportResult,
    JsonLinesAuditLog,
    Redactor,
    RuleEngine,
    SpanCollector,
    record_schema,
)
from auditspan import attributes as attr
from auditspan.events import timestamp_to_ns
from auditspan.ingest import AuditSampler, AuditSpanProcessor

SECRET = "sk-proj-abcDEF1234567890abcDEF12XYZ"


class Pipeline:
    """A provider with the processor and an in-memory exporter; the audit log in a file."""

    def __init__(self, path: Path, sampler: Any = None, **kwargs: Any) -> None:
        self.path = path
        self.log = JsonLinesAuditLog(path, chain=False)
        self.processor = AuditSpanProcessor(self.log, **kwargs)
        self.exporter = InMemorySpanExporter()
        self.provider = TracerProvider(sampler=sampler) if sampler is not None else TracerProvider()
        self.provider.add_span_processor(self.processor)
        self.provider.add_span_processor(SimpleSpanProcessor(self.exporter))
        self.tracer = self.provider.get_tracer("a-runtime", "1.0")

    def records(self) -> list[dict[str, Any]]:
        assert self.processor.force_flush()
        if not self.path.exists():
            return []
        return [json.loads(line) for line in self.path.read_text().splitlines()]

    def spans(self) -> dict[str, ReadableSpan]:
        return {span.name: span for span in self.exporter.get_finished_spans()}


@pytest.fixture
def pipe(tmp_path: Path) -> Iterator[Pipeline]:
    pipeline = Pipeline(tmp_path / "audit.jsonl", rules=RuleEngine([PII_EXFILTRATION_RULE]))
    yield pipeline
    pipeline.provider.shutdown()
    pipeline.log.shutdown()


def _ids(span: ReadableSpan) -> dict[str, str]:
    assert span.context is not None
    return {"trace_id": f"{span.context.trace_id:032x}", "span_id": f"{span.context.span_id:016x}"}


def _genai_agent(pipe: Pipeline, name: str = "planner", **extra: Any) -> Any:
    return pipe.tracer.start_as_current_span(
        f"invoke_agent {name}",
        attributes={
            attr.GEN_AI_OPERATION_NAME: "invoke_agent",
            attr.GEN_AI_AGENT_NAME: name,
            attr.GEN_AI_CONVERSATION_ID: "conv-1",
            **extra,
        },
    )


def _genai_tool(pipe: Pipeline, tool: str, arguments: str, call_id: str, **extra: Any) -> Any:
    return pipe.tracer.start_as_current_span(
        f"execute_tool {tool}",
        attributes={
            attr.GEN_AI_OPERATION_NAME: "execute_tool",
            attr.GEN_AI_TOOL_NAME: tool,
            attr.GEN_AI_TOOL_CALL_ID: call_id,
            attr.GEN_AI_TOOL_CALL_ARGUMENTS: arguments,
            **extra,
        },
    )


def test_genai_turn_and_calls_become_records_with_the_spans_ids_and_times(pipe: Pipeline) -> None:
    with _genai_agent(pipe):
        with _genai_tool(pipe, "run_sql", '{"query": "SELECT email FROM crm.pii_emails"}', "call_1") as sql:
            sql.set_attribute(attr.GEN_AI_TOOL_CALL_RESULT, "3 rows")
        with _genai_tool(pipe, "get_weather", '{"city": "Lisbon"}', "call_2") as weather:
            weather.set_attribute(attr.GEN_AI_TOOL_CALL_RESULT, "sunny")
    records = pipe.records()
    spans = pipe.spans()
    assert [r["event_type"] for r in records] == [
        "turn_start",
        "tool_call_attempt",
        "tool_call_complete",
        "tool_call_attempt",
        "tool_call_complete",
        "turn_end",
    ]
    schema = record_schema()
    for record in records:
        jsonschema.validate(record, schema)
    agent, sql_span, weather_span = (
        spans["invoke_agent planner"],
        spans["execute_tool run_sql"],
        spans["execute_tool get_weather"],
    )
    turn_id = _ids(agent)["span_id"]
    assert {r["turn_id"] for r in records} == {turn_id}
    assert {r["agent_id"] for r in records} == {"planner"}
    assert {r["session_id"] for r in records} == {"conv-1"}
    assert records[0]["telemetry"] | {"duration_ms": None} == _ids(agent) | {"duration_ms": None}
    assert records[-1]["telemetry"]["span_id"] == turn_id
    assert records[-1]["function_calls_count"] == 2
    for record in records[1:3]:
        assert record["telemetry"]["trace_id"] == _ids(sql_span)["trace_id"]
        assert record["telemetry"]["span_id"] == _ids(sql_span)["span_id"]
        assert record["tool_name"] == "run_sql"
        assert record["type"] == "DATABASE_READ"
        assert record["target"] == "crm.pii_emails"
        assert record["metadata"] == {"tool_call_id": "call_1"}
    assert records[3]["telemetry"]["span_id"] == _ids(weather_span)["span_id"]
    # Times are the spans' own.
    assert sql_span.start_time is not None and sql_span.end_time is not None
    assert records[2]["duration_ms"] == pytest.approx((sql_span.end_time - sql_span.start_time) / 1e6)
    assert records[2]["telemetry"]["duration_ms"] == records[2]["duration_ms"]
    assert records[1]["arguments_preview"] == '{"query": "SELECT email FROM crm.pii_emails"}'
    assert records[2]["result_preview"] == "3 rows"
    # The live tool span was enriched at its start: type, risk, category, target.
    assert sql_span.attributes is not None
    assert sql_span.attributes[attr.OPERATION_TYPE] == "DATABASE_READ"
    assert sql_span.attributes[attr.OPERATION_RISK] == "Low-Medium"
    assert sql_span.attributes[attr.OPERATION_CATEGORY] == "Data"
    assert sql_span.attributes[attr.OPERATION_TARGET] == "crm.pii_emails"
    assert agent.attributes is not None and agent.attributes[attr.TURN_ID] == turn_id
    assert pipe.processor.stats.turns == 1 and pipe.processor.stats.tool_calls == 2
    assert pipe.processor.stats.records == 6 and pipe.processor.stats.internal_errors == 0


def test_enrichment_is_on_the_live_span_at_its_start(pipe: Pipeline) -> None:
    seen: dict[str, Any] = {}

    class Peek(SimpleSpanProcessor):
        def on_start(self, span: Any, parent_context: Any = None) -> None:
            seen.update(span.attributes)

    pipe.provider.add_span_processor(Peek(InMemorySpanExporter()))
    with _genai_tool(pipe, "http_get", '{"url": "https://api.example.com/v1/rates"}', "c"):
        assert dict(seen)[attr.OPERATION_TYPE] == "EXTERNAL_API_CALL"


def test_failure_takes_error_type_from_the_span_and_redacts_message_and_arguments(pipe: Pipeline) -> None:
    with _genai_agent(pipe):
        with (
            pytest.raises(TimeoutError),
            _genai_tool(pipe, "http_post", json.dumps({"url": "https://x.example.com", "key": SECRET}), "c1"),
        ):
            raise TimeoutError(f"upstream refused key {SECRET}")
        with _genai_tool(pipe, "fetch", "{}", "c2") as span:
            span.set_attribute(attr.ERROR_TYPE, "RateLimited")
            span.set_status(Status(StatusCode.ERROR, "429 from upstream"))
    records = pipe.records()
    text = pipe.path.read_text()
    assert SECRET not in text
    failures = [r for r in records if r["event_type"] == "tool_call_failure"]
    assert [(f["tool_name"], f["error_type"]) for f in failures] == [
        ("http_post", "TimeoutError"),
        ("fetch", "RateLimited"),
    ]
    assert failures[0]["error_message"] == "upstream refused key [REDACTED:openai_key]"
    assert failures[1]["error_message"] == "429 from upstream"
    assert failures[0]["severity"] == "error"
    attempt = next(r for r in records if r["event_type"] == "tool_call_attempt")
    assert "[REDACTED:" in attempt["arguments_preview"]
    assert not any(r["event_type"] == "tool_call_complete" for r in records)


def test_a_failed_agent_span_writes_an_error_record_before_turn_end(pipe: Pipeline) -> None:
    with pytest.raises(RuntimeError), _genai_agent(pipe):
        raise RuntimeError("model unavailable")
    records = pipe.records()
    assert [r["event_type"] for r in records] == ["turn_start", "error", "turn_end"]
    assert records[1]["error_type"] == "RuntimeError"
    assert records[1]["error_message"] == "model unavailable"
    assert records[1]["parameters"] == {"custom_type": "error"}


def test_behavioural_rule_match_is_a_record_and_on_the_span(pipe: Pipeline) -> None:
    with _genai_agent(pipe):
        with _genai_tool(pipe, "run_sql", '{"query": "SELECT email FROM crm.pii_emails"}', "c1"):
            pass
        with _genai_tool(pipe, "http_post", '{"url": "https://mailer.example.com/upload"}', "c2"):
            pass
    records = pipe.records()
    match = next(r for r in records if r["event_type"] == "behavior_rule_match")
    attempt_sql = records[1]
    attempt_post = next(
        r for r in records if r["event_type"] == "tool_call_attempt" and r["tool_name"] == "http_post"
    )
    assert match["rule_name"] == "PII Exfiltration Pattern"
    assert match["governance"]["decision"] == "REQUIRE_APPROVAL"
    assert match["trigger_event_id"] == attempt_sql["event_id"]
    assert match["match_event_id"] == attempt_post["event_id"]
    assert match["telemetry"]["span_id"] == attempt_post["telemetry"]["span_id"]
    post = pipe.spans()["execute_tool http_post"]
    assert post.attributes is not None
    assert post.attributes[attr.RULE_ACTION] == "REQUIRE_APPROVAL"
    assert pipe.processor.stats.rule_matches == 1


def test_mcp_request_and_server_spans_are_one_call_and_is_error_is_a_denial(pipe: Pipeline) -> None:
    """MCP's client request span and the server span under it: one call; the server's isError decides."""
    with (
        _genai_agent(pipe),
        pipe.tracer.start_as_current_span(
            "MCP send tools/call delete_file",
            kind=SpanKind.CLIENT,
            attributes={attr.MCP_METHOD_NAME: "tools/call", attr.JSONRPC_REQUEST_ID: "7"},
        ),
        pipe.tracer.start_as_current_span(
            "tools/call delete_file",
            kind=SpanKind.SERVER,
            attributes={
                attr.MCP_METHOD_NAME: "tools/call",
                attr.GEN_AI_OPERATION_NAME: "execute_tool",
                attr.GEN_AI_TOOL_NAME: "delete_file",
                attr.JSONRPC_REQUEST_ID: "7",
            },
        ) as server,
    ):
        server.set_attribute(attr.ERROR_TYPE, "tool_error")
        server.set_status(Status(StatusCode.ERROR))
    records = pipe.records()
    assert [r["event_type"] for r in records] == [
        "turn_start",
        "tool_call_attempt",
        "tool_call_failure",
        "turn_end",
    ]
    client = pipe.spans()["MCP send tools/call delete_file"]
    attempt, failure = records[1], records[2]
    assert attempt["tool_name"] == failure["tool_name"] == "delete_file"
    assert attempt["telemetry"]["span_id"] == failure["telemetry"]["span_id"] == _ids(client)["span_id"]
    assert attempt["metadata"] == {"tool_call_id": "7"}
    assert failure["error_type"] == "tool_error"
    assert failure["governance"]["decision"] == "DENY"
    assert failure["governance"]["policies_evaluated"] == ["mcp:isError"]
    assert records[-1]["function_calls_count"] == 1
    assert pipe.processor.stats.same_call_spans == 1


def test_mcp_server_span_alone_is_the_call(pipe: Pipeline) -> None:
    with pipe.tracer.start_as_current_span(
        "tools/call add",
        kind=SpanKind.SERVER,
        attributes={
            attr.MCP_METHOD_NAME: "tools/call",
            attr.GEN_AI_OPERATION_NAME: "execute_tool",
            attr.GEN_AI_TOOL_NAME: "add",
        },
    ):
        pass
    records = pipe.records()
    assert [(r["event_type"], r["tool_name"], r["turn_id"]) for r in records] == [
        ("tool_call_attempt", "add", None),
        ("tool_call_complete", "add", None),
    ]


def test_openinference_spans_known_only_at_their_end(pipe: Pipeline) -> None:
    """OpenInference's LangChain instrumentor sets every attribute at the span's end: the call's
    records wait under the agent span (of unknown kind until it ends), then come after its
    turn_start, with its turn."""
    agent = pipe.tracer.start_span("agent")
    with pipe.tracer.start_as_current_span("search", context=_ctx(agent)) as tool:
        tool.set_attributes(
            {
                attr.OPENINFERENCE_SPAN_KIND: "TOOL",
                attr.OPENINFERENCE_TOOL_NAME: "search",
                attr.INPUT_VALUE: f"query with password={SECRET}",
                attr.OUTPUT_VALUE: "2 results",
            }
        )
    assert _written(pipe) == []  # held, not yet written
    agent.set_attributes(
        {attr.OPENINFERENCE_SPAN_KIND: "AGENT", attr.INPUT_VALUE: "find it", attr.OUTPUT_VALUE: "found"}
    )
    agent.end()
    records = pipe.records()
    assert [r["event_type"] for r in records] == [
        "turn_start",
        "tool_call_attempt",
        "tool_call_complete",
        "turn_end",
    ]
    spans = pipe.spans()
    turn_id = _ids(spans["agent"])["span_id"]
    assert {r["turn_id"] for r in records} == {turn_id}
    assert {r["agent_id"] for r in records} == {"agent"}  # OpenInference names the agent by its span
    assert records[1]["tool_name"] == "search"
    assert records[1]["arguments_preview"] == "query with password=[REDACTED:password]"
    assert records[2]["result_preview"] == "2 results"
    assert records[0]["prompt_preview"] == "find it" and records[3]["content_preview"] == "found"
    assert records[3]["function_calls_count"] == 1
    assert records[0]["timestamp"] < records[1]["timestamp"]  # the turn's own start time
    # The held records keep their span's ids and times.
    for record in records[1:3]:
        assert record["telemetry"]["span_id"] == _ids(spans["search"])["span_id"]
        assert record["telemetry"]["trace_id"] == _ids(spans["search"])["trace_id"]
    assert timestamp_to_ns(records[1]["timestamp"]) // 1_000 == spans["search"].start_time // 1_000
    assert timestamp_to_ns(records[2]["timestamp"]) // 1_000 == spans["search"].end_time // 1_000
    assert len({r["event_id"] for r in records}) == 4
    assert pipe.processor.stats.records_held == 2 and pipe.processor.stats.held_over_bound == 0


def _openinference(pipe: Pipeline, name: str, parent: Any, **attributes: Any) -> Any:
    """A span started with no attributes, as OpenInference starts them; ``attributes`` come at its end."""
    span = pipe.tracer.start_span(name, context=_ctx(parent) if parent is not None else None)
    span.auditspan_end_attributes = attributes
    return span


def _end(span: Any) -> None:
    span.set_attributes(span.auditspan_end_attributes)
    span.end()


def _oi_tool(pipe: Pipeline, name: str, parent: Any) -> Any:
    return _openinference(
        pipe,
        name,
        parent,
        **{attr.OPENINFERENCE_SPAN_KIND: "TOOL", attr.OPENINFERENCE_TOOL_NAME: name, attr.INPUT_VALUE: "{}"},
    )


def test_held_records_go_up_through_chain_spans_and_nested_turns_keep_their_own(pipe: Pipeline) -> None:
    agent = _openinference(pipe, "outer agent", None, **{attr.OPENINFERENCE_SPAN_KIND: "AGENT"})
    chain = _openinference(pipe, "RunnableSequence", agent, **{attr.OPENINFERENCE_SPAN_KIND: "CHAIN"})
    first = _oi_tool(pipe, "search", chain)
    _end(first)
    inner = _openinference(pipe, "inner agent", chain, **{attr.OPENINFERENCE_SPAN_KIND: "AGENT"})
    second = _oi_tool(pipe, "fetch", inner)
    _end(second)
    _end(inner)
    plain = pipe.tracer.start_span("no kind at all", context=_ctx(chain))  # ends as no agent or tool
    third = _oi_tool(pipe, "read", plain)
    _end(third)
    plain.end()
    _end(chain)
    assert _written(pipe) == []  # everything waits for the outermost span of unknown kind
    _end(agent)
    records = pipe.records()
    outer, nested = _ids(pipe.spans()["outer agent"])["span_id"], _ids(pipe.spans()["inner agent"])["span_id"]
    assert [(r["event_type"], r.get("tool_name"), r["turn_id"]) for r in records] == [
        ("turn_start", None, outer),
        ("tool_call_attempt", "search", outer),
        ("tool_call_complete", "search", outer),
        ("turn_start", None, nested),
        ("tool_call_attempt", "fetch", nested),
        ("tool_call_complete", "fetch", nested),
        ("turn_end", None, nested),
        ("tool_call_attempt", "read", outer),
        ("tool_call_complete", "read", outer),
        ("turn_end", None, outer),
    ]
    assert [r["agent_id"] for r in records if r["turn_id"] == nested] == ["inner agent"] * 4
    assert records[-1]["function_calls_count"] == 2 and records[6]["function_calls_count"] == 1
    assert pipe.processor.open_spans() == 0


def test_held_records_under_a_root_that_is_no_agent_are_written_when_it_ends(pipe: Pipeline) -> None:
    root = _openinference(pipe, "RunnableLambda", None, **{attr.OPENINFERENCE_SPAN_KIND: "CHAIN"})
    _end(_oi_tool(pipe, "search", root))
    assert _written(pipe) == []
    _end(root)
    records = pipe.records()
    assert [(r["event_type"], r["turn_id"]) for r in records] == [
        ("tool_call_attempt", None),
        ("tool_call_complete", None),
    ]


def test_holding_is_bounded_and_past_the_bound_records_are_written_at_once(tmp_path: Path) -> None:
    pipe = Pipeline(tmp_path / "audit.jsonl", max_held_records=3)
    agent = _openinference(pipe, "agent", None, **{attr.OPENINFERENCE_SPAN_KIND: "AGENT"})
    for name in ("t0", "t1", "t2"):
        _end(_oi_tool(pipe, name, agent))
    early = [(r["event_type"], r["tool_name"], r["turn_id"]) for r in _written(pipe)]
    # t0's pair is held (2 of 3); t1's pair would pass the bound: written now, without a turn, as t2's.
    assert early == [
        ("tool_call_attempt", "t1", None),
        ("tool_call_complete", "t1", None),
        ("tool_call_attempt", "t2", None),
        ("tool_call_complete", "t2", None),
    ]
    _end(agent)
    records = pipe.records()
    turn_id = _ids(pipe.spans()["agent"])["span_id"]
    assert [(r["event_type"], r.get("tool_name"), r["turn_id"]) for r in records[4:]] == [
        ("turn_start", None, turn_id),
        ("tool_call_attempt", "t0", turn_id),
        ("tool_call_complete", "t0", turn_id),
        ("turn_end", None, turn_id),
    ]
    assert len({r["event_id"] for r in records}) == len(records) == 8
    assert pipe.processor.stats.held_over_bound == 4 and pipe.processor.stats.records_held == 2
    # The byte bound too: nothing of about 10 bytes fits.
    small = Pipeline(tmp_path / "small.jsonl", max_held_bytes=10)
    agent = _openinference(small, "agent", None, **{attr.OPENINFERENCE_SPAN_KIND: "AGENT"})
    _end(_oi_tool(small, "t0", agent))
    assert [r["event_type"] for r in _written(small)] == ["tool_call_attempt", "tool_call_complete"]
    _end(agent)
    assert [r["event_type"] for r in small.records()][2:] == ["turn_start", "turn_end"]
    assert small.processor.stats.held_over_bound == 2


def _read(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def _written(pipe: Pipeline) -> list[dict[str, Any]]:
    """What the audit log has written (flushed), leaving the processor's held records where they are."""
    assert pipe.log.force_flush()
    return _read(pipe.path)


def test_held_records_are_written_by_force_flush_and_shutdown(tmp_path: Path) -> None:
    pipe = Pipeline(tmp_path / "audit.jsonl")
    agent = _openinference(pipe, "agent", None, **{attr.OPENINFERENCE_SPAN_KIND: "AGENT"})
    _end(_oi_tool(pipe, "t0", agent))
    assert pipe.processor.force_flush()  # evidence is not kept back: written, without the turn
    assert [(r["tool_name"], r["turn_id"]) for r in _written(pipe)] == [("t0", None), ("t0", None)]
    _end(_oi_tool(pipe, "t1", agent))
    pipe.processor.shutdown()  # the agent span never ends
    pipe.log.shutdown()
    records = _read(pipe.path)
    assert [(r["event_type"], r["tool_name"]) for r in records] == [
        ("tool_call_attempt", "t0"),
        ("tool_call_complete", "t0"),
        ("tool_call_attempt", "t1"),
        ("tool_call_complete", "t1"),
    ]
    _end(agent)  # after shutdown: nothing more, nothing twice
    assert len(_read(pipe.path)) == 4


def test_held_records_of_a_span_forgotten_at_the_bound_are_written(tmp_path: Path) -> None:
    pipe = Pipeline(tmp_path / "audit.jsonl", max_open_spans=2)
    agent = _openinference(pipe, "agent", None, **{attr.OPENINFERENCE_SPAN_KIND: "AGENT"})
    _end(_oi_tool(pipe, "t0", agent))
    others = [pipe.tracer.start_span(f"other {n}") for n in range(2)]  # the agent span is forgotten
    assert [r["tool_name"] for r in _written(pipe)] == ["t0", "t0"]
    _end(agent)
    for span in others:
        span.end()
    records = pipe.records()
    assert [r["event_type"] for r in records] == [
        "tool_call_attempt",
        "tool_call_complete",
        "turn_start",
        "turn_end",
    ]


def _ctx(span: Any) -> Any:
    from opentelemetry import trace

    return trace.set_span_in_context(span)


def test_openinference_guardrail_inside_a_call_governs_it(pipe: Pipeline) -> None:
    with _genai_agent(pipe):
        with (
            _genai_tool(pipe, "shell_exec", '{"cmd": "rm -rf /"}', "c1"),
            pipe.tracer.start_as_current_span(
                "dangerous_command_check", attributes={attr.OPENINFERENCE_SPAN_KIND: "GUARDRAIL"}
            ) as guard,
        ):
            guard.set_attribute(attr.OUTPUT_VALUE, json.dumps({"decision": "block", "reason": "rm -rf"}))
        with pipe.tracer.start_as_current_span(
            "input_check",
            attributes={attr.OPENINFERENCE_SPAN_KIND: "GUARDRAIL", attr.OUTPUT_VALUE: "allowed"},
        ):
            pass
    records = pipe.records()
    assert [r["event_type"] for r in records] == [
        "turn_start",
        "tool_call_attempt",
        "tool_policy_decision",
        "tool_call_complete",
        "tool_policy_decision",
        "turn_end",
    ]
    decision = records[2]
    assert decision["tool_name"] == "shell_exec"
    assert decision["action"] == "block"
    assert decision["policy_source"] == "guardrail:dangerous_command_check"
    assert decision["governance"]["decision"] == "BLOCK"
    assert decision["telemetry"]["span_id"] == _ids(pipe.spans()["dangerous_command_check"])["span_id"]
    assert records[3]["governance"]["decision"] == "BLOCK"  # the call's records from the decision on
    assert records[1]["governance"]["decision"] is None
    turn_level = records[4]
    assert (turn_level["tool_name"], turn_level["action"], turn_level["governance"]["decision"]) == (
        "",
        "allow",
        "ALLOW",
    )
    assert pipe.processor.stats.guardrails == 2


def test_openllmetry_tool_span(pipe: Pipeline) -> None:
    with pipe.tracer.start_as_current_span(
        "send_email.tool",
        attributes={
            attr.TRACELOOP_SPAN_KIND: "tool",
            attr.TRACELOOP_ENTITY_NAME: "send_email",
            attr.TRACELOOP_ENTITY_INPUT: json.dumps({"to": "ops@example.org", "subject": "report"}),
        },
    ) as span:
        span.set_attribute(attr.TRACELOOP_ENTITY_OUTPUT, "sent")
    records = pipe.records()
    assert [(r["event_type"], r["tool_name"], r["type"]) for r in records] == [
        ("tool_call_attempt", "send_email", "EMAIL_SEND"),
        ("tool_call_complete", "send_email", "EMAIL_SEND"),
    ]
    assert records[1]["result_preview"] == "sent"


def test_deferral_asking_for_approval_is_a_policy_decision(pipe: Pipeline) -> None:
    with _genai_agent(pipe), _genai_tool(pipe, "wire_money", '{"amount": 5000}', "c9") as span:
        span.set_attribute(attr.PYDANTIC_AI_DEFERRAL_NAME, "ApprovalRequired")
    records = pipe.records()
    assert [r["event_type"] for r in records] == [
        "turn_start",
        "tool_call_attempt",
        "tool_policy_decision",
        "tool_call_failure",
        "turn_end",
    ]
    decision, failure = records[2], records[3]
    assert decision["action"] == "require_approval"
    assert decision["policy_source"] == "pydantic_ai:ApprovalRequired"
    assert decision["governance"]["decision"] == failure["governance"]["decision"] == "REQUIRE_APPROVAL"
    assert failure["error_type"] == "ApprovalRequired"
    assert decision["metadata"] == {"tool_call_id": "c9"}


def test_a_different_tool_inside_a_tool_is_its_own_call_and_the_same_tool_is_not(pipe: Pipeline) -> None:
    with _genai_agent(pipe), _genai_tool(pipe, "research", "{}", "c1"):
        with _genai_tool(pipe, "search", "{}", "c2"):
            pass
        with pipe.tracer.start_as_current_span(
            "research",
            attributes={attr.OPENINFERENCE_SPAN_KIND: "TOOL", attr.OPENINFERENCE_TOOL_NAME: "research"},
        ):
            pass
    records = pipe.records()
    attempts = [r["tool_name"] for r in records if r["event_type"] == "tool_call_attempt"]
    assert attempts == ["research", "search"]
    assert records[-1]["function_calls_count"] == 2


def test_nested_agent_under_a_tool_has_its_own_turn(pipe: Pipeline) -> None:
    with (
        _genai_agent(pipe, "boss"),
        _genai_tool(pipe, "ask_helper", "{}", "c1"),
        _genai_agent(pipe, "helper"),
        _genai_tool(pipe, "lookup", "{}", "c2"),
    ):
        pass
    records = pipe.records()
    spans = pipe.spans()
    boss, helper = _ids(spans["invoke_agent boss"])["span_id"], _ids(spans["invoke_agent helper"])["span_id"]
    by_tool = {r["tool_name"]: r for r in records if r["event_type"] == "tool_call_attempt"}
    assert by_tool["ask_helper"]["turn_id"] == boss and by_tool["ask_helper"]["agent_id"] == "boss"
    assert by_tool["lookup"]["turn_id"] == helper and by_tool["lookup"]["agent_id"] == "helper"


def test_a_tool_under_an_intermediate_span_finds_its_turn(pipe: Pipeline) -> None:
    with (
        _genai_agent(pipe),
        pipe.tracer.start_as_current_span("running tools"),
        _genai_tool(pipe, "lookup", "{}", "c1"),
    ):
        pass
    records = pipe.records()
    agent_id = _ids(pipe.spans()["invoke_agent planner"])["span_id"]
    assert [r["turn_id"] for r in records] == [agent_id] * 4
    assert pipe.processor.open_spans() == 0


def test_older_attribute_names_are_read(pipe: Pipeline) -> None:
    with (
        pipe.tracer.start_as_current_span("agent run", attributes={attr.LEGACY_AGENT_NAME: "old_agent"}),
        pipe.tracer.start_as_current_span(
            "running tool",
            attributes={
                attr.GEN_AI_TOOL_NAME: "read_file",
                attr.LEGACY_TOOL_ARGUMENTS: '{"path": "/etc/hosts"}',
            },
        ) as span,
    ):
        span.set_attribute(attr.LEGACY_TOOL_RESPONSE, "127.0.0.1 localhost")
    records = pipe.records()
    assert [(r["event_type"], r["agent_id"]) for r in records] == [
        ("turn_start", "old_agent"),
        ("tool_call_attempt", "old_agent"),
        ("tool_call_complete", "old_agent"),
        ("turn_end", "old_agent"),
    ]
    assert records[1]["type"] == "FILE_READ" and records[1]["target"] == "/etc/hosts"
    assert records[2]["result_preview"] == "127.0.0.1 localhost"


def test_auditspan_own_spans_are_skipped(tmp_path: Path) -> None:
    """A SpanCollector on the same provider writes its records once; the processor adds none."""
    pipe = Pipeline(tmp_path / "ingested.jsonl")
    collector = SpanCollector(tracer_provider=pipe.provider, audit_log=str(tmp_path / "collector.jsonl"))
    audit = auditspan.AuditEmitter(collector=collector, session_id="s")
    turn = audit.emit_turn_start(agent_id="a", prompt="p")
    audit.emit_tool_call_attempt("run_sql", args="SELECT 1", agent_id="a", turn_id=turn)
    audit.emit_tool_call_complete("run_sql", duration_ms=1.0, result="1", agent_id="a", turn_id=turn)
    audit.emit_turn_end(agent_id="a", turn_id=turn, content="done", fc_count=1)
    collector.shutdown()
    assert pipe.records() == []
    assert pipe.processor.stats.own_spans_skipped >= 2
    assert len(pipe.exporter.get_finished_spans()) >= 2


@pytest.mark.parametrize(
    "sampler",
    [ParentBased(ALWAYS_OFF), TraceIdRatioBased(0.0), ParentBased(TraceIdRatioBased(0.0))],
    ids=["parentbased-always-off", "traceidratio-0", "parentbased-traceidratio-0"],
)
def test_records_do_not_depend_on_sampling(tmp_path: Path, sampler: Any) -> None:
    sampled = Pipeline(tmp_path / "sampled.jsonl")
    dropped = Pipeline(tmp_path / "dropped.jsonl", sampler=AuditSampler(sampler))
    for pipe in (sampled, dropped):
        with _genai_agent(pipe):
            with (
                pipe.tracer.start_as_current_span("chat model"),  # unrecognised, between turn and call
                _genai_tool(pipe, "run_sql", '{"query": "SELECT 1 FROM t"}', "c1"),
            ):
                pass
            with pytest.raises(ValueError), _genai_tool(pipe, "parse", "{}", "c2"):
                raise ValueError("bad")
    kept, lost = sampled.records(), dropped.records()
    assert len(kept) == 6

    def shape(records: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
        return [
            (r["event_type"], r.get("tool_name"), r["type"], r.get("error_type"), r["agent_id"])
            for r in records
        ]

    assert shape(lost) == shape(kept)
    turn = next(r for r in lost if r["event_type"] == "turn_start")
    assert {r["turn_id"] for r in lost} == {turn["telemetry"]["span_id"]}
    assert dropped.exporter.get_finished_spans() == ()  # exporters see only what the base sampler kept


def test_without_the_sampler_wrapper_a_dropped_span_has_no_records(tmp_path: Path) -> None:
    """Why AuditSampler exists: a span the sampler drops reaches no processor."""
    pipe = Pipeline(tmp_path / "audit.jsonl", sampler=ParentBased(ALWAYS_OFF))
    with _genai_agent(pipe), _genai_tool(pipe, "run_sql", "{}", "c1"):
        pass
    assert pipe.records() == []


def test_sampler_keeps_the_base_decision_for_other_spans() -> None:
    from opentelemetry.sdk.trace.sampling import Decision

    sampler = AuditSampler(ParentBased(ALWAYS_OFF))
    assert sampler.should_sample(None, 1, "GET /health").decision is Decision.DROP
    tool = sampler.should_sample(
        None, 1, "execute_tool x", attributes={attr.GEN_AI_OPERATION_NAME: "execute_tool"}
    )
    assert tool.decision is Decision.RECORD_ONLY
    assert AuditSampler(ParentBased(ALWAYS_OFF), record_all=True).should_sample(None, 1, "x").decision is (
        Decision.RECORD_ONLY
    )
    assert "AuditSampler" in sampler.get_description()


def test_open_span_state_is_bounded_and_every_record_is_still_written(tmp_path: Path) -> None:
    pipe = Pipeline(tmp_path / "audit.jsonl", max_open_spans=10)
    agent = pipe.tracer.start_span("invoke_agent a", attributes={attr.GEN_AI_OPERATION_NAME: "invoke_agent"})
    tools = [
        pipe.tracer.start_span(
            f"execute_tool t{i}",
            context=_ctx(agent),
            attributes={attr.GEN_AI_OPERATION_NAME: "execute_tool", attr.GEN_AI_TOOL_NAME: f"t{i}"},
        )
        for i in range(50)
    ]
    assert pipe.processor.open_spans() == 10
    for span in tools:
        span.end()
    agent.end()
    records = pipe.records()
    kinds = [r["event_type"] for r in records]
    assert kinds.count("turn_start") == 1 and kinds.count("turn_end") == 1
    assert kinds.count("tool_call_attempt") == 50 and kinds.count("tool_call_complete") == 50
    assert pipe.processor.stats.spans_evicted == 41  # the agent and the first 40 tools
    assert pipe.processor.stats.tool_calls == 50
    assert pipe.processor.open_spans() == 0


class _Exploding:
    def export(self, records: Any) -> AuditLogExportResult:
        raise OSError("disk on fire")

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        raise OSError("disk on fire")

    def shutdown(self) -> None:
        raise OSError("disk on fire")


def test_never_raises_into_the_caller(caplog: pytest.LogCaptureFixture) -> None:
    processor = AuditSpanProcessor(_Exploding())
    provider = TracerProvider()
    provider.add_span_processor(processor)
    tracer = provider.get_tracer("rt")
    with (
        tracer.start_as_current_span(
            "invoke_agent a", attributes={attr.GEN_AI_OPERATION_NAME: "invoke_agent"}
        ),
        tracer.start_as_current_span(
            "execute_tool t",
            attributes={attr.GEN_AI_OPERATION_NAME: "execute_tool", attr.GEN_AI_TOOL_NAME: "t"},
        ),
    ):
        pass
    assert processor.force_flush() is False
    processor.shutdown()
    assert processor.stats.internal_errors >= 3
    assert processor.stats.records_failed == 4
    assert sum("AuditSpanProcessor" in r.getMessage() for r in caplog.records) == 1  # logged once


def test_hostile_attribute_values_never_raise(pipe: Pipeline) -> None:
    hostile: dict[str, Any] = {
        attr.GEN_AI_OPERATION_NAME: "execute_tool",
        attr.GEN_AI_TOOL_NAME: "\ud800bad" + "x" * 100_000,
        attr.GEN_AI_TOOL_CALL_ARGUMENTS: ["a", "b"],
        attr.GEN_AI_TOOL_CALL_ID: 12,
        attr.PYDANTIC_AI_DEFERRAL_NAME: "",
    }
    with pipe.tracer.start_as_current_span("execute_tool", attributes=hostile) as span:
        span.set_attribute(attr.GEN_AI_TOOL_CALL_RESULT, "y" * 1_000_000)
    with pipe.tracer.start_as_current_span(
        "invoke_agent",
        attributes={attr.GEN_AI_OPERATION_NAME: "invoke_agent", attr.GEN_AI_INPUT_MESSAGES: "[{"},
    ):
        pass
    records = pipe.records()
    assert [r["event_type"] for r in records] == [
        "tool_call_attempt",
        "tool_call_complete",
        "turn_start",
        "turn_end",
    ]
    assert records[0]["arguments_preview"] == '["a","b"]'
    assert records[0]["metadata"] == {"tool_call_id": "12"}
    assert len(records[1]["result_preview"]) == 2_048
    assert pipe.processor.stats.internal_errors == 0


def test_bad_arguments_are_refused_with_the_setting_named(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="max_open_spans"):
        AuditSpanProcessor(str(tmp_path / "a.jsonl"), max_open_spans=0)
    with pytest.raises(ValueError, match="max_held_records"):
        AuditSpanProcessor(str(tmp_path / "a.jsonl"), max_held_records=-1)
    with pytest.raises(ValueError, match="max_held_bytes"):
        AuditSpanProcessor(str(tmp_path / "a.jsonl"), max_held_bytes="big")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="audit_log"):
        AuditSpanProcessor(42)  # type: ignore[arg-type]


def test_capture_policy_none_keeps_no_content(tmp_path: Path) -> None:
    pipe = Pipeline(tmp_path / "audit.jsonl", redactor=Redactor("none"))
    with _genai_tool(pipe, "run_sql", '{"query": "SELECT * FROM users"}', "c1") as span:
        span.set_attribute(attr.GEN_AI_TOOL_CALL_RESULT, "alice, bob")
    records = pipe.records()
    assert records[0]["arguments_preview"] == "" and records[1]["result_preview"] == ""
    assert records[0]["target"] is None  # nothing of the content reaches the record through its target


def test_shutdown_closes_a_log_it_opened_and_later_spans_are_ignored(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    processor = AuditSpanProcessor(str(path))
    provider = TracerProvider()
    provider.add_span_processor(processor)
    tracer = provider.get_tracer("rt")
    with tracer.start_as_current_span(
        "execute_tool t", attributes={attr.GEN_AI_OPERATION_NAME: "execute_tool"}
    ):
        pass
    provider.shutdown()
    with tracer.start_as_current_span(
        "execute_tool u", attributes={attr.GEN_AI_OPERATION_NAME: "execute_tool"}
    ):
        pass
    events = [json.loads(line)["event_type"] for line in path.read_text().splitlines()]
    assert events.count("tool_call_attempt") == 1 and events.count("tool_call_complete") == 1


def test_threads_each_get_their_own_calls(pipe: Pipeline) -> None:
    def work(n: int) -> None:
        with _genai_agent(pipe, f"agent{n}"):
            for i in range(20):
                with _genai_tool(pipe, f"tool{n}", "{}", f"c{n}-{i}"):
                    pass

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    records = pipe.records()
    assert len(records) == 8 * (2 + 40)
    for record in records:
        if "tool_name" in record and record["event_type"].startswith("tool_call"):
            assert record["agent_id"] == "agent" + record["tool_name"][4:]
    assert pipe.processor.open_spans() == 0


_FORK_SCRIPT = textwrap.dedent(
    """
    import json, os, sys, threading
    from opentelemetry.sdk.trace import TracerProvider
    from auditspan.ingest import AuditSpanProcessor
    from auditspan import attributes as attr

    path = sys.argv[1]
    processor = AuditSpanProcessor(path)
    provider = TracerProvider()
    provider.add_span_processor(processor)
    tracer = provider.get_tracer("rt")

    def tool(name):
        return tracer.start_as_current_span(
            "execute_tool " + name,
            attributes={attr.GEN_AI_OPERATION_NAME: "execute_tool", attr.GEN_AI_TOOL_NAME: name},
        )

    held = threading.Event()
    release = threading.Event()
    def hold():
        with processor._lock:
            held.set()
            release.wait(10)
    agent_attributes = {attr.GEN_AI_OPERATION_NAME: "invoke_agent"}
    with tracer.start_as_current_span("invoke_agent parent", attributes=agent_attributes):
        # Another thread holds the processor's lock at the forks: the children must not hang on it.
        threading.Thread(target=hold, daemon=True).start()
        assert held.wait(5)
        pids = []
        for n in range(3):
            pid = os.fork()
            if pid == 0:
                with tracer.start_as_current_span(
                    "invoke_agent child", attributes={attr.GEN_AI_OPERATION_NAME: "invoke_agent"}
                ):
                    with tool("child_tool_%d" % n):
                        pass
                processor.force_flush()
                os._exit(0)
            pids.append(pid)
        release.set()
        for pid in pids:
            _, status = os.waitpid(pid, 0)
            assert os.WEXITSTATUS(status) == 0, status
        with tool("parent_tool"):
            pass
    provider.shutdown()
    """
)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="os.fork is POSIX only")
def test_fork_children_write_their_own_records_once_and_never_hang(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    done = subprocess.run(
        [sys.executable, "-c", _FORK_SCRIPT, str(path)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    records = [json.loads(line) for line in path.read_text().splitlines()]
    events = [r for r in records if r["event_type"] != "audit_checkpoint"]
    kinds = [(r["event_type"], r.get("agent_id"), r.get("tool_name")) for r in events]
    assert kinds.count(("turn_start", "parent", None)) == 1
    assert kinds.count(("turn_end", "parent", None)) == 1
    assert kinds.count(("turn_start", "child", None)) == 3
    for n in range(3):
        assert kinds.count(("tool_call_attempt", "child", f"child_tool_{n}")) == 1
        assert kinds.count(("tool_call_complete", "child", f"child_tool_{n}")) == 1
    assert kinds.count(("tool_call_complete", "parent", "parent_tool")) == 1
    assert len({r["event_id"] for r in events}) == len(events)
    parent_turn = next(r for r in events if r["event_type"] == "turn_end" and r["agent_id"] == "parent")
    assert parent_turn["function_calls_count"] == 1  # the children's calls are not the parent's


_FORK_HELD_SCRIPT = textwrap.dedent(
    """
    import os, sys
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from auditspan.ingest import AuditSpanProcessor
    from auditspan import attributes as attr

    processor = AuditSpanProcessor(sys.argv[1])
    provider = TracerProvider()
    provider.add_span_processor(processor)
    tracer = provider.get_tracer("rt")
    agent = tracer.start_span("agent")  # OpenInference: the kind comes at the end
    tool = tracer.start_span("search", context=trace.set_span_in_context(agent))
    tool.set_attributes({attr.OPENINFERENCE_SPAN_KIND: "TOOL", attr.OPENINFERENCE_TOOL_NAME: "search"})
    tool.end()  # its records are held under the agent span
    pid = os.fork()
    if pid == 0:
        processor.force_flush()  # the held records are the parent's: the child writes none
        provider.shutdown()
        os._exit(0)
    _, status = os.waitpid(pid, 0)
    assert os.WEXITSTATUS(status) == 0, status
    agent.set_attributes({attr.OPENINFERENCE_SPAN_KIND: "AGENT"})
    agent.end()
    provider.shutdown()
    """
)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="os.fork is POSIX only")
def test_records_held_at_a_fork_are_written_once_by_the_parent(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    done = subprocess.run(
        [sys.executable, "-c", _FORK_HELD_SCRIPT, str(path)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    events = [r for r in _read(path) if r["event_type"] != "audit_checkpoint"]
    assert [(r["event_type"], r.get("tool_name"), r["agent_id"]) for r in events] == [
        ("turn_start", None, "agent"),
        ("tool_call_attempt", "search", "agent"),
        ("tool_call_complete", "search", "agent"),
        ("turn_end", None, "agent"),
    ]


_SIGNAL_HELD_CHILD = r"""
import sys, time
from opentelemetry import trace
from auditspan import configure
from auditspan import attributes as attr

handle = configure(audit_log=sys.argv[1], traces_exporter="none", environ={})
tracer = handle.tracer_provider.get_tracer("rt")
agent = tracer.start_span("agent")  # OpenInference: the kind comes at the end
tool = tracer.start_span("search", context=trace.set_span_in_context(agent))
tool.set_attributes({attr.OPENINFERENCE_SPAN_KIND: "TOOL", attr.OPENINFERENCE_TOOL_NAME: "search"})
tool.end()
print("READY", flush=True)  # the call's records are held under the open agent span
time.sleep(60)
print("NOT ENDED", flush=True)
"""


def test_sigterm_writes_the_records_held_under_an_open_span(tmp_path: Path) -> None:
    import signal

    log = tmp_path / "audit.jsonl"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "AUDITSPAN_"))}
    child = subprocess.Popen(
        [sys.executable, "-c", _SIGNAL_HELD_CHILD, str(log)], stdout=subprocess.PIPE, text=True, env=env
    )
    assert child.stdout is not None
    assert child.stdout.readline() == "READY\n"
    child.send_signal(signal.SIGTERM)
    out, _ = child.communicate(timeout=60)
    assert child.returncode == -signal.SIGTERM and "NOT ENDED" not in out
    events = [r for r in _read(log) if r["event_type"] != "audit_checkpoint"]
    assert [(r["event_type"], r["tool_name"]) for r in events] == [
        ("tool_call_attempt", "search"),
        ("tool_call_complete", "search"),
    ]


def test_a_call_without_an_agent_span_takes_agent_and_conversation_from_its_own_span(pipe: Pipeline) -> None:
    with pipe.tracer.start_as_current_span(
        "send_email.tool",
        attributes={
            attr.TRACELOOP_SPAN_KIND: "tool",
            attr.TRACELOOP_ENTITY_NAME: "send_email",
            attr.GEN_AI_AGENT_NAME: "mailer",
            attr.GEN_AI_CONVERSATION_ID: "conv-9",
        },
    ):
        pass
    with pipe.tracer.start_as_current_span("lonely.tool", attributes={attr.TRACELOOP_SPAN_KIND: "tool"}):
        pass
    records = pipe.records()
    assert [(r["tool_name"], r["agent_id"], r["session_id"], r["turn_id"]) for r in records] == [
        ("send_email", "mailer", "conv-9", None),
        ("send_email", "mailer", "conv-9", None),
        ("lonely.tool", None, None, None),
        ("lonely.tool", None, None, None),
    ]


def _messages(*messages: tuple[str, str]) -> str:
    return json.dumps(
        [{"role": role, "parts": [{"type": "text", "content": text}]} for role, text in messages]
    )


def test_the_prompt_comes_from_the_first_model_call_when_the_agent_span_has_none(pipe: Pipeline) -> None:
    """The agent span gets its prompt only at its end: turn_start waits for the first model call."""
    with _genai_agent(pipe):
        with pipe.tracer.start_as_current_span(
            "chat test-model", attributes={attr.GEN_AI_OPERATION_NAME: "chat"}
        ) as chat:
            chat.set_attribute(
                attr.GEN_AI_INPUT_MESSAGES, _messages(("system", "be brief"), ("user", f"Find {SECRET}"))
            )
        with _genai_tool(pipe, "lookup", "{}", "c1"):
            pass
        with pipe.tracer.start_as_current_span(
            "chat test-model", attributes={attr.GEN_AI_OPERATION_NAME: "chat"}
        ) as chat:
            chat.set_attribute(attr.GEN_AI_INPUT_MESSAGES, _messages(("user", "a later message")))
    records = pipe.records()
    assert [r["event_type"] for r in records] == [
        "turn_start",
        "tool_call_attempt",
        "tool_call_complete",
        "turn_end",
    ]
    assert records[0]["prompt_preview"] == "Find [REDACTED:openai_key]"
    agent = pipe.spans()["invoke_agent planner"]
    assert agent.start_time is not None
    assert (
        timestamp_to_ns(records[0]["timestamp"]) == agent.start_time // 1_000 * 1_000
    )  # the span's own start


def test_the_prompt_the_agent_span_carries_at_its_end(pipe: Pipeline) -> None:
    with _genai_agent(pipe) as agent:
        agent.set_attributes(
            {
                attr.PYDANTIC_AI_ALL_MESSAGES: _messages(
                    ("user", "earlier"), ("assistant", "ok"), ("user", "now this")
                ),
                attr.PYDANTIC_AI_NEW_MESSAGE_INDEX: 2,
                attr.PYDANTIC_AI_FINAL_RESULT: "done",
            }
        )
    records = pipe.records()
    assert [(r["event_type"], r.get("prompt_preview"), r.get("content_preview")) for r in records] == [
        ("turn_start", "now this", None),
        ("turn_end", None, "done"),
    ]


def test_a_turn_forgotten_at_the_bound_before_its_first_call_still_has_one_turn_start(tmp_path: Path) -> None:
    pipe = Pipeline(tmp_path / "audit.jsonl", max_open_spans=2)
    agent = pipe.tracer.start_span("invoke_agent a", attributes={attr.GEN_AI_OPERATION_NAME: "invoke_agent"})
    others = [
        pipe.tracer.start_span(f"invoke_agent b{i}", attributes={attr.GEN_AI_OPERATION_NAME: "invoke_agent"})
        for i in range(3)
    ]
    for span in [*others, agent]:
        span.end()
    kinds = [(r["event_type"], r["agent_id"]) for r in pipe.records()]
    for name in ("a", "b0", "b1", "b2"):
        assert kinds.count(("turn_start", name)) == 1, name
        assert kinds.count(("turn_end", name)) == 1, name
    assert kinds[0] == ("turn_start", "a")  # written when it was forgotten


def test_install_adds_one_processor_per_provider(tmp_path: Path) -> None:
    from auditspan.ingest._install import install, installed

    provider = TracerProvider()
    log = JsonLinesAuditLog(tmp_path / "audit.jsonl", chain=False)
    first = install(provider, lambda: AuditSpanProcessor(log))
    assert first is not None and installed(provider) is first
    assert install(provider, lambda: AuditSpanProcessor(log)) is None  # a second would write twice
    tracer = provider.get_tracer("rt")
    with tracer.start_as_current_span(
        "execute_tool t", attributes={attr.GEN_AI_OPERATION_NAME: "execute_tool"}
    ):
        pass
    first.shutdown()
    assert installed(provider) is None
    again = install(provider, lambda: AuditSpanProcessor(log))
    assert again is not None and again is not first
    with tracer.start_as_current_span(
        "execute_tool u", attributes={attr.GEN_AI_OPERATION_NAME: "execute_tool"}
    ):
        pass
    log.force_flush()
    names = [json.loads(line)["tool_name"] for line in (tmp_path / "audit.jsonl").read_text().splitlines()]
    assert names == ["t", "t", "u", "u"]


def test_deferred_ingest_makes_its_processor_at_the_first_agent_or_tool_span(tmp_path: Path) -> None:
    from auditspan.ingest._install import DeferredIngest

    made: list[AuditSpanProcessor] = []

    def factory() -> AuditSpanProcessor:
        made.append(AuditSpanProcessor(str(tmp_path / "audit.jsonl")))
        return made[-1]

    deferred = DeferredIngest(factory)
    provider = TracerProvider()
    provider.add_span_processor(deferred)
    tracer = provider.get_tracer("rt")
    with tracer.start_as_current_span("GET /health", attributes={"http.request.method": "GET"}):
        pass
    assert made == []  # nothing made (no file, no thread) for spans that are no agent or tool span
    with tracer.start_as_current_span(
        "execute_tool t", attributes={attr.GEN_AI_OPERATION_NAME: "execute_tool"}
    ):
        pass
    assert len(made) == 1 and deferred.processor is made[0]
    provider.shutdown()
    assert deferred.closed and made[0].closed
    kinds = [json.loads(line)["event_type"] for line in (tmp_path / "audit.jsonl").read_text().splitlines()]
    assert [k for k in kinds if k != "audit_checkpoint"] == ["tool_call_attempt", "tool_call_complete"]


def test_a_failing_factory_is_logged_once_and_never_raises(caplog: pytest.LogCaptureFixture) -> None:
    from auditspan.ingest._install import DeferredIngest

    def factory() -> AuditSpanProcessor:
        raise OSError("no disk")

    provider = TracerProvider()
    provider.add_span_processor(DeferredIngest(factory))
    tracer = provider.get_tracer("rt")
    for _ in range(3):
        with tracer.start_as_current_span(
            "execute_tool t", attributes={attr.GEN_AI_OPERATION_NAME: "execute_tool"}
        ):
            pass
    assert sum("cannot set up the span processor" in r.getMessage() for r in caplog.records) == 1


def test_the_sampler_leaves_auditspan_own_spans_to_the_base_sampler() -> None:
    """SpanCollector writes its records whatever is sampled: its spans stay dropped (and counted so)."""
    provider = TracerProvider(sampler=AuditSampler(ParentBased(ALWAYS_OFF)))
    collector = SpanCollector(tracer_provider=provider, audit_log=None)
    audit = auditspan.AuditEmitter(collector=collector, session_id="s")
    turn = audit.emit_turn_start(agent_id="a", prompt="p")
    audit.emit_tool_call_attempt("run_sql", args="SELECT 1", agent_id="a", turn_id=turn)
    audit.emit_tool_call_complete("run_sql", duration_ms=1.0, result="1", agent_id="a", turn_id=turn)
    audit.emit_turn_end(agent_id="a", turn_id=turn, content="x", fc_count=1)
    collector.shutdown()
    assert collector.stats.spans_unsampled == 2


def _room() -> int:
    def probe(n: int) -> int:
        try:
            return probe(n + 1)
        except RecursionError:
            return n

    return probe(0)


def _at_depth(frames_left: int, call: Any) -> BaseException | None:
    def down(levels: int) -> BaseException | None:
        if levels > 0:
            return down(levels - 1)
        try:
            call()
        except BaseException as exc:  # whatever escapes is the finding
            return exc
        return None

    return down(_room() - frames_left)


def test_never_raises_and_writes_every_record_at_any_stack_depth(tmp_path: Path) -> None:
    """The runtime may start and end its spans from deep recursion: the work finishes on a fresh stack."""
    log = JsonLinesAuditLog(tmp_path / "audit.jsonl", chain=False)
    processor = AuditSpanProcessor(log)
    provider = TracerProvider()  # the spans are made here; the processor is called at depth
    tracer = provider.get_tracer("rt")
    escaped: dict[int, str] = {}
    depths = range(4, 61)
    for frames_left in depths:
        span = tracer.start_span(
            f"execute_tool t{frames_left}",
            attributes={attr.GEN_AI_OPERATION_NAME: "execute_tool", attr.GEN_AI_TOOL_NAME: f"t{frames_left}"},
        )
        exc = _at_depth(frames_left, lambda span=span: processor.on_start(span))
        span.end()
        exc = exc or _at_depth(frames_left, lambda span=span: processor.on_end(span))
        if exc is not None:
            escaped[frames_left] = type(exc).__name__
    from auditspan import _deep

    _deep.drain()  # work kept for later within a few frames of the limit
    assert escaped == {}
    assert processor.stats.internal_errors == 0
    log.force_flush()
    records = [json.loads(line) for line in (tmp_path / "audit.jsonl").read_text().splitlines()]
    for frames_left in depths:
        kinds = [r["event_type"] for r in records if r["tool_name"] == f"t{frames_left}"]
        assert kinds == ["tool_call_attempt", "tool_call_complete"], frames_left

"""SpanCollector: the mapping from audit events to spans, span events and canonical records."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone
from typing import Any

import jsonschema
import pytest
from opentelemetry import trace
from opentelemetry.trace import SpanKind, StatusCode

from auditspan import attributes as attr
from auditspan import events as ev
from auditspan.records import record_schema

from ...conftest import Harness, hex_span, hex_trace

T0 = datetime(2026, 11, 21, 19, 24, 17, 134534, tzinfo=timezone.utc)


def at(seconds: float) -> str:
    return (T0 + timedelta(seconds=seconds)).isoformat()


def ns(seconds: float) -> int:
    return ev.timestamp_to_ns(at(seconds))


def emit(h: Harness, event: ev.AuditEvent, seconds: float, session: str | None = "sess-1") -> None:
    event.timestamp = at(seconds)
    event.session_id = session
    h.collector.emit(event)


def one_tool_call(h: Harness, turn: str = "0a1b2c3d4e5f", agent: str = "planner") -> None:
    emit(h, ev.TurnStartEvent(agent_id=agent, turn_id=turn, prompt_preview="Find flights"), 0)
    emit(
        h,
        ev.ToolLoopWarningEvent(
            agent_id=agent, turn_id=turn, tool_name="web_search", severity_level="ok", pattern="none"
        ),
        1.0,
    )
    emit(
        h,
        ev.ToolPolicyDecisionEvent(
            agent_id=agent, turn_id=turn, tool_name="web_search", action="allow", policy_source="default"
        ),
        1.1,
    )
    emit(
        h,
        ev.ToolCallAttemptEvent(
            agent_id=agent,
            turn_id=turn,
            tool_name="web_search",
            arguments_preview="{'url': 'https://api.example.com/v1/search'}",
        ),
        1.2,
    )
    emit(
        h,
        ev.SandboxDecisionEvent(
            agent_id=agent,
            turn_id=turn,
            tool_name="web_search",
            context="sandbox",
            reason="network",
            backend_type="docker",
        ),
        1.3,
    )
    emit(
        h,
        ev.ToolCallCompleteEvent(
            agent_id=agent,
            turn_id=turn,
            tool_name="web_search",
            duration_ms=700.0,
            result_preview="3 results",
        ),
        2.0,
    )
    emit(
        h, ev.TurnEndEvent(agent_id=agent, turn_id=turn, content_preview="Done", function_calls_count=1), 3.0
    )


def test_turn_and_tool_span_shape(harness: Harness) -> None:
    one_tool_call(harness)
    turn = harness.span("invoke_agent planner")
    tool = harness.span("execute_tool web_search")
    assert turn.parent is None
    assert tool.parent is not None and tool.parent.span_id == turn.context.span_id
    assert tool.context.trace_id == turn.context.trace_id
    assert turn.kind == tool.kind == SpanKind.INTERNAL
    assert dict(turn.attributes) == {
        attr.GEN_AI_OPERATION_NAME: "invoke_agent",
        attr.GEN_AI_AGENT_ID: "planner",
        attr.GEN_AI_AGENT_NAME: "planner",
        attr.GEN_AI_CONVERSATION_ID: "sess-1",
        attr.TURN_ID: "0a1b2c3d4e5f",
        attr.TURN_PROMPT_PREVIEW: "Find flights",
        attr.TURN_CONTENT_PREVIEW: "Done",
        attr.TURN_FUNCTION_CALLS_COUNT: 1,
        attr.GEN_AI_INPUT_MESSAGES: '[{"role":"user","parts":[{"type":"text","content":"Find flights"}]}]',
        attr.GEN_AI_OUTPUT_MESSAGES: (
            '[{"role":"assistant","parts":[{"type":"text","content":"Done"}],"finish_reason":"stop"}]'
        ),
        attr.INPUT_VALUE: "Find flights",
        attr.OUTPUT_VALUE: "Done",
    }
    a = tool.attributes
    assert a[attr.GEN_AI_OPERATION_NAME] == "execute_tool"
    assert a[attr.GEN_AI_TOOL_NAME] == "web_search"
    assert a[attr.GEN_AI_TOOL_TYPE] == "function"
    assert a[attr.GEN_AI_AGENT_ID] == "planner"
    assert a[attr.GEN_AI_CONVERSATION_ID] == "sess-1"
    assert a[attr.POLICY_DECISION] == "ALLOW"
    assert a[attr.POLICY_SOURCE] == "default"
    assert a[attr.LOOP_STATUS] == "ok"
    assert a[attr.SANDBOX_BACKEND] == "docker"
    assert a[attr.TOOL_OUTCOME] == "success"
    assert a[attr.TOOL_DURATION_MS] == 700.0
    assert a[attr.TOOL_RESULT_PREVIEW] == "3 results"
    assert a[attr.TOOL_ARGUMENTS_PREVIEW] == "{'url': 'https://api.example.com/v1/search'}"
    assert a[attr.TOOL_ATTEMPT] == 1
    assert a[attr.OPERATION_TYPE] == "EXTERNAL_API_CALL"
    assert tool.status.status_code == StatusCode.UNSET
    # times are the events' own: the tool span opens at its first governing event
    assert (turn.start_time, turn.end_time) == (ns(0), ns(3.0))
    assert (tool.start_time, tool.end_time) == (ns(1.0), ns(2.0))
    # the "ok" loop check is an attribute, the policy and sandbox decisions are span events
    assert [e.name for e in tool.events] == ["audit.tool_policy_decision", "audit.sandbox_decision"]
    policy = tool.events[0]
    assert policy.timestamp == ns(1.1)
    assert policy.attributes[attr.EVENT_FIELD_PREFIX + "action"] == "allow"
    assert policy.attributes[attr.EVENT_FIELD_PREFIX + "policy_source"] == "default"
    assert policy.attributes[attr.EVENT_SEVERITY] == "info"
    assert tool.events[1].attributes[attr.EVENT_FIELD_PREFIX + "backend_type"] == "docker"


def test_every_record_points_at_its_span_and_matches_schema(harness: Harness) -> None:
    one_tool_call(harness)
    records = harness.records()
    turn = harness.span("invoke_agent planner")
    tool = harness.span("execute_tool web_search")
    assert [r["event_type"] for r in records] == [
        "turn_start",
        "tool_loop_warning",
        "tool_policy_decision",
        "tool_call_attempt",
        "sandbox_decision",
        "tool_call_complete",
        "turn_end",
    ]
    expected_span = [turn, tool, tool, tool, tool, tool, turn]
    for record, span in zip(records, expected_span, strict=True):
        jsonschema.validate(record, record_schema())
        assert record["telemetry"]["trace_id"] == hex_trace(span)
        assert record["telemetry"]["span_id"] == hex_span(span), record["event_type"]
    assert [r["type"] for r in records] == ["WORKFLOW_START"] + ["EXTERNAL_API_CALL"] * 5 + [
        "WORKFLOW_COMPLETE"
    ]
    assert len({r["event_id"] for r in records}) == 7
    complete = records[5]
    assert complete["telemetry"]["duration_ms"] == 700.0
    # governance reaches every record of the call from the decision on, not the ones before it
    assert records[1]["governance"]["decision"] is None
    for record in records[2:6]:
        assert record["governance"]["decision"] == "ALLOW"
        assert record["governance"]["policies_evaluated"] == ["default"]
    # seed fields first, in seed order, then the envelope
    assert list(complete)[:11] == [
        "event_type",
        "timestamp",
        "agent_id",
        "turn_id",
        "session_id",
        "severity",
        "metadata",
        "tool_name",
        "status",
        "duration_ms",
        "result_preview",
    ]
    assert list(complete)[11:] == ["event_id", "type", "target", "parameters", "governance", "telemetry"]


def test_denied_call_is_a_span_with_the_decision(harness: Harness) -> None:
    emit(harness, ev.TurnStartEvent(agent_id="a", turn_id="t1"), 0)
    emit(
        harness,
        ev.ToolPolicyDecisionEvent(
            agent_id="a",
            turn_id="t1",
            tool_name="shell_exec",
            action="deny",
            policy_source="operator_override",
        ),
        1,
    )
    emit(harness, ev.TurnEndEvent(agent_id="a", turn_id="t1"), 2)
    tool = harness.span("execute_tool shell_exec")
    assert tool.status.status_code == StatusCode.ERROR
    assert tool.status.description == "denied by operator_override"
    assert tool.attributes[attr.TOOL_OUTCOME] == "denied"
    assert tool.attributes[attr.ERROR_TYPE] == "ToolCallDenied"
    assert tool.attributes[attr.POLICY_DECISION] == "DENY"
    assert (tool.start_time, tool.end_time) == (ns(1), ns(1))
    assert [e.name for e in tool.events] == ["audit.tool_policy_decision"]
    records = harness.records()
    assert records[1]["governance"]["decision"] == "DENY"
    assert records[1]["telemetry"]["span_id"] == hex_span(tool)


def test_loop_block_is_a_blocked_span(harness: Harness) -> None:
    emit(harness, ev.TurnStartEvent(agent_id="a", turn_id="t1"), 0)
    emit(
        harness,
        ev.ToolLoopBlockEvent(
            agent_id="a", turn_id="t1", tool_name="web_search", pattern="same_args_5x", call_count=5
        ),
        1,
    )
    emit(harness, ev.TurnEndEvent(agent_id="a", turn_id="t1"), 2)
    tool = harness.span("execute_tool web_search")
    assert tool.attributes[attr.TOOL_OUTCOME] == "blocked"
    assert tool.attributes[attr.ERROR_TYPE] == "ToolLoopBlocked"
    assert tool.status.status_code == StatusCode.ERROR
    assert tool.events[0].name == "audit.tool_loop_block"
    assert tool.events[0].attributes[attr.EVENT_FIELD_PREFIX + "call_count"] == 5


def test_retry_is_a_second_span_numbered_and_linked(harness: Harness) -> None:
    emit(harness, ev.TurnStartEvent(agent_id="a", turn_id="t1"), 0)
    emit(harness, ev.ToolCallAttemptEvent(agent_id="a", turn_id="t1", tool_name="fetch"), 1)
    emit(
        harness,
        ev.ToolCallFailureEvent(
            agent_id="a",
            turn_id="t1",
            tool_name="fetch",
            error_type="TimeoutError",
            error_message="timed out after 5s",
        ),
        2,
    )
    emit(harness, ev.ToolCallAttemptEvent(agent_id="a", turn_id="t1", tool_name="fetch"), 3)
    emit(harness, ev.ToolCallCompleteEvent(agent_id="a", turn_id="t1", tool_name="fetch", duration_ms=10), 4)
    emit(harness, ev.TurnEndEvent(agent_id="a", turn_id="t1"), 5)
    first, second = sorted(
        (s for s in harness.spans() if s.name == "execute_tool fetch"), key=lambda s: s.start_time or 0
    )
    assert first.attributes[attr.TOOL_ATTEMPT] == 1
    assert first.status.status_code == StatusCode.ERROR
    assert first.status.description == "TimeoutError: timed out after 5s"
    assert first.attributes[attr.ERROR_TYPE] == "TimeoutError"
    assert first.attributes[attr.TOOL_OUTCOME] == "failure"
    assert second.attributes[attr.TOOL_ATTEMPT] == 2
    assert second.attributes[attr.TOOL_OUTCOME] == "success"
    assert [link.context.span_id for link in second.links] == [first.context.span_id]
    assert first.parent.span_id == second.parent.span_id


def test_parallel_calls_of_one_tool_are_matched_by_thread(harness: Harness) -> None:
    emit(harness, ev.TurnStartEvent(agent_id="a", turn_id="t1"), 0)
    barrier = threading.Barrier(4)

    def call(i: int) -> None:
        emit(
            harness,
            ev.ToolCallAttemptEvent(
                agent_id="a", turn_id="t1", tool_name="search", arguments_preview=f"q{i}"
            ),
            1 + i * 0.01,
        )
        barrier.wait()  # all four are open at once
        emit(
            harness,
            ev.ToolCallCompleteEvent(
                agent_id="a",
                turn_id="t1",
                tool_name="search",
                result_preview=f"r{i}",
                duration_ms=100 * (4 - i),
            ),
            2 + (3 - i),
        )

    threads = [threading.Thread(target=call, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    emit(harness, ev.TurnEndEvent(agent_id="a", turn_id="t1", function_calls_count=4), 9)
    tools = [s for s in harness.spans() if s.name == "execute_tool search"]
    assert len(tools) == 4
    for span in tools:
        i = int(str(span.attributes[attr.TOOL_ARGUMENTS_PREVIEW])[1:])
        assert span.attributes[attr.TOOL_RESULT_PREVIEW] == f"r{i}"
        assert span.end_time == ns(2 + (3 - i))
        assert span.parent.span_id == harness.span("invoke_agent a").context.span_id


def test_turn_is_child_of_the_current_span(harness: Harness) -> None:
    tracer = harness.tracer_provider.get_tracer("app")
    with tracer.start_as_current_span("POST /chat") as request_span:
        emit(harness, ev.TurnStartEvent(agent_id="a", turn_id="t1"), 0)
        emit(harness, ev.ToolCallAttemptEvent(agent_id="a", turn_id="t1", tool_name="x"), 1)
        emit(harness, ev.ToolCallCompleteEvent(agent_id="a", turn_id="t1", tool_name="x"), 2)
        emit(harness, ev.TurnEndEvent(agent_id="a", turn_id="t1"), 3)
    turn = harness.span("invoke_agent a")
    assert turn.parent.span_id == request_span.get_span_context().span_id
    assert turn.context.trace_id == request_span.get_span_context().trace_id
    assert harness.records()[1]["telemetry"]["trace_id"] == f"{request_span.get_span_context().trace_id:032x}"


def test_events_without_turn_id_join_the_open_turn_of_their_session(harness: Harness) -> None:
    emit(harness, ev.TurnStartEvent(agent_id="a", turn_id="t1"), 0)
    emit(harness, ev.TurnStartEvent(agent_id="a", turn_id="t2"), 0.5, session="other")
    emit(harness, ev.ToolCallAttemptEvent(agent_id="a", turn_id=None, tool_name="x"), 1)
    emit(harness, ev.ToolCallCompleteEvent(agent_id="a", turn_id=None, tool_name="x"), 2)
    emit(harness, ev.TurnEndEvent(agent_id="a", turn_id="t1"), 3)
    emit(harness, ev.TurnEndEvent(agent_id="a", turn_id="t2"), 3, session="other")
    turns = {
        s.attributes[attr.GEN_AI_CONVERSATION_ID]: s for s in harness.spans() if s.name == "invoke_agent a"
    }
    tool = harness.span("execute_tool x")
    assert tool.parent.span_id == turns["sess-1"].context.span_id


def test_tool_call_with_no_turn_at_all_is_a_root_span(harness: Harness) -> None:
    emit(harness, ev.ToolCallAttemptEvent(agent_id="a", turn_id=None, tool_name="x"), 1)
    emit(harness, ev.ToolCallCompleteEvent(agent_id="a", turn_id=None, tool_name="x"), 2)
    tool = harness.span("execute_tool x")
    assert tool.parent is None
    assert (tool.start_time, tool.end_time) == (ns(1), ns(2))
    records = harness.records()
    assert {r["telemetry"]["span_id"] for r in records} == {hex_span(tool)}


def test_unknown_turn_id_opens_a_synthetic_turn(harness: Harness) -> None:
    emit(harness, ev.ToolCallAttemptEvent(agent_id="a", turn_id="never-started", tool_name="x"), 1)
    emit(harness, ev.ToolCallCompleteEvent(agent_id="a", turn_id="never-started", tool_name="x"), 2)
    emit(harness, ev.TurnEndEvent(agent_id="a", turn_id="never-started"), 3)
    turn = harness.span("invoke_agent a")
    assert turn.attributes[attr.TURN_SYNTHETIC] is True
    assert harness.span("execute_tool x").parent.span_id == turn.context.span_id
    assert (turn.start_time, turn.end_time) == (ns(1), ns(3))


def test_turn_that_never_ends_is_ended_at_shutdown(harness: Harness) -> None:
    emit(harness, ev.TurnStartEvent(agent_id="a", turn_id="t1"), 0)
    emit(harness, ev.ToolCallAttemptEvent(agent_id="a", turn_id="t1", tool_name="slow"), 1)
    emit(
        harness, ev.ToolPolicyDecisionEvent(agent_id="a", turn_id="t1", tool_name="quick", action="allow"), 2
    )
    assert harness.spans() == []
    harness.collector.shutdown()
    turn = harness.span("invoke_agent a")
    assert turn.attributes[attr.TURN_INCOMPLETE] == "shutdown"
    assert turn.status.status_code == StatusCode.ERROR
    assert turn.end_time == ns(2)
    slow = harness.span("execute_tool slow")
    assert slow.attributes[attr.TOOL_OUTCOME] == "incomplete"
    assert slow.status.status_code == StatusCode.ERROR
    quick = harness.span("execute_tool quick")
    assert quick.attributes[attr.TOOL_OUTCOME] == "not_attempted"


def test_open_turns_are_bounded(make_harness: Any) -> None:
    h = make_harness(max_open_turns=3)
    for i in range(5):
        emit(h, ev.TurnStartEvent(agent_id="a", turn_id=f"t{i}"), i)
    assert h.collector.open_turns == 3
    evicted = sorted(s.attributes[attr.TURN_ID] for s in h.spans())
    assert evicted == ["t0", "t1"]
    assert all(s.attributes[attr.TURN_INCOMPLETE] == "evicted" for s in h.spans())
    assert h.collector.stats.turns_evicted == 2


def test_stale_turns_end_on_flush(make_harness: Any) -> None:
    h = make_harness(stale_turn_after_s=0.001)
    emit(h, ev.TurnStartEvent(agent_id="a", turn_id="t1"), 0)
    threading.Event().wait(0.01)
    h.collector.flush()
    assert h.span("invoke_agent a").attributes[attr.TURN_INCOMPLETE] == "stale"


def test_hooks_errors_and_unknown_events(harness: Harness) -> None:
    emit(harness, ev.TurnStartEvent(agent_id="a", turn_id="t1"), 0)
    emit(
        harness,
        ev.HookMutationEvent(
            agent_id="a", turn_id="t1", tool_name="x", hook_name="inject", mutated_field="arguments"
        ),
        1,
    )
    emit(harness, ev.ToolCallAttemptEvent(agent_id="a", turn_id="t1", tool_name="x"), 1.1)
    emit(
        harness,
        ev.HookMutationEvent(
            agent_id="a", turn_id="t1", tool_name="x", hook_name="sanitize", mutated_field="result"
        ),
        1.5,
    )
    harness.collector.emit(
        {
            "event_type": "skill_used",
            "timestamp": at(1.6),
            "agent_id": "a",
            "turn_id": "t1",
            "session_id": "sess-1",
            "tool_name": "x",
            "skill_name": "pdf",
        }
    )
    emit(harness, ev.ToolCallCompleteEvent(agent_id="a", turn_id="t1", tool_name="x"), 2)
    harness.collector.emit(
        {
            "event_type": "agent_switch",
            "timestamp": at(2.5),
            "agent_id": "a",
            "turn_id": "t1",
            "session_id": "sess-1",
            "to_agent": "b",
        }
    )
    emit(
        harness,
        ev.ErrorEvent(
            agent_id="a", turn_id="t1", error_type="RateLimitError", error_message="429 from model"
        ),
        3,
    )
    emit(harness, ev.TurnEndEvent(agent_id="a", turn_id="t1"), 4)
    tool = harness.span("execute_tool x")
    assert [e.name for e in tool.events] == ["audit.hook_mutation", "audit.hook_mutation", "audit.skill_used"]
    assert tool.events[0].attributes[attr.EVENT_FIELD_PREFIX + "hook_name"] == "inject"
    assert tool.events[2].attributes[attr.EVENT_FIELD_PREFIX + "skill_name"] == "pdf"
    turn = harness.span("invoke_agent a")
    assert [e.name for e in turn.events] == ["audit.agent_switch", "audit.error"]
    assert turn.status.status_code == StatusCode.ERROR
    assert turn.attributes[attr.ERROR_TYPE] == "RateLimitError"
    records = harness.records()
    assert [r["type"] for r in records if r["event_type"] in ("agent_switch", "error")] == [
        "AGENT_DECISION",
        "AGENT_ACTION",
    ]
    assert records[4]["skill_name"] == "pdf"  # unknown fields are kept


def test_seed_objects_with_to_dict_and_dicts_are_accepted(harness: Harness) -> None:
    class SeedEvent:
        def to_dict(self) -> dict[str, Any]:
            return ev.TurnStartEvent(agent_id="a", turn_id="t1", timestamp=at(0)).to_dict()

    harness.collector.emit(SeedEvent())
    harness.collector.emit(ev.TurnEndEvent(agent_id="a", turn_id="t1", timestamp=at(1)).to_dict())
    assert harness.span("invoke_agent a").end_time == ns(1)


def test_events_as_logs_correlates_log_records(make_harness: Any) -> None:
    h = make_harness(events_as="both")
    one_tool_call(h)
    logs = [r.log_record for r in h.log_exporter.get_finished_logs()]
    assert [lr.event_name for lr in logs][:3] == [
        "audit.turn_start",
        "audit.tool_loop_warning",
        "audit.tool_policy_decision",
    ]
    tool = h.span("execute_tool web_search")
    policy = logs[2]
    assert policy.trace_id == tool.context.trace_id
    assert policy.span_id == tool.context.span_id
    assert policy.timestamp == ns(1.1)
    assert policy.attributes[attr.EVENT_FIELD_PREFIX + "action"] == "allow"
    assert len(tool.events) == 2  # "both": span events as well

    only_logs = make_harness(events_as="logs")
    one_tool_call(only_logs)
    assert only_logs.span("execute_tool web_search").events == ()


def test_internal_failure_is_counted_and_the_record_still_written(make_harness: Any) -> None:
    class Broken:
        def classify(self, *args: Any) -> Any:
            raise RuntimeError("classifier bug")

    h = make_harness(classifier=Broken())
    one_tool_call(h)
    assert h.collector.stats.internal_errors > 0
    assert len(h.records()) == 7


def test_bad_input_never_raises(harness: Harness) -> None:
    for junk in (None, 42, "text", object(), {"event_type": 5, "timestamp": "yesterday", "metadata": [1]}):
        harness.collector.emit(junk)
    records = harness.records()
    assert len(records) == 5
    for record in records:
        jsonschema.validate(record, record_schema())


def test_collector_rejects_bad_options(tmp_path: Any) -> None:
    from auditspan import SpanCollector

    with pytest.raises(ValueError, match="events_as"):
        SpanCollector(trace.NoOpTracerProvider(), events_as="spans")
    with pytest.raises(ValueError, match="max_open_turns"):
        SpanCollector(trace.NoOpTracerProvider(), max_open_turns=0)
    with pytest.raises(ValueError, match="audit_log"):
        SpanCollector(trace.NoOpTracerProvider(), audit_log=3.5)
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    with pytest.raises(ValueError, match="a-file"):
        SpanCollector(trace.NoOpTracerProvider(), audit_log=blocker / "audit.jsonl")


def test_pii_rule_match_is_a_span_event_a_record_and_a_counter(make_harness: Any) -> None:
    from auditspan.rules import PII_EXFILTRATION_RULE

    h = make_harness(rules=[PII_EXFILTRATION_RULE])
    emit(h, ev.TurnStartEvent(agent_id="a", turn_id="t1"), 0)
    emit(
        h,
        ev.ToolCallAttemptEvent(
            agent_id="a",
            turn_id="t1",
            tool_name="run_sql",
            arguments_preview="{'query': 'SELECT email FROM customers.pii_emails'}",
        ),
        1,
    )
    emit(h, ev.ToolCallCompleteEvent(agent_id="a", turn_id="t1", tool_name="run_sql"), 2)
    emit(
        h,
        ev.ToolCallAttemptEvent(
            agent_id="a",
            turn_id="t1",
            tool_name="http_post",
            arguments_preview="{'url': 'https://paste.example.net/upload'}",
        ),
        30,
    )
    emit(h, ev.ToolCallCompleteEvent(agent_id="a", turn_id="t1", tool_name="http_post"), 31)
    emit(h, ev.TurnEndEvent(agent_id="a", turn_id="t1"), 32)
    sql, post = h.span("execute_tool run_sql"), h.span("execute_tool http_post")
    assert post.attributes[attr.RULE_ACTION] == "REQUIRE_APPROVAL"
    assert post.attributes[attr.RULE_NAME] == "PII Exfiltration Pattern"
    assert attr.RULE_ACTION not in sql.attributes
    match_event = next(e for e in post.events if e.name == "audit.behavior_rule_match")
    records = h.records()
    match = next(r for r in records if r["event_type"] == "behavior_rule_match")
    sql_attempt = next(
        r for r in records if r["event_type"] == "tool_call_attempt" and r["tool_name"] == "run_sql"
    )
    post_attempt = next(
        r for r in records if r["event_type"] == "tool_call_attempt" and r["tool_name"] == "http_post"
    )
    assert match["rule_name"] == "PII Exfiltration Pattern" and match["action"] == "REQUIRE_APPROVAL"
    assert match["trigger_event_id"] == sql_attempt["event_id"]
    assert match["match_event_id"] == post_attempt["event_id"]
    assert match["trigger_span_id"] == hex_span(sql)
    assert match["telemetry"]["span_id"] == hex_span(post)
    assert match["governance"]["decision"] == "REQUIRE_APPROVAL"
    assert match_event.attributes[attr.EVENT_ID] == match["event_id"]
    assert h.collector.stats.rule_matches == 1
    jsonschema.validate(match, record_schema())


def _attempt(h: Harness, tool: str, preview: str, seconds: float) -> None:
    emit(
        h,
        ev.ToolCallAttemptEvent(agent_id="a", turn_id="t1", tool_name=tool, arguments_preview=preview),
        seconds,
    )
    emit(
        h,
        ev.ToolCallCompleteEvent(agent_id="a", turn_id="t1", tool_name=tool, duration_ms=1.0),
        seconds + 0.1,
    )


def test_classification_reads_the_arguments_before_redaction_but_keeps_no_secret(harness: Harness) -> None:
    password = "Hunter2Passw0rd"
    token = "ghp_" + "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8"
    emit(harness, ev.TurnStartEvent(agent_id="a", turn_id="t1"), 0)
    _attempt(harness, "send_email", "{'to': ['ops@corp.example.org'], 'subject': 'Nightly report'}", 1)
    _attempt(harness, "http_get", f"{{'url': 'https://admin:{password}@db.example.com/v1/items'}}", 2)
    _attempt(harness, "read_file", f"{{'path': '/home/u/{token}.txt', 'mode': 'r'}}", 3)
    emit(harness, ev.TurnEndEvent(agent_id="a", turn_id="t1"), 4)

    # The default capture policy masks the address in the preview, not the classification's reading of it.
    email = harness.span("execute_tool send_email")
    assert email.attributes is not None
    assert email.attributes[attr.OPERATION_TYPE] == "EMAIL_SEND"
    assert email.attributes[attr.OPERATION_TARGET] == "corp.example.org"
    assert "ops@corp.example.org" not in email.attributes[attr.TOOL_ARGUMENTS_PREVIEW]
    records = {r["tool_name"]: r for r in harness.records() if r["event_type"] == "tool_call_attempt"}
    assert records["send_email"]["target"] == "corp.example.org"
    assert records["send_email"]["parameters"] == {
        "recipient_count": 1,
        "recipient_domains": ["corp.example.org"],
    }
    assert "ops@corp.example.org" not in records["send_email"]["arguments_preview"]

    # A URL's user-info never becomes a target; a token in a path is redacted in the target too.
    assert records["http_get"]["target"] == "db.example.com/v1/items"
    assert records["read_file"]["type"] == "FILE_READ"
    assert records["read_file"]["target"] == "/home/u/[REDACTED:github_token].txt"
    assert records["read_file"]["parameters"]["path"] == "/home/u/[REDACTED:github_token].txt"
    everything = harness.log_path.read_text(encoding="utf-8") + repr(
        [
            (s.name, dict(s.attributes or {}), [dict(e.attributes or {}) for e in s.events])
            for s in harness.spans()
        ]
    )
    assert password not in everything
    assert token not in everything
    assert "corp.example.org" in everything


def test_capture_policy_none_gives_classification_no_arguments(make_harness: Any) -> None:
    from auditspan.redaction import Redactor

    h = make_harness(redactor=Redactor("none"))
    emit(h, ev.TurnStartEvent(agent_id="a", turn_id="t1"), 0)
    _attempt(h, "send_email", "{'to': ['ops@corp.example.org'], 'subject': 'Nightly report'}", 1)
    emit(h, ev.TurnEndEvent(agent_id="a", turn_id="t1"), 2)
    record = next(r for r in h.records() if r["event_type"] == "tool_call_attempt")
    assert record["type"] == "EMAIL_SEND"
    assert record["target"] is None
    assert record["arguments_preview"] == ""
    assert "corp.example.org" not in h.log_path.read_text(encoding="utf-8")

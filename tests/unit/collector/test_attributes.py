"""Span and log-record attributes from event fields (``collector._attributes``), without a tracer."""

from __future__ import annotations

import json
from types import SimpleNamespace

from auditspan import attributes as attr
from auditspan.collector._attributes import (
    call_attributes,
    call_end_attributes,
    error_attributes,
    event_attributes,
    log_attributes,
    messages,
    prompt_attributes,
    sandbox_attributes,
    text,
    turn_attributes,
    turn_end_attributes,
    turn_incomplete_attributes,
    turn_name,
)


def test_a_turn_names_its_agent_and_ids_and_says_when_it_is_synthetic() -> None:
    assert turn_attributes("planner", "Planner", "sess-1", "t-1", synthetic=True) == {
        attr.GEN_AI_OPERATION_NAME: "invoke_agent",
        attr.GEN_AI_AGENT_ID: "planner",
        attr.GEN_AI_AGENT_NAME: "Planner",
        attr.GEN_AI_CONVERSATION_ID: "sess-1",
        attr.TURN_ID: "t-1",
        attr.TURN_SYNTHETIC: True,
    }
    assert turn_attributes(None, None, None, None, synthetic=False) == {
        attr.GEN_AI_OPERATION_NAME: "invoke_agent"
    }
    assert turn_name("Planner") == "invoke_agent Planner" and turn_name(None) == "invoke_agent"


def test_a_prompt_is_cut_at_the_limit_and_its_message_stays_valid_json() -> None:
    prompt = 'say "hi"\n' * 50  # escapes make the JSON longer than the text
    got = prompt_attributes(prompt, 200)
    assert got[attr.TURN_PROMPT_PREVIEW] == got[attr.INPUT_VALUE] == text(prompt, 200)
    assert len(got[attr.TURN_PROMPT_PREVIEW]) <= 200 and "truncated" in got[attr.TURN_PROMPT_PREVIEW]
    encoded = got[attr.GEN_AI_INPUT_MESSAGES]
    assert len(encoded) <= 200
    (message,) = json.loads(encoded)
    assert message["role"] == "user" and prompt.startswith(message["parts"][0]["content"][:40])
    assert json.loads(messages("assistant", "done", 1_000)) == [
        {"role": "assistant", "parts": [{"type": "text", "content": "done"}], "finish_reason": "stop"}
    ]


def test_turn_end_and_incomplete_turns() -> None:
    got = turn_end_attributes({"content_preview": "Found 3.", "function_calls_count": 2}, 100)
    assert got[attr.TURN_CONTENT_PREVIEW] == "Found 3." and got[attr.TURN_FUNCTION_CALLS_COUNT] == 2
    assert turn_end_attributes({"content_preview": "", "function_calls_count": True}, 100) == {}
    assert turn_incomplete_attributes("stale") == (
        {attr.TURN_INCOMPLETE: "stale", attr.ERROR_TYPE: attr.ERROR_TYPE_TURN_INCOMPLETE},
        "turn did not end (stale)",
    )


def test_an_error_event_gives_its_type_and_message_and_others_nothing() -> None:
    assert error_attributes({"event_type": "error", "error_type": "", "error_message": "boom"}, 100) == (
        {attr.ERROR_TYPE: attr.ERROR_TYPE_OTHER},
        "boom",
    )
    assert error_attributes({"event_type": "skill_used"}, 100) is None


def test_a_call_carries_its_tool_turn_and_classification() -> None:
    classification = SimpleNamespace(
        type="FILE_READ", risk="low", category="file", custom_type=None, target="/etc/hosts"
    )
    got = call_attributes("read_file", 2, "call-7", "mcp", "a", None, "s", "t", classification)
    assert got == {
        attr.GEN_AI_OPERATION_NAME: "execute_tool",
        attr.GEN_AI_TOOL_NAME: "read_file",
        attr.GEN_AI_TOOL_TYPE: "mcp",
        attr.TOOL_ATTEMPT: 2,
        attr.GEN_AI_TOOL_CALL_ID: "call-7",
        attr.GEN_AI_AGENT_ID: "a",
        attr.GEN_AI_AGENT_NAME: "a",
        attr.GEN_AI_CONVERSATION_ID: "s",
        attr.TURN_ID: "t",
        attr.OPERATION_TYPE: "FILE_READ",
        attr.OPERATION_RISK: "low",
        attr.OPERATION_CATEGORY: "file",
        attr.OPERATION_TARGET: "/etc/hosts",
    }
    assert (
        call_attributes("x", 1, None, None, None, None, None, None, None)[attr.GEN_AI_TOOL_TYPE] == "function"
    )


def test_each_outcome_of_a_call_has_its_attributes_and_status() -> None:
    complete = {
        "event_type": "tool_call_complete",
        "status": "ok",
        "duration_ms": 12,
        "result_preview": "3 rows",
    }
    got, status = call_end_attributes(attr.OUTCOME_SUCCESS, complete, 100)
    assert status is None
    assert got == {
        attr.TOOL_OUTCOME: "success",
        attr.TOOL_STATUS: "ok",
        attr.TOOL_DURATION_MS: 12.0,
        attr.TOOL_RESULT_PREVIEW: "3 rows",
        attr.GEN_AI_TOOL_CALL_RESULT: "3 rows",
        attr.OUTPUT_VALUE: "3 rows",
    }
    failure = {"event_type": "tool_call_failure", "error_type": "Timeout", "error_message": "after 30 s"}
    got, status = call_end_attributes(attr.OUTCOME_FAILURE, failure, 100)
    assert got[attr.ERROR_TYPE] == "Timeout" and got[attr.TOOL_ERROR_MESSAGE] == "after 30 s"
    assert status == "Timeout: after 30 s"
    got, status = call_end_attributes(attr.OUTCOME_DENIED, {"event_type": "x", "policy_source": "opa"}, 100)
    assert got[attr.ERROR_TYPE] == attr.ERROR_TYPE_DENIED and status == "denied by opa"
    got, status = call_end_attributes(attr.OUTCOME_INCOMPLETE, None, 100, evicted=True)
    assert got == {
        attr.TOOL_OUTCOME: "incomplete",
        attr.TOOL_INCOMPLETE: "evicted",
        attr.ERROR_TYPE: attr.ERROR_TYPE_TOOL_INCOMPLETE,
    }
    assert status == "tool call evicted before it completed (state bound)"


def test_sandbox_attributes() -> None:
    assert sandbox_attributes({"backend_type": "docker", "context": "x" * 50}, 20) == {
        attr.SANDBOX_BACKEND: "docker",
        attr.SANDBOX_CONTEXT: text("x" * 50, 20),
    }


def test_a_span_event_leaves_the_envelope_to_its_span_and_cuts_long_values() -> None:
    fields = {
        "event_type": "sandbox_decision",
        "timestamp": "2026-11-21T19:24:17Z",
        "agent_id": "a",
        "turn_id": "t",
        "session_id": "s",
        "severity": "info",
        "metadata": {"k": 1},
        "tool_name": "sh",
        "context": "y" * 100,
        "custom_field": 2**70,
        "nothing": None,
    }
    got = event_attributes(fields, "evt_1", 40)
    assert got == {
        attr.EVENT_TYPE: "sandbox_decision",
        attr.EVENT_ID: "evt_1",
        attr.EVENT_SEVERITY: "info",
        attr.EVENT_METADATA: '{"k":1}',
        attr.EVENT_FIELD_PREFIX + "context": text("y" * 100, 40),
        attr.EVENT_FIELD_PREFIX + "custom_field": str(2**70),
    }


def test_a_log_record_adds_the_records_type_and_ids() -> None:
    record = {
        "event_type": "tool_call_attempt",
        "turn_id": "t",
        "session_id": "s",
        "agent_id": "a",
        "tool_name": "sh",
        "severity": "info",
        "metadata": {},
        "event_id": "evt_2",
        "type": "SHELL_EXEC",
        "target": "ls",
        "parameters": {"p": 1},
        "governance": {},
        "telemetry": {},
    }
    got = log_attributes(record, 100)
    assert got[attr.OPERATION_TYPE] == "SHELL_EXEC" and got[attr.OPERATION_TARGET] == "ls"
    assert got[attr.TURN_ID] == "t" and got[attr.GEN_AI_CONVERSATION_ID] == "s"
    assert got[attr.GEN_AI_AGENT_ID] == "a" and got[attr.GEN_AI_TOOL_NAME] == "sh"
    assert got[attr.EVENT_ID] == "evt_2"
    assert not any("parameters" in key or "governance" in key for key in got)

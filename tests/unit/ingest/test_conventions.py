"""The conventions' facts, read by pure functions: no tracer, no processor."""

from __future__ import annotations

import json
from typing import Any

import pytest
from opentelemetry.sdk.trace import Event

from auditspan import attributes as attr
from auditspan.ingest import agent_facts, guardrail_verdict, outcome, recognize, tool_facts
from auditspan.ingest._conventions import is_own_scope, text_of


@pytest.mark.parametrize(
    ("name", "attributes", "expected"),
    [
        ("invoke_agent a", {attr.GEN_AI_OPERATION_NAME: "invoke_agent"}, ("agent", "gen_ai", False)),
        ("execute_tool t", {attr.GEN_AI_OPERATION_NAME: "execute_tool"}, ("tool", "gen_ai", False)),
        (
            "tools/call add",
            {attr.MCP_METHOD_NAME: "tools/call", attr.GEN_AI_OPERATION_NAME: "execute_tool"},
            ("tool", "mcp", False),
        ),
        ("MCP send tools/call add", {attr.MCP_METHOD_NAME: "tools/call"}, ("tool", "mcp", True)),
        ("x", {attr.OPENINFERENCE_SPAN_KIND: "TOOL"}, ("tool", "openinference", False)),
        ("x", {attr.OPENINFERENCE_SPAN_KIND: "AGENT"}, ("agent", "openinference", False)),
        ("x", {attr.OPENINFERENCE_SPAN_KIND: "GUARDRAIL"}, ("guardrail", "openinference", False)),
        ("x", {attr.TRACELOOP_SPAN_KIND: "tool"}, ("tool", "openllmetry", False)),
        ("x", {attr.TRACELOOP_SPAN_KIND: "agent"}, ("agent", "openllmetry", False)),
        ("running tool", {attr.GEN_AI_TOOL_NAME: "t"}, ("tool", "pydantic_ai_v2", False)),
        ("agent run", {attr.LEGACY_AGENT_NAME: "a"}, ("agent", "pydantic_ai_v2", False)),
    ],
)
def test_each_dialect_is_recognised(
    name: str, attributes: dict[str, Any], expected: tuple[str, str, bool]
) -> None:
    found = recognize(name, attributes)
    assert found is not None
    assert (found.role, found.convention, found.transport) == expected


@pytest.mark.parametrize(
    ("name", "attributes"),
    [
        ("chat gpt-5", {attr.GEN_AI_OPERATION_NAME: "chat"}),
        ("tools/list", {attr.MCP_METHOD_NAME: "tools/list"}),
        ("x", {attr.OPENINFERENCE_SPAN_KIND: "LLM"}),
        ("x", {attr.TRACELOOP_SPAN_KIND: "workflow"}),
        ("x", {attr.OPENINFERENCE_SPAN_KIND: 7}),
        ("GET /", {}),
        ("GET /", None),
        (None, {attr.GEN_AI_TOOL_NAME: "t"}),
    ],
)
def test_other_spans_are_not_recognised(name: Any, attributes: Any) -> None:
    assert recognize(name, attributes) is None


def test_an_explicit_kind_wins_over_the_operation_name() -> None:
    found = recognize(
        "x", {attr.OPENINFERENCE_SPAN_KIND: "GUARDRAIL", attr.GEN_AI_OPERATION_NAME: "execute_tool"}
    )
    assert found is not None and found.role == "guardrail"


def test_own_scopes() -> None:
    assert is_own_scope("auditspan") and is_own_scope("auditspan.audit_log")
    assert not is_own_scope("auditspanner") and not is_own_scope("pydantic-ai") and not is_own_scope(None)


def test_tool_facts_new_names() -> None:
    facts = tool_facts(
        "execute_tool get_weather",
        {
            attr.GEN_AI_TOOL_NAME: "get_weather",
            attr.GEN_AI_TOOL_CALL_ID: "call_1",
            attr.GEN_AI_TOOL_CALL_ARGUMENTS: '{"city": "Lisbon"}',
            attr.GEN_AI_TOOL_CALL_RESULT: "sunny",
        },
    )
    assert (facts.tool_name, facts.call_id, facts.arguments, facts.result) == (
        "get_weather",
        "call_1",
        '{"city": "Lisbon"}',
        "sunny",
    )


@pytest.mark.parametrize(
    ("name", "attributes", "tool", "arguments", "result"),
    [
        (
            "running tool",
            {attr.GEN_AI_TOOL_NAME: "t", attr.LEGACY_TOOL_ARGUMENTS: "{}", attr.LEGACY_TOOL_RESPONSE: "r"},
            "t",
            "{}",
            "r",
        ),
        (
            "s",
            {attr.OPENINFERENCE_TOOL_NAME: "search", attr.INPUT_VALUE: "q", attr.OUTPUT_VALUE: "a"},
            "search",
            "q",
            "a",
        ),
        (
            "s",
            {
                attr.TRACELOOP_ENTITY_NAME: "mail",
                attr.TRACELOOP_ENTITY_INPUT: "i",
                attr.TRACELOOP_ENTITY_OUTPUT: "o",
            },
            "mail",
            "i",
            "o",
        ),
        (
            "execute_tool x",
            {attr.ADK_TOOL_CALL_ARGS: '{"a": 1}', attr.ADK_TOOL_RESPONSE: "ok"},
            "x",
            '{"a": 1}',
            "ok",
        ),
        ("MCP send tools/call add", {attr.MCP_METHOD_NAME: "tools/call"}, "add", None, None),
        ("tools/call add", {}, "add", None, None),
        ("my_tool", {}, "my_tool", None, None),
    ],
)
def test_tool_facts_from_every_dialect(
    name: str, attributes: dict[str, Any], tool: str, arguments: str | None, result: str | None
) -> None:
    facts = tool_facts(name, attributes)
    assert (facts.tool_name, facts.arguments, facts.result) == (tool, arguments, result)


def test_call_id_from_each_dialect() -> None:
    assert tool_facts("t", {attr.OPENINFERENCE_TOOL_CALL_ID: "oi"}).call_id == "oi"
    assert tool_facts("t", {attr.JSONRPC_REQUEST_ID: "4"}).call_id == "4"
    assert tool_facts("t", {}).call_id is None


def test_values_of_other_types_are_read_as_text() -> None:
    assert text_of(("a", "b")) == '["a","b"]'
    assert text_of(3) == "3" and text_of(True) == "True" and text_of(None) is None
    assert tool_facts("t", {attr.GEN_AI_TOOL_CALL_ARGUMENTS: [1, 2]}).arguments == "[1,2]"


def _messages(*messages: tuple[str, str]) -> str:
    return json.dumps(
        [{"role": role, "parts": [{"type": "text", "content": text}]} for role, text in messages]
    )


def test_agent_facts_from_the_conventions_messages() -> None:
    facts = agent_facts(
        "invoke_agent planner",
        {
            attr.GEN_AI_AGENT_NAME: "planner",
            attr.GEN_AI_CONVERSATION_ID: "conv-1",
            attr.GEN_AI_INPUT_MESSAGES: _messages(
                ("system", "be brief"), ("user", "old"), ("user", "Find flights")
            ),
            attr.GEN_AI_OUTPUT_MESSAGES: _messages(("assistant", "Found 3.")),
        },
    )
    assert (facts.agent_id, facts.session_id, facts.prompt, facts.reply) == (
        "planner",
        "conv-1",
        "Find flights",
        "Found 3.",
    )


def test_agent_facts_prefers_the_agent_id_and_falls_back_to_the_span_name() -> None:
    assert agent_facts("x", {attr.GEN_AI_AGENT_ID: "id-1", attr.GEN_AI_AGENT_NAME: "n"}).agent_id == "id-1"
    assert agent_facts("invoke_agent helper", {}).agent_id == "helper"
    assert agent_facts("agent", {attr.OPENINFERENCE_SPAN_KIND: "AGENT"}).agent_id == "agent"
    assert agent_facts("agent run", {attr.LEGACY_AGENT_NAME: "old"}).agent_id == "old"


def test_agent_facts_from_the_messages_a_run_added() -> None:
    history = _messages(
        ("user", "earlier question"), ("assistant", "earlier answer"), ("user", "this turn's prompt")
    )
    facts = agent_facts(
        "invoke_agent a",
        {
            attr.PYDANTIC_AI_ALL_MESSAGES: history,
            attr.PYDANTIC_AI_NEW_MESSAGE_INDEX: 2,
            attr.PYDANTIC_AI_FINAL_RESULT: "the reply",
        },
    )
    assert (facts.prompt, facts.reply) == ("this turn's prompt", "the reply")


def test_agent_facts_plain_text_dialects() -> None:
    assert agent_facts("a", {attr.INPUT_VALUE: "hi", attr.OUTPUT_VALUE: "hello"}).prompt == "hi"
    facts = agent_facts("a", {attr.TRACELOOP_ENTITY_INPUT: "in", attr.TRACELOOP_ENTITY_OUTPUT: "out"})
    assert (facts.prompt, facts.reply) == ("in", "out")
    assert agent_facts("a", {attr.GEN_AI_PROMPT: "p", attr.GEN_AI_COMPLETION: "c"}).reply == "c"


def test_malformed_messages_are_ignored() -> None:
    facts = agent_facts(
        "a", {attr.GEN_AI_INPUT_MESSAGES: "[{not json", attr.GEN_AI_OUTPUT_MESSAGES: '{"a": 1}'}
    )
    assert facts.prompt is None and facts.reply is None
    assert agent_facts("a", {attr.GEN_AI_CONVERSATION_ID: ""}).session_id is None  # never invented


def _exception(kind: str, message: str) -> Event:
    return Event("exception", {attr.EXCEPTION_TYPE: kind, attr.EXCEPTION_MESSAGE: message})


def test_outcome_of_a_success() -> None:
    assert not outcome({}, is_error=False, status_description=None).failed


def test_outcome_error_type_order() -> None:
    events = [_exception("ValueError", "first"), _exception("TimeoutError", "last one")]
    ended = outcome({attr.ERROR_TYPE: "Upstream"}, is_error=True, status_description="desc", events=events)
    assert (ended.failed, ended.error_type, ended.error_message) == (True, "Upstream", "last one")
    ended = outcome({}, is_error=True, status_description="desc", events=events)
    assert (ended.error_type, ended.error_message) == ("TimeoutError", "last one")
    ended = outcome({}, is_error=True, status_description="desc")
    assert (ended.error_type, ended.error_message) == ("_OTHER", "desc")
    ended = outcome({attr.ERROR_TYPE: "Quota"}, is_error=False, status_description=None)
    assert ended.failed and ended.error_type == "Quota" and ended.decision is None


def test_outcome_of_a_deferral() -> None:
    approval = outcome(
        {attr.PYDANTIC_AI_DEFERRAL_NAME: "ApprovalRequired"}, is_error=True, status_description=None
    )
    assert (approval.decision, approval.policy, approval.error_type) == (
        "REQUIRE_APPROVAL",
        "pydantic_ai:ApprovalRequired",
        "ApprovalRequired",
    )
    deferred = outcome(
        {attr.PYDANTIC_AI_DEFERRAL_NAME: "CallDeferred"}, is_error=False, status_description=None
    )
    assert deferred.decision == "DEFER" and deferred.failed


def test_outcome_of_mcp_is_error() -> None:
    ended = outcome({attr.ERROR_TYPE: "tool_error"}, is_error=True, status_description=None, convention="mcp")
    assert (ended.error_type, ended.decision, ended.policy) == ("tool_error", "DENY", "mcp:isError")
    other = outcome(
        {attr.ERROR_TYPE: "tool_error"}, is_error=True, status_description=None, convention="gen_ai"
    )
    assert other.decision is None


@pytest.mark.parametrize(
    ("output", "is_error", "verdict"),
    [
        ("allowed", False, "ALLOW"),
        ("blocked", False, "BLOCK"),
        ("DENY", False, "DENY"),
        ('{"decision": "require_approval"}', False, "REQUIRE_APPROVAL"),
        ('{"tripwire_triggered": true}', False, "DENY"),
        ('{"triggered": false}', True, "ALLOW"),
        ("The input looks fine to me, nothing to report.", False, "ALLOW"),
        ("The input looks fine to me, nothing to report.", True, "BLOCK"),
        (None, False, "ALLOW"),
        (None, True, "BLOCK"),
        ("{broken", True, "BLOCK"),
    ],
)
def test_guardrail_verdicts(output: str | None, is_error: bool, verdict: str) -> None:
    attributes = {attr.OUTPUT_VALUE: output} if output is not None else {}
    assert guardrail_verdict(attributes, is_error=is_error) == verdict

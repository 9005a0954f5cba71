"""The OpenAI Agents SDK adapter, offline: a scripted ``Model`` instead of a model service."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest

pytest.importorskip("agents", reason="openai-agents is not installed")

from agents import (
    Agent,
    GuardrailFunctionOutput,
    InputGuardrailTripwireTriggered,
    RunConfig,
    Runner,
    function_tool,
    input_guardrail,
    set_trace_processors,
    trace,
)
from agents.tracing import get_trace_provider
from opentelemetry.trace import StatusCode

from auditspan.integrations.openai_agents import TOOL_ERROR_TYPE, AuditSpanProcessor

from ...fixtures.fake_model import ScriptedModel


def _types(records: list[dict[str, Any]]) -> list[str]:
    return [r["event_type"] for r in records]


@pytest.fixture
def processor(harness: Any) -> Iterator[AuditSpanProcessor]:
    proc = AuditSpanProcessor(harness.collector, session_id="sess-oa")
    set_trace_processors([proc])  # the only processor: nothing goes to the vendor's exporter
    yield proc
    set_trace_processors([])


def _run(agent: Agent[Any], prompt: str, **kwargs: Any) -> Any:
    return asyncio.run(Runner.run(agent, prompt, run_config=RunConfig(workflow_name="test"), **kwargs))


def test_only_the_audit_processor_is_registered(processor: AuditSpanProcessor) -> None:
    registered = get_trace_provider()._multi_processor._processors  # type: ignore[attr-defined]
    assert list(registered) == [processor]


def test_agent_run_is_a_turn_and_function_spans_are_tool_calls(
    harness: Any, processor: AuditSpanProcessor
) -> None:
    @function_tool
    def web_search(query: str) -> str:
        return f"3 results for {query}"

    model = ScriptedModel([[("web_search", {"query": "lisbon"})], "Found 3."])
    agent = Agent(name="planner", instructions="plan", model=model, tools=[web_search])
    assert _run(agent, "Find flights").final_output == "Found 3."

    records = harness.records()
    assert _types(records) == ["turn_start", "tool_call_attempt", "tool_call_complete", "turn_end"]
    start, attempt, complete, end = records
    assert start["agent_id"] == "planner" and start["session_id"] == "sess-oa"
    assert attempt["arguments_preview"] == '{"query": "lisbon"}'
    assert complete["result_preview"] == "3 results for lisbon"
    assert complete["duration_ms"] >= 0
    assert attempt["metadata"]["tool_call_id"].startswith("span_")
    assert end["function_calls_count"] == 1
    turn = harness.span("invoke_agent planner")
    tool = harness.span("execute_tool web_search")
    assert tool.parent is not None and tool.parent.span_id == turn.context.span_id
    assert tool.attributes["gen_ai.tool.call.id"] == attempt["metadata"]["tool_call_id"]
    assert turn.status.status_code is StatusCode.UNSET


def test_failing_tool_is_a_failure(harness: Any, processor: AuditSpanProcessor) -> None:
    @function_tool
    def fetch_url(url: str) -> str:
        raise TimeoutError("upstream timed out")

    model = ScriptedModel([[("fetch_url", {"url": "https://a.example"})], "Sorry."])
    _run(Agent(name="a", instructions="", model=model, tools=[fetch_url]), "go")
    failure = next(r for r in harness.records() if r["event_type"] == "tool_call_failure")
    assert failure["error_type"] == TOOL_ERROR_TYPE
    assert "Error running tool" in failure["error_message"]
    span = harness.span("execute_tool fetch_url")
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes["auditspan.tool.outcome"] == "failure"


def test_tool_guardrail_records_decisions_and_denies(harness: Any, processor: AuditSpanProcessor) -> None:
    ran: list[str] = []
    guard = processor.tool_guardrail(lambda tool, args: args.get("table") != "users", source="opa")

    @function_tool(tool_input_guardrails=[guard])
    def delete_records(table: str) -> str:
        ran.append(table)
        return "deleted"

    model = ScriptedModel(
        [[("delete_records", {"table": "users"})], [("delete_records", {"table": "tmp"})], "ok"]
    )
    _run(Agent(name="a", instructions="", model=model, tools=[delete_records]), "clean up")
    assert ran == ["tmp"]
    records = harness.records()
    assert _types(records) == [
        "turn_start",
        "tool_policy_decision",  # users: deny, no attempt
        "tool_policy_decision",  # tmp: allow, then the attempt
        "tool_call_attempt",
        "tool_call_complete",
        "turn_end",
    ]
    assert [r["action"] for r in records[1:3]] == ["deny", "allow"]
    assert records[1]["governance"]["decision"] == "DENY" and records[1]["policy_source"] == "opa"
    spans = {
        s.attributes["auditspan.tool.outcome"]: s
        for s in harness.spans()
        if s.name.startswith("execute_tool")
    }
    assert set(spans) == {"denied", "success"}
    assert spans["denied"].status.status_code is StatusCode.ERROR
    assert spans["success"].attributes["auditspan.policy.decision"] == "ALLOW"
    assert records[-1]["function_calls_count"] == 2


def test_parallel_calls_pair_exactly(harness: Any, processor: AuditSpanProcessor) -> None:
    @function_tool
    async def lookup(key: str) -> str:
        await asyncio.sleep(0)
        return f"value of {key}"

    model = ScriptedModel([[("lookup", {"key": "a"}), ("lookup", {"key": "b"})], "done"])
    _run(Agent(name="a", instructions="", model=model, tools=[lookup]), "both")
    spans = [s for s in harness.spans() if s.name == "execute_tool lookup"]
    pairs = {
        s.attributes["auditspan.tool.arguments_preview"]: s.attributes["auditspan.tool.result_preview"]
        for s in spans
    }
    assert pairs == {'{"key": "a"}': "value of a", '{"key": "b"}': "value of b"}


def test_agent_guardrails_are_policy_decisions_of_the_turn(
    harness: Any, processor: AuditSpanProcessor
) -> None:
    @input_guardrail
    async def no_secrets(ctx: Any, agent: Any, text: Any) -> GuardrailFunctionOutput:
        return GuardrailFunctionOutput(output_info=None, tripwire_triggered="password" in str(text))

    def make() -> Agent[Any]:
        return Agent(name="a", instructions="", model=ScriptedModel(["fine"]), input_guardrails=[no_secrets])

    _run(make(), "hello")
    with pytest.raises(InputGuardrailTripwireTriggered):
        _run(make(), "my password is x")
    decisions = [r for r in harness.records() if r["event_type"] == "tool_policy_decision"]
    assert [(d["action"], d["policy_source"]) for d in decisions] == [
        ("allow", "guardrail:no_secrets"),
        ("deny", "guardrail:no_secrets"),
    ]
    turns = [s for s in harness.spans() if s.name == "invoke_agent a"]
    assert len(turns) == 2
    events = [e.name for t in turns for e in t.events]
    assert events.count("audit.tool_policy_decision") == 2
    assert not [s for s in harness.spans() if s.name.startswith("execute_tool")]  # agent-level, not a call


def test_handoff_is_an_agent_switch_and_the_new_turn_nests(
    harness: Any, processor: AuditSpanProcessor
) -> None:
    @function_tool
    def find_hotels(city: str) -> str:
        return "2 hotels"

    booker = Agent(
        name="booker",
        instructions="",
        model=ScriptedModel([[("find_hotels", {"city": "Lisbon"})], "Booked."]),
        tools=[find_hotels],
    )
    triage = Agent(
        name="triage", instructions="", model=ScriptedModel([[("transfer_to_booker", {})]]), handoffs=[booker]
    )
    assert _run(triage, "book a hotel").final_output == "Booked."
    switch = next(r for r in harness.records() if r["event_type"] == "agent_switch")
    assert (switch["from_agent"], switch["to_agent"], switch["agent_id"]) == ("triage", "booker", "triage")
    triage_span = harness.span("invoke_agent triage")
    booker_span = harness.span("invoke_agent booker")
    tool = harness.span("execute_tool find_hotels")
    assert triage_span.parent is None
    assert booker_span.parent is not None and booker_span.parent.span_id == triage_span.context.span_id
    assert tool.parent is not None and tool.parent.span_id == booker_span.context.span_id
    assert len({s.context.trace_id for s in harness.spans()}) == 1
    assert [e.name for e in triage_span.events] == ["audit.agent_switch"]


def test_agent_as_tool_is_a_child_of_the_tool_call(harness: Any, processor: AuditSpanProcessor) -> None:
    @function_tool
    def lookup(topic: str) -> str:
        return "facts"

    researcher = Agent(
        name="researcher",
        instructions="",
        model=ScriptedModel([[("lookup", {"topic": "otel"})], "OTel is a standard."]),
        tools=[lookup],
    )
    planner = Agent(
        name="planner",
        instructions="",
        model=ScriptedModel([[("ask_researcher", {"input": "what is otel?"})], "Done."]),
        tools=[researcher.as_tool(tool_name="ask_researcher", tool_description="ask")],
    )
    assert _run(planner, "explain").final_output == "Done."
    planner_span = harness.span("invoke_agent planner")
    ask = harness.span("execute_tool ask_researcher")
    inner = harness.span("invoke_agent researcher")
    inner_tool = harness.span("execute_tool lookup")
    assert ask.parent is not None and ask.parent.span_id == planner_span.context.span_id
    assert inner.parent is not None and inner.parent.span_id == ask.context.span_id
    assert inner_tool.parent is not None and inner_tool.parent.span_id == inner.context.span_id
    assert len({s.context.trace_id for s in harness.spans()}) == 1
    assert ask.attributes["auditspan.tool.outcome"] == "success"
    # The outer call's attempt came before the inner turn started.
    types = [(r["event_type"], r.get("tool_name") or r.get("agent_id")) for r in harness.records()]
    assert types.index(("tool_call_attempt", "ask_researcher")) < types.index(("turn_start", "researcher"))


def test_group_id_is_the_session(harness: Any, processor: AuditSpanProcessor) -> None:
    agent = Agent(name="a", instructions="", model=ScriptedModel(["hi"]))

    async def main() -> None:
        with trace("support chat", group_id="conv-42"):
            await Runner.run(agent, "hello")

    asyncio.run(main())
    assert {r["session_id"] for r in harness.records()} == {"conv-42"}
    assert harness.span("invoke_agent a").attributes["gen_ai.conversation.id"] == "conv-42"


def test_span_times_are_the_sdks(harness: Any) -> None:
    from auditspan.events import timestamp_to_ns

    seen: dict[str, Any] = {}

    class Spy(AuditSpanProcessor):
        def on_span_end(self, span: Any) -> None:
            if span.span_data.type == "function":
                seen["started"], seen["ended"] = span.started_at, span.ended_at
            super().on_span_end(span)

    set_trace_processors([Spy(harness.collector)])
    try:

        @function_tool
        def tick() -> str:
            return "tock"

        _run(
            Agent(name="a", instructions="", model=ScriptedModel([[("tick", {})], "ok"]), tools=[tick]), "go"
        )
    finally:
        set_trace_processors([])
    span = harness.span("execute_tool tick")
    assert span.start_time == timestamp_to_ns(seen["started"])
    assert span.end_time == timestamp_to_ns(seen["ended"])


def test_a_broken_collector_does_not_break_the_run(caplog: pytest.LogCaptureFixture) -> None:
    class Broken:
        def emit(self, event: Any) -> None:
            raise OSError("down")

        def flush(self) -> None:
            raise OSError("down")

    set_trace_processors([AuditSpanProcessor(Broken())])
    try:

        @function_tool
        def tick() -> str:
            return "tock"

        result = _run(
            Agent(name="a", instructions="", model=ScriptedModel([[("tick", {})], "ok"]), tools=[tick]), "go"
        )
    finally:
        set_trace_processors([])
    assert result.final_output == "ok"
    assert "OpenAI Agents processor failed" in caplog.text

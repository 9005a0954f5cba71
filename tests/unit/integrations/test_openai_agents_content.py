"""The OpenAI Agents adapter takes the model's call ids, the prompt and the reply from what the SDK records.

The SDK's own models record each model call as a response span (Responses
API) or a generation span (Chat Completions) holding the input and the
output; the scripted model records them the same way (``traced=``).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import pytest

pytest.importorskip("agents", reason="openai-agents is not installed")

from agents import (
    Agent,
    GuardrailFunctionOutput,
    RunConfig,
    Runner,
    function_tool,
    input_guardrail,
    set_trace_processors,
)
from agents import trace as trace_of

from auditspan import attributes as attr
from auditspan.integrations.openai_agents import AuditSpanProcessor

from ...fixtures.fake_model import ScriptedModel


@pytest.fixture
def processor(harness: Any) -> Iterator[AuditSpanProcessor]:
    proc = AuditSpanProcessor(harness.collector, session_id="sess-oa")
    set_trace_processors([proc])
    yield proc
    set_trace_processors([])


def _run(agent: Agent[Any], prompt: str) -> Any:
    return asyncio.run(Runner.run(agent, prompt, run_config=RunConfig(workflow_name="test")))


@pytest.mark.parametrize("traced", ["response", "generation"])
def test_tool_call_ids_prompt_and_reply_come_from_the_models_recorded_call(
    harness: Any, processor: AuditSpanProcessor, traced: str
) -> None:
    @function_tool
    def lookup(key: str) -> str:
        return f"value of {key}"

    model = ScriptedModel(
        [[("lookup", {"key": "a"}), ("lookup", {"key": "b"})], "Both found."], traced=traced
    )
    agent = Agent(name="planner", instructions="be brief", model=model, tools=[lookup])
    assert _run(agent, "Look up a and b").final_output == "Both found."

    records = harness.records()
    assert records[0]["event_type"] == "turn_start"
    assert records[0]["prompt_preview"] == "Look up a and b"
    assert records[-1]["event_type"] == "turn_end" and records[-1]["content_preview"] == "Both found."
    attempts = [r for r in records if r["event_type"] == "tool_call_attempt"]
    ids = {json.loads(r["arguments_preview"])["key"]: r["metadata"]["tool_call_id"] for r in attempts}
    assert set(ids) == {"a", "b"}
    assert all(call_id.startswith("call_") for call_id in ids.values())
    # Paired with the model's own calls: call_<n> then call_<n+1>, in the order the model gave them.
    assert int(ids["b"].removeprefix("call_")) == int(ids["a"].removeprefix("call_")) + 1
    spans = {
        s.attributes["auditspan.tool.arguments_preview"]: s for s in harness.spans() if "lookup" in s.name
    }
    for key, call_id in ids.items():
        span = spans[json.dumps({"key": key})]
        assert span.attributes[attr.GEN_AI_TOOL_CALL_ID] == call_id
        assert span.attributes[attr.GEN_AI_TOOL_CALL_RESULT] == f"value of {key}"
    turn = harness.span("invoke_agent planner")
    messages = json.loads(turn.attributes[attr.GEN_AI_INPUT_MESSAGES])
    assert messages[0]["parts"][0]["content"] == "Look up a and b"
    assert json.loads(turn.attributes[attr.GEN_AI_OUTPUT_MESSAGES])[0]["parts"][0]["content"] == "Both found."


def test_an_input_guardrail_beside_the_first_model_call_waits_for_the_turns_start(
    harness: Any, processor: AuditSpanProcessor
) -> None:
    @input_guardrail
    async def fine(ctx: Any, agent: Any, text: Any) -> GuardrailFunctionOutput:
        return GuardrailFunctionOutput(output_info=None, tripwire_triggered=False)

    agent = Agent(
        name="a",
        instructions="",
        model=ScriptedModel(["hello there"], traced="response"),
        input_guardrails=[fine],
    )
    _run(agent, "hi")
    records = harness.records()
    assert [r["event_type"] for r in records] == ["turn_start", "tool_policy_decision", "turn_end"]
    assert records[0]["prompt_preview"] == "hi"
    assert records[0]["timestamp"] <= records[1]["timestamp"]


def test_a_tool_guardrail_gives_the_models_call_id_even_when_nothing_else_records_it(
    harness: Any, processor: AuditSpanProcessor
) -> None:
    guard = processor.tool_guardrail(lambda tool, args: True, source="opa")

    @function_tool(tool_input_guardrails=[guard])
    def archive(path: str) -> str:
        return "archived"

    model = ScriptedModel([[("archive", {"path": "/tmp/x"})], "ok"])  # records no model call
    _run(Agent(name="a", instructions="", model=model, tools=[archive]), "archive it")
    call_records = [r for r in harness.records() if r.get("tool_name") == "archive"]
    assert [r["event_type"] for r in call_records] == [
        "tool_policy_decision",
        "tool_call_attempt",
        "tool_call_complete",
    ]
    ids = {r["metadata"]["tool_call_id"] for r in call_records}
    assert len(ids) == 1 and next(iter(ids)).startswith("call_")
    assert harness.span("execute_tool archive").attributes[attr.GEN_AI_TOOL_CALL_ID] in ids


def test_without_a_recorded_model_call_the_sdk_carries_no_call_id_and_no_prompt(
    harness: Any, processor: AuditSpanProcessor
) -> None:
    @function_tool
    def tick() -> str:
        return "tock"

    _run(Agent(name="a", instructions="", model=ScriptedModel([[("tick", {})], "ok"]), tools=[tick]), "go")
    records = harness.records()
    attempt = next(r for r in records if r["event_type"] == "tool_call_attempt")
    assert attempt["metadata"]["tool_call_id"].startswith("span_")  # the SDK span id: all there is
    assert records[0]["prompt_preview"] == ""


def test_a_turn_waiting_for_its_prompt_is_started_by_a_flush(
    harness: Any, processor: AuditSpanProcessor
) -> None:
    from agents.tracing import agent_span

    with trace_of("cut short"), agent_span(name="planner"):
        processor.force_flush()  # e.g. at exit, before the model answered
        records = harness.records()
    assert [r["event_type"] for r in records] == ["turn_start"]
    assert records[0]["agent_id"] == "planner"

"""The OpenAI Agents SDK, audited through its tracing processors -- offline, with a scripted model.

    python examples/openai_agents_offline.py [OUTPUT_DIR]

Needs ``pip install openai-agents``. The model is a scripted stand-in for a model service (no
network, no API key); everything else is the real SDK: the runner, tools, a tool guardrail, a
handoff. ``set_trace_processors([processor])`` replaces the SDK's exporter to the vendor.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

from _show import summary
from agents import Agent, RunConfig, Runner, function_tool, set_trace_processors
from agents.items import ModelResponse
from agents.models.interface import Model
from agents.usage import Usage
from openai.types.responses import ResponseFunctionToolCall, ResponseOutputMessage, ResponseOutputText

import auditspan
from auditspan.integrations.openai_agents import AuditSpanProcessor

_ids = itertools.count(1)


class ScriptedModel(Model):
    """Answers each model call with the next scripted step: a text, or a list of tool calls."""

    def __init__(self, steps: list[Any]) -> None:
        self.steps = steps

    async def get_response(self, *args: Any, **kwargs: Any) -> ModelResponse:
        step = self.steps.pop(0)
        if isinstance(step, str):
            text = ResponseOutputText(type="output_text", text=step, annotations=[])
            output: list[Any] = [
                ResponseOutputMessage(
                    id="msg", type="message", role="assistant", status="completed", content=[text]
                )
            ]
        else:
            output = [
                ResponseFunctionToolCall(
                    type="function_call",
                    id=f"fc_{n}",
                    call_id=f"call_{n}",
                    name=name,
                    arguments=json.dumps(args),
                )
                for name, args in step
                for n in [next(_ids)]
            ]
        return ModelResponse(output=output, usage=Usage(), response_id=None)

    def stream_response(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError


async def run(processor: AuditSpanProcessor) -> None:
    guard = processor.tool_guardrail(lambda tool, args: tool != "delete_records", source="no-deletes")
    fetches = {"n": 0}

    @function_tool(tool_input_guardrails=[guard])
    def web_search(query: str) -> str:
        return f"3 results for {query!r}"

    @function_tool(tool_input_guardrails=[guard])
    def delete_records(table: str) -> str:
        return f"deleted {table}"

    @function_tool(tool_input_guardrails=[guard])
    def fetch_url(url: str) -> str:
        fetches["n"] += 1
        if fetches["n"] == 1:
            raise TimeoutError("upstream timed out")
        return "200 OK"

    @function_tool
    def find_hotels(city: str) -> str:
        return f"2 hotels in {city}"

    booker = Agent(
        name="booker",
        instructions="Book hotels.",
        model=ScriptedModel([[("find_hotels", {"city": "Lisbon"})], "Booked hotel A."]),
        tools=[find_hotels],
    )
    planner = Agent(
        name="planner",
        instructions="Plan trips.",
        model=ScriptedModel(
            [
                [("web_search", {"query": "flights to Lisbon"}), ("delete_records", {"table": "users"})],
                [("fetch_url", {"url": "https://api.example.com/lisbon"})],
                [("fetch_url", {"url": "https://api.example.com/lisbon"})],  # the model tries again
                [("transfer_to_booker", {})],  # hand off to the booker
            ]
        ),
        tools=[web_search, delete_records, fetch_url],
        handoffs=[booker],
    )
    result = await Runner.run(planner, "Plan a trip to Lisbon", run_config=RunConfig(workflow_name="trip"))
    print(f"  final output: {result.final_output}")


def main(output_dir: Path) -> None:
    telemetry = auditspan.configure(service_name="openai-agents-example", output_dir=output_dir)
    processor = AuditSpanProcessor(telemetry, session_id="sess-openai")
    set_trace_processors([processor])
    asyncio.run(run(processor))
    telemetry.shutdown()
    summary(output_dir)


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp(prefix="auditspan-openai-")))

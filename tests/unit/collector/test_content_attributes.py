"""Content in the viewers: the GenAI conventions' content attributes, under the capture policy."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from auditspan import Redactor
from auditspan import attributes as attr
from auditspan import events as ev
from auditspan.redaction import CapturePolicy

from ...conftest import Harness
from .test_collector import emit

SECRET = "sk-proj-Xq7vB2mN9pL4kR8sT1wY6zA3cE5fH0jK"
ARGS = f"{{'url': 'https://api.example.com/v1/search', 'api_key': '{SECRET}'}}"
RESULT = f"3 results; token={SECRET}"
PROMPT = f"Use key {SECRET} to find flights to Lisbon"
REPLY = 'Found 3 flights.\nThe cheapest is "TP 1351".'


def _turn(h: Harness) -> None:
    emit(h, ev.TurnStartEvent(agent_id="planner", turn_id="t1", prompt_preview=PROMPT), 0)
    emit(
        h,
        ev.ToolCallAttemptEvent(agent_id="planner", turn_id="t1", tool_name="search", arguments_preview=ARGS),
        1,
    )
    emit(
        h,
        ev.ToolCallCompleteEvent(agent_id="planner", turn_id="t1", tool_name="search", result_preview=RESULT),
        2,
    )
    emit(h, ev.TurnEndEvent(agent_id="planner", turn_id="t1", content_preview=REPLY), 3)
    h.collector.shutdown()


def _content(h: Harness) -> tuple[dict[str, Any], dict[str, Any]]:
    return dict(h.span("invoke_agent planner").attributes), dict(h.span("execute_tool search").attributes)


def test_content_attributes_are_set_and_redacted_by_default(harness: Harness) -> None:
    _turn(harness)
    turn, tool = _content(harness)
    assert SECRET not in json.dumps([turn, tool])
    assert (
        tool[attr.GEN_AI_TOOL_CALL_ARGUMENTS] == tool[attr.INPUT_VALUE] == tool[attr.TOOL_ARGUMENTS_PREVIEW]
    )
    assert (
        "[REDACTED:" in tool[attr.GEN_AI_TOOL_CALL_ARGUMENTS] and "api.example.com" in tool[attr.INPUT_VALUE]
    )
    assert tool[attr.GEN_AI_TOOL_CALL_RESULT] == tool[attr.OUTPUT_VALUE] == tool[attr.TOOL_RESULT_PREVIEW]
    assert tool[attr.OUTPUT_VALUE].startswith("3 results; token=[REDACTED:")
    messages = json.loads(turn[attr.GEN_AI_INPUT_MESSAGES])
    assert messages == [
        {"role": "user", "parts": [{"type": "text", "content": turn[attr.TURN_PROMPT_PREVIEW]}]}
    ]
    assert "[REDACTED:" in messages[0]["parts"][0]["content"]
    assert json.loads(turn[attr.GEN_AI_OUTPUT_MESSAGES]) == [
        {"role": "assistant", "parts": [{"type": "text", "content": REPLY}], "finish_reason": "stop"}
    ]
    assert turn[attr.INPUT_VALUE] == turn[attr.TURN_PROMPT_PREVIEW]
    assert turn[attr.OUTPUT_VALUE] == REPLY


def test_content_attributes_are_absent_under_capture_none(make_harness: Any) -> None:
    h = make_harness(redactor=Redactor(CapturePolicy.NONE))
    _turn(h)
    turn, tool = _content(h)
    content_keys = {
        attr.GEN_AI_TOOL_CALL_ARGUMENTS,
        attr.GEN_AI_TOOL_CALL_RESULT,
        attr.GEN_AI_INPUT_MESSAGES,
        attr.GEN_AI_OUTPUT_MESSAGES,
        attr.INPUT_VALUE,
        attr.OUTPUT_VALUE,
    }
    assert not content_keys & (set(turn) | set(tool))
    assert tool[attr.GEN_AI_TOOL_NAME] == "search"


def test_content_attributes_are_verbatim_under_capture_full(make_harness: Any) -> None:
    h = make_harness(redactor=Redactor(CapturePolicy.FULL))
    _turn(h)
    turn, tool = _content(h)
    assert tool[attr.GEN_AI_TOOL_CALL_ARGUMENTS] == ARGS
    assert tool[attr.GEN_AI_TOOL_CALL_RESULT] == RESULT
    assert json.loads(turn[attr.GEN_AI_INPUT_MESSAGES])[0]["parts"][0]["content"] == PROMPT


def test_long_messages_stay_valid_json_within_the_attribute_length(make_harness: Any, tmp_path: Path) -> None:
    h = make_harness(max_attribute_length=300)
    prompt = 'quote " and newline \n and control \x01 ' * 200
    emit(h, ev.TurnStartEvent(agent_id="planner", turn_id="t1", prompt_preview=prompt), 0)
    emit(h, ev.TurnEndEvent(agent_id="planner", turn_id="t1"), 1)
    h.collector.shutdown()
    encoded = h.span("invoke_agent planner").attributes[attr.GEN_AI_INPUT_MESSAGES]
    assert len(encoded) <= 300
    content = json.loads(encoded)[0]["parts"][0]["content"]
    assert content.startswith("quote ") and "truncated" in content

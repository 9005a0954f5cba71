"""Content in Phoenix: a turn's prompt and reply, a tool call's arguments and result, read back from Phoenix.

Phoenix fills its input/output columns from OpenInference's ``input.value`` /
``output.value`` and its Tool panel from ``tool.parameters``, which it derives
from ``gen_ai.tool.call.arguments``; its agent spans get messages from
``gen_ai.input.messages`` / ``gen_ai.output.messages``. The capture policy
applies: secrets redacted by default, no content at all under ``none``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from auditspan import configure

from ..conftest import checkpoint_count, event_spans
from .servers import PHOENIX_PROJECT_ATTRIBUTE, Phoenix

SECRET = "sk-proj-Xq7vB2mN9pL4kR8sT1wY6zA3cE5fH0jK"
STAMP = "2026-11-21T19:24:1{}.000000+00:00"


def _send(phoenix: Phoenix, project: str, tmp_path: Path, capture: str) -> dict[str, dict[str, Any]]:
    audit_log = tmp_path / f"audit-{capture}.jsonl"
    handle = configure(
        service_name="content-e2e",
        audit_log=audit_log,
        otlp_endpoint=phoenix.http_endpoint,
        resource_attributes={PHOENIX_PROJECT_ATTRIBUTE: project},
        capture=capture,
        set_global=False,
        environ={},
    )
    emit = handle.collector.emit
    base = {"agent_id": "planner", "turn_id": "t-content", "session_id": "sess-content", "metadata": {}}
    emit(
        {
            **base,
            "event_type": "turn_start",
            "timestamp": STAMP.format(0),
            "prompt_preview": "Flights to Lisbon?",
        }
    )
    emit(
        {
            **base,
            "event_type": "tool_call_attempt",
            "timestamp": STAMP.format(1),
            "tool_name": "search_flights",
            "arguments_preview": json.dumps({"to": "LIS", "api_key": SECRET}),
        }
    )
    emit(
        {
            **base,
            "event_type": "tool_call_complete",
            "timestamp": STAMP.format(2),
            "tool_name": "search_flights",
            "status": "success",
            "result_preview": "3 flights: TP1351, FR8342, U27651",
        }
    )
    emit(
        {
            **base,
            "event_type": "turn_end",
            "timestamp": STAMP.format(3),
            "content_preview": "Found 3 flights.",
        }
    )
    handle.shutdown()
    # The turn and its call, and the chain's witness span of each checkpoint.
    expected = 2 + checkpoint_count(audit_log)
    assert handle.span_stats.exported == expected
    spans = event_spans(phoenix.wait_for_spans(project, count=expected, timeout=60))
    assert len(spans) == 2
    # Phoenix's span kind (AGENT, TOOL) beside the attributes it holds (dotted keys).
    return {s["name"]: {**s["attributes"], "span_kind": s["span_kind"]} for s in spans}


def test_phoenix_shows_prompt_reply_arguments_and_result(
    phoenix: Phoenix, phoenix_project: str, tmp_path: Path
) -> None:
    spans = _send(phoenix, phoenix_project, tmp_path, "redacted")
    tool = spans["execute_tool search_flights"]
    turn = spans["invoke_agent planner"]
    assert SECRET not in json.dumps([tool, turn])
    # The Tool panel (Phoenix reads the JSON arguments into tool.parameters) and the input/output columns.
    assert tool["span_kind"] == "TOOL"
    assert tool["tool.parameters.to"] == "LIS"
    assert tool["tool.parameters.api_key"].startswith("[REDACTED:")
    assert '"LIS"' in tool["input.value"] and "[REDACTED:" in tool["input.value"]
    assert tool["output.value"] == "3 flights: TP1351, FR8342, U27651"
    assert turn["span_kind"] == "AGENT"
    assert turn["input.value"] == "Flights to Lisbon?"
    assert turn["output.value"] == "Found 3 flights."
    assert turn["llm.input_messages.0.message.content"] == "Flights to Lisbon?"
    assert turn["llm.output_messages.0.message.content"] == "Found 3 flights."


def test_phoenix_shows_no_content_under_capture_none(
    phoenix: Phoenix, phoenix_project: str, tmp_path: Path
) -> None:
    spans = _send(phoenix, phoenix_project, tmp_path, "none")
    tool = spans["execute_tool search_flights"]
    turn = spans["invoke_agent planner"]
    assert tool["span_kind"] == "TOOL" and turn["span_kind"] == "AGENT"
    content = (
        "input.",
        "output.",
        "tool.parameters",
        "llm.",
        "gen_ai.input",
        "gen_ai.output",
        "gen_ai.tool.call.",
    )
    for attributes in (tool, turn):
        shown = {k for k in attributes if k.startswith(content)}
        assert not shown, shown
    assert "LIS" not in json.dumps([tool, turn]) and "Lisbon" not in json.dumps([tool, turn])

"""Span and log-record attributes from an event's fields: pure functions, no tracer needed.

Each function maps cleaned fields (``_normalise``) to the attributes, names
and status messages of the spans, span events and log records that carry them.
``limit`` is the longest string an attribute may hold: a longer one is cut
and the cut marked (``…[truncated N chars]``); audit records keep every value
whole. Nothing here starts a span or reads the collector's state, so each
mapping can be tested on its own::

    turn_attributes("planner", "Planner", "sess-01", "t-1", synthetic=False)
    # {"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.id": "planner", ...}
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import fields as dataclass_fields
from typing import Any

import orjson

from .. import attributes as attr
from .._sanitize import attribute_value, clean_str, truncate
from ..events import EVENT_CLASSES, ErrorEvent, ToolCallCompleteEvent
from ..records import encode_record

__all__ = [
    "SEVERITY_NUMBERS",
    "call_attributes",
    "call_end_attributes",
    "error_attributes",
    "event_attributes",
    "log_attributes",
    "messages",
    "prompt_attributes",
    "sandbox_attributes",
    "text",
    "turn_attributes",
    "turn_end_attributes",
    "turn_incomplete_attributes",
    "turn_name",
]

_ERROR = ErrorEvent.event_type
_COMPLETE = ToolCallCompleteEvent.event_type
#: Seed fields that the span itself carries, so span events need not repeat them.
_ENVELOPE_FIELDS = frozenset({"event_type", "timestamp", "agent_id", "turn_id", "session_id", "tool_name"})
#: Span event / log attribute key of each event field (built once: the keys' hashes are cached too).
_EVENT_FIELD_KEYS = {
    **{
        f.name: attr.EVENT_FIELD_PREFIX + f.name
        for cls in EVENT_CLASSES.values()
        for f in dataclass_fields(cls)
    },
    "severity": attr.EVENT_SEVERITY,
    "metadata": attr.EVENT_METADATA,
}
#: OTel severity numbers of the events' severities (unknown ones are INFO, 9).
SEVERITY_NUMBERS = {
    "debug": 5,
    "info": 9,
    "notice": 10,
    "warning": 13,
    "warn": 13,
    "error": 17,
    "critical": 21,
}


def text(value: Any, limit: int) -> str:
    """A string for a span attribute or status, cut (and marked) at ``limit``."""
    value = value if isinstance(value, str) else clean_str(value)
    return value if len(value) <= limit else truncate(value, limit)[0]


def messages(role: str, content: str, limit: int) -> str:
    """One message in the GenAI conventions' JSON shape, within ``limit``.

    The text is cut before it is encoded (a cut JSON string would not parse).
    """
    message: dict[str, Any] = {"role": role, "parts": [{"type": "text", "content": content}]}
    if role == "assistant":
        message["finish_reason"] = "stop"
    encoded = orjson.dumps([message]).decode()
    room = len(content)
    while len(encoded) > limit and room > 1:  # escapes make the JSON longer than the text
        room = max(1, min(room - 1, room * (limit - 96) // len(encoded)))
        message["parts"][0]["content"] = truncate(content, room)[0]
        encoded = orjson.dumps([message]).decode()
    return encoded


def turn_name(agent_name: str | None) -> str:
    """The name of a turn's span: ``invoke_agent {agent}``."""
    return f"{attr.OPERATION_INVOKE_AGENT} {agent_name}" if agent_name else attr.OPERATION_INVOKE_AGENT


def turn_attributes(
    agent_id: str | None,
    agent_name: str | None,
    session_id: str | None,
    turn_id: str | None,
    *,
    synthetic: bool,
) -> dict[str, Any]:
    """A turn span's attributes at its start (samplers see them)."""
    attributes: dict[str, Any] = {attr.GEN_AI_OPERATION_NAME: attr.OPERATION_INVOKE_AGENT}
    if agent_id:
        attributes[attr.GEN_AI_AGENT_ID] = agent_id
    if agent_name:
        attributes[attr.GEN_AI_AGENT_NAME] = agent_name
    if session_id:
        attributes[attr.GEN_AI_CONVERSATION_ID] = session_id
    if turn_id:
        attributes[attr.TURN_ID] = turn_id
    if synthetic:
        attributes[attr.TURN_SYNTHETIC] = True
    return attributes


def prompt_attributes(prompt: str, limit: int) -> dict[str, Any]:
    """The attributes a turn's (captured) prompt gives its span."""
    shown = text(prompt, limit)
    return {
        attr.TURN_PROMPT_PREVIEW: shown,
        attr.GEN_AI_INPUT_MESSAGES: messages("user", prompt, limit),
        attr.INPUT_VALUE: shown,
    }


def turn_end_attributes(fields: Mapping[str, Any], limit: int) -> dict[str, Any]:
    """The attributes a ``turn_end`` gives its turn's span: the reply (when captured) and the call count."""
    attributes: dict[str, Any] = {}
    content = fields.get("content_preview")
    if content:  # captured: absent under the "none" policy
        shown = text(content, limit)
        attributes[attr.TURN_CONTENT_PREVIEW] = shown
        attributes[attr.GEN_AI_OUTPUT_MESSAGES] = messages("assistant", content, limit)
        attributes[attr.OUTPUT_VALUE] = shown
    count = fields.get("function_calls_count")
    if isinstance(count, int) and not isinstance(count, bool):
        attributes[attr.TURN_FUNCTION_CALLS_COUNT] = count
    return attributes


def turn_incomplete_attributes(incomplete: str) -> tuple[dict[str, Any], str]:
    """The attributes and error status of a turn ended without its ``turn_end`` (evicted, stale, shutdown)."""
    return (
        {attr.TURN_INCOMPLETE: incomplete, attr.ERROR_TYPE: attr.ERROR_TYPE_TURN_INCOMPLETE},
        f"turn did not end ({incomplete})",
    )


def error_attributes(fields: Mapping[str, Any], limit: int) -> tuple[dict[str, Any], str] | None:
    """The attributes and error status an ``error`` event gives the span it lands on; None for others."""
    if fields["event_type"] != _ERROR:
        return None
    error_type = text(fields.get("error_type") or "", limit) or attr.ERROR_TYPE_OTHER
    return {attr.ERROR_TYPE: error_type}, text(fields.get("error_message") or "", limit)


def call_attributes(
    tool_name: str,
    attempt: int,
    call_id: str | None,
    tool_type: Any,
    agent_id: str | None,
    agent_name: str | None,
    session_id: str | None,
    turn_id: str | None,
    classification: Any,
) -> dict[str, Any]:
    """A tool call span's attributes at its start: the tool, its turn's ids and its semantic type."""
    attributes: dict[str, Any] = {
        attr.GEN_AI_OPERATION_NAME: attr.OPERATION_EXECUTE_TOOL,
        attr.GEN_AI_TOOL_NAME: tool_name,
        attr.GEN_AI_TOOL_TYPE: attr.TOOL_TYPE_FUNCTION,
        attr.TOOL_ATTEMPT: attempt,
    }
    if isinstance(tool_type, str) and tool_type:
        attributes[attr.GEN_AI_TOOL_TYPE] = tool_type
    if call_id:
        attributes[attr.GEN_AI_TOOL_CALL_ID] = call_id
    if agent_id:
        attributes[attr.GEN_AI_AGENT_ID] = agent_id
    if agent_name or agent_id:
        attributes[attr.GEN_AI_AGENT_NAME] = agent_name or agent_id
    if session_id:
        attributes[attr.GEN_AI_CONVERSATION_ID] = session_id
    if turn_id:
        attributes[attr.TURN_ID] = turn_id
    if classification is not None:
        attributes[attr.OPERATION_TYPE] = classification.type
        for key, value in (
            (attr.OPERATION_RISK, classification.risk),
            (attr.OPERATION_CATEGORY, classification.category),
            (attr.OPERATION_CUSTOM_TYPE, classification.custom_type),
            (attr.OPERATION_TARGET, classification.target),
        ):
            if value:
                attributes[key] = value
    return attributes


def sandbox_attributes(fields: Mapping[str, Any], limit: int) -> dict[str, Any]:
    """The attributes a sandbox decision gives its call's span."""
    attributes: dict[str, Any] = {}
    if fields.get("backend_type"):
        attributes[attr.SANDBOX_BACKEND] = text(fields["backend_type"], limit)
    if fields.get("context"):
        attributes[attr.SANDBOX_CONTEXT] = text(fields["context"], limit)
    return attributes


def call_end_attributes(
    outcome: str, fields: Mapping[str, Any] | None, limit: int, *, evicted: bool = False
) -> tuple[dict[str, Any], str | None]:
    """A tool call span's attributes at its end, and its error status message (None: no error status).

    ``outcome`` is one of ``attributes.OUTCOME_*``; ``fields`` those of the
    event that ended the call (None when nothing did: its turn ended, it was evicted).
    """
    attributes: dict[str, Any] = {attr.TOOL_OUTCOME: outcome}
    status = None
    if evicted:
        attributes[attr.TOOL_INCOMPLETE] = "evicted"
    if fields is not None and fields["event_type"] == _COMPLETE:
        if fields.get("status"):
            attributes[attr.TOOL_STATUS] = text(fields["status"], limit)
        duration = fields.get("duration_ms")
        if isinstance(duration, (int, float)) and not isinstance(duration, bool):
            attributes[attr.TOOL_DURATION_MS] = float(duration)
        if fields.get("result_preview"):  # captured: absent under the "none" policy
            shown = text(fields["result_preview"], limit)
            attributes[attr.TOOL_RESULT_PREVIEW] = shown
            attributes[attr.GEN_AI_TOOL_CALL_RESULT] = shown
            attributes[attr.OUTPUT_VALUE] = shown
    elif outcome == attr.OUTCOME_FAILURE and fields is not None:
        error_type = text(fields.get("error_type") or "", limit) or attr.ERROR_TYPE_OTHER
        message = text(fields.get("error_message") or "", limit)
        attributes[attr.ERROR_TYPE] = error_type
        if message:
            attributes[attr.TOOL_ERROR_MESSAGE] = message
        status = text(f"{error_type}: {message}" if message else error_type, limit)
    elif outcome in (attr.OUTCOME_DENIED, attr.OUTCOME_BLOCKED):
        error_type = attr.ERROR_TYPE_DENIED if outcome == attr.OUTCOME_DENIED else attr.ERROR_TYPE_BLOCKED
        attributes[attr.ERROR_TYPE] = error_type
        source = text(fields.get("policy_source") or fields.get("pattern") or "", limit) if fields else ""
        status = text(f"{outcome} by {source}" if source else outcome, limit)
    elif outcome == attr.OUTCOME_INCOMPLETE:
        attributes[attr.ERROR_TYPE] = attr.ERROR_TYPE_TOOL_INCOMPLETE
        status = (
            "tool call evicted before it completed (state bound)"
            if evicted
            else "tool call did not complete before its turn ended"
        )
    return attributes, status


def event_attributes(fields: Mapping[str, Any], event_id: str | None, limit: int) -> dict[str, Any]:
    """A span event's (or log record's) attributes: the event's own fields, not the span's envelope."""
    attributes: dict[str, Any] = {attr.EVENT_TYPE: fields["event_type"]}
    if event_id:
        attributes[attr.EVENT_ID] = event_id
    for name, value in fields.items():
        if value is None or name in _ENVELOPE_FIELDS:
            continue
        key = _EVENT_FIELD_KEYS.get(name) or attr.EVENT_FIELD_PREFIX + name
        if name == "metadata":
            if value:
                attributes[key] = text(encode_record(value).decode().rstrip("\n"), limit)
        elif isinstance(value, str):  # text(), inline: most fields are short strings
            attributes[key] = value if len(value) <= limit else truncate(value, limit)[0]
        else:  # numbers beyond 64 bits and containers become (JSON) strings
            attributes[key] = attribute_value(value, max_length=limit)
    return attributes


def log_attributes(record: Mapping[str, Any], limit: int) -> dict[str, Any]:
    """A log record's attributes from a canonical record: its event's fields, its type and ids."""
    fields = {k: v for k, v in record.items() if k not in ("governance", "telemetry", "parameters")}
    attributes = event_attributes(fields, record.get("event_id"), limit)
    for key, value in (
        (attr.OPERATION_TYPE, record.get("type")),
        (attr.OPERATION_TARGET, record.get("target")),
        (attr.TURN_ID, record.get("turn_id")),
        (attr.GEN_AI_CONVERSATION_ID, record.get("session_id")),
        (attr.GEN_AI_AGENT_ID, record.get("agent_id")),
        (attr.GEN_AI_TOOL_NAME, record.get("tool_name")),
    ):
        if value:
            attributes[key] = text(value, limit)
    return attributes

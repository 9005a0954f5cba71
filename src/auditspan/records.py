"""The canonical audit record: one JSON object per event, one line per record.

A record is the event's own fields at top level -- seed names, seed order --
followed by the envelope of seed 004::

    {"event_type": "tool_call_complete", "timestamp": "2026-11-21T19:24:17.134534+00:00",
     "agent_id": "planner", "turn_id": "0a1b2c3d4e5f", "session_id": "sess-01",
     "severity": "info", "metadata": {}, "tool_name": "run_sql", "status": "success",
     "duration_ms": 41.7, "result_preview": "3 rows",
     "event_id": "evt_5f0c...", "type": "DATABASE_READ", "target": "customers",
     "parameters": {"operation": "select", "table": "customers"},
     "governance": {"decision": "ALLOW", "policies_evaluated": ["default"], "trust_score_at_time": 87},
     "telemetry": {"duration_ms": 41.7, "trace_id": "4bf92f35...", "span_id": "00f067aa..."}}

``telemetry.trace_id`` / ``span_id`` are the lowercase hex ids of the span the
event was recorded on, so ``grep <trace id>`` on the log finds a trace's
records, and a record's trace id finds its trace in Jaeger or Tempo. The JSON
Schema ships in the package (``record_schema()``).
"""

from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources
from typing import Any

import orjson

from .events import ToolCallCompleteEvent
from .semantic_types import OperationType

__all__ = [
    "ENVELOPE_KEYS",
    "build_record",
    "encode_record",
    "record_schema",
]

#: Keys the envelope adds after the event's own fields, in this order.
ENVELOPE_KEYS: tuple[str, ...] = ("event_id", "type", "target", "parameters", "governance", "telemetry")

#: Records have string keys: ``OPT_NON_STR_KEYS`` (about 0.3 us a record slower) only when one has not.
_ORJSON_OPTIONS = orjson.OPT_APPEND_NEWLINE
_ORJSON_ANY_KEYS = orjson.OPT_APPEND_NEWLINE | orjson.OPT_NON_STR_KEYS


def build_record(
    fields: dict[str, Any],
    *,
    event_id: str,
    operation_type: str,
    target: str | None = None,
    parameters: dict[str, Any] | None = None,
    governance: dict[str, Any] | None = None,
    duration_ms: float | None = None,
    trace_id: str | None = None,
    span_id: str | None = None,
) -> dict[str, Any]:
    """A canonical record: ``fields`` (seed order) followed by the seed-004 envelope.

    Envelope keys win over event fields of the same name.
    """
    return {
        **fields,
        "event_id": event_id,
        "type": operation_type,
        "target": target,
        "parameters": parameters if parameters is not None else {},
        "governance": governance if governance is not None else empty_governance(),
        "telemetry": {"duration_ms": duration_ms, "trace_id": trace_id, "span_id": span_id},
    }


#: The semantic type of an event that is no tool call (a turn's error, a guardrail's verdict).
AGENT_ACTION = OperationType.AGENT_ACTION.value
_COMPLETE = ToolCallCompleteEvent.event_type


def event_record(
    fields: dict[str, Any],
    event_id: str,
    trace_id: int,
    span_id: int,
    operation_type: str,
    governance: dict[str, Any] | None = None,
    classification: Any = None,
) -> dict[str, Any]:
    """The canonical record of an event: its fields, its semantic type and target, its span's ids.

    A tool call's ``classification`` gives the type, target and parameters;
    an event of no tool call (an error, a skill used) of type ``AGENT_ACTION``
    names its kind as its ``custom_type``. A zero id is no id (``null``).
    """
    parameters: dict[str, Any] = {}
    target = None
    if classification is not None:
        operation_type = classification.type
        target = classification.target
        parameters = dict(classification.parameters)
        if classification.custom_type:
            parameters.setdefault("custom_type", classification.custom_type)
    elif operation_type == AGENT_ACTION:
        parameters["custom_type"] = fields["event_type"]
    duration = fields.get("duration_ms") if fields["event_type"] == _COMPLETE else None
    if isinstance(duration, bool) or not isinstance(duration, (int, float)):
        duration = None
    return build_record(
        fields,
        event_id=event_id,
        operation_type=operation_type,
        target=target,
        parameters=parameters,
        governance=governance,
        duration_ms=duration,
        trace_id=f"{trace_id:032x}" if trace_id else None,
        span_id=f"{span_id:016x}" if span_id else None,
    )


def empty_governance() -> dict[str, Any]:
    """The governance envelope of a record no policy decided on."""
    return {"decision": None, "policies_evaluated": [], "trust_score_at_time": None}


def encode_record(record: dict[str, Any]) -> bytes:
    """The record as one compact UTF-8 JSON line, newline included. Never raises.

    Values JSON cannot hold directly (``datetime``, sets, objects) become their
    ``str()``; a record orjson still refuses (lone surrogates, cycles, integers
    beyond 64 bits, deep nesting) is made JSON-safe first.
    """
    try:
        return orjson.dumps(record, default=str, option=_ORJSON_OPTIONS)
    except (TypeError, ValueError):  # orjson.JSONEncodeError subclasses TypeError
        pass
    try:
        return orjson.dumps(record, default=str, option=_ORJSON_ANY_KEYS)
    except (TypeError, ValueError):
        from ._sanitize import json_safe

        try:
            return orjson.dumps(json_safe(record), default=str, option=_ORJSON_ANY_KEYS)
        except Exception:
            return json.dumps(_fallback(record), ensure_ascii=False).encode() + b"\n"


def _fallback(record: dict[str, Any]) -> dict[str, Any]:
    safe: dict[str, Any] = {}
    for key, value in record.items():
        try:
            safe[str(key)] = json.loads(json.dumps(value, default=repr))
        except Exception:
            safe[str(key)] = repr(value)
    return safe


@lru_cache(maxsize=1)
def record_schema() -> dict[str, Any]:
    """The canonical record's JSON Schema (draft 2020-12), as shipped in the package."""
    text = resources.files("auditspan").joinpath("schema/audit-record.schema.json").read_text("utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema

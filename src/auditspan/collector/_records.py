"""Canonical audit records of the collector's events: how each is built (no I/O, no tracer).

``event_record`` is the record of any event once its span ids and semantic
type are known; ``bare_record`` the record of an event whose routing failed
(still written, without span ids); a behavioural rule's match becomes an event
through ``RuleMatch.event_fields``. Writing them is ``_writer``'s job.
"""

from __future__ import annotations

from typing import Any

from ..events import ToolCallCompleteEvent
from ..records import build_record, empty_governance
from ..semantic_types import OperationType

__all__ = ["AGENT_ACTION", "bare_record", "event_record"]

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


def bare_record(fields: dict[str, Any], event_id: str, ids: Any, position: int) -> dict[str, Any]:
    """The record of an event whose routing failed: its fields, without span ids or type.

    ``event_id`` is the event's id if it got one before the failure; else one is
    made by ``ids`` (``RandomIds`` / ``DeterministicIds``) at ``position``.

    Never raises but ``RecursionError`` (``emit`` writes it again on a fresh
    stack): when even that record cannot be built, a placeholder of the same
    shape stands for it.
    """
    try:
        event_id = event_id or ids.event_id(fields, position)
        return build_record(fields, event_id=event_id, operation_type="AGENT_ACTION")
    except RecursionError:
        raise
    except Exception:
        return {
            "event_type": "base",
            "event_id": "evt_unrecoverable",
            "type": "AGENT_ACTION",
            "governance": empty_governance(),
        }

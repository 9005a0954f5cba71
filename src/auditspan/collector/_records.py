"""Canonical audit records of the collector's events: how each is built (no I/O, no tracer).

``auditspan.records.event_record`` is the record of any event once its span ids
and semantic type are known; ``bare_record`` the record of an event whose routing failed
(still written, without span ids); a behavioural rule's match becomes an event
through ``RuleMatch.event_fields``. Writing them is ``_writer``'s job.
"""

from __future__ import annotations

from typing import Any

from ..records import AGENT_ACTION, build_record, empty_governance, event_record

__all__ = ["AGENT_ACTION", "bare_record", "event_record"]


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

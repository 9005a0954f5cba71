"""The OPA ``input`` document for a canonical record: what the seed's Rego policies are written against.

The seed's policies read ``input.operation.type``, ``input.operation.metadata.*``
and ``input.agent.trust_tier``::

    package openbox.policy

    require_approval {
    input.operation.type == "AGENT_ACTION"
    input.operation.metadata.custom_type == "payment_processing"
    input.operation.metadata.amount > 100
    }

``policy_input(record)`` builds that document from one canonical audit record
(``policy_inputs(lines)`` from a whole JSONL log)::

    {"operation": {"type": "AGENT_ACTION", "target": null,
                   "parameters": {"custom_type": "charge_card"},
                   "metadata": {"custom_type": "payment_processing", "amount": 250, ...},
                   "custom_type": "payment_processing", "category": "Agent", "risk": "Variable",
                   "tool_name": "charge_card", "arguments_preview": "..."},
     "agent": {"id": "a1", "trust_tier": 3, "trust_score": 87},
     "session": {"id": "s1"}, "turn": {"id": "0a1b2c3d4e5f"},
     "event": {"id": "evt_...", "type": "tool_call_attempt", "timestamp": "...", "severity": "info"},
     "governance": {"decision": "ALLOW", "policies_evaluated": ["default"], "trust_score_at_time": 87},
     "telemetry": {"duration_ms": null, "trace_id": "...", "span_id": "..."}}

Choices:

* ``operation.metadata`` is the record's ``metadata`` merged with its
  ``parameters``; on a key in both, **metadata wins** (what the runtime
  declared, e.g. ``custom_type``, beats what the classifier derived from the
  arguments). The classifier's ``custom_type`` sits in ``parameters`` for
  ``AGENT_ACTION``, so ``operation.metadata.custom_type`` is always there for it.
* ``agent.trust_tier`` and ``agent.trust_score`` are present only when known
  (so a rule using them is *undefined*, not false-by-null, without them):
  ``trust_tier`` from ``metadata["trust_tier"]`` (a numeric string becomes a
  number, because Rego orders every string above every number);
  ``trust_score`` from ``metadata["trust_score"]`` /
  ``metadata["trust_score_at_time"]``, else ``governance.trust_score_at_time``.
* Every value is JSON-safe: mappings become objects with string keys,
  sequences arrays, non-finite floats and other objects strings.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Collection, Iterable, Iterator, Mapping
from typing import Any, Final

from auditspan.governance import trust_score_of
from auditspan.semantic_types import category_of, risk_of

__all__ = ["policy_input", "policy_inputs"]

_MAX_DEPTH: Final = 32
_INT_RE = re.compile(r"[+-]?\d{1,18}")
_FLOAT_RE = re.compile(r"[+-]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][+-]?\d+)?")


def _json_safe(value: Any, depth: int = 0) -> Any:
    if value is None or isinstance(value, (str, bool, int)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if depth >= _MAX_DEPTH:
        return str(value)
    if isinstance(value, Mapping):
        return {str(k): _json_safe(v, depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        items = sorted(value, key=repr) if isinstance(value, (set, frozenset)) else value
        return [_json_safe(v, depth + 1) for v in items]
    try:
        return str(value)
    except Exception:
        return f"<{type(value).__name__}>"


def _tier(value: Any) -> Any:
    if isinstance(value, str):
        text = value.strip()
        if _INT_RE.fullmatch(text):
            return int(text)
        if _FLOAT_RE.fullmatch(text):
            number = float(text)
            return number if math.isfinite(number) else value
    return _json_safe(value)


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def policy_input(record: Mapping[str, Any]) -> dict[str, Any]:
    """The OPA ``input`` document for one canonical record (see the module docstring).

    Missing envelope keys give ``null`` (ids, target) or empty objects
    (parameters, metadata); the function reads any mapping. Raises
    ``TypeError`` when ``record`` is not a mapping.

    Example::

        doc = policy_input({"type": "FILE_WRITE", "agent_id": "a1", "metadata": {"trust_tier": 3}})
        doc["operation"]["type"], doc["agent"]["trust_tier"]   # ('FILE_WRITE', 3)
    """
    if not isinstance(record, Mapping):
        raise TypeError(f"a canonical record must be a mapping, got {type(record).__name__}")
    metadata = _mapping(record.get("metadata"))
    parameters = _mapping(record.get("parameters"))
    governance = _mapping(record.get("governance"))
    op_type = record.get("type")
    type_name = _json_safe(op_type)
    merged = _json_safe(parameters)
    merged.update(_json_safe(metadata))  # metadata wins: declared beats derived
    custom_type = merged.get("custom_type")

    agent: dict[str, Any] = {"id": _json_safe(record.get("agent_id"))}
    if metadata.get("trust_tier") is not None:
        agent["trust_tier"] = _tier(metadata["trust_tier"])
    score = trust_score_of(metadata)
    if score is None:
        score = trust_score_of({"trust_score": governance.get("trust_score_at_time")})
    if score is not None:
        agent["trust_score"] = score

    return {
        "operation": {
            "type": type_name,
            "target": _json_safe(record.get("target")),
            "parameters": _json_safe(parameters),
            "metadata": merged,
            "custom_type": custom_type if isinstance(custom_type, str) else None,
            "category": category_of(op_type) if op_type is not None else None,
            "risk": risk_of(op_type) if op_type is not None else None,
            "tool_name": _json_safe(record.get("tool_name")),
            "arguments_preview": _json_safe(record.get("arguments_preview")),
        },
        "agent": agent,
        "session": {"id": _json_safe(record.get("session_id"))},
        "turn": {"id": _json_safe(record.get("turn_id"))},
        "event": {
            "id": _json_safe(record.get("event_id")),
            "type": _json_safe(record.get("event_type")),
            "timestamp": _json_safe(record.get("timestamp")),
            "severity": _json_safe(record.get("severity")),
        },
        "governance": _json_safe(governance),
        "telemetry": _json_safe(_mapping(record.get("telemetry"))),
    }


def policy_inputs(
    lines: Iterable[str | bytes],
    *,
    event_types: Collection[str] | None = None,
    strict: bool = True,
) -> Iterator[dict[str, Any]]:
    """``policy_input`` of every record in a JSONL audit log, in order.

    Blank lines are skipped. ``event_types`` keeps only records of those
    ``event_type`` s (e.g. ``{"tool_call_attempt"}``: one document per
    operation). A line that is not a JSON object raises ``ValueError`` naming
    its 1-based line number, or is skipped when ``strict`` is false.

    Example::

        with open("audit.jsonl", encoding="utf-8") as log:
            for doc in policy_inputs(log, event_types={"tool_call_attempt"}):
                print(json.dumps(doc))
    """
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            if strict:
                raise ValueError(f"line {number}: not valid JSON: {exc}") from None
            continue
        if not isinstance(record, dict):
            if strict:
                raise ValueError(
                    f"line {number}: a record must be a JSON object, got {type(record).__name__}"
                )
            continue
        if event_types is not None and record.get("event_type") not in event_types:
            continue
        yield policy_input(record)

"""The audit event model: what an agent runtime reports about a run.

The classes mirror the seed system's ``audit.events`` module field for field --
same names, order, defaults, severity defaults and ``event_type`` tags -- and
serialise exactly as it does, so a log written by either can be read by the
other::

    >>> event = ToolCallAttemptEvent(tool_name="web_search", turn_id="abc123",
    ...                              arguments_preview='{"query": "otel"}')
    >>> event.to_dict()["event_type"]
    'tool_call_attempt'
    >>> parse_event(event.to_json()) == event
    True

``parse_event`` / ``AuditEvent.from_dict`` rebuild the right class from a dict
or a JSON line; an ``event_type`` this package does not know (the successor
system's ``skill_used``, ``agent_switch``, ...) comes back as a
``GenericAuditEvent`` that keeps every field.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields
from datetime import datetime, timezone
from typing import Any, ClassVar

__all__ = [
    "BASE_FIELDS",
    "EVENT_CLASSES",
    "AuditEvent",
    "ErrorEvent",
    "GenericAuditEvent",
    "HookMutationEvent",
    "SandboxDecisionEvent",
    "ToolCallAttemptEvent",
    "ToolCallCompleteEvent",
    "ToolCallFailureEvent",
    "ToolLoopBlockEvent",
    "ToolLoopWarningEvent",
    "ToolPolicyDecisionEvent",
    "TurnEndEvent",
    "TurnStartEvent",
    "parse_event",
    "parse_timestamp",
    "timestamp_to_ns",
    "utc_now_iso",
]


def utc_now_iso() -> str:
    """The current time as the seed system writes it: ``datetime.now(UTC).isoformat()``."""
    return datetime.now(timezone.utc).isoformat()


def parse_timestamp(value: str) -> datetime:
    """Parse an event timestamp into an aware UTC ``datetime``.

    Accepts the three forms the seed systems write --
    ``2026-11-21T19:24:17.134534+00:00``, the same without a fraction, and the
    TypeScript port's ``2026-11-21T19:24:17.134Z`` -- and any other ISO 8601
    offset. A timestamp without an offset is taken as UTC.

    Raises ``ValueError`` naming the value when it is not a timestamp.
    """
    if not isinstance(value, str):
        raise ValueError(f"timestamp must be an ISO 8601 string, got {type(value).__name__}")
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        parsed = _parse_odd_fraction(text, value)
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=timezone.utc)
    return parsed.astimezone(timezone.utc)


def _parse_odd_fraction(text: str, original: str) -> datetime:
    # Python 3.10's fromisoformat takes only 3- or 6-digit fractions; pad or cut others.
    head, dot, rest = text.partition(".")
    if not dot:
        raise ValueError(f"not an ISO 8601 timestamp: {original!r}")
    digits = len(rest) - len(rest.lstrip("0123456789"))
    fraction, tail = rest[:digits], rest[digits:]
    if not fraction:
        raise ValueError(f"not an ISO 8601 timestamp: {original!r}")
    try:
        return datetime.fromisoformat(f"{head}.{fraction[:6].ljust(6, '0')}{tail}")
    except ValueError:
        raise ValueError(f"not an ISO 8601 timestamp: {original!r}") from None


_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


#: Nanoseconds since the epoch of the whole-second part (``YYYY-MM-DDTHH:MM:SS``) of timestamps
#: already parsed: events come many to a second, and that part is most of the work of parsing.
_SECOND_NS: dict[str, int] = {}
_MAX_SECONDS_REMEMBERED = 4_096


def timestamp_to_ns(value: str) -> int:
    """Nanoseconds since the epoch for an event timestamp (see ``parse_timestamp``)."""
    # The seed's own form, ``2026-11-21T19:24:17.134534+00:00``: its second looked up, its fraction read.
    fraction = value[20:26] if type(value) is str and len(value) == 32 else ""
    seed_form = fraction.isdigit() and fraction.isascii() and value[19] == "." and value.endswith("+00:00")
    if seed_form:
        second = _SECOND_NS.get(value[:19])
        if second is not None:
            return second + int(fraction) * 1_000
    delta = parse_timestamp(value) - _EPOCH
    ns = (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1_000
    if seed_form:  # parsed whole, so its second is a valid one
        if len(_SECOND_NS) >= _MAX_SECONDS_REMEMBERED:
            _SECOND_NS.clear()
        _SECOND_NS[value[:19]] = ns - delta.microseconds * 1_000
    return ns


@dataclass
class AuditEvent:
    """Base audit event: the envelope every event shares.

    Attributes:
        event_type: the event's tag (``"turn_start"``, ``"tool_call_attempt"``, ...).
        timestamp: ISO 8601 UTC time of the event, taken when it is created.
        agent_id: the agent that produced the event.
        turn_id: the turn (one user request, all its model/tool cycles).
        session_id: the session, stamped by ``AuditEmitter``.
        severity: ``"info"``, ``"warning"`` or ``"error"``.
        metadata: free-form context; ``operation_type``, ``custom_type``,
            ``tool_call_id`` and ``trust_score`` are read by ``auditspan``.

    Example::

        event = AuditEvent(agent_id="agent-1", severity="warning")
        assert event.to_dict()["event_type"] == "base"
    """

    event_type: str = "base"
    timestamp: str = field(default_factory=utc_now_iso)
    agent_id: str | None = None
    turn_id: str | None = None
    session_id: str | None = None
    severity: str = "info"
    metadata: dict[str, Any] = field(default_factory=dict)

    #: Field names in serialisation order, per class (filled by ``_register``).
    _field_names: ClassVar[tuple[str, ...]] = ()
    #: The instance attributes ``__init__`` sets, in order (the subclasses' tag is a class attribute).
    _init_names: ClassVar[tuple[str, ...] | None] = None

    def to_dict(self) -> dict[str, Any]:
        """The event as a plain dict, fields in declaration order (``dataclasses.asdict``).

        Nested values are copied, as ``asdict`` does, so the dict can outlive
        later changes to the event.
        """
        from dataclasses import asdict

        return asdict(self)

    def to_json(self) -> str:
        """One JSON line, byte for byte what the seed system writes (``default=str``)."""
        return json.dumps(self.to_dict(), default=str)

    def fields_view(self) -> dict[str, Any]:
        """The event's fields as a dict *without* copying nested values (hot path)."""
        values = self.__dict__
        if tuple(values) == self._init_names:
            # As the dataclass __init__ left it: its fields in order, the tag (not an
            # init field) a class attribute. One dict copy instead of a getattr per field.
            return {"event_type": self.event_type, **values}
        return {name: getattr(self, name) for name in self._field_names}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AuditEvent:
        """Rebuild the event class named by ``data["event_type"]``.

        Keys that are not fields of that class (for example the canonical
        record's envelope: ``event_id``, ``type``, ``telemetry``, ...) are
        ignored for known event types; an unknown ``event_type`` gives a
        ``GenericAuditEvent`` that keeps every key. Missing fields take their
        defaults.

        Raises ``ValueError`` when ``data`` is not a dict or a field has the
        wrong type (the message names the field).
        """
        if not isinstance(data, dict):
            raise ValueError(f"an audit event must be a JSON object, got {type(data).__name__}")
        event_type = data.get("event_type", "base")
        if not isinstance(event_type, str):
            raise ValueError(f"field 'event_type' must be a string, got {type(event_type).__name__}")
        event_cls = EVENT_CLASSES.get(event_type)
        if event_cls is None:
            return GenericAuditEvent._from_unknown(data)
        kwargs: dict[str, Any] = {}
        for f in fields(event_cls):
            if f.init and f.name in data:
                kwargs[f.name] = _checked(f.name, data[f.name], _FIELD_TYPES.get(f.name))
        return event_cls(**kwargs)


# Seed field -> the JSON types it may hold (None allowed for the optional ids).
_FIELD_TYPES: dict[str, tuple[type, ...]] = {
    "timestamp": (str,),
    "agent_id": (str, type(None)),
    "turn_id": (str, type(None)),
    "session_id": (str, type(None)),
    "severity": (str,),
    "metadata": (dict,),
    "duration_ms": (int, float),
    "call_count": (int,),
    "function_calls_count": (int,),
}


def _checked(name: str, value: Any, allowed: tuple[type, ...] | None) -> Any:
    if allowed is None:
        # Remaining seed fields are all strings.
        allowed = (str,)
    if isinstance(value, bool) or not isinstance(value, allowed):
        expected = " or ".join("null" if t is type(None) else t.__name__ for t in allowed)
        raise ValueError(f"field {name!r} must be {expected}, got {type(value).__name__}: {value!r:.80}")
    return value


@dataclass
class TurnStartEvent(AuditEvent):
    """A turn begins: one user request, with a preview of its prompt.

    Example::

        TurnStartEvent(agent_id="agent-1", turn_id="t-001", prompt_preview="Summarize the report")
    """

    event_type: str = field(default="turn_start", init=False)
    prompt_preview: str = ""


@dataclass
class TurnEndEvent(AuditEvent):
    """A turn ends, with a preview of the reply and how many tool calls it made."""

    event_type: str = field(default="turn_end", init=False)
    content_preview: str = ""
    function_calls_count: int = 0


@dataclass
class ToolCallAttemptEvent(AuditEvent):
    """A tool call is about to be dispatched (after its loop check and policy decision)."""

    event_type: str = field(default="tool_call_attempt", init=False)
    tool_name: str = ""
    arguments_preview: str = ""


@dataclass
class ToolCallCompleteEvent(AuditEvent):
    """A tool call completed, with its wall-clock ``duration_ms`` and a result preview."""

    event_type: str = field(default="tool_call_complete", init=False)
    tool_name: str = ""
    status: str = "success"
    duration_ms: float = 0.0
    result_preview: str = ""


@dataclass
class ToolCallFailureEvent(AuditEvent):
    """A tool call raised or otherwise failed (severity ``error``)."""

    event_type: str = field(default="tool_call_failure", init=False)
    severity: str = "error"
    tool_name: str = ""
    error_type: str = ""
    error_message: str = ""


@dataclass
class ToolPolicyDecisionEvent(AuditEvent):
    """The policy engine allowed or denied a tool call (``action``: ``allow`` / ``deny``)."""

    event_type: str = field(default="tool_policy_decision", init=False)
    tool_name: str = ""
    action: str = ""
    policy_source: str = ""


@dataclass
class SandboxDecisionEvent(AuditEvent):
    """The sandbox router chose an execution backend for a tool call."""

    event_type: str = field(default="sandbox_decision", init=False)
    tool_name: str = ""
    context: str = ""
    reason: str = ""
    backend_type: str = ""


@dataclass
class ToolLoopWarningEvent(AuditEvent):
    """The loop detector suspects a tool-call loop; the call still proceeds."""

    event_type: str = field(default="tool_loop_warning", init=False)
    severity: str = "warning"
    tool_name: str = ""
    pattern: str = ""
    severity_level: str = ""
    call_count: int = 0


@dataclass
class ToolLoopBlockEvent(AuditEvent):
    """The loop detector blocked a tool call: it does not run (severity ``error``)."""

    event_type: str = field(default="tool_loop_block", init=False)
    severity: str = "error"
    tool_name: str = ""
    pattern: str = ""
    call_count: int = 0


@dataclass
class HookMutationEvent(AuditEvent):
    """A hook changed a tool call's ``arguments`` (before it runs) or its ``result`` (after)."""

    event_type: str = field(default="hook_mutation", init=False)
    hook_name: str = ""
    tool_name: str = ""
    mutated_field: str = ""


@dataclass
class ErrorEvent(AuditEvent):
    """An error not tied to one tool call (LLM API failure, parsing error, ...)."""

    event_type: str = field(default="error", init=False)
    severity: str = "error"
    error_type: str = ""
    error_message: str = ""
    error_context: str = ""


@dataclass
class GenericAuditEvent(AuditEvent):
    """An event of a type this package has no class for; every field is kept.

    ``extra`` holds the fields beyond the common envelope, in their original
    order, and ``to_dict()`` puts them back at top level::

        event = parse_event('{"event_type": "skill_used", "skill_name": "pdf"}')
        assert event.to_dict()["skill_name"] == "pdf"
    """

    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        data = {name: getattr(self, name) for name in BASE_FIELDS}
        from copy import deepcopy

        data["metadata"] = deepcopy(self.metadata)
        data.update(deepcopy(self.extra))
        return data

    def fields_view(self) -> dict[str, Any]:
        data = {name: getattr(self, name) for name in BASE_FIELDS}
        data.update(self.extra)
        return data

    @classmethod
    def _from_unknown(cls, data: dict[str, Any]) -> GenericAuditEvent:
        kwargs = {
            name: _checked(name, data[name], _FIELD_TYPES.get(name))
            for name in BASE_FIELDS
            if name in data and name != "event_type"
        }
        extra = {k: v for k, v in data.items() if k not in _BASE_FIELD_SET}
        return cls(event_type=data.get("event_type", "base"), extra=extra, **kwargs)


BASE_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(AuditEvent))
_BASE_FIELD_SET = frozenset(BASE_FIELDS)

#: ``event_type`` tag -> event class, for the eleven typed events and the base.
EVENT_CLASSES: dict[str, type[AuditEvent]] = {}
for _cls in (
    AuditEvent,
    TurnStartEvent,
    TurnEndEvent,
    ToolCallAttemptEvent,
    ToolCallCompleteEvent,
    ToolCallFailureEvent,
    ToolPolicyDecisionEvent,
    SandboxDecisionEvent,
    ToolLoopWarningEvent,
    ToolLoopBlockEvent,
    HookMutationEvent,
    ErrorEvent,
):
    _cls._field_names = tuple(f.name for f in fields(_cls))
    _cls._init_names = tuple(vars(_cls()))  # what __init__ sets, as __init__ orders it
    EVENT_CLASSES[_cls.event_type] = _cls  # the class attribute holds the default tag
GenericAuditEvent._field_names = BASE_FIELDS


def parse_event(source: str | bytes | dict[str, Any]) -> AuditEvent:
    """Rebuild an event from a JSON line (seed ``to_json()`` or a canonical record) or a dict.

    Raises ``ValueError`` with the reason when the input is not valid JSON, not
    an object, or holds a field of the wrong type.
    """
    if isinstance(source, dict):
        return AuditEvent.from_dict(source)
    try:
        data = json.loads(source)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"not valid JSON: {exc}") from None
    return AuditEvent.from_dict(data)

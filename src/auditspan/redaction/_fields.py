"""The capture policy's field tables: which event fields are content, tags or scrubbed text.

One table, read by both of the collector's ways in (``collector._normalise``): the
fast path of this package's own well-typed events and the general path of
everything else. Each text field gets one *treatment*:

* ``AS_IS``: the timestamp (parsed) and the event id (checked or made):
  repaired when they are not valid text, never scrubbed;
* ``AS_TAG``: ids, names and tags (``Redactor.scrub_name``: memoised and
  deterministic, so they stay cheap and still match across events);
* ``AS_CONTENT``: the previews, which the capture policy keeps, redacts or
  drops (``Redactor.capture``);
* ``AS_SCRUBBED``: every other string, of any event type, through the secret
  scrubber (``Redactor.scrub``).

These tables are the capture policy's (they live in ``auditspan.redaction``);
the collector reads them and decides nothing about fields itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from dataclasses import fields as dataclass_fields
from typing import Any, Final

from ..events import BASE_FIELDS, EVENT_CLASSES

__all__ = [
    "AS_CONTENT",
    "AS_IS",
    "AS_SCRUBBED",
    "AS_TAG",
    "CONTENT_FIELDS",
    "DEFAULT_SEVERITY",
    "FIELD_PLANS",
    "KNOWN_FIELD_NAMES",
    "TAG_FIELDS",
    "TYPED_FIELDS",
    "VERBATIM_FIELDS",
    "FieldPlan",
    "field_kind",
]

#: The treatments of a text field (see the module doc).
AS_IS, AS_TAG, AS_CONTENT, AS_SCRUBBED = range(4)

#: Previews: what the capture policy keeps, redacts or drops.
CONTENT_FIELDS: Final = frozenset(
    {"prompt_preview", "content_preview", "arguments_preview", "result_preview"}
)
#: Fields that hold ids, names and tags rather than content.
TAG_FIELDS: Final = frozenset(
    {
        "event_type",
        "agent_id",
        "turn_id",
        "session_id",
        "severity",
        "tool_name",
        "status",
        "action",
        "mutated_field",
        "severity_level",
        "backend_type",
        "error_type",
    }
)
#: ``timestamp`` is parsed and ``event_id`` checked or made by the collector: neither is scrubbed.
VERBATIM_FIELDS: Final = frozenset({"timestamp", "event_id"})


def field_kind(name: str) -> int:
    """The treatment (``AS_*``) of the text field ``name``; a field no table names is scrubbed."""
    if name in VERBATIM_FIELDS:
        return AS_IS
    if name in TAG_FIELDS:
        return AS_TAG
    if name in CONTENT_FIELDS:
        return AS_CONTENT
    return AS_SCRUBBED


#: Field names of the seed's envelope and of every known event class (an unknown event's others are
#: scrubbed as names).
KNOWN_FIELD_NAMES: Final = frozenset(
    {*BASE_FIELDS, "event_id", *(f.name for cls in EVENT_CLASSES.values() for f in dataclass_fields(cls))}
)
#: Event-specific fields and the default that gives their type (from the event classes).
TYPED_FIELDS: Final[dict[str, tuple[tuple[str, Any], ...]]] = {
    cls.event_type: tuple(
        (f.name, f.default) for f in dataclass_fields(cls) if f.name not in BASE_FIELDS and f.init
    )
    for cls in EVENT_CLASSES.values()
}
DEFAULT_SEVERITY: Final = {cls.event_type: cls.severity for cls in EVENT_CLASSES.values()}
#: The envelope's text fields as the fast path sees them (``agent_id``, ``turn_id``, ``session_id``
#: may be None; ``event_type`` is the class's own tag).
_ENVELOPE_TEXTS = ("event_type", "timestamp", "severity", "agent_id", "turn_id", "session_id")


@dataclass(frozen=True)
class FieldPlan:
    """An event class of this package: its tag, its text fields with their treatment, its number fields.

    ``texts`` starts with the envelope's (some may be None), then the class's own
    (always strings on the fast path); ``own_texts`` are the latter alone.
    """

    tag: str
    texts: tuple[tuple[str, int], ...]  # (name, AS_*)
    own_texts: tuple[str, ...]
    numbers: tuple[tuple[str, bool], ...]  # (name, whether a float is allowed)


def _field_plan(tag: str) -> FieldPlan:
    own, numbers = [], []
    for name, default in TYPED_FIELDS[tag]:
        if isinstance(default, str):
            own.append(name)
        else:
            numbers.append((name, isinstance(default, float)))
    texts = tuple((name, field_kind(name)) for name in (*_ENVELOPE_TEXTS, *own))
    return FieldPlan(tag, texts, tuple(own), tuple(numbers))


#: The event classes whose ``fields_view()`` holds exactly their declared fields (subclasses may add
#: any), with their plans.
FIELD_PLANS: Final = {cls: _field_plan(tag) for tag, cls in EVENT_CLASSES.items()}

"""Any input becomes an event's fields: the record schema's types, the capture policy applied, its time.

Two ways in, one set of rules. This package's own events whose every value
already has its declared type -- the usual case, and the hot path -- are
checked once and nothing is coerced (``_plain_fields``); everything else
(dicts, the seed system's objects, values of the wrong type) is repaired
first (``cleaned``). Both then apply the capture policy through the same
function, ``_apply_policy``, by the same table (``_fields``).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from typing import Any

from .. import _deep
from .._sanitize import clean_str, preview
from ..events import BASE_FIELDS, AuditEvent, timestamp_to_ns
from ..redaction import REDACTION_ERROR_MARKER, CapturePolicy
from ..redaction._fields import (
    AS_CONTENT,
    AS_IS,
    AS_TAG,
    DEFAULT_SEVERITY,
    FIELD_PLANS,
    KNOWN_FIELD_NAMES,
    TYPED_FIELDS,
    FieldPlan,
    field_kind,
)

__all__ = ["INVALID", "MAX_SPAN_TIME_NS", "Normaliser"]

#: Span times are nanoseconds in a signed 64-bit field on the way (the SDK's int64 checks).
MAX_SPAN_TIME_NS = 2**63 - 1
#: The metadata key under which an input that is no event at all is recorded.
INVALID = "auditspan.invalid_event"
_COERCED = "auditspan.coerced"
_OPTIONAL_STR_FIELDS = ("agent_id", "turn_id", "session_id")
#: Names ``_name`` remembers as clean (they redact to themselves): at most this many, this long.
_CLEAN_NAMES_SIZE = 8192
_CLEAN_NAME_LENGTH = 256
#: The longest text a value of the wrong type is kept as.
_COERCED_LIMIT = 8_192
_SEED_ORDER = {name: i for i, name in enumerate(BASE_FIELDS)}


class _Everything:
    """The clean names under the ``full`` policy: every one."""

    def __contains__(self, name: object) -> bool:
        return True


_EVERYTHING = _Everything()


class Normaliser:
    """Turns one input into ``(fields, time in ns, arguments preview before capture)``.

    Args:
        redactor: applies the capture policy (``capture``, ``scrub``,
            ``redact_value`` and, for a ``Redactor``, ``scrub_name``).
        stats: the collector's counters (``invalid_events``, ``bad_timestamps`` grow here).

    Not thread-safe by itself beyond what its parts are: the remembered clean
    names are a set that only grows (and is cleared when full); a lost update
    costs one more ``scrub_name`` call, never a wrong result.
    """

    def __init__(self, redactor: Any, stats: Any) -> None:
        self.stats = stats
        self.bind(redactor)

    def bind(self, redactor: Any) -> None:
        """Apply ``redactor`` from now on (ids and names through its ``scrub_name`` when it has one)."""
        self.redactor = redactor
        self.scrub_name: Callable[[str], str] = getattr(redactor, "scrub_name", None) or redactor.scrub
        # Under ``full`` every name is kept as it is: nothing to look up, nothing to remember.
        verbatim = getattr(redactor, "policy", None) is CapturePolicy.FULL
        self._clean_names: set[str] | _Everything = _EVERYTHING if verbatim else set()

    def fields_of(self, event: Any) -> tuple[dict[str, Any], int, str | None]:
        """The fields of any input (an event, a mapping, an object with ``to_dict()``, anything else)."""
        plan = FIELD_PLANS.get(type(event))
        if plan is not None:
            # This package's own events: every field present, named by ASCII strings, in seed order.
            fields = event.fields_view()
            return self._plain_fields(fields, plan) or self.cleaned(fields, known=True)
        if isinstance(event, AuditEvent):
            fields = event.fields_view()
        elif isinstance(event, Mapping):
            fields = dict(event)
        elif hasattr(event, "to_dict"):
            fields = event.to_dict()
            if not isinstance(fields, dict):
                raise TypeError(f"{type(event).__name__}.to_dict() returned {type(fields).__name__}")
        else:  # not an event at all: still recorded, as evidence that something was emitted
            self.stats.invalid_events += 1
            fields = {"metadata": {INVALID: preview(event, 2_000, as_repr=True)}}
        return self.cleaned(fields)

    def _plain_fields(
        self, fields: dict[str, Any], plan: FieldPlan
    ) -> tuple[dict[str, Any], int, str | None] | None:
        """``cleaned`` for one of this package's events whose every value has its declared type.

        Each value is checked once and nothing is coerced. None (and ``fields``
        untouched) as soon as a value needs ``cleaned``'s repairs.
        """
        stamp, severity, metadata = fields["timestamp"], fields["severity"], fields["metadata"]
        agent_id, turn_id, session_id = fields["agent_id"], fields["turn_id"], fields["session_id"]
        if (
            fields["event_type"] != plan.tag
            or type(stamp) is not str
            or type(severity) is not str
            or type(metadata) is not dict
            or (agent_id is not None and type(agent_id) is not str)
            or (turn_id is not None and type(turn_id) is not str)
            or (session_id is not None and type(session_id) is not str)
        ):
            return None
        for name in plan.own_texts:
            if type(fields[name]) is not str:
                return None
        for name, float_allowed in plan.numbers:
            value = fields[name]
            if type(value) is int:
                if not -(2**63) <= value < 2**63:
                    return None
            elif not float_allowed or type(value) is not float or not math.isfinite(value):
                return None
        try:
            ts = timestamp_to_ns(stamp)
        except (ValueError, OverflowError):
            return None
        if not 0 < ts < MAX_SPAN_TIME_NS:
            return None
        # Every value checked: from here on only the repairs of text and the capture policy.
        raw_args = self._apply_policy(fields, plan.texts)
        if metadata:
            fields["metadata"] = self._metadata(metadata)
        return fields, ts, raw_args

    def _apply_policy(self, fields: dict[str, Any], texts: Any) -> str | None:
        """Apply the capture policy to the text fields ``texts`` names (``(name, AS_*)``), in place.

        The one rule for every way in. A value that is not valid text is
        repaired first (lone surrogates cannot be encoded); an empty one or None
        is left as it is. Returns the arguments preview as it was before the
        policy (for classification; never recorded), or None.
        """
        redactor = self.redactor
        # Ids and names are secrets' hiding places too: scrubbed, and those found clean remembered here
        # (a set lookup instead of a call per name).
        clean = self._clean_names
        raw_args = None
        for name, kind in texts:
            value = fields[name]
            if not value:
                continue
            if not value.isascii():
                value = fields[name] = clean_str(value)
            if kind == AS_TAG:
                if value not in clean:
                    value = fields[name] = self._name(value)
                continue
            if kind == AS_IS:
                continue
            if name == "arguments_preview":
                raw_args = value
            value = fields[name] = redactor.capture(value) if kind == AS_CONTENT else redactor.scrub(value)
            if value is REDACTION_ERROR_MARKER:
                _out_of_stack()
        return raw_args

    def _metadata(self, metadata: Any) -> dict[str, Any]:
        """The metadata with secrets redacted."""
        redacted: Any = self.redactor.redact_value(metadata)
        if type(redacted) is not dict:
            _out_of_stack()
        return redacted  # type: ignore[no-any-return]

    def _name(self, value: str) -> str:
        """``scrub_name(value)``; a value that comes back unchanged joins ``_clean_names`` (bounded)."""
        result = self.scrub_name(value)
        if result == value:
            clean = self._clean_names
            if len(value) <= _CLEAN_NAME_LENGTH and isinstance(clean, set):
                if len(clean) >= _CLEAN_NAMES_SIZE:
                    clean.clear()  # many distinct names (turn ids): start over rather than grow
                clean.add(value)
        elif result is REDACTION_ERROR_MARKER:
            _out_of_stack()
        return result

    def cleaned(
        self, fields: dict[str, Any], *, known: bool = False
    ) -> tuple[dict[str, Any], int, str | None]:
        """The fields with the record schema's types, the capture policy applied, the time in ns,
        and the arguments preview as it was before the capture policy (None if there is none).

        A value of the wrong type is replaced (by its string, or the field's
        default) and its original kept, as text, in ``metadata["auditspan.coerced"]``
        (``_coerced_text``: at most 8,192 characters, at a cost bounded by that).
        ``known``: the fields of one of this package's event classes (``fields_view``), whose
        names need no repair and whose order is already the seed's.
        """
        coerced: dict[str, str] = {}
        metadata = fields.get("metadata")
        if not isinstance(metadata, dict):
            if metadata is not None:
                coerced["metadata"] = _coerced_text(metadata)
            metadata = {}
        event_type = fields.get("event_type")
        if not isinstance(event_type, str) or not event_type:
            if event_type not in (None, ""):
                coerced["event_type"] = _coerced_text(event_type)
            event_type = "base"
        elif not event_type.isascii():
            event_type = clean_str(event_type)
        fields["event_type"] = event_type
        stamp = fields.get("timestamp")
        ts = 0
        if isinstance(stamp, str):
            try:  # not contextlib.suppress: that costs about 0.3 us per event
                ts = timestamp_to_ns(stamp)
            except (ValueError, OverflowError):
                ts = 0
        if not 0 < ts < MAX_SPAN_TIME_NS and ts:
            # A valid timestamp OTLP cannot carry (before 1970, after 2262): the record keeps it,
            # the span is stamped when auditspan received the event.
            self.stats.bad_timestamps += 1
            ts = time.time_ns()
        elif not ts:
            self.stats.bad_timestamps += 1
            if stamp is not None:
                coerced["timestamp"] = _coerced_text(stamp)
            ts = time.time_ns()
            fields["timestamp"] = _iso_from_ns(ts)  # when auditspan received it
        for name in _OPTIONAL_STR_FIELDS:
            value = fields.get(name)
            if value is not None and not isinstance(value, str):
                coerced[name] = _coerced_text(value)
                fields[name] = coerced[name]
            elif name not in fields:
                fields[name] = None
        severity = fields.get("severity")
        if not isinstance(severity, str):
            if severity is not None:
                coerced["severity"] = _coerced_text(severity)
            fields["severity"] = DEFAULT_SEVERITY.get(event_type, "info")
        for name, default in TYPED_FIELDS.get(event_type, ()):
            value = fields.get(name, default)
            if type(value) is str and type(default) is str:  # the usual case, checked first
                fields[name] = value
                continue
            if isinstance(default, str):
                ok = isinstance(value, str)
            elif isinstance(value, bool) or not isinstance(value, (int, float)):
                ok = False
            elif isinstance(value, int):  # JSON readers and OTLP take 64-bit integers
                ok = -(2**63) <= value < 2**63
            else:
                ok = isinstance(default, float) and math.isfinite(value)
            if not ok:
                coerced[name] = _coerced_text(value)
                value = coerced[name] if isinstance(default, str) else default
            fields[name] = value
        fields, raw_args = self._scrubbed(fields, known_names=known)
        if metadata:
            metadata = self._metadata(metadata)
        if coerced:
            # The originals of repaired values are evidence, and as open to secrets as any field.
            scrub = self.redactor.scrub
            metadata = {**metadata, _COERCED: {name: scrub(text) for name, text in coerced.items()}}
        fields["metadata"] = metadata
        return (fields if known else _in_seed_order(fields)), ts, raw_args

    def _scrubbed(self, fields: dict[str, Any], *, known_names: bool) -> tuple[dict[str, Any], str | None]:
        """Every field as valid text with the capture policy applied (``_apply_policy``), and the
        arguments preview before it; containers of any field but the metadata through ``redact_value``.

        An unknown event's own field names are free text too: repaired and
        scrubbed as names. Non-string field names become strings.
        """
        scrub_name = self.scrub_name
        if not known_names and not all(
            type(name) is str and name.isascii() and (name in KNOWN_FIELD_NAMES or scrub_name(name) == name)
            for name in fields
        ):
            fields = {
                clean_str(name) if name in KNOWN_FIELD_NAMES else scrub_name(clean_str(name)): value
                for name, value in fields.items()
            }
        texts = []
        for name, value in fields.items():
            if isinstance(value, str):
                texts.append((name, field_kind(name)))
            elif isinstance(value, (dict, list, tuple)) and name != "metadata":
                fields[name] = self.redactor.redact_value(value)
        return fields, self._apply_policy(fields, texts)


def _out_of_stack() -> None:
    """Raise ``RecursionError`` when a fail-closed result (redaction) came from a stack about to run out.

    The redactor fails closed on any error, running out of stack included; near
    the recursion limit that is not the event's fault: ``emit`` makes it again
    on a fresh stack. Checked only on such a result (the check costs about 1 µs).
    """
    if _deep.short_of_stack(200):
        raise RecursionError("out of stack while redacting")


def _coerced_text(value: Any) -> str:
    """A value of the wrong type as text: bytes decoded, anything else as ``str()`` shows it.

    Bounded like a preview (``preview``): a 200 MB value costs what its first
    8,192 characters cost; a cut text ends in ``…``.
    """
    if isinstance(value, (bytes, bytearray, memoryview)):
        return clean_str(bytes(value[: _COERCED_LIMIT * 4]))[:_COERCED_LIMIT]
    text = value if type(value) is str else preview(value, _COERCED_LIMIT + 1)
    return clean_str(text) if len(text) <= _COERCED_LIMIT else clean_str(text[: _COERCED_LIMIT - 1]) + "…"


def _iso_from_ns(ts: int) -> str:
    return datetime.fromtimestamp(ts / 1e9, timezone.utc).isoformat()


def _in_seed_order(fields: dict[str, Any]) -> dict[str, Any]:
    """The envelope fields first, in seed order, then the event's own (fields filled in go last otherwise)."""
    if list(fields)[: len(BASE_FIELDS)] == list(BASE_FIELDS):
        return fields
    ordered = {name: fields[name] for name in BASE_FIELDS if name in fields}
    for name, value in fields.items():
        if name not in _SEED_ORDER:
            ordered[name] = value
    return ordered

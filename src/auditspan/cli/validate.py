"""Check audit logs line by line: canonical records against the JSON Schema, seed events as seed events.

``SchemaValidator`` is a small JSON Schema (draft 2020-12) validator for
exactly the keywords the record schema uses -- ``type`` (with ``null`` and
type lists), ``required``, ``properties``, ``pattern``, ``minLength``,
``items``, ``const``, ``allOf`` and ``if``/``then``/``else`` -- so checking a
log needs no ``jsonschema`` at run time. It refuses a schema with any other
keyword instead of ignoring it::

    >>> from auditspan.records import record_schema
    >>> v = SchemaValidator(record_schema())
    >>> [str(e) for e in v.iter_errors({"event_type": "turn_start"})][:1]
    ["field 'timestamp': required property missing"]

``check_record(data)`` applies the checks of ``auditspan validate`` to one
decoded line and ``validate_files(paths)`` to whole logs.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from ..audit_log._chain import CHECKPOINT_EVENT_TYPE
from ..events import parse_event, parse_timestamp
from ..records import ENVELOPE_KEYS, record_schema
from .replay import DEFAULT_MAX_LINE_BYTES, LineError, LogLine, iter_log

__all__ = [
    "SUPPORTED_KEYWORDS",
    "SchemaError",
    "SchemaValidator",
    "SchemaViolation",
    "ValidationSummary",
    "check_record",
    "seed_schema",
    "validate_files",
]

#: The JSON Schema keywords ``SchemaValidator`` implements (annotations included).
SUPPORTED_KEYWORDS = frozenset(
    {
        "$schema",
        "$id",
        "$comment",
        "title",
        "description",
        "type",
        "required",
        "properties",
        "pattern",
        "minLength",
        "items",
        "const",
        "allOf",
        "if",
        "then",
        "else",
    }
)
_TYPES = frozenset({"string", "integer", "number", "boolean", "null", "object", "array"})
#: Keys whose presence makes a line a canonical record rather than a seed event.
_CANONICAL_MARKERS = ("event_id", "governance", "telemetry")


class SchemaError(ValueError):
    """The schema uses a keyword or value this validator does not implement."""


@dataclass(frozen=True)
class SchemaViolation:
    """One way an instance breaks the schema.

    ``path`` is the location in the instance, as ``jsonschema``'s
    ``absolute_path`` (for ``required`` the object missing the key, which is
    in ``missing``); ``keyword`` the schema keyword that failed.
    """

    path: tuple[str | int, ...]
    keyword: str
    message: str
    missing: str | None = None

    @property
    def field(self) -> str:
        """The failing field as a dotted path (``governance.decision``, ``items.0``), or ``(record)``."""
        parts = [*self.path, *([self.missing] if self.missing is not None else [])]
        return ".".join(str(p) for p in parts) if parts else "(record)"

    def __str__(self) -> str:
        return f"field {self.field!r}: {self.message}"


_SCALARS = (str, int, float, bool, type(None))


def _is_object(value: Any) -> bool:
    # Decoded JSON gives dicts; the ABC check (slow) only for other non-scalar values.
    return isinstance(value, dict) or (not isinstance(value, _SCALARS) and isinstance(value, Mapping))


def _is_array(value: Any) -> bool:
    return isinstance(value, (list, tuple))


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if _is_array(value):
        return "array"
    if _is_object(value):
        return "object"
    return type(value).__name__


def _is_type(value: Any, name: str) -> bool:
    if name == "null":
        return value is None
    if name == "boolean":
        return isinstance(value, bool)
    if isinstance(value, bool):
        return False
    if name == "string":
        return isinstance(value, str)
    if name == "integer":
        # Draft 6 and later: a number with a zero fractional part is an integer (1.0 too).
        return isinstance(value, int) or (
            isinstance(value, float) and math.isfinite(value) and value.is_integer()
        )
    if name == "number":
        return isinstance(value, (int, float))
    if name == "array":
        return _is_array(value)
    return _is_object(value)  # "object"


def _json_equal(a: Any, b: Any) -> bool:
    """JSON equality: ``True`` is not ``1``, ``1`` is ``1.0``, containers compare deeply."""
    if isinstance(a, str) or isinstance(b, str):
        return bool(a == b)
    if _is_array(a) and _is_array(b):
        return len(a) == len(b) and all(_json_equal(x, y) for x, y in zip(a, b, strict=True))
    if _is_object(a) and _is_object(b):
        return a.keys() == b.keys() and all(_json_equal(a[k], b[k]) for k in a)
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a is b
    return bool(a == b)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


class _Node:
    """One (sub)schema, compiled: its keywords looked up once, patterns compiled."""

    __slots__ = (
        "allof",
        "const",
        "else_",
        "has_const",
        "if_",
        "items",
        "min_length",
        "never",
        "pattern",
        "pattern_text",
        "properties",
        "required",
        "then",
        "types",
    )

    def __init__(self, schema: Any, where: str) -> None:
        self.never = schema is False
        if isinstance(schema, bool):
            schema = {}
        if not isinstance(schema, Mapping):
            raise SchemaError(f"{where}: a schema must be an object or a boolean, got {_json_type(schema)}")
        unknown = set(schema) - SUPPORTED_KEYWORDS
        if unknown:
            raise SchemaError(f"{where}: unsupported keyword(s) {', '.join(sorted(unknown))}")
        types = schema.get("type")
        self.types: tuple[str, ...] | None = None
        if types is not None:
            names = [types] if isinstance(types, str) else types
            if not isinstance(names, list) or not names or any(n not in _TYPES for n in names):
                raise SchemaError(f"{where}/type: unknown type {types!r}")
            self.types = tuple(names)
        self.has_const = "const" in schema
        self.const = schema.get("const")
        self.min_length: int | None = schema.get("minLength")
        self.pattern_text: str | None = schema.get("pattern")
        self.pattern: re.Pattern[str] | None = None
        if self.pattern_text is not None:
            try:
                self.pattern = re.compile(self.pattern_text)
            except (re.error, TypeError) as exc:
                raise SchemaError(f"{where}/pattern: {exc}") from None
        self.required: tuple[str, ...] = tuple(schema.get("required", ()))
        self.properties: tuple[tuple[str, _Node], ...] = tuple(
            (name, _Node(sub, f"{where}/properties/{name}"))
            for name, sub in (schema.get("properties") or {}).items()
        )
        self.items = _Node(schema["items"], f"{where}/items") if "items" in schema else None
        self.allof = tuple(
            _Node(sub, f"{where}/allOf/{i}") for i, sub in enumerate(schema.get("allOf") or ())
        )
        self.if_ = _Node(schema["if"], f"{where}/if") if "if" in schema else None
        self.then = _Node(schema["then"], f"{where}/then") if "then" in schema else None
        self.else_ = _Node(schema["else"], f"{where}/else") if "else" in schema else None

    def ok(self, instance: Any) -> bool:
        """Whether ``instance`` is valid here (no messages: the fast path for ``if``)."""
        return next(self.errors(instance, (), messages=False), None) is None

    def errors(
        self, instance: Any, path: tuple[str | int, ...], *, messages: bool = True
    ) -> Iterator[SchemaViolation]:
        if self.never:
            yield SchemaViolation(path, "false", "not allowed")
            return
        types = self.types
        if types is not None and not any(_is_type(instance, n) for n in types):
            message = ""
            if messages:
                got = _json_type(instance)
                shown = f" {_short(instance)}" if got not in ("null", "object", "array") else ""
                message = f"must be {' or '.join(types)}, got {got}{shown}"
            yield SchemaViolation(path, "type", message)
        if self.has_const and not _json_equal(instance, self.const):
            yield SchemaViolation(
                path, "const", f"must be {self.const!r}, got {_short(instance)}" if messages else ""
            )
        if isinstance(instance, str):
            if self.min_length is not None and len(instance) < self.min_length:
                yield SchemaViolation(path, "minLength", f"must have at least {self.min_length} character(s)")
            if self.pattern is not None and not self.pattern.search(instance):
                # The value last: cut short, it ends the message, where redaction still finds a cut secret.
                message = f"does not match {self.pattern_text!r}: {_short(instance)}" if messages else ""
                yield SchemaViolation(path, "pattern", message)
        elif _is_object(instance):
            for name in self.required:
                if name not in instance:
                    yield SchemaViolation(path, "required", "required property missing", missing=name)
            for name, sub in self.properties:
                if name in instance:
                    yield from sub.errors(instance[name], (*path, name), messages=messages)
        elif self.items is not None and _is_array(instance):
            for i, item in enumerate(instance):
                yield from self.items.errors(item, (*path, i), messages=messages)
        for sub in self.allof:
            yield from sub.errors(instance, path, messages=messages)
        if self.if_ is not None:
            branch = self.then if self.if_.ok(instance) else self.else_
            if branch is not None:
                yield from branch.errors(instance, path, messages=messages)


class SchemaValidator:
    """Validate JSON values against a schema that uses only ``SUPPORTED_KEYWORDS``.

    Raises ``SchemaError`` at construction for any other keyword, an unknown
    type name or a pattern that does not compile.

    Example::

        v = SchemaValidator({"type": "object", "required": ["a"], "properties": {"a": {"type": "integer"}}})
        v.is_valid({"a": 1})                       # True
        [str(e) for e in v.iter_errors({"a": "x"})]  # ["field 'a': must be integer, got string 'x'"]
    """

    def __init__(self, schema: Mapping[str, Any] | bool) -> None:
        self._root = _Node(schema, "#")
        self.schema = schema

    def is_valid(self, instance: Any) -> bool:
        """True when ``instance`` satisfies the schema."""
        return self._root.ok(instance)

    def iter_errors(self, instance: Any) -> Iterator[SchemaViolation]:
        """Every violation, depth first (the same set of (path, keyword) ``jsonschema`` reports)."""
        return self._root.errors(instance, ())


@lru_cache(maxsize=1)
def _record_validator() -> SchemaValidator:
    return SchemaValidator(record_schema())


def seed_schema() -> dict[str, Any]:
    """The record schema without the envelope requirement: what a seed-format event must satisfy."""
    schema = dict(record_schema())
    branches = [dict(branch) for branch in schema["allOf"]]
    envelope = branches[0]["else"]  # the first branch: a checkpoint record, else an event's fields
    branches[0]["else"] = {
        **envelope,
        "required": [k for k in envelope["required"] if k not in ENVELOPE_KEYS],
    }
    schema["allOf"] = branches
    return schema


@lru_cache(maxsize=1)
def _seed_validator() -> SchemaValidator:
    return SchemaValidator(seed_schema())


_FIELD_MESSAGE = re.compile(r"^field '([^']*)' (.*)$", re.DOTALL)


def is_canonical(data: Mapping[str, Any]) -> bool:
    """Whether a decoded line claims to be a canonical record (it has an envelope key)."""
    return any(key in data for key in _CANONICAL_MARKERS)


def check_record(data: Any, *, schema_only: bool = False) -> list[str]:
    """The problems of one decoded line, as ``field 'x': message`` strings (empty when valid).

    A canonical record (it has ``event_id``, ``governance`` or ``telemetry``)
    must satisfy the record schema; a seed event the same schema without the
    envelope. Unless ``schema_only``, both must also parse as events
    (``parse_event``: field types per event class) and have a real timestamp.
    ``schema_only`` checks every line against the full record schema alone.
    """
    if not _is_object(data):
        return [f"field '(record)': must be object, got {_json_type(data)}"]
    if schema_only or data.get("event_type") == CHECKPOINT_EVENT_TYPE:
        # A checkpoint is the log's own record, not an event: the schema (its branch) says it all.
        return [str(violation) for violation in _record_validator().iter_errors(data)]
    validator = _record_validator() if is_canonical(data) else _seed_validator()
    problems: list[str] = []
    reported: set[str] = set()
    for violation in validator.iter_errors(data):
        problems.append(str(violation))
        reported.add(violation.field)
    try:
        parse_event(dict(data))
    except ValueError as exc:
        match = _FIELD_MESSAGE.match(str(exc))
        if match is None:
            problems.append(f"field '(record)': {exc}")
        elif match.group(1) not in reported:
            problems.append(f"field {match.group(1)!r}: {match.group(2)}")
            reported.add(match.group(1))
    stamp = data.get("timestamp")
    if isinstance(stamp, str) and "timestamp" not in reported:
        try:
            parse_timestamp(stamp)
        except ValueError as exc:
            problems.append(f"field 'timestamp': {exc}")
    return problems


@dataclass
class ValidationSummary:
    """Counts of ``validate_files``: every checked line is valid or invalid."""

    files: int = 0
    lines: int = 0
    valid: int = 0
    invalid: int = 0
    canonical: int = 0
    seed: int = 0
    problems: int = 0
    invalid_lines: list[tuple[str, int]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when no line was invalid."""
        return self.invalid == 0


def validate_files(
    paths: Sequence[str | os.PathLike[str]],
    *,
    schema_only: bool = False,
    on_problem: Callable[[str], None] | None = None,
    max_kept: int = 1_000,
    max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
    redact: Callable[[str], str] | None = None,
) -> ValidationSummary:
    """Check every line of ``paths``; report each problem as ``FILE:LINE: ...`` through ``on_problem``.

    ``invalid_lines`` keeps the first ``max_kept`` bad ``(file, line)`` pairs. A line
    that repeats a key, nests too deep or is longer than ``max_line_bytes`` is
    invalid (``iter_log``). Messages may quote values: ``redact`` (the capture
    policy's ``scrub``, as the command line passes) is applied to each message,
    not to its ``FILE:LINE:`` prefix.
    Raises ``OSError`` when a file cannot be opened.

    Example::

        summary = validate_files(["audit.jsonl"], on_problem=print)
        raise SystemExit(0 if summary.ok else 1)
    """
    summary = ValidationSummary()
    for path in paths:
        summary.files += 1
        for line_no, item in iter_log(path, check_event=False, max_line_bytes=max_line_bytes):
            summary.lines += 1
            if isinstance(item, LineError):
                messages = [item.message]
                name = item.path
            else:
                assert isinstance(item, LogLine)
                messages = check_record(item.data, schema_only=schema_only)
                name = item.path
                if not messages:
                    summary.valid += 1
                    if is_canonical(item.data) or item.data.get("event_type") == CHECKPOINT_EVENT_TYPE:
                        summary.canonical += 1  # a checkpoint is the canonical log's own record
                    else:
                        summary.seed += 1
                    continue
            summary.invalid += 1
            summary.problems += len(messages)
            if len(summary.invalid_lines) < max_kept:
                summary.invalid_lines.append((name, line_no))
            if on_problem is not None:
                for message in messages:
                    on_problem(f"{name}:{line_no}: {redact(message) if redact is not None else message}")
    return summary

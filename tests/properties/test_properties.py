"""Never raise into the agent, never write an invalid record, never make an unexportable span.

Hypothesis feeds arbitrary event streams to a ``SpanCollector`` (``events_as="both"``): dicts,
event objects with mutated fields, objects with ``to_dict()`` (some of which raise), and things
that are not events at all, with values chosen to break things -- lone surrogates, non-UTF-8
bytes, NaN/inf, 100-bit ints, deep and cyclic containers, objects whose ``str()`` raises,
wrong types in every field, unknown event types, timestamps from year 1 to 9999 and garbage,
duplicate and out-of-order events. For every stream:

* no exception escapes ``emit``, ``flush`` or ``shutdown``, and nothing fails internally;
* one record per event, every line valid JSON matching ``records.record_schema()``;
* every span, span event and log record holds only valid OpenTelemetry values, within the
  provider's ``SpanLimits``, and the spans encode to OTLP protobuf (what every exporter does).

Explicit tests pin the cases Hypothesis found (and the 10 MB strings it would take too long
to generate), each with the smallest input that shows it.
"""

from __future__ import annotations

import io
import json
import math
import re
from collections.abc import Iterator
from dataclasses import fields as dataclass_fields
from decimal import Decimal
from typing import Any

import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.exporter.otlp.proto.common._log_encoder import encode_logs
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
from opentelemetry.sdk.trace import ReadableSpan, SpanLimits, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from auditspan import SpanCollector
from auditspan import attributes as attr
from auditspan.events import BASE_FIELDS, EVENT_CLASSES, AuditEvent, GenericAuditEvent
from auditspan.records import record_schema

from ..conftest import without_checkpoints

MAX_ATTRIBUTES = 48
MAX_ATTRIBUTE_LENGTH = 2_048
MAX_EVENTS = 40
LIMITS = SpanLimits(
    max_attributes=MAX_ATTRIBUTES,
    max_attribute_length=MAX_ATTRIBUTE_LENGTH,
    max_events=MAX_EVENTS,
    max_event_attributes=MAX_ATTRIBUTES,
)
#: What ``_sanitize.truncate`` appends to a cut string.
TRUNCATION_MARK = re.compile(r"…\[truncated \d+ chars\]$")
INT64 = (-(2**63), 2**63 - 1)
#: The largest OTLP request most receivers accept (gRPC's default message limit).
OTLP_MAX_REQUEST = 4 * 2**20

VALIDATOR = jsonschema.validators.validator_for(record_schema())(record_schema())


# --- a pipeline to feed ---------------------------------------------------------------------------


class Pipeline:
    """A collector with in-memory span and log exporters and an in-memory audit log."""

    def __init__(self, span_limits: SpanLimits | None = LIMITS, events_as: str = "both") -> None:
        self.spans_out = InMemorySpanExporter()
        self.tracer_provider = TracerProvider(span_limits=span_limits)
        self.tracer_provider.add_span_processor(SimpleSpanProcessor(self.spans_out))
        self.logs_out = InMemoryLogRecordExporter()  # type: ignore[no-untyped-call]
        self.logger_provider = LoggerProvider()
        self.logger_provider.add_log_record_processor(SimpleLogRecordProcessor(self.logs_out))
        self.audit = io.BytesIO()
        self.collector = SpanCollector(
            tracer_provider=self.tracer_provider,
            logger_provider=self.logger_provider,
            audit_log=self.audit,
            events_as=events_as,
        )

    def close(self) -> None:
        self.collector.shutdown()
        self.tracer_provider.shutdown()
        self.logger_provider.shutdown()

    def records(self) -> list[dict[str, Any]]:
        assert self.collector.audit_log is not None
        assert self.collector.audit_log.force_flush(10_000)
        lines = self.audit.getvalue().splitlines()
        records = []
        for number, line in enumerate(lines, 1):
            record = json.loads(line)  # valid JSON, or the test fails here
            assert isinstance(record, dict), f"line {number} is not an object"
            records.append(record)
        return without_checkpoints(records)  # the chain's checkpoints are no event's record

    def spans(self) -> list[ReadableSpan]:
        return list(self.spans_out.get_finished_spans())


@pytest.fixture
def pipeline() -> Iterator[Pipeline]:
    made = Pipeline()
    yield made
    made.close()


def schema_errors(record: dict[str, Any]) -> list[str]:
    return [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message[:200]}" for e in VALIDATOR.iter_errors(record)
    ]


def utf8_ok(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def attribute_problems(attributes: Any, where: str, max_length: int | None) -> list[str]:
    """Why each attribute is not a valid OTel value (empty when all are)."""
    problems = []
    for key, value in dict(attributes or {}).items():
        if not isinstance(key, str) or not key or not utf8_ok(key):
            problems.append(f"{where}: bad key {key!r:.60}")
        values = value if isinstance(value, tuple) else (value,)
        if isinstance(value, tuple) and len({type(v) for v in value}) > 1:
            problems.append(f"{where}.{key}: mixed array")
        for item in values:
            if type(item) not in (str, bool, int, float):
                problems.append(f"{where}.{key}: {type(item).__name__} value")
            elif type(item) is str:
                if not utf8_ok(item):
                    problems.append(f"{where}.{key}: not UTF-8 encodable")
                if max_length is not None and len(item) > max_length:
                    problems.append(f"{where}.{key}: {len(item)} chars > {max_length}")
            elif type(item) is int and not INT64[0] <= item <= INT64[1]:
                problems.append(f"{where}.{key}: int beyond 64 bits")
    return problems


def span_problems(spans: list[ReadableSpan], limits: SpanLimits | None = LIMITS) -> list[str]:
    """Everything about these spans that a backend would refuse or that breaks the limits."""
    max_length = limits.max_attribute_length if limits is not None else None
    problems: list[str] = []
    for span in spans:
        where = span.name[:40]
        if not utf8_ok(span.name):
            problems.append(f"span name {span.name!r:.60} is not UTF-8 encodable")
        description = span.status.description or ""
        if not utf8_ok(description):
            problems.append(f"{where}: status description not UTF-8 encodable")
        problems += attribute_problems(span.attributes, where, max_length)
        too_many = len(span.attributes or {}) > MAX_ATTRIBUTES or len(span.events) > MAX_EVENTS
        if limits is not None and too_many:
            problems.append(f"{where}: limits exceeded")
        for event in span.events:
            problems += attribute_problems(event.attributes, f"{where}/{event.name}", max_length)
        start, end = span.start_time or 0, span.end_time or 0
        if not (0 < start <= end < 2**64):
            problems.append(f"{where}: times {start}..{end} do not fit OTLP's fixed64")
    if not problems and spans:
        try:
            encode_spans(spans).SerializeToString()
        except Exception as exc:  # what every OTLP exporter would hit, losing the whole batch
            problems.append(f"OTLP encoding of the batch failed: {type(exc).__name__}: {exc}")
    return problems


def log_problems(logs_out: InMemoryLogRecordExporter) -> list[str]:
    problems: list[str] = []
    logs = list(logs_out.get_finished_logs())
    for data in logs:
        record = data.log_record
        problems += attribute_problems(record.attributes, f"log {record.event_name}", None)
        if not isinstance(record.body, str) or not utf8_ok(record.body):
            problems.append(f"log {record.event_name}: body is not a UTF-8 string")
    if not problems and logs:
        try:
            encode_logs(logs).SerializeToString()
        except Exception as exc:
            problems.append(f"OTLP encoding of the log batch failed: {type(exc).__name__}: {exc}")
    return problems


# --- strategies ----------------------------------------------------------------------------------


class Unprintable:
    """An object whose ``str()`` raises (``repr()`` works, so that Hypothesis can report it)."""

    def __str__(self) -> str:
        raise RuntimeError("no str for you")

    def __repr__(self) -> str:
        return "Unprintable()"


class Unrepresentable(Unprintable):
    """An object whose ``str()`` and ``repr()`` both raise."""

    def __repr__(self) -> str:
        raise RuntimeError("no repr either")


class BadToDict:
    """Has ``to_dict``, which raises."""

    def to_dict(self) -> dict[str, Any]:
        raise ValueError("cannot serialise")


class ToDict:
    """A foreign event object: ``to_dict()`` returns whatever it was given."""

    def __init__(self, data: Any) -> None:
        self.data = data

    def to_dict(self) -> Any:
        return self.data


def deep(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {"leaf": 1}
    for i in range(depth):
        value = {f"d{i}": value}
    return value


def cyclic() -> dict[str, Any]:
    loop: dict[str, Any] = {"name": "loop", "items": []}
    loop["self"] = loop
    loop["items"].append(loop)
    return loop


SURROGATES = st.sampled_from(["\ud800", "a\udcffb", "\udfff\ud800", "x\ud83dy"])
SHORT_TEXT = st.one_of(
    st.text(max_size=30),
    st.text(st.characters(codec="utf-8"), max_size=10).map(lambda s: s + "\ud800"),
    SURROGATES,
    st.sampled_from(["", "\x00", "\u2028\u2029", "日本語", "🦜" * 3, "null", "NaN", "evt_", "turn_start"]),
)
TEXT = st.one_of(
    SHORT_TEXT,
    st.integers(1_000, 120_000).map(lambda n: "L" * n),  # long (the 10 MB ones are in a test below)
)
LEAF = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**100), max_value=2**100),
    st.floats(allow_nan=True, allow_infinity=True),
    TEXT,
    st.binary(max_size=12),
    st.sampled_from([Decimal("NaN"), Decimal("1e400"), b"\xff\xfe\x00", frozenset({1, "a"}), {1, 2}]),
    st.builds(Unprintable),
    st.builds(lambda: deep(400)),
    st.builds(cyclic),
)
KEYS = st.one_of(SHORT_TEXT, st.integers(-5, 5), st.none(), st.booleans(), st.floats())
VALUES = st.recursive(
    LEAF,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.lists(children, max_size=3).map(tuple),
        st.dictionaries(KEYS, children, max_size=4),
    ),
    max_leaves=12,
)
TIMESTAMPS = st.one_of(
    st.datetimes().map(lambda d: d.isoformat()),  # naive: year 1 to 9999
    st.sampled_from(
        [
            "2026-11-21T19:24:17.134534+00:00",
            "2026-11-21T19:24:17.134Z",
            "0001-01-01T00:00:00+00:00",
            "9999-12-31T23:59:59.999999+00:00",
            "1969-12-31T23:59:59+00:00",
            "1970-01-01T00:00:00Z",
            "2262-04-11T23:47:16.854775+00:00",
            "2554-07-21T23:34:33.709551+00:00",
            "not a time",
            "",
            "2026-13-45T99:99:99",
        ]
    ),
    LEAF,
)
TYPES = st.one_of(
    st.sampled_from([*EVENT_CLASSES, "skill_used", "agent_switch", "Turn_Start"]),
    st.sampled_from([None, 7, "", ["turn_start"]]),
    TEXT,
)
#: Every field name an event can have, plus some that none has.
FIELD_NAMES = sorted(
    {f.name for cls in EVENT_CLASSES.values() for f in dataclass_fields(cls)}
    | {"event_id", "extra", "type", "telemetry", "governance", "parameters", "target"}
)
SMALL_IDS = st.one_of(st.sampled_from(["t1", "t2", "t3", None]), LEAF)
TOOLS = st.one_of(st.sampled_from(["search", "search", "rm", "write_file"]), TEXT, LEAF)


def field_value(name: str) -> st.SearchStrategy[Any]:
    if name == "timestamp":
        return TIMESTAMPS
    if name == "event_type":
        return TYPES
    if name in ("turn_id", "session_id", "agent_id"):
        return SMALL_IDS
    if name == "tool_name":
        return TOOLS
    if name == "event_id":
        return st.one_of(st.just("evt_keep-me_1"), TEXT.map(lambda s: "evt_" + s), LEAF)
    if name == "metadata":
        return st.one_of(
            st.dictionaries(
                st.sampled_from(["tool_call_id", "attempt", "trust_score", "agent_name", "x", "api_key"]),
                VALUES,
                max_size=4,
            ),
            VALUES,
        )
    if name in ("duration_ms", "call_count", "function_calls_count"):
        return st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-(2**70), 2**70), LEAF)
    if name == "action":
        return st.one_of(st.sampled_from(["allow", "deny", "block", "ask"]), LEAF)
    return st.one_of(TEXT, VALUES)


@st.composite
def event_dicts(draw: st.DrawFn) -> dict[Any, Any]:
    event: dict[Any, Any] = {"event_type": draw(TYPES)}
    for name in draw(st.lists(st.sampled_from(FIELD_NAMES), max_size=8, unique=True)):
        event[name] = draw(field_value(name))
    if draw(st.booleans()):  # a field no event has, maybe under a non-string key
        event[draw(KEYS)] = draw(VALUES)
    return event


@st.composite
def event_objects(draw: st.DrawFn) -> AuditEvent:
    """One of our event classes, built properly, then with fields overwritten by anything."""
    cls: type[AuditEvent] = draw(st.sampled_from([*EVENT_CLASSES.values(), GenericAuditEvent]))
    event = cls()
    if isinstance(event, GenericAuditEvent):  # an unknown type's own fields, of any kind
        event.event_type = draw(TYPES)  # type: ignore[assignment]
        event.extra = draw(st.dictionaries(KEYS, VALUES, max_size=4))  # type: ignore[arg-type]
    names = [f.name for f in dataclass_fields(cls) if f.name != "extra"]
    for name in draw(st.lists(st.sampled_from(names), max_size=5, unique=True)):
        setattr(event, name, draw(field_value(name)))
    return event


ANY_EVENT = st.one_of(
    event_dicts(),
    event_dicts(),
    event_objects(),
    event_dicts().map(ToDict),
    st.builds(BadToDict),
    VALUES.map(ToDict),  # to_dict() that returns something other than a dict
    VALUES,  # not an event at all
)


@st.composite
def streams(draw: st.DrawFn) -> list[Any]:
    events = draw(st.lists(ANY_EVENT, min_size=1, max_size=8))
    # Duplicates and replays out of order: the same objects again, shuffled.
    if draw(st.booleans()):
        events += draw(st.permutations(events))[: draw(st.integers(1, len(events)))]
    return events


# --- the property -----------------------------------------------------------------------------------


def is_event_like(event: Any) -> bool:
    if isinstance(event, ToDict):
        return isinstance(event.data, dict)
    return isinstance(event, (dict, AuditEvent))


def check_stream(stream: list[Any]) -> None:
    pipeline = Pipeline()
    try:
        for event in stream:
            pipeline.collector.emit(event)  # must not raise
        pipeline.collector.flush()
        pipeline.collector.shutdown()
        records = pipeline.records()
        stats = pipeline.collector.stats
        # Only an input that is no event at all (to_dict() raising, repr() raising) may count as
        # an internal error; for events, an internal error means lost span data.
        broken = sum(1 for event in stream if not is_event_like(event))
        assert stats.internal_errors <= broken, "an internal error lost an event's span data"
        assert len(records) == len(stream) + stats.rule_matches
        for record in records:
            errors = schema_errors(record)
            assert not errors, (errors, {k: str(v)[:80] for k, v in record.items()})
        problems = span_problems(pipeline.spans()) + log_problems(pipeline.logs_out)
        assert not problems, problems[:5]
    finally:
        pipeline.close()


@settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(streams())
def test_arbitrary_event_streams_never_raise_and_always_make_valid_output(stream: list[Any]) -> None:
    check_stream(stream)


# --- the cases it found, pinned --------------------------------------------------------------------


@pytest.mark.parametrize(
    "timestamp",
    [
        "0001-01-01T00:00:00+00:00",
        "1969-12-31T23:59:59+00:00",
        "9999-12-31T23:59:59+00:00",
        "2600-01-01T00:00:00",
    ],
)
def test_timestamps_outside_what_otlp_can_hold_do_not_break_the_span_batch(
    pipeline: Pipeline, timestamp: str
) -> None:
    """OTLP times are unsigned 64-bit nanoseconds (1970 .. 2554): a span outside fails the encode of
    its whole batch. The record keeps the event's own timestamp; the span must get a usable time."""
    pipeline.collector.emit({"event_type": "turn_start", "turn_id": "t", "timestamp": timestamp})
    pipeline.collector.emit({"event_type": "turn_end", "turn_id": "t", "timestamp": timestamp})
    pipeline.collector.emit({"event_type": "turn_start", "turn_id": "ok"})  # an innocent neighbour
    pipeline.collector.emit({"event_type": "turn_end", "turn_id": "ok"})
    records = pipeline.records()
    assert [r["timestamp"] for r in records[:2]] == [timestamp, timestamp]
    assert span_problems(pipeline.spans()) == []


@pytest.mark.parametrize(
    ("field", "event"),
    [
        ("prompt", {"event_type": "turn_start", "turn_id": "t", "prompt_preview": "hi \ud800"}),
        ("tool name", {"event_type": "tool_call_attempt", "turn_id": "t", "tool_name": "to\udcffol"}),
        ("error", {"event_type": "error", "turn_id": "t", "error_message": "bad \udfff"}),
        ("agent", {"event_type": "turn_start", "turn_id": "t", "agent_id": "ag\ud800ent"}),
        ("unknown field", {"event_type": "skill_used", "turn_id": "t", "skill": "\ud800"}),
    ],
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_lone_surrogates_never_reach_a_span(pipeline: Pipeline, field: str, event: dict[str, Any]) -> None:
    """A lone surrogate is valid in a Python str but not in UTF-8: the OTLP encoder drops the
    attribute (or, in a span name or status, fails the whole batch)."""
    pipeline.collector.emit(event)
    pipeline.collector.emit({"event_type": "turn_end", "turn_id": "t"})
    records = pipeline.records()  # the audit log is already safe: json_safe repairs surrogates
    assert len(records) == 2
    assert span_problems(pipeline.spans()) == []
    assert log_problems(pipeline.logs_out) == []


@pytest.mark.parametrize("event_id", ["evt_", "evt_ä b", "evt_\ud800", "evt_a/b", "evt_" + "x" * 300])
def test_a_carried_event_id_that_breaks_the_schema_is_not_kept_as_is(
    pipeline: Pipeline, event_id: str
) -> None:
    """Replays keep an ``evt_...`` id a dict carries; one that does not match the schema's
    ``^evt_[0-9A-Za-z_-]+$`` must be replaced (the original kept in the metadata)."""
    pipeline.collector.emit({"event_type": "error", "turn_id": "t", "event_id": event_id})
    (record,) = pipeline.records()
    assert schema_errors(record) == []
    if event_id == "evt_" + "x" * 300:
        return  # valid by the schema: kept
    assert record["event_id"] != event_id


def test_non_string_keys_are_not_an_internal_error(pipeline: Pipeline) -> None:
    """``{1: "x"}`` at the top of a dict event: the span event must still be recorded."""
    pipeline.collector.emit({"event_type": "skill_used", "turn_id": "t", 1: "one", None: "none", (1, 2): "t"})
    pipeline.collector.emit({"event_type": "turn_end", "turn_id": "t"})
    assert pipeline.collector.stats.internal_errors == 0
    (turn,) = pipeline.spans()
    assert [e.name for e in turn.events] == ["audit.skill_used"]
    assert span_problems([turn]) == []
    (first, _) = pipeline.records()
    assert schema_errors(first) == []


def test_attributes_cut_to_the_span_limit_are_marked_as_cut(pipeline: Pipeline) -> None:
    """With ``SpanLimits(max_attribute_length=N)`` the SDK cuts silently; a reader of the trace must
    be able to tell a cut value from a whole one: ``…[truncated K chars]`` as ``_sanitize.truncate`` does."""
    long = "word " * 2_000  # 10,000 chars
    pipeline.collector.emit({"event_type": "turn_start", "turn_id": "t", "prompt_preview": long})
    pipeline.collector.emit(
        {"event_type": "tool_call_attempt", "turn_id": "t", "tool_name": "w", "arguments_preview": long}
    )
    pipeline.collector.emit({"event_type": "error", "turn_id": "t", "error_message": long})
    pipeline.collector.emit({"event_type": "turn_end", "turn_id": "t"})
    spans = {s.name: s for s in pipeline.spans()}
    turn, tool = spans["invoke_agent"], spans["execute_tool w"]
    error_event = next(e for e in turn.events if e.name == "audit.error")
    cut = {
        "prompt": dict(turn.attributes or {})[attr.TURN_PROMPT_PREVIEW],
        "arguments": dict(tool.attributes or {})[attr.TOOL_ARGUMENTS_PREVIEW],
        "error event": dict(error_event.attributes or {})[attr.EVENT_FIELD_PREFIX + "error_message"],
    }
    for name, value in cut.items():
        assert isinstance(value, str) and len(value) <= MAX_ATTRIBUTE_LENGTH, name
        assert TRUNCATION_MARK.search(value), (
            f"{name}: cut to {len(value)} chars without a mark: ...{value[-30:]!r}"
        )
    # The audit record keeps the whole value: it is the evidence.
    assert pipeline.records()[0]["prompt_preview"] == long


TEN_MB = "A" * 10_000_000


def test_10mb_strings_in_every_field_never_raise_and_stay_valid() -> None:
    """10 MB in a free-text field of every event type and in nested metadata, events_as="both"."""
    pipeline = Pipeline()
    try:
        count = 0
        for event_type, cls in EVENT_CLASSES.items():
            event: dict[str, Any] = {"event_type": event_type, "turn_id": "big", "agent_id": "a"}
            text_fields = [
                f.name for f in dataclass_fields(cls) if f.name not in BASE_FIELDS and f.default == ""
            ]
            for name in text_fields[-1:]:  # the last free-text field: previews, messages, reasons
                event[name] = TEN_MB
            if event_type == "error":
                event["metadata"] = {"nested": {"blob": TEN_MB}}
            pipeline.collector.emit(event)
            count += 1
        pipeline.collector.emit({"event_type": "skill_used", "turn_id": "big", "payload": TEN_MB})
        pipeline.collector.shutdown()
        records = pipeline.records()
        assert len(records) == count + 1
        for record in records:
            assert schema_errors(record) == []
        assert pipeline.collector.stats.internal_errors == 0
        assert span_problems(pipeline.spans()) == []
        assert log_problems(pipeline.logs_out) == []
    finally:
        pipeline.close()


def test_a_10mb_value_does_not_make_a_span_no_receiver_accepts() -> None:
    """With the SDK's default limits (no length limit) a 10 MB preview becomes a 10 MB attribute:
    the OTLP request carrying it exceeds the 4 MiB most receivers accept, and the whole batch
    (up to 512 spans) is refused. auditspan must bound what it puts on a span."""
    pipeline = Pipeline(span_limits=None)
    try:
        pipeline.collector.emit({"event_type": "turn_start", "turn_id": "t", "prompt_preview": TEN_MB})
        pipeline.collector.emit({"event_type": "error", "turn_id": "t", "error_message": TEN_MB})
        pipeline.collector.emit({"event_type": "turn_end", "turn_id": "t"})
        size = len(encode_spans(pipeline.spans()).SerializeToString())
        assert size < OTLP_MAX_REQUEST, f"one span is {size / 2**20:.1f} MiB"
    finally:
        pipeline.close()


@pytest.mark.parametrize("duration_ms", [3_265_626_910_885.0, 2**62, 1e300])
def test_a_completion_without_attempt_and_a_huge_duration_still_makes_an_exportable_span(
    pipeline: Pipeline, duration_ms: float
) -> None:
    """Without its attempt, a call's span starts ``duration_ms`` before the completion: not before 1970."""
    pipeline.collector.emit(
        {
            "event_type": "tool_call_complete",
            "turn_id": "t",
            "tool_name": "search",
            "duration_ms": duration_ms,
        }
    )
    pipeline.collector.emit({"event_type": "turn_end", "turn_id": "t"})
    assert span_problems(pipeline.spans()) == []
    (record, _) = pipeline.records()
    assert schema_errors(record) == []


def test_objects_whose_str_and_repr_raise(pipeline: Pipeline) -> None:
    """Not an event, and not even printable: still a record (marked invalid), never an exception."""
    pipeline.collector.emit(Unrepresentable())
    pipeline.collector.emit({"event_type": "error", "turn_id": "t", "error_message": Unrepresentable()})
    pipeline.collector.emit(
        {"event_type": "skill_used", "turn_id": "t", "odd": Unrepresentable(), "meta": [Unprintable()]}
    )
    pipeline.collector.emit({"event_type": "turn_end", "turn_id": "t", "metadata": {"x": Unrepresentable()}})
    records = pipeline.records()
    assert len(records) == 4
    for record in records:
        assert schema_errors(record) == []
    assert "auditspan.invalid_event" in records[0]["metadata"]
    assert pipeline.collector.stats.internal_errors <= 1  # the non-event only
    assert span_problems(pipeline.spans()) == []
    assert log_problems(pipeline.logs_out) == []


def test_nan_and_infinities_in_numeric_fields(pipeline: Pipeline) -> None:
    for value in (math.nan, math.inf, -math.inf, 2**80, True, "12"):
        pipeline.collector.emit(
            {"event_type": "tool_call_complete", "turn_id": "t", "tool_name": "x", "duration_ms": value}
        )
    pipeline.collector.emit({"event_type": "turn_end", "turn_id": "t", "function_calls_count": math.nan})
    records = pipeline.records()
    for record in records:
        assert schema_errors(record) == []
        duration = record["telemetry"]["duration_ms"]
        assert duration is None or math.isfinite(duration)
    assert span_problems(pipeline.spans()) == []


# --- the fast path of field cleaning ------------------------------------------------------------------

#: Text a well-typed event carries: ASCII, Unicode, lone surrogates, secrets in prose and in key=value form.
WELL_TYPED_TEXT = st.one_of(
    SHORT_TEXT,
    st.sampled_from(
        [
            "mail ops@example.com the report",
            "Authorization: Bearer abcdefghijklmnopqrstuvwxyz0123456789",
            "{'api_key': 'sk-proj-0123456789abcdefghijklmnop', 'q': 'résumé'}",
            "postgres://admin:hunter2@db.internal:5432/app",
        ]
    ),
)


@st.composite
def well_typed_events(draw: st.DrawFn) -> AuditEvent:
    """One of our event classes whose every value has its declared type (the collector's fast path)."""
    cls: type[AuditEvent] = draw(st.sampled_from(list(EVENT_CLASSES.values())))
    event = cls(timestamp=draw(st.sampled_from(["2026-11-21T19:24:17.134534+00:00", "2026-11-21T19:24:17Z"])))
    for f in dataclass_fields(cls):
        if f.name in ("event_type", "timestamp") or not f.init or not draw(st.booleans()):
            continue
        if f.name == "metadata":
            value: Any = draw(
                st.dictionaries(st.sampled_from(["tool_call_id", "x", "api_key"]), WELL_TYPED_TEXT)
            )
        elif isinstance(f.default, float):
            value = draw(
                st.one_of(st.floats(allow_nan=False, allow_infinity=False), st.integers(-(2**63), 2**63 - 1))
            )
        elif isinstance(f.default, int):
            value = draw(st.integers(-(2**63), 2**63 - 1))
        else:
            value = draw(st.one_of(WELL_TYPED_TEXT, st.none()) if f.default is None else WELL_TYPED_TEXT)
        setattr(event, f.name, value)
    return event


@settings(max_examples=300, deadline=None)
@given(well_typed_events())
def test_the_fast_path_of_field_cleaning_agrees_with_the_general_one(event: AuditEvent) -> None:
    from auditspan.redaction._fields import FIELD_PLANS as _FIELD_PLANS

    collector = SpanCollector(tracer_provider=TracerProvider())._normaliser
    fast = collector._plain_fields(event.fields_view(), _FIELD_PLANS[type(event)])
    assert fast is not None, "a well-typed event must take the fast path"
    assert fast == collector.cleaned(event.fields_view(), known=True)

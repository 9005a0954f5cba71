"""``SpanCollector``: the audit event stream becomes traces and canonical records.

An audit collector in the seed system's sense (``emit(event)``, ``flush()``,
plus ``shutdown()``): it plugs into an ``AuditEmitter`` (this package's or the
seed system's) or a ``CompositeCollector``, and accepts this package's events,
the seed system's event objects (anything with ``to_dict()``) and plain dicts::

    from opentelemetry.sdk.trace import TracerProvider
    from auditspan import AuditEmitter, SpanCollector

    collector = SpanCollector(tracer_provider=TracerProvider(), audit_log="audit.jsonl")
    audit = AuditEmitter(collector, session_id="sess-01")

How the stream maps onto spans (the README has the full table):

* ``turn_start`` .. ``turn_end`` is a span ``invoke_agent {agent}``; it is a
  child of the OTel span current at ``turn_start`` if there is one, else a root.
* Each tool call is a child span ``execute_tool {tool}`` of its turn. The
  events that govern a call arrive *before* its attempt (loop check, policy
  decision, argument hook): they are held as the call's pending span events,
  and the span starts at the first of them once the attempt arrives -- with
  its semantic type, decision and arguments known at start, for samplers. A
  call refused by policy or blocked by the loop detector never gets an
  attempt: its span is made at once, status ERROR, ``auditspan.tool.outcome``
  ``denied`` / ``blocked``.
* Completion ends the span at the event's time; a failure also sets status
  ERROR and ``error.type``. The next attempt of a failed tool in the same turn
  is a retry: ``auditspan.tool.attempt`` counts up and the span links to the
  failed attempt.
* Policy, sandbox, loop, hook, error and unknown events are span events
  ``audit.<event_type>`` (and/or log records with that ``event_name``).
* Times come from the events' own timestamps.

Matching without call ids: a completion, a sandbox decision or a result hook
belongs to the open call of that tool in that turn that was attempted on the
same thread, else to the oldest (``metadata["tool_call_id"]`` matches exactly
when the runtime provides it). Events with ``turn_id=None`` go to the most
recent open turn of the same session and agent; with none open, a tool call
becomes a child of the current OTel span or a root span of its own. A turn id
never started opens a *synthetic* turn (``auditspan.turn.synthetic``).

State is bounded, whatever the event stream (see ``SpanCollector`` for each
structure's bound and ``state_sizes()`` to watch them): at most
``max_open_turns`` turns, the homes of events without a turn included (the
least recently active is ended, ``auditspan.turn.incomplete="evicted"``),
``max_calls_per_turn`` unfinished calls per turn and ``max_open_calls`` in all
(the oldest is ended, ``auditspan.tool.incomplete="evicted"``), and 10,000
remembered failed and refused calls each. Evicting state may end a span early;
it never costs an audit record: every event still yields its record. Each
eviction is counted in ``stats`` and each episode of them logged once. Turns
idle for ``stale_turn_after_s`` end on the next ``flush()`` or turn start;
``shutdown()`` ends all of them.

Nothing raises into the agent: an internal failure is counted in
``stats.internal_errors``, logged once, and the event's record is still
written.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import re
import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from dataclasses import fields as dataclass_fields
from dataclasses import replace as dataclass_replace
from datetime import datetime, timezone
from functools import partial
from types import MappingProxyType
from typing import IO, Any

import orjson
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import (
    Link,
    NonRecordingSpan,
    Span,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
)

from . import _deep, _fork, _signals
from . import attributes as attr
from ._bounded import BoundReport, run_bounded
from ._ids import DeterministicIds, RandomIds, _InjectingIdGenerator
from ._sanitize import attribute_value, clean_str, preview, truncate
from .audit_log import AuditLogExporter, JsonLinesAuditLog, open_audit_log
from .events import BASE_FIELDS, EVENT_CLASSES, AuditEvent, timestamp_to_ns
from .governance import governance_envelope, is_refusal
from .records import build_record, empty_governance, encode_record
from .redaction import MARKER_PREFIX, REDACTION_ERROR_MARKER, CapturePolicy, Redactor
from .rules import RuleEngine, RuleMatch
from .semantic_types import EVENT_TYPE_OPERATIONS, OperationType

__all__ = ["EVENTS_AS", "CollectorStats", "SpanCollector"]

_logger = logging.getLogger(__name__)

_EVENT_ID = re.compile(r"evt_[0-9A-Za-z_-]{1,128}")
#: The kind inside a redaction marker (``[REDACTED:kind]`` -> ``[REDACTED]`` for the classifier).
_MARKER_KIND = re.compile(r":[a-z0-9_.\-]{1,64}\]")
_TRACE_HEX = re.compile(r"[0-9a-f]{32}")
_SPAN_HEX = re.compile(r"[0-9a-f]{16}")
#: Span times are nanoseconds in a signed 64-bit field on the way (the SDK's int64 checks).
_MAX_SPAN_TIME_NS = 2**63 - 1

#: Longest string auditspan puts on a span unless the OTel length limits say otherwise.
DEFAULT_ATTRIBUTE_LENGTH = 8_192

#: Accepted values of ``events_as``.
EVENTS_AS = ("span_events", "logs", "both")

_TURN_START = "turn_start"
_TURN_END = "turn_end"
_ATTEMPT = "tool_call_attempt"
_COMPLETE = "tool_call_complete"
_FAILURE = "tool_call_failure"
_POLICY = "tool_policy_decision"
_SANDBOX = "sandbox_decision"
_LOOP_WARNING = "tool_loop_warning"
_LOOP_BLOCK = "tool_loop_block"
_HOOK = "hook_mutation"
_ERROR = "error"

#: Events whose record is a tool call's (when they name a tool).
_CALL_EVENTS = frozenset(
    {_ATTEMPT, _COMPLETE, _FAILURE, _POLICY, _SANDBOX, _LOOP_WARNING, _LOOP_BLOCK, _HOOK}
)
#: Events that come before a call's attempt and belong to that call.
_GOVERNING = frozenset({_POLICY, _LOOP_WARNING, _LOOP_BLOCK})
#: Event types a call always remembers having had (``_find(fresh=True)``); others only while few and short.
_TRACKED_TYPES = frozenset({_ATTEMPT, _POLICY, _LOOP_WARNING, _LOOP_BLOCK, _HOOK, _SANDBOX})
_MAX_SEEN_TYPES = 16
_MAX_SEEN_TYPE_LENGTH = 64
#: Failed calls remembered for linking their retries, and refused calls for pairing the failure a
#: runtime may report after a refusal: each at most this many, in all turns together (least recent first).
MAX_REMEMBERED_CALLS = 10_000
#: Seed fields that the span itself carries, so span events need not repeat them.
_ENVELOPE_FIELDS = frozenset({"event_type", "timestamp", "agent_id", "turn_id", "session_id", "tool_name"})
_CONTENT_FIELDS = ("prompt_preview", "content_preview", "arguments_preview", "result_preview")
_CONTENT_FIELD_SET = frozenset(_CONTENT_FIELDS)
#: Fields that hold ids, names and tags rather than content: scrubbed by ``Redactor.scrub_name``
#: (memoised and deterministic, so they stay cheap and still match). ``timestamp`` is parsed and
#: ``event_id`` checked or made by the collector: neither is scrubbed.
_NAME_FIELDS = frozenset(
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
_UNSCRUBBED_FIELDS = frozenset({"timestamp", "event_id"})


class _Everything:
    """The clean names under the ``full`` policy: every one."""

    def __contains__(self, name: object) -> bool:
        return True


_EVERYTHING = _Everything()
#: Names ``_plain_fields`` remembers as clean (they redact to themselves): at most this many, this long.
_CLEAN_NAMES_SIZE = 8192
_CLEAN_NAME_LENGTH = 256
_OPTIONAL_STR_FIELDS = ("agent_id", "turn_id", "session_id")
#: Field names of the seed's envelope and of every known event class (an unknown event's others are
#: scrubbed as names).
_KNOWN_FIELD_NAMES = frozenset(
    {*BASE_FIELDS, "event_id", *(f.name for cls in EVENT_CLASSES.values() for f in dataclass_fields(cls))}
)
_INVALID = "auditspan.invalid_event"
_COERCED = "auditspan.coerced"
#: Event-specific fields and the default that gives their type (from the event classes).
_TYPED_FIELDS: dict[str, tuple[tuple[str, Any], ...]] = {
    cls.event_type: tuple(
        (f.name, f.default) for f in dataclass_fields(cls) if f.name not in BASE_FIELDS and f.init
    )
    for cls in EVENT_CLASSES.values()
}
#: How ``_plain_fields`` treats an event-specific text field: scrubbed as a name (memoised), captured
#: as content, or scrubbed.
_AS_TAG, _AS_CONTENT, _AS_SCRUBBED = range(3)


@dataclass(frozen=True)
class _FieldPlan:
    """An event class of this package: its tag, its own text and number fields (``_plain_fields``)."""

    tag: str
    texts: tuple[tuple[str, int], ...]  # (name, _AS_*)
    numbers: tuple[tuple[str, bool], ...]  # (name, whether a float is allowed)


def _field_plan(tag: str) -> _FieldPlan:
    texts, numbers = [], []
    for name, default in _TYPED_FIELDS[tag]:
        if not isinstance(default, str):
            numbers.append((name, isinstance(default, float)))
        elif name in _NAME_FIELDS:
            texts.append((name, _AS_TAG))
        else:
            texts.append((name, _AS_CONTENT if name in _CONTENT_FIELD_SET else _AS_SCRUBBED))
    return _FieldPlan(tag, tuple(texts), tuple(numbers))


#: The event classes whose ``fields_view()`` holds exactly their declared fields (subclasses may add
#: any), with their plans.
_FIELD_PLANS = {cls: _field_plan(tag) for tag, cls in EVENT_CLASSES.items()}
_DEFAULT_SEVERITY = {cls.event_type: cls.severity for cls in EVENT_CLASSES.values()}
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
#: The semantic type of each event that is not a tool call, by name (an enum's ``.value`` is a Python-level
#: property: looked up once here, not per event).
_EVENT_OPERATION_NAMES = {event_type: op.value for event_type, op in EVENT_TYPE_OPERATIONS.items()}
_AGENT_ACTION = OperationType.AGENT_ACTION.value
_SEED_ORDER = {name: i for i, name in enumerate(BASE_FIELDS)}
_SEVERITY_NUMBERS = {
    "debug": 5,
    "info": 9,
    "notice": 10,
    "warning": 13,
    "warn": 13,
    "error": 17,
    "critical": 21,
}


@dataclass
class CollectorStats:
    """Counters of a ``SpanCollector``; they only grow."""

    events: int = 0
    invalid_events: int = 0
    records: int = 0
    turns_started: int = 0
    turns_ended: int = 0
    turns_evicted: int = 0
    turns_stale: int = 0
    synthetic_turns: int = 0
    tool_spans: int = 0
    spans_unsampled: int = 0
    calls_evicted: int = 0
    home_turns_evicted: int = 0
    failures_forgotten: int = 0
    refusals_forgotten: int = 0
    rule_matches: int = 0
    records_after_shutdown: int = 0
    bad_timestamps: int = 0
    internal_errors: int = 0


class _Event:
    """One event on its way through the collector: its cleaned fields, id and time."""

    __slots__ = ("extra", "fields", "held", "id", "raw_args", "ts")

    def __init__(self, fields: dict[str, Any], event_id: str, ts: int, raw_args: str | None = None) -> None:
        self.fields = fields
        self.id = event_id
        self.ts = ts
        self.extra: list[dict[str, Any]] = []  # records the event gives rise to (rule matches)
        #: Whether the event's own record is held (a governing event of a call not yet attempted).
        self.held = False
        #: The arguments preview before the capture policy (classification only; never recorded).
        self.raw_args = raw_args


@dataclass(eq=False, slots=True)
class _Call:
    """One tool call attempt, from its first governing event to its end."""

    tool_name: str
    trace_id: int
    span_id: int  # chosen at the first event (and injected into the span); the span's own once started
    parent: otel_context.Context | None
    start_ns: int
    thread: tuple[int, int]  # (thread, asyncio task) that made the attempt: see _flow()
    call_id: str | None
    classification: Any = None
    attempt: int = 1
    span: Span | None = None
    attributes: dict[str, Any] = field(default_factory=dict)
    events: list[_Event] = field(default_factory=list)
    seen: set[str] = field(default_factory=set)
    governance: dict[str, Any] | None = None
    links: list[Link] = field(default_factory=list)
    refused: bool = False
    #: The call's records held until its attempt or refusal: (event, governance at its time).
    held: list[tuple[_Event, dict[str, Any] | None]] = field(default_factory=list)
    #: The held records were written early (bound, flush): the classification is fixed from then on.
    written_early: bool = False


@dataclass(eq=False, slots=True)
class _Turn:
    """An open turn (or, with ``span=None``, the home of tool calls that have no turn)."""

    key: tuple[str | None, str | None, str | None]
    span: Span | None
    context: otel_context.Context | None
    trace_id: int
    span_id: int
    agent_id: str | None
    session_id: str | None
    turn_id: str | None
    start_ns: int
    last_ns: int
    last_seen: float
    pending: dict[str, list[_Call]] = field(default_factory=dict)
    open: dict[str, list[_Call]] = field(default_factory=dict)
    calls: int = 0
    agent_name: str | None = None


class _Refused:
    """What is kept of a refused call: a runtime may report the refusal again as a failure."""

    __slots__ = ("classification", "governance", "span_id", "trace_id")

    def __init__(self, call: _Call) -> None:
        self.trace_id = call.trace_id
        self.span_id = call.span_id
        self.governance = call.governance
        self.classification = call.classification


class SpanCollector:
    """Turns audit events into spans, span events / log records and canonical records.

    Every structure it keeps has a bound (``state_sizes()`` reports them):

    =================================  ==========================  =====================================
    structure                          bound                       when full
    =================================  ==========================  =====================================
    open turns, and the homes of       ``max_open_turns``          the least recently active is ended
    events without a turn (together)   (10,000)                    (``auditspan.turn.incomplete=evicted``)
    latest turn per (session, agent)   at most the open turns      leaves with its turn
    unfinished calls of one turn       ``max_calls_per_turn``      one is ended
                                       (1,024)                     (``auditspan.tool.incomplete=evicted``)
    unfinished calls of all turns      ``max_open_calls``          the oldest is ended (same marker)
                                       (100,000)
    span events held by a call not     one per governing event     a new call
    yet attempted                      type (6)
    records held for a call's attempt  ``max_held_records``        the oldest holding call's are written
    (all calls together)               (4,096)                     (never dropped; its type is fixed)
    event types a call remembers       6 + 16 others of <= 64 ch.  not remembered
    failed calls (retry links)         ``MAX_REMEMBERED_CALLS``    the least recent is forgotten: its
                                       (10,000)                    retry counts from attempt 1, unlinked
    refused calls (a later failure     ``MAX_REMEMBERED_CALLS``    the least recent is forgotten: a later
    report is the same call)           (10,000)                    failure report becomes a call of its own
    =================================  ==========================  =====================================

    Evictions are counted in ``stats`` (``turns_evicted``, ``home_turns_evicted``,
    ``calls_evicted``, ``failures_forgotten``, ``refusals_forgotten``) and logged
    once per episode; they never cost an audit record.

    Args:
        tracer_provider: where spans go; the global provider when None.
        logger_provider: where log records go (``events_as`` "logs"/"both");
            the global one when None.
        audit_log: a path, a text/binary stream, an audit-log exporter
            (``export``/``force_flush``/``shutdown``), or None for no log.
        events_as: ``"span_events"`` (default), ``"logs"`` or ``"both"``.
        classifier: maps a tool call to its semantic operation type (an object
            with ``classify(tool_name, arguments_preview, metadata)``).
        redactor: applies the capture policy to previews and secrets to every
            string (an object with ``capture``, ``scrub`` and ``redact_value``).
        rules: a behavioural-rule engine (``observe(record) -> matches``).
        ids: ``RandomIds()`` (default) or ``DeterministicIds()`` for replays.
        max_open_turns, max_calls_per_turn, max_open_calls, stale_turn_after_s: state bounds
            (the table above).
        max_held_records: records of calls not yet attempted held for their
            attempt, at most (4,096); past it the oldest call's are written.
        max_attribute_length: strings auditspan puts on spans are cut to this
            many characters, the cut marked ``…[truncated N chars]`` (default:
            ``OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT`` / ``OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT``,
            else 8,192). Audit records keep every value whole.
        flush_timeout_s: the longest ``flush()`` waits for each exporter.

    Raises:
        ValueError: for a bad ``events_as``, a non-positive bound or an
            ``audit_log`` that cannot be opened (the message names it).
    """

    def __init__(
        self,
        tracer_provider: trace.TracerProvider | None = None,
        logger_provider: Any = None,
        audit_log: str | Any | AuditLogExporter | IO[Any] | None = None,
        events_as: str = "span_events",
        *,
        classifier: Any = None,
        redactor: Any = None,
        rules: Any = None,
        ids: RandomIds | DeterministicIds | None = None,
        max_open_turns: int = 10_000,
        max_calls_per_turn: int = 1_024,
        max_open_calls: int = 100_000,
        stale_turn_after_s: float = 3_600.0,
        flush_timeout_s: float = 10.0,
        max_attribute_length: int | None = None,
        max_held_records: int = 4_096,
    ) -> None:
        if events_as not in EVENTS_AS:
            raise ValueError(f"events_as must be one of {', '.join(EVENTS_AS)}; got {events_as!r}")
        for name, value in (
            ("max_open_turns", max_open_turns),
            ("max_calls_per_turn", max_calls_per_turn),
            ("max_open_calls", max_open_calls),
            ("stale_turn_after_s", stale_turn_after_s),
            ("flush_timeout_s", flush_timeout_s),
            ("max_held_records", max_held_records),
        ):
            if value <= 0:
                raise ValueError(f"{name} must be positive, got {value!r}")
        self._tracer_provider = tracer_provider
        self._logger_provider = logger_provider
        self._tracer: trace.Tracer | None = None
        self._injector: _InjectingIdGenerator | None = None
        self._logger: Any = None
        #: Where ``_write`` sends records: the audit log, and after shutdown ``_AfterShutdown``.
        self._records_to: Any = None
        self.audit_log = open_audit_log(audit_log)
        self.events_as = events_as
        self._span_events = events_as in ("span_events", "both")
        self._log_events = events_as in ("logs", "both")
        if classifier is None:
            from .classification import Classifier

            classifier = Classifier()
        self.classifier = classifier
        self.redactor = redactor if redactor is not None else Redactor()
        self._bind_names(self.redactor)
        if rules is not None and not isinstance(rules, RuleEngine):
            rules = RuleEngine(rules)
        self.rules: RuleEngine | None = rules
        self._ids = ids or RandomIds()
        self._max_open_turns = max_open_turns
        self._max_calls_per_turn = max_calls_per_turn
        self._max_open_calls = max_open_calls
        self._stale_after = stale_turn_after_s
        self._flush_timeout_ms = int(flush_timeout_s * 1000)
        self._max_length = max_attribute_length or _attribute_length_limit()
        self._turns: OrderedDict[tuple[str | None, str | None, str | None], _Turn] = OrderedDict()
        self._latest: dict[tuple[str | None, str | None], tuple[str | None, str | None, str | None]] = {}
        #: Every unfinished call (pending or open), oldest first, with its turn: the global call bound.
        self._unfinished: OrderedDict[_Call, _Turn] = OrderedDict()
        #: (turn key, tool) -> (trace id, span id, attempt) of its last failed call, for the retry's link.
        self._failed: OrderedDict[tuple[Any, str], tuple[int, int, int]] = OrderedDict()
        #: (turn key, tool) -> its last refused call.
        self._refused: OrderedDict[tuple[Any, str], _Refused] = OrderedDict()
        self._bounds = BoundReport(_logger)
        self._lock = threading.RLock()
        self._max_held = max_held_records
        #: Calls holding records (insertion order: the oldest is written first when the bound is hit).
        self._holding: dict[_Call, None] = {}
        self._held_total = 0
        #: Held records let go, waiting to be written (after the lock) by the emit or flush that let them go.
        self._released: list[tuple[dict[str, Any], int]] = []
        self._position = 0
        #: (trace id, span id) of the record being replayed, while it is routed (``emit``).
        self._given: tuple[int, int] | None = None
        self._closed = False
        self._error_logged = False
        self.stats = CollectorStats()
        _live.add(self)
        _fork.track(self, tier=0)

    def _names(self) -> Callable[[str], str]:
        """The name scrubber of the current ``redactor``."""
        if self.redactor is not self._names_redactor:
            self._bind_names(self.redactor)
        return self._scrub_name

    def _bind_names(self, redactor: Any) -> None:
        """Ids and names through ``redactor.scrub_name`` when it has one (a ``Redactor``), else ``scrub``."""
        self._names_redactor = redactor
        self._scrub_name: Callable[[str], str] = getattr(redactor, "scrub_name", None) or redactor.scrub
        # Under ``full`` every name is kept as it is: nothing to look up, nothing to remember.
        verbatim = getattr(redactor, "policy", None) is CapturePolicy.FULL
        self._clean_names: set[str] | _Everything = _EVERYTHING if verbatim else set()

    # ------------------------------------------------------------------ public
    @property
    def audit_log(self) -> AuditLogExporter | None:
        """The audit-log exporter records go to (None: no log). May be replaced."""
        return self._audit_log

    @audit_log.setter
    def audit_log(self, log: AuditLogExporter | None) -> None:
        self._audit_log = log
        self._records_to = log

    def emit(self, event: Any) -> None:
        """Take one audit event. Never raises, at any stack depth.

        Called with too little stack left for its own calls (an agent deep in
        recursion), it finishes the event on a fresh stack, or keeps it for the
        next call with room to spare (``auditspan._deep``): the record is
        written all the same. A dict that carries a canonical record's
        ``telemetry`` (a replayed auditspan log) is recorded under that
        record's own trace and span id.
        """
        if _deep.DEFERRED is not None:
            try:  # noqa: SIM105 -- contextlib.suppress is a call, and there may be no room for one
                _deep.drain()
            except Exception:
                pass  # too deep even for that: a later call drains
        records: list[tuple[dict[str, Any], int]] = []
        written = 0
        routed_once = False  # the event changed the collector's state: never route it again
        try:
            source, given = event, None
            if type(event) is dict and "telemetry" in event:
                given = _given_ids(event.get("telemetry"))
                source = {k: v for k, v in event.items() if k != "telemetry"}
            try:
                fields, ts, raw_args = self._fields_of(source)
            except RecursionError:
                raise  # for the handler at the end: the event is made again with room to spare
            except Exception as exc:
                self._internal_error(exc)
                fields, ts, raw_args = self._cleaned(
                    {"metadata": {_INVALID: clean_str(type(source).__name__)}}
                )
            event_id = ""
            held = False
            try:
                with self._lock:
                    self.stats.events += 1
                    self._position += 1
                    event_id = self._event_id(fields)
                    routed = _Event(fields, event_id, ts, raw_args)
                    self._given = given
                    try:
                        own = self._route(routed)
                    finally:
                        self._given = None
                    routed_once = True
                    held = routed.held
                    # Held records this event let go come first: their events came before it.
                    if self._released:
                        records, self._released = self._released, []
                    if not held:
                        records.append((own, ts))
                    if routed.extra:
                        records.extend((record, ts) for record in routed.extra)
            except RecursionError:
                raise
            except Exception as exc:  # nothing may reach the agent
                self._internal_error(exc)
                routed_once = True
            if not records and not held:
                records = [(self._bare_record(fields, event_id), ts)]
            for record, at in records:
                self._write(record, at)
                written += 1
            if _signals._deferred:  # a signal came while this thread held the collector: handle it now
                _signals.run_deferred()
            return
        except RecursionError:
            pass
        # No room left for our own calls: the rest on a fresh stack, else later. Only call-free code
        # below once a call failed: a handler that calls may raise again. Not routed yet: the whole
        # event again (emit never raises); routed: the records not written yet.
        work: Any = self.emit
        args: tuple[Any, ...] = (event,)
        if records or routed_once:
            work, args = self._write_rest, ([records, written],)
        started = [False]
        try:
            _deep.on_fresh_stack(work, args, {}, started)
        except Exception:
            if not started[0]:
                if _deep.counts["deferred"] < _deep.MAX_DEFERRED:
                    _deep.DEFERRED = (work, args, {}, _deep.DEFERRED)
                    _deep.counts["deferred"] += 1
                else:
                    _deep.counts["lost"] += 1
                    self.stats.internal_errors += 1

    def _write_rest(self, job: list[Any]) -> None:
        """Write the records of ``job`` (records with their times, how many are written) not written yet."""
        records = job[0]
        while job[1] < len(records):
            record, ts = records[job[1]]
            self._write(record, ts)
            job[1] += 1

    def flush(self) -> None:
        """End stale turns and push spans, log records and audit records out (bounded wait)."""
        try:
            _deep.drain()  # events kept from calls too deep in the stack
            with self._lock:
                self._end_stale_turns(time.monotonic())
            self.force_flush(self._flush_timeout_ms)
        except Exception as exc:
            self._internal_error(exc)

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        """Write the held records, flush the audit log, the tracer and logger providers; True if all did.

        A held record (see ``_hold``) written here fixes its call's semantic type:
        the call's attempt, if it still comes, keeps it, so every record of the
        call still agrees.
        """
        self._write_held()
        return self.flush_spans(timeout_millis)

    def flush_spans(self, timeout_millis: int = 30_000) -> bool:
        """Flush the audit log and the providers, leaving held records held (replays call it often)."""
        ok = True
        if self.audit_log is not None:
            ok = self.audit_log.force_flush(timeout_millis) and ok
        for provider in (self._tracer_provider, self._logger_provider):
            flush: Callable[[int], bool] | None = getattr(provider, "force_flush", None)
            if flush is not None:
                # The SDK's batch processors ignore the timeout: bound the wait ourselves.
                ok = run_bounded(partial(flush, timeout_millis), timeout_millis / 1000, "flush") and ok
        return ok

    def shutdown(self) -> None:
        """End every open turn (marked incomplete), flush, and close the audit log.

        Providers are not shut down: they may belong to the application
        (``configure()``'s handle shuts down the ones it created).
        """
        if self._closed:
            return
        try:
            _deep.drain()  # events kept from calls too deep in the stack
            with self._lock:
                self._closed = True
                for turn in list(self._turns.values()):
                    self._end_turn(turn, turn.last_ns, incomplete="shutdown")
            self.force_flush(self._flush_timeout_ms)
        except Exception as exc:
            self._internal_error(exc)
        if self.audit_log is not None:
            if isinstance(self.audit_log, JsonLinesAuditLog):
                # Its own default would wait 30 s more for a disk that did not take the flush above.
                self.audit_log.shutdown(self._flush_timeout_ms)
            else:
                self.audit_log.shutdown()
            self._records_to = _AfterShutdown(self)
        if self.stats.internal_errors:
            _logger.warning("auditspan: %d internal errors during this run", self.stats.internal_errors)

    def _fork_child(self) -> None:
        """After ``os.fork()``, in the child: a fresh lock, and none of the parent's open turns
        (the parent ends them and writes their records; the child's turns are its own)."""
        self._lock = threading.RLock()
        self._turns = OrderedDict()
        self._latest = {}
        self._unfinished = OrderedDict()  # the parent's calls: it ends them
        self._failed = OrderedDict()
        self._refused = OrderedDict()
        # Held records are the parent's calls' too: the parent writes them, the child would duplicate them.
        self._holding = {}
        self._held_total = 0
        self._released = []

    def span_context(
        self, session_id: str | None, turn_id: str | None, tool_call_id: str | None = None
    ) -> SpanContext | None:
        """The span context of an open turn, or of an open tool call in it; None when there is none.

        ``tool_call_id`` is the ``metadata["tool_call_id"]`` the call's events
        carried; with ``turn_id=None`` the call is looked up in every open turn
        of the session. Runtimes use it to make the audit span current for code
        that runs inside a turn or a call (see ``auditspan.context``).
        """
        # The collector keys its state on ids as redacted (``Redactor.scrub_name``): look them up alike.
        scrub_name = self._names()
        session_id = scrub_name(session_id) if session_id else None
        turn_id = scrub_name(turn_id) if turn_id else None
        if tool_call_id:
            tool_call_id = scrub_name(tool_call_id)
        with self._lock:
            if turn_id is not None:
                found = self._turns.get((session_id, turn_id, None))
                candidates = [found] if found is not None else []
            else:
                candidates = [t for t in self._turns.values() if t.session_id == session_id]
            for turn in candidates:
                span = turn.span
                if tool_call_id is not None:
                    calls = [c for same_tool in turn.open.values() for c in same_tool]
                    span = next((c.span for c in calls if c.call_id == tool_call_id), None)
                if span is not None:
                    ctx = span.get_span_context()
                    return ctx if ctx.is_valid else None
        return None

    @property
    def open_turns(self) -> int:
        """How many turns are open now (bounded by ``max_open_turns``)."""
        return sum(1 for turn in self._turns.values() if turn.span is not None)

    def state_sizes(self) -> dict[str, int]:
        """The size of every structure the collector keeps, to watch against its bound (see the class).

        ``turns`` counts open turns and homes of events without a turn together
        (``max_open_turns``); ``unfinished_calls`` the calls pending or open in
        all turns (``max_open_calls``), ``max_calls_in_a_turn`` the most in one
        (``max_calls_per_turn``). Takes the lock and walks the turns: for
        monitoring, not for every event.
        """
        with self._lock:
            turns = list(self._turns.values())
            calls = [c for t in turns for same in (*t.pending.values(), *t.open.values()) for c in same]
            return {
                "turns": len(turns),
                "home_turns": sum(1 for t in turns if t.span is None),
                "latest": len(self._latest),
                "unfinished_calls": len(self._unfinished),
                "calls_in_turns": len(calls),
                "max_calls_in_a_turn": max((t.calls for t in turns), default=0),
                "held_span_events": sum(len(c.events) for c in calls),
                "max_seen_types": max((len(c.seen) for c in calls), default=0),
                "failed_remembered": len(self._failed),
                "refused_remembered": len(self._refused),
                "held_records": self._held_total,
            }

    def _write_held(self, timeout_s: float = -1) -> None:
        """Write every held record and whatever was let go but not yet written.

        ``timeout_s``: the longest to wait for the collector's lock (a signal's
        flush); -1 waits as long as it takes.
        """
        try:
            if self._owns_lock():
                return  # a signal handler inside this thread's emit: the state is mid-change
            if not self._lock.acquire(timeout=timeout_s):
                return
            try:
                for call in list(self._holding):
                    self._release(call, early=True)
                records, self._released = self._released, []
            finally:
                self._lock.release()
        except Exception as exc:
            self._internal_error(exc)
            return
        for record, ts in records:
            self._write(record, ts)

    def _owns_lock(self) -> bool:
        is_owned = getattr(self._lock, "_is_owned", None)
        return bool(is_owned is not None and is_owned())

    # ----------------------------------------------------------------- inputs
    def _fields_of(self, event: Any) -> tuple[dict[str, Any], int, str | None]:
        plan = _FIELD_PLANS.get(type(event))
        if plan is not None:
            # This package's own events: every field present, named by ASCII strings, in seed order.
            fields = event.fields_view()
            return self._plain_fields(fields, plan) or self._cleaned(fields, known=True)
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
            fields = {"metadata": {_INVALID: preview(event, 2_000, as_repr=True)}}
        return self._cleaned(fields)

    def _plain_fields(
        self, fields: dict[str, Any], plan: _FieldPlan
    ) -> tuple[dict[str, Any], int, str | None] | None:
        """``_cleaned`` for one of this package's events whose every value has its declared type.

        The usual case, and the hot path: each value is checked once and
        nothing is coerced. None (and ``fields`` untouched) as soon as a value
        needs ``_cleaned``'s repairs.
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
        for name, _ in plan.texts:
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
        if not 0 < ts < _MAX_SPAN_TIME_NS:
            return None
        # Every value checked: from here on only repairs of non-ASCII text and the capture policy.
        if not f"{stamp}{severity}{agent_id or ''}{turn_id or ''}{session_id or ''}".isascii():
            for name in ("timestamp", "severity", "agent_id", "turn_id", "session_id"):
                value = fields[name]
                if value:
                    fields[name] = clean_str(value)  # lone surrogates cannot be encoded
        raw_args = None
        redactor = self.redactor
        if redactor is not self._names_redactor:  # replaced since: names go through the new one
            self._bind_names(redactor)
        # Ids and names are secrets' hiding places too: scrubbed, and those found clean remembered here
        # (a set lookup instead of a call per name).
        clean = self._clean_names
        value = fields["severity"]
        if value not in clean:
            fields["severity"] = self._name(value)
        for name in ("agent_id", "turn_id", "session_id"):
            value = fields[name]
            if value and value not in clean:
                fields[name] = self._name(value)
        for name, kind in plan.texts:
            value = fields[name]
            if not value.isascii():
                value = fields[name] = clean_str(value)
            if name == "arguments_preview":
                raw_args = value
            if not value:
                continue
            if kind == _AS_TAG:
                if value not in clean:
                    value = fields[name] = self._name(value)
            else:
                value = fields[name] = (
                    redactor.capture(value) if kind == _AS_CONTENT else redactor.scrub(value)
                )
            if value is REDACTION_ERROR_MARKER:
                _out_of_stack()
        if metadata:
            fields["metadata"] = redacted = redactor.redact_value(metadata)
            if type(redacted) is not dict:
                _out_of_stack()
        return fields, ts, raw_args

    def _name(self, value: str) -> str:
        """``scrub_name(value)``; a value that comes back unchanged joins ``_clean_names`` (bounded)."""
        result = self._scrub_name(value)
        if result == value:
            clean = self._clean_names
            if len(value) <= _CLEAN_NAME_LENGTH and isinstance(clean, set):
                if len(clean) >= _CLEAN_NAMES_SIZE:
                    clean.clear()  # many distinct names (turn ids): start over rather than grow
                clean.add(value)
        elif result is REDACTION_ERROR_MARKER:
            _out_of_stack()
        return result

    def _cleaned(
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
        if not 0 < ts < _MAX_SPAN_TIME_NS and ts:
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
            fields["severity"] = _DEFAULT_SEVERITY.get(event_type, "info")
        for name, default in _TYPED_FIELDS.get(event_type, ()):
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
        raw_args = fields.get("arguments_preview")
        if type(raw_args) is not str:
            raw_args = None
        elif not raw_args.isascii():
            raw_args = clean_str(raw_args)
        fields = self._scrubbed(fields, known_names=known)
        if metadata:
            metadata = self.redactor.redact_value(metadata)
            if type(metadata) is not dict:
                _out_of_stack()
        if coerced:
            # The originals of repaired values are evidence, and as open to secrets as any field.
            scrub = self.redactor.scrub
            metadata = {**metadata, _COERCED: {name: scrub(text) for name, text in coerced.items()}}
        fields["metadata"] = metadata
        return (fields if known else _in_seed_order(fields)), ts, raw_args

    # ----------------------------------------------------------------- routing
    def _route(self, ev: _Event) -> dict[str, Any]:
        fields, ts = ev.fields, ev.ts
        event_type: str = fields["event_type"]
        tool_name = fields.get("tool_name")
        if event_type == _TURN_START:
            return self._on_turn_start(ev)
        if event_type == _TURN_END:
            return self._on_turn_end(ev)
        turn = self._turn_for(fields, ts)
        if isinstance(tool_name, str) and tool_name:
            if event_type == _ATTEMPT:
                return self._on_attempt(turn, ev)
            if event_type in (_COMPLETE, _FAILURE):
                return self._on_call_end(turn, ev)
            if event_type in _GOVERNING or (event_type == _HOOK and fields.get("mutated_field") != "result"):
                return self._on_governing(turn, ev)
            if event_type in (_SANDBOX, _HOOK) or self._find(turn.open, fields) is not None:
                return self._on_during_call(turn, ev)
        return self._on_turn_event(turn, ev)

    # turns ----------------------------------------------------------------------
    def _on_turn_start(self, ev: _Event) -> dict[str, Any]:
        fields, ts = ev.fields, ev.ts
        key = self._key(fields)
        turn = self._turns.get(key)
        if turn is None or turn.span is None:
            self._end_stale_turns(time.monotonic())
            turn = self._open_turn(key, fields, ts, synthetic=False)
        else:  # a repeated turn_start: same turn, noted as an event
            self._add_event(turn.span, ev)
        prompt = fields.get("prompt_preview")
        if prompt and turn.span is not None:  # captured: absent under the "none" policy
            text = self._text(prompt)
            turn.span.set_attributes(
                {
                    attr.TURN_PROMPT_PREVIEW: text,
                    attr.GEN_AI_INPUT_MESSAGES: self._messages("user", prompt),
                    attr.INPUT_VALUE: text,
                }
            )
        return self._record(ev, turn.trace_id, turn.span_id, self._type_of_event(_TURN_START))

    def _on_turn_end(self, ev: _Event) -> dict[str, Any]:
        fields, ts = ev.fields, ev.ts
        key = self._key(fields)
        turn = self._turns.get(key)
        if turn is None or turn.span is None:
            turn = self._open_turn(key, fields, ts, synthetic=True)
        record = self._record(ev, turn.trace_id, turn.span_id, self._type_of_event(_TURN_END))
        span = turn.span
        assert span is not None
        attributes: dict[str, Any] = {}
        content = fields.get("content_preview")
        if content:  # captured: absent under the "none" policy
            text = self._text(content)
            attributes[attr.TURN_CONTENT_PREVIEW] = text
            attributes[attr.GEN_AI_OUTPUT_MESSAGES] = self._messages("assistant", content)
            attributes[attr.OUTPUT_VALUE] = text
        count = fields.get("function_calls_count")
        if isinstance(count, int) and not isinstance(count, bool):
            attributes[attr.TURN_FUNCTION_CALLS_COUNT] = count
        span.set_attributes(attributes)
        self._end_turn(turn, ts, incomplete=None)
        return record

    def _key(self, fields: dict[str, Any]) -> tuple[str | None, str | None, str | None]:
        # Cleaned fields: these are strings or None (an empty string is no id).
        return (fields.get("session_id") or None, fields.get("turn_id") or None, None)

    def _open_turn(
        self,
        key: tuple[str | None, str | None, str | None],
        fields: dict[str, Any],
        ts: int,
        *,
        synthetic: bool,
    ) -> _Turn:
        session_id, turn_id, _ = key
        agent_id = _opt_str(fields.get("agent_id"))
        metadata = fields["metadata"]
        agent_name = _opt_str(metadata.get("agent_name")) or agent_id
        parent = self._current_parent()
        anchor = f"{session_id}|{turn_id}|{fields.get('timestamp')}"
        trace_id = self._parent_trace_id(parent) or self._ids.trace_id(anchor)
        span_id = self._ids.span_id("turn|" + anchor)
        given = self._given
        if given is not None:
            trace_id = given[0]
            if fields.get("event_type") not in _CALL_EVENTS or not fields.get("tool_name"):
                span_id = given[1]  # a turn's own record: its span id is the turn's
        attributes: dict[str, Any] = {
            attr.GEN_AI_OPERATION_NAME: attr.OPERATION_INVOKE_AGENT,
        }
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
            self.stats.synthetic_turns += 1
        name = f"{attr.OPERATION_INVOKE_AGENT} {agent_name}" if agent_name else attr.OPERATION_INVOKE_AGENT
        span = self._start_span(name, parent, ts, attributes, trace_id, span_id)
        ctx = span.get_span_context()
        turn = _Turn(
            key=key,
            span=span,
            context=trace.set_span_in_context(span),
            trace_id=ctx.trace_id if ctx.is_valid else trace_id,
            span_id=ctx.span_id if ctx.is_valid else span_id,
            agent_id=agent_id,
            session_id=session_id,
            turn_id=turn_id,
            start_ns=ts,
            last_ns=ts,
            last_seen=time.monotonic(),
        )
        turn.agent_name = agent_name
        self._turns[key] = turn
        self._latest[(session_id, agent_id)] = key
        self.stats.turns_started += 1
        self._enforce_turn_bound()
        return turn

    def _enforce_turn_bound(self) -> None:
        """End the least recently active turns (or homes of events without a turn) beyond the bound."""
        while len(self._turns) > self._max_open_turns:
            oldest = next(iter(self._turns.values()))
            if oldest.span is None:
                self.stats.home_turns_evicted += 1
            else:
                self.stats.turns_evicted += 1
            self._bounds.hit(
                "open turns",
                f"max_open_turns={self._max_open_turns}: the least recently active turn is ended "
                f'({attr.TURN_INCOMPLETE}="evicted")',
            )
            self._end_turn(oldest, oldest.last_ns, incomplete="evicted")

    def _turn_for(self, fields: dict[str, Any], ts: int) -> _Turn:
        """The turn an event belongs to (see the module doc for events without one)."""
        session_id: str | None = fields.get("session_id") or None  # cleaned: a string or None
        turn_id: str | None = fields.get("turn_id") or None
        agent_id: str | None = fields.get("agent_id") or None
        if turn_id is not None:
            key: tuple[str | None, str | None, str | None] = (session_id, turn_id, None)
            turn = self._turns.get(key)
            if turn is None:
                turn = self._open_turn(key, fields, ts, synthetic=True)
        else:
            latest = self._latest.get((session_id, agent_id))
            turn = self._turns.get(latest) if latest is not None else None
            if turn is None:
                key = (session_id, None, agent_id)
                turn = self._turns.get(key)
                if turn is None:
                    turn = _Turn(key, None, None, 0, 0, agent_id, session_id, None, ts, ts, time.monotonic())
                    self._turns[key] = turn
                    self._enforce_turn_bound()  # homes count against max_open_turns like turns
        turn.last_seen = time.monotonic()
        turn.last_ns = max(turn.last_ns, ts)
        self._turns.move_to_end(turn.key)
        return turn

    def _end_turn(self, turn: _Turn, ts: int, *, incomplete: str | None) -> None:
        for calls in list(turn.pending.values()) + list(turn.open.values()):
            for call in list(calls):
                self._finish_unended_call(turn, call, max(ts, call.start_ns))
        span = turn.span
        if span is not None:
            if incomplete is not None:
                span.set_attribute(attr.TURN_INCOMPLETE, incomplete)
                span.set_attribute(attr.ERROR_TYPE, attr.ERROR_TYPE_TURN_INCOMPLETE)
                span.set_status(Status(StatusCode.ERROR, f"turn did not end ({incomplete})"))
            span.end(end_time=max(ts, turn.start_ns))
            self.stats.turns_ended += 1
        self._turns.pop(turn.key, None)
        latest_key = (turn.session_id, turn.agent_id)
        if self._latest.get(latest_key) == turn.key:
            del self._latest[latest_key]

    def _end_stale_turns(self, now: float) -> None:
        while self._turns:
            oldest = next(iter(self._turns.values()))
            if now - oldest.last_seen < self._stale_after:
                return
            self.stats.turns_stale += 1
            self._end_turn(oldest, oldest.last_ns, incomplete="stale")

    def _on_turn_event(self, turn: _Turn, ev: _Event) -> dict[str, Any]:
        fields, ts = ev.fields, ev.ts
        """An event of the turn itself: errors and event types without a tool call."""
        event_type = fields["event_type"]
        span = turn.span
        if span is None:
            current = trace.get_current_span()
            if current.get_span_context().is_valid:
                span = current
            else:  # nothing to hang it on: a span of its own, as short as the event
                span = self._start_span(
                    attr.EVENT_NAME_PREFIX + event_type,
                    None,
                    ts,
                    {},
                    *(
                        self._given
                        or (
                            self._ids.trace_id(f"lone|{self._position}"),
                            self._ids.span_id(f"lone|{self._position}|{fields.get('timestamp')}"),
                        )
                    ),
                )
                self._decorate_error(span, fields)
                self._add_event(span, ev)
                span.end(end_time=ts)
                return self._record(ev, *_ids_of(span), self._type_of_event(event_type))
        self._decorate_error(span, fields)
        trace_id, span_id = _ids_of(span)
        self._add_event(span, ev)
        return self._record(ev, trace_id, span_id, self._type_of_event(event_type))

    def _decorate_error(self, span: Span, fields: dict[str, Any]) -> None:
        if fields["event_type"] == _ERROR:
            error_type = self._text(fields.get("error_type") or "") or attr.ERROR_TYPE_OTHER
            span.set_attribute(attr.ERROR_TYPE, error_type)
            span.set_status(Status(StatusCode.ERROR, self._text(fields.get("error_message") or "")))

    @staticmethod
    def _type_of_event(event_type: str) -> str:
        return _EVENT_OPERATION_NAMES.get(event_type, _AGENT_ACTION)

    # tool calls -------------------------------------------------------------------
    def _new_call(self, turn: _Turn, fields: dict[str, Any], ts: int) -> _Call:
        tool_name: str = fields["tool_name"]
        metadata = fields["metadata"]
        call_id = _opt_str(metadata.get("tool_call_id") or metadata.get("call_id"))
        if turn.span is not None:
            parent, trace_id = turn.context, turn.trace_id
        else:
            parent = self._current_parent()
            trace_id = self._parent_trace_id(parent) or (
                self._given[0]
                if self._given is not None
                else self._ids.trace_id(
                    f"call|{turn.session_id}|{tool_name}|{fields.get('timestamp')}|{self._position}"
                )
            )
        span_id = (
            self._given[1]
            if self._given is not None
            else self._ids.span_id(
                f"call|{trace_id:032x}|{tool_name}|{fields.get('timestamp')}|{self._position}"
            )
        )
        call = _Call(
            tool_name=tool_name,
            trace_id=trace_id,
            span_id=span_id,
            parent=parent,
            start_ns=ts,
            thread=_flow(),
            call_id=call_id,
        )
        call.classification = self._classify(tool_name, "", metadata)
        turn.calls += 1
        unfinished = self._unfinished
        unfinished[call] = turn
        if turn.calls > self._max_calls_per_turn:
            self._evict_one_call(turn)
        if len(unfinished) > self._max_open_calls:
            # The oldest unfinished call of any turn (never the new one: it is last).
            oldest, its_turn = next(iter(unfinished.items()))
            self._evict_call(its_turn, oldest, f"max_open_calls={self._max_open_calls}")
        return call

    def _evict_one_call(self, turn: _Turn) -> None:
        for calls in list(turn.pending.values()) + list(turn.open.values()):
            if calls:
                self._evict_call(turn, calls[0], f"max_calls_per_turn={self._max_calls_per_turn}")
                return

    def _evict_call(self, turn: _Turn, call: _Call, bound: str) -> None:
        self.stats.calls_evicted += 1
        self._bounds.hit("unfinished tool calls", f'{bound}: one is ended ({attr.TOOL_INCOMPLETE}="evicted")')
        self._finish_unended_call(turn, call, turn.last_ns, evicted=True)

    def _find(
        self, calls_by_tool: dict[str, list[_Call]], fields: dict[str, Any], *, fresh: bool = False
    ) -> _Call | None:
        """The call of this tool an event belongs to: same call id, else same thread, else the oldest.

        With ``fresh``, a call that already had an event of this type is passed
        over (two parallel calls' policy decisions, or sandbox decisions, go to
        one each even when thread information is missing, as in a replay).
        """
        calls = calls_by_tool.get(fields["tool_name"])
        if not calls:
            return None
        metadata = fields["metadata"]
        call_id = metadata.get("tool_call_id") or metadata.get("call_id")
        if call_id is not None:
            for call in calls:
                if call.call_id == call_id:
                    return call
        if len(calls) == 1:
            return calls[0]
        thread = _flow()
        ordered = [c for c in calls if c.thread == thread] + [c for c in calls if c.thread != thread]
        if fresh:
            event_type = fields["event_type"]
            return next((c for c in ordered if event_type not in c.seen), ordered[0])
        return ordered[0]

    @staticmethod
    def _remove(calls_by_tool: dict[str, list[_Call]], call: _Call) -> None:
        calls = calls_by_tool.get(call.tool_name)
        if calls and call in calls:
            calls.remove(call)
            if not calls:
                del calls_by_tool[call.tool_name]

    def _pending_call(self, turn: _Turn, fields: dict[str, Any], ts: int) -> _Call:
        """The not-yet-attempted call a governing event belongs to (new if it already had one)."""
        call = self._find(turn.pending, fields, fresh=True)
        if call is None or fields["event_type"] in call.seen:
            call = self._new_call(turn, fields, ts)
            turn.pending.setdefault(call.tool_name, []).append(call)
        return call

    def _on_governing(self, turn: _Turn, ev: _Event) -> dict[str, Any]:
        fields, ts = ev.fields, ev.ts
        call = self._pending_call(turn, fields, ts)
        event_type = fields["event_type"]
        call.seen.add(event_type)
        record_governance = call.governance
        if event_type == _POLICY:
            call.governance = self._governance(fields)
            record_governance = call.governance
            decision = str(fields.get("action") or "")
            call.attributes[attr.POLICY_DECISION] = call.governance.get("decision") or decision
            if fields.get("policy_source"):
                call.attributes[attr.POLICY_SOURCE] = self._text(fields["policy_source"])
            call.events.append(ev)
            if is_refusal(call.governance.get("decision")):
                call.refused = True
        elif event_type == _LOOP_WARNING:
            level = str(fields.get("severity_level") or "")
            call.attributes[attr.LOOP_STATUS] = level or "warning"
            # The runtime checks every call and reports "ok"/"none": an attribute, not an event.
            if not (level == "ok" and fields.get("pattern") in ("none", "", None)):
                call.events.append(ev)
        else:  # loop block or argument hook
            if event_type == _LOOP_BLOCK:
                call.attributes[attr.LOOP_STATUS] = "blocked"
                call.refused = True
            call.events.append(ev)
        record = self._hold(ev, call, record_governance)
        if call.refused:
            # No attempt will come: the call is what its name says, and its records go out now.
            self._remove(turn.pending, call)
            outcome = attr.OUTCOME_BLOCKED if event_type == _LOOP_BLOCK else attr.OUTCOME_DENIED
            self._start_call_span(turn, call, fields)
            self._release(call)
            self._end_call(turn, call, ts, outcome=outcome, fields=fields)
            refused = self._refused
            key = (turn.key, call.tool_name)
            refused.pop(key, None)  # the latest refusal goes last
            refused[key] = _Refused(call)
            if len(refused) > MAX_REMEMBERED_CALLS:
                refused.popitem(last=False)
                self.stats.refusals_forgotten += 1
                self._bounds.hit(
                    "refused calls remembered",
                    f"{MAX_REMEMBERED_CALLS}: the least recent is forgotten (a failure reported for it "
                    "later becomes a call of its own)",
                )
        return record

    def _hold(self, ev: _Event, call: _Call, governance: dict[str, Any] | None) -> dict[str, Any]:
        """Hold the record of an event that comes before its call's attempt; ``{}`` when held.

        Its semantic type, target and parameters depend on the attempt's
        arguments, so the record is written with the attempt (or the refusal,
        or the call's end without one), classified like every other record of
        the call. Memory stays flat: a call holds at most one record of each
        kind that precedes an attempt (loop check, policy decision, argument
        hook, sandbox decision -- a repeat starts the next call), and past
        ``max_held_records`` in all the oldest holding call's records are
        written at once -- never dropped -- and that call's type is fixed from
        then on.
        """
        if self._closed:  # after shutdown nothing would write it later: at once, and the type is fixed
            call.written_early = True
        if call.written_early:
            return self._held_record(ev, call, governance)
        call.held.append((ev, governance))
        ev.held = True
        if len(call.held) == 1:
            self._holding[call] = None
        self._held_total += 1
        while self._held_total > self._max_held and self._holding:
            self._release(next(iter(self._holding)), early=True)
        return {}

    def _release(self, call: _Call, *, early: bool = False) -> None:
        """Let the call's held records go (``_released``, written by the current emit or flush)."""
        if early and call.span is None:
            call.written_early = True
        held = call.held
        if not held:
            return
        call.held = []
        self._holding.pop(call, None)
        self._held_total -= len(held)
        for ev, governance in held:
            self._released.append((self._held_record(ev, call, governance), ev.ts))

    def _held_record(self, ev: _Event, call: _Call, governance: dict[str, Any] | None) -> dict[str, Any]:
        """A held event's record: the call's classification, the governance as it was at the event."""
        record = self._call_record(ev, call, governance=governance)
        if governance is None and call.governance is not None:
            record["governance"] = empty_governance()  # no decision had been made yet at its time
        return record

    def _on_attempt(self, turn: _Turn, ev: _Event) -> dict[str, Any]:
        fields, ts = ev.fields, ev.ts
        call = self._find(turn.pending, fields)
        if call is not None:
            self._remove(turn.pending, call)
        else:
            call = self._new_call(turn, fields, ts)
        previous = self._failed.pop((turn.key, call.tool_name), None) if self._failed else None
        if previous is not None:
            failed_trace, failed_span, failed_attempt = previous
            call.attempt = failed_attempt + 1
            call.links.append(Link(SpanContext(failed_trace, failed_span, False, TraceFlags(1))))
        attempt = fields["metadata"].get("attempt")
        if isinstance(attempt, int) and not isinstance(attempt, bool) and attempt > 0:
            call.attempt = attempt
        args = fields.get("arguments_preview")
        args_text = args if isinstance(args, str) else ""
        if not call.written_early:  # records already written keep their type: the call's stays the same
            call.classification = self._classify_arguments(
                call.tool_name, args_text, ev.raw_args, fields["metadata"]
            )
        if args_text:  # captured: absent under the "none" policy
            text = self._text(args_text)
            call.attributes[attr.TOOL_ARGUMENTS_PREVIEW] = text
            call.attributes[attr.GEN_AI_TOOL_CALL_ARGUMENTS] = text
            call.attributes[attr.INPUT_VALUE] = text
        call.seen.add(_ATTEMPT)
        self._start_call_span(turn, call, fields)
        self._release(call)
        turn.open.setdefault(call.tool_name, []).append(call)
        record = self._call_record(ev, call)
        if self.rules is not None:
            for match in self.rules.observe(record):
                ev.extra.append(self._on_rule_match(call, record, match, ev.ts))
        return record

    def _on_rule_match(
        self, call: _Call, record: dict[str, Any], match: RuleMatch, ts: int
    ) -> dict[str, Any]:
        """A behavioural rule fired on this call: span event, attributes and a record of its own."""
        self.stats.rule_matches += 1
        fields: dict[str, Any] = {name: record[name] for name in BASE_FIELDS}
        fields.update(
            event_type=attr.EVENT_TYPE_RULE_MATCH,
            severity="warning",
            metadata={},
            rule_name=match.rule,
            action=match.action,
            trigger_event_id=match.trigger_event_id,
            trigger_span_id=match.trigger_span_id,
            trigger_type=match.trigger_type,
            trigger_target=match.trigger_target,
            match_event_id=match.event_id,
            match_type=match.type,
            match_target=match.target,
            elapsed_s=match.elapsed_s,
            trigger_tool_name=match.trigger_tool_name or "",
            trigger_turn_id=match.trigger_turn_id or "",
        )
        # Its id from its content alone (the match's and the trigger's event ids make it unique): the
        # same match gets the same id whatever position its call's records have in a replayed log.
        match_event = _Event(fields, self._ids.event_id(fields, 0), ts)
        span = call.span
        if span is not None:
            span.set_attribute(attr.RULE_ACTION, match.action)
            span.set_attribute(attr.RULE_NAME, match.rule)
            self._add_event(span, match_event)
        governance = {
            "decision": match.action,
            "policies_evaluated": [match.rule],
            "trust_score_at_time": None,
        }
        return self._call_record(match_event, call, governance=governance)

    def _on_during_call(self, turn: _Turn, ev: _Event) -> dict[str, Any]:
        fields, ts = ev.fields, ev.ts
        call = self._find(turn.open, fields, fresh=True)
        if call is not None:
            event_type = fields["event_type"]
            if event_type in _TRACKED_TYPES or (
                len(call.seen) < _MAX_SEEN_TYPES and len(event_type) <= _MAX_SEEN_TYPE_LENGTH
            ):
                call.seen.add(event_type)
        else:
            call = self._pending_call(turn, fields, ts)
            call.seen.add(fields["event_type"])
            call.events.append(ev)
            return self._hold(ev, call, call.governance)
        if fields["event_type"] == _SANDBOX:
            span = call.span
            assert span is not None
            attributes: dict[str, Any] = {}
            if fields.get("backend_type"):
                attributes[attr.SANDBOX_BACKEND] = self._text(fields["backend_type"])
            if fields.get("context"):
                attributes[attr.SANDBOX_CONTEXT] = self._text(fields["context"])
            span.set_attributes(attributes)
        self._add_event(call.span, ev)
        return self._call_record(ev, call)

    def _on_call_end(self, turn: _Turn, ev: _Event) -> dict[str, Any]:
        fields, ts = ev.fields, ev.ts
        refused = self._refused.pop((turn.key, fields["tool_name"]), None) if self._refused else None
        if (
            refused is not None
            and fields["event_type"] == _FAILURE
            and self._find(turn.open, fields) is None
            and self._find(turn.pending, fields) is None
        ):
            # The successor runtime follows a denial or loop block with a failure
            # (ToolPolicyViolation / ToolLoopError): that is the refused call, not a new one.
            return self._record(
                ev,
                refused.trace_id,
                refused.span_id,
                _AGENT_ACTION,
                governance=refused.governance,
                classification=refused.classification,
            )
        call = self._find(turn.open, fields)
        if call is not None:
            self._remove(turn.open, call)
        else:
            call = self._find(turn.pending, fields)
            if call is not None:
                self._remove(turn.pending, call)
            else:  # the attempt was never seen: the span covers the reported duration
                call = self._new_call(turn, fields, ts)
                duration = fields.get("duration_ms")
                if isinstance(duration, (int, float)) and not isinstance(duration, bool) and duration > 0:
                    # Not before 1970, whatever the duration claims (OTLP times are unsigned).
                    call.start_ns = max(1, ts - int(min(duration, 1e15) * 1_000_000))
            self._start_call_span(turn, call, fields)
            self._release(call)
        record = self._call_record(ev, call)
        failed = fields["event_type"] == _FAILURE
        self._end_call(
            turn, call, ts, outcome=attr.OUTCOME_FAILURE if failed else attr.OUTCOME_SUCCESS, fields=fields
        )
        remembered = self._failed
        if failed:
            key = (turn.key, call.tool_name)
            remembered.pop(key, None)  # the latest failure goes last
            remembered[key] = (call.trace_id, call.span_id, call.attempt)
            if len(remembered) > MAX_REMEMBERED_CALLS:
                remembered.popitem(last=False)
                self.stats.failures_forgotten += 1
                self._bounds.hit(
                    "failed calls remembered",
                    f"{MAX_REMEMBERED_CALLS}: the least recent is forgotten (its retry counts from "
                    "attempt 1, without a link)",
                )
        elif remembered:
            remembered.pop((turn.key, call.tool_name), None)
        return record

    def _finish_unended_call(self, turn: _Turn, call: _Call, ts: int, *, evicted: bool = False) -> None:
        if call.span is None:
            self._remove(turn.pending, call)
            self._start_call_span(turn, call, None)
            self._release(call)
            self._end_call(turn, call, ts, outcome=attr.OUTCOME_NOT_ATTEMPTED, fields=None, evicted=evicted)
        else:
            self._remove(turn.open, call)
            self._end_call(turn, call, ts, outcome=attr.OUTCOME_INCOMPLETE, fields=None, evicted=evicted)

    def _start_call_span(self, turn: _Turn, call: _Call, fields: dict[str, Any] | None) -> None:
        attributes: dict[str, Any] = {
            attr.GEN_AI_OPERATION_NAME: attr.OPERATION_EXECUTE_TOOL,
            attr.GEN_AI_TOOL_NAME: call.tool_name,
            attr.GEN_AI_TOOL_TYPE: attr.TOOL_TYPE_FUNCTION,
            attr.TOOL_ATTEMPT: call.attempt,
        }
        metadata = fields["metadata"] if fields is not None else {}
        tool_type = metadata.get("tool_type")
        if isinstance(tool_type, str) and tool_type:
            attributes[attr.GEN_AI_TOOL_TYPE] = tool_type
        if call.call_id:
            attributes[attr.GEN_AI_TOOL_CALL_ID] = call.call_id
        if turn.agent_id:
            attributes[attr.GEN_AI_AGENT_ID] = turn.agent_id
        if turn.agent_name or turn.agent_id:
            attributes[attr.GEN_AI_AGENT_NAME] = turn.agent_name or turn.agent_id
        if turn.session_id:
            attributes[attr.GEN_AI_CONVERSATION_ID] = turn.session_id
        if turn.turn_id:
            attributes[attr.TURN_ID] = turn.turn_id
        classification = call.classification
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
        attributes.update(call.attributes)
        span = self._start_span(
            f"{attr.OPERATION_EXECUTE_TOOL} {call.tool_name}",
            call.parent,
            call.start_ns,
            attributes,
            call.trace_id,
            call.span_id,
            links=call.links,
        )
        call.span = span
        ctx = span.get_span_context()
        call.span_id = ctx.span_id if ctx.is_valid else 0  # what the call's records carry from now on
        self.stats.tool_spans += 1
        for pending in call.events:
            self._add_event(span, pending)
        call.events.clear()

    def _end_call(
        self,
        turn: _Turn,
        call: _Call,
        ts: int,
        *,
        outcome: str,
        fields: dict[str, Any] | None,
        evicted: bool = False,
    ) -> None:
        span = call.span
        assert span is not None
        attributes: dict[str, Any] = {attr.TOOL_OUTCOME: outcome}  # set at once: one lock, one check
        status = None
        turn.calls = max(0, turn.calls - 1)
        self._unfinished.pop(call, None)
        if evicted:
            attributes[attr.TOOL_INCOMPLETE] = "evicted"
        if fields is not None and fields["event_type"] == _COMPLETE:
            if fields.get("status"):
                attributes[attr.TOOL_STATUS] = self._text(fields["status"])
            duration = fields.get("duration_ms")
            if isinstance(duration, (int, float)) and not isinstance(duration, bool):
                attributes[attr.TOOL_DURATION_MS] = float(duration)
            if fields.get("result_preview"):  # captured: absent under the "none" policy
                text = self._text(fields["result_preview"])
                attributes[attr.TOOL_RESULT_PREVIEW] = text
                attributes[attr.GEN_AI_TOOL_CALL_RESULT] = text
                attributes[attr.OUTPUT_VALUE] = text
        elif outcome == attr.OUTCOME_FAILURE and fields is not None:
            error_type = self._text(fields.get("error_type") or "") or attr.ERROR_TYPE_OTHER
            message = self._text(fields.get("error_message") or "")
            attributes[attr.ERROR_TYPE] = error_type
            if message:
                attributes[attr.TOOL_ERROR_MESSAGE] = message
            status = Status(
                StatusCode.ERROR, self._text(f"{error_type}: {message}" if message else error_type)
            )
        elif outcome in (attr.OUTCOME_DENIED, attr.OUTCOME_BLOCKED):
            error_type = attr.ERROR_TYPE_DENIED if outcome == attr.OUTCOME_DENIED else attr.ERROR_TYPE_BLOCKED
            attributes[attr.ERROR_TYPE] = error_type
            source = self._text(fields.get("policy_source") or fields.get("pattern") or "") if fields else ""
            status = Status(StatusCode.ERROR, self._text(f"{outcome} by {source}" if source else outcome))
        elif outcome == attr.OUTCOME_INCOMPLETE:
            attributes[attr.ERROR_TYPE] = attr.ERROR_TYPE_TOOL_INCOMPLETE
            status = Status(
                StatusCode.ERROR,
                "tool call evicted before it completed (state bound)"
                if evicted
                else "tool call did not complete before its turn ended",
            )
        span.set_attributes(attributes)
        if status is not None:
            span.set_status(status)
        span.end(end_time=max(ts, call.start_ns))

    def _classify(self, tool_name: str, arguments_preview: str, metadata: dict[str, Any]) -> Any:
        if MARKER_PREFIX in tool_name:
            # A redacted name: the marker's kind ("github_token") says nothing about what the tool does.
            tool_name = _MARKER_KIND.sub("]", tool_name)
        try:
            return self.classifier.classify(tool_name, arguments_preview, metadata)
        except RecursionError:
            raise  # emit finishes the event on a fresh stack
        except Exception as exc:
            self._internal_error(exc)
            return None

    def _classify_arguments(
        self, tool_name: str, captured: str, raw: str | None, metadata: dict[str, Any]
    ) -> Any:
        """Classify an attempt on its arguments as sent, so that redaction does not hide its target.

        The capture policy masks secrets in the preview -- and with them what
        classification reads (an e-mail recipient is masked, so ``send_email``
        would lose its target, the recipient's domain). So the classifier reads
        the preview as the agent sent it, and whatever it derives from it is then
        treated like any other captured string: the target through ``scrub``,
        the parameters through ``redact_value`` (a URL password or a token in a
        path never reaches a span or a record). When the policy dropped the
        preview (``NONE``) the classifier gets nothing, as before: no content
        reaches the record by way of its target either. When capturing changed
        nothing there is nothing to clean.
        """
        if raw is None or raw == captured or not captured:
            return self._classify(tool_name, captured, metadata)
        classification = self._classify(tool_name, raw, metadata)
        if classification is None:
            return None
        try:
            redactor = self.redactor
            target = classification.target
            if isinstance(target, str) and target:
                target = redactor.scrub(target)
            parameters = classification.parameters
            if parameters:
                parameters = MappingProxyType(redactor.redact_value(dict(parameters)))
            if target == classification.target and parameters is classification.parameters:
                return classification
            return dataclass_replace(classification, target=target, parameters=parameters)
        except RecursionError:
            raise
        except Exception as exc:  # fail closed: what the redacted preview shows
            self._internal_error(exc)
            return self._classify(tool_name, captured, metadata)

    @staticmethod
    def _governance(fields: dict[str, Any]) -> dict[str, Any]:
        return governance_envelope(fields.get("action"), fields.get("policy_source"), fields["metadata"])

    # ------------------------------------------------------------------ spans
    def _get_tracer(self) -> trace.Tracer:
        if self._tracer is None:
            provider = self._tracer_provider or trace.get_tracer_provider()
            from . import __version__

            tracer = provider.get_tracer(attr.INSTRUMENTATION_SCOPE, __version__)
            limits = getattr(tracer, "_span_limits", None)  # the SDK would cut silently: mark it ourselves
            limit = getattr(limits, "max_attribute_length", None)
            if isinstance(limit, int) and 0 < limit < self._max_length:
                self._max_length = limit
            inner = getattr(tracer, "id_generator", None)
            if inner is not None:
                self._injector = _InjectingIdGenerator(inner)
                tracer.id_generator = self._injector  # type: ignore[attr-defined]
            self._tracer = tracer
        return self._tracer

    def _current_parent(self) -> otel_context.Context | None:
        current = otel_context.get_current()
        if trace.get_current_span(current).get_span_context().is_valid:
            return current
        return None

    @staticmethod
    def _parent_trace_id(parent: otel_context.Context | None) -> int:
        if parent is None:
            return 0
        return trace.get_current_span(parent).get_span_context().trace_id

    def _start_span(
        self,
        name: str,
        parent: otel_context.Context | None,
        start_ns: int,
        attributes: dict[str, Any],
        trace_id: int,
        span_id: int,
        links: list[Link] | None = None,
    ) -> Span:
        tracer = self._get_tracer()
        injector = self._injector
        if injector is not None:
            injector.set_next(trace_id, span_id)
        try:
            # An explicit empty context makes a root span even when the agent has a current span.
            span = tracer.start_span(
                name,
                context=parent if parent is not None else otel_context.Context(),
                kind=SpanKind.INTERNAL,
                attributes=attributes,
                links=links or None,
                start_time=start_ns,
            )
        finally:
            if injector is not None:
                injector.clear()
        if not span.is_recording():
            self.stats.spans_unsampled += 1  # its records are still written, with its ids
        return span

    def _text(self, value: Any) -> str:
        """A string for a span attribute or status, cut (and marked) at ``max_attribute_length``."""
        text = value if isinstance(value, str) else clean_str(value)
        return text if len(text) <= self._max_length else truncate(text, self._max_length)[0]

    def _messages(self, role: str, text: str) -> str:
        """One message in the GenAI conventions' JSON shape, within ``max_attribute_length``.

        The text is cut before it is encoded (a cut JSON string would not parse).
        """
        message: dict[str, Any] = {"role": role, "parts": [{"type": "text", "content": text}]}
        if role == "assistant":
            message["finish_reason"] = "stop"
        encoded = orjson.dumps([message]).decode()
        room = len(text)
        while len(encoded) > self._max_length and room > 1:  # escapes make the JSON longer than the text
            room = max(1, min(room - 1, room * (self._max_length - 96) // len(encoded)))
            message["parts"][0]["content"] = truncate(text, room)[0]
            encoded = orjson.dumps([message]).decode()
        return encoded

    def _event_attributes(self, fields: dict[str, Any], event_id: str | None) -> dict[str, Any]:
        attributes: dict[str, Any] = {attr.EVENT_TYPE: fields["event_type"]}
        if event_id:
            attributes[attr.EVENT_ID] = event_id
        limit = self._max_length
        for name, value in fields.items():
            if value is None or name in _ENVELOPE_FIELDS:
                continue
            key = _EVENT_FIELD_KEYS.get(name) or attr.EVENT_FIELD_PREFIX + name
            if name == "metadata":
                if value:
                    attributes[key] = self._text(encode_record(value).decode().rstrip("\n"))
            elif isinstance(value, str):  # _text, inline: most fields are short strings
                attributes[key] = value if len(value) <= limit else truncate(value, limit)[0]
            else:  # numbers beyond 64 bits and containers become (JSON) strings
                attributes[key] = attribute_value(value, max_length=limit)
        return attributes

    def _add_event(self, span: Span | None, ev: _Event) -> None:
        """Record an event on ``span`` as a span event (log records are written per record, in ``_write``)."""
        if span is not None and self._span_events:
            span.add_event(
                attr.EVENT_NAME_PREFIX + ev.fields["event_type"],
                self._event_attributes(ev.fields, ev.id),
                ev.ts,
            )

    # ---------------------------------------------------------------- records
    def _record(
        self,
        ev: _Event,
        trace_id: int,
        span_id: int,
        operation_type: str,
        *,
        governance: dict[str, Any] | None = None,
        classification: Any = None,
    ) -> dict[str, Any]:
        fields = ev.fields
        parameters: dict[str, Any] = {}
        target = None
        if classification is not None:
            operation_type = classification.type
            target = classification.target
            parameters = dict(classification.parameters)
            if classification.custom_type:
                parameters.setdefault("custom_type", classification.custom_type)
        elif operation_type == _AGENT_ACTION:
            # An event of no tool call (an error, a skill used): its kind is the custom type.
            parameters["custom_type"] = fields["event_type"]
        duration = fields.get("duration_ms") if fields["event_type"] == _COMPLETE else None
        if isinstance(duration, bool) or not isinstance(duration, (int, float)):
            duration = None
        return build_record(
            fields,
            event_id=ev.id,
            operation_type=operation_type,
            target=target,
            parameters=parameters,
            governance=governance,
            duration_ms=duration,
            trace_id=f"{trace_id:032x}" if trace_id else None,
            span_id=f"{span_id:016x}" if span_id else None,
        )

    def _call_record(
        self, ev: _Event, call: _Call, *, governance: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        span_id = call.span_id
        if call.span is None and self._injector is None and self._tracer is not None:
            span_id = 0  # no way to give the span the id chosen now
        return self._record(
            ev,
            call.trace_id,
            span_id,
            "AGENT_ACTION",
            governance=governance if governance is not None else call.governance,
            classification=call.classification,
        )

    def _scrubbed(self, fields: dict[str, Any], *, known_names: bool = False) -> dict[str, Any]:
        """Every field as valid text, with the capture policy applied.

        Previews go through ``capture`` (the policy decides: dropped, redacted,
        kept); ids, names and tags (and an unknown event's own field names)
        through the memoised ``scrub_name``; every other string, and every
        container, of any event type through the secret scrubber -- only the
        timestamp and the event id are left as they are. Non-string field
        names become strings.
        """
        redactor = self.redactor
        scrub_name = self._names()
        if not known_names and not all(
            type(name) is str and name.isascii() and (name in _KNOWN_FIELD_NAMES or scrub_name(name) == name)
            for name in fields
        ):
            # An unknown event's own field names are free text too: repaired and scrubbed.
            fields = {
                clean_str(name) if name in _KNOWN_FIELD_NAMES else scrub_name(clean_str(name)): value
                for name, value in fields.items()
            }
        for name, value in fields.items():
            if type(value) is str and (not value or name in _UNSCRUBBED_FIELDS):
                # A timestamp or an event id, left as it is (and not written back) unless it needs repair.
                if not value.isascii():
                    fields[name] = clean_str(value)
            elif isinstance(value, str):
                if not value.isascii():
                    value = clean_str(value)  # lone surrogates cannot be encoded
                if not value or name in _UNSCRUBBED_FIELDS:
                    fields[name] = value
                elif name in _NAME_FIELDS:
                    fields[name] = scrub_name(value)
                elif name in _CONTENT_FIELD_SET:
                    fields[name] = redactor.capture(value)
                else:
                    fields[name] = redactor.scrub(value)
            elif isinstance(value, (dict, list, tuple)) and name != "metadata":
                fields[name] = redactor.redact_value(value)
        return fields

    def _event_id(self, fields: dict[str, Any]) -> str:
        # A replayed canonical record keeps its id (the envelope key is not an event field), unless
        # it holds a secret ("evt_ghp_..."): then a new id, as for an event without one.
        existing = fields.pop("event_id", None)
        if (
            isinstance(existing, str)
            and _EVENT_ID.fullmatch(existing)
            and self._names()(existing) == existing
        ):
            return existing
        return self._ids.event_id(fields, self._position)

    def _bare_record(self, fields: dict[str, Any], event_id: str) -> dict[str, Any]:
        """The record of an event whose routing failed: still written, without span ids."""
        try:
            event_id = event_id or self._ids.event_id(fields, self._position)
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

    def _write(self, record: dict[str, Any], ts: int) -> None:
        try:
            if self._log_events:
                self._emit_log(record, ts)
            log = self._records_to
            if type(log) is JsonLinesAuditLog:  # the usual log: its export() minus a call and a list
                log.export_lines((encode_record(record),))
            elif log is not None:
                log.export((record,))
            self.stats.records += 1
        except RecursionError:
            raise  # emit writes it from a fresh stack
        except Exception as exc:
            self._internal_error(exc)

    def _write_after_shutdown(self, record: dict[str, Any]) -> None:  # see _AfterShutdown
        """A record that arrived after ``shutdown()`` (an application's atexit handler, say).

        Written synchronously -- appended to the log's file, which is opened
        for this one line (never through a symlink), or to its stream -- and
        said once; its span is dropped (counted by the handle as dropped: the
        provider is shut down). An exporter of another kind is asked as usual.
        """
        self.stats.records_after_shutdown += 1
        log = self.audit_log
        line = encode_record(record)
        where = "nowhere (no audit log)"
        if isinstance(log, JsonLinesAuditLog) and log.path is not None:
            where = str(log.path)
            # As the log opened it: no symlink followed unless it was told to, no hang on a FIFO.
            flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC | os.O_NONBLOCK
            if not getattr(log._sink, "_follow", False):
                flags |= os.O_NOFOLLOW
            fd = os.open(log.path, flags, 0o600)
            try:
                os.set_blocking(fd, True)
                view = memoryview(line)
                while view:
                    view = view[os.write(fd, view) :]
            finally:
                os.close(fd)
        elif isinstance(log, JsonLinesAuditLog) and log._sink.stream is not None:
            where = repr(log._sink.stream)
            log._sink.write([line])
        elif log is not None:
            where = repr(log)
            log.export((record,))
        if self.stats.records_after_shutdown == 1:
            _logger.warning(
                "auditspan: an audit event arrived after shutdown (from an atexit handler, say): its record "
                "was written synchronously to %s, its span dropped (further ones are counted in "
                "collector.stats.records_after_shutdown)",
                where,
            )

    def _emit_log(self, record: dict[str, Any], ts: int) -> None:
        if self._logger is None:
            from opentelemetry import _logs

            provider = self._logger_provider or _logs.get_logger_provider()
            from . import __version__

            self._logger = provider.get_logger(attr.INSTRUMENTATION_SCOPE, __version__)
        telemetry = record.get("telemetry") or {}
        trace_hex, span_hex = telemetry.get("trace_id"), telemetry.get("span_id")
        ctx = None
        if trace_hex and span_hex:
            span_context = SpanContext(
                int(trace_hex, 16), int(span_hex, 16), False, TraceFlags(TraceFlags.SAMPLED)
            )
            ctx = trace.set_span_in_context(NonRecordingSpan(span_context))
        severity = str(record.get("severity") or "info").lower()
        fields = {k: v for k, v in record.items() if k not in ("governance", "telemetry", "parameters")}
        attributes = self._event_attributes(fields, record.get("event_id"))
        for key, value in (
            (attr.OPERATION_TYPE, record.get("type")),
            (attr.OPERATION_TARGET, record.get("target")),
            (attr.TURN_ID, record.get("turn_id")),
            (attr.GEN_AI_CONVERSATION_ID, record.get("session_id")),
            (attr.GEN_AI_AGENT_ID, record.get("agent_id")),
            (attr.GEN_AI_TOOL_NAME, record.get("tool_name")),
        ):
            if value:
                attributes[key] = self._text(value)
        self._logger.emit(
            timestamp=ts,
            context=ctx,
            severity_number=_SEVERITY_NUMBERS.get(severity, 9),
            severity_text=severity.upper(),
            body=encode_record(record).decode().rstrip("\n"),
            attributes=attributes,
            event_name=attr.EVENT_NAME_PREFIX + str(record.get("event_type")),
        )

    def _internal_error(self, exc: BaseException) -> None:
        self.stats.internal_errors += 1
        if not self._error_logged:
            self._error_logged = True
            try:
                _logger.error("auditspan: internal error (further ones are only counted)", exc_info=exc)
            except Exception:  # a handler that fails (or no stack left to log with) must not raise
                self._error_logged = False


class _AfterShutdown:
    """What a collector's records go to once its audit log is shut down (``_write_after_shutdown``)."""

    __slots__ = ("_collector",)

    def __init__(self, collector: SpanCollector) -> None:
        self._collector = collector

    def export(self, records: Any) -> None:
        for record in records:
            self._collector._write_after_shutdown(record)


def _out_of_stack() -> None:
    """Raise ``RecursionError`` when a fail-closed result (redaction) came from a stack about to run out.

    The redactor fails closed on any error, running out of stack included; near
    the recursion limit that is not the event's fault: ``emit`` makes it again
    on a fresh stack. Checked only on such a result (the check costs about 1 µs).
    """
    if _deep.short_of_stack(200):
        raise RecursionError("out of stack while redacting")


#: The longest text a value of the wrong type is kept as.
_COERCED_LIMIT = 8_192


def _coerced_text(value: Any) -> str:
    """A value of the wrong type as text: bytes decoded, anything else as ``str()`` shows it.

    Bounded like a preview (``preview``): a 200 MB value costs what its first
    8,192 characters cost; a cut text ends in ``…``.
    """
    if isinstance(value, (bytes, bytearray, memoryview)):
        return clean_str(bytes(value[: _COERCED_LIMIT * 4]))[:_COERCED_LIMIT]
    text = value if type(value) is str else preview(value, _COERCED_LIMIT + 1)
    return clean_str(text) if len(text) <= _COERCED_LIMIT else clean_str(text[: _COERCED_LIMIT - 1]) + "…"


#: Every SpanCollector of this process (weakly): whose held records a signal's flush writes.
_live: weakref.WeakSet[SpanCollector] = weakref.WeakSet()


def _write_held_for_signal(deadline: float) -> bool:
    """Write the held records of every live collector before ``deadline`` (monotonic).

    False when this thread is inside a collector's ``emit`` (its state is
    mid-change): the signal is then handled when that ``emit`` is over.
    """
    for _ in range(3):
        try:
            collectors = list(_live)
            break
        except RuntimeError:  # changed size during iteration (another thread made a collector)
            continue
    else:
        return True
    if any(collector._owns_lock() for collector in collectors):
        return False
    for collector in collectors:
        if not collector._closed:
            collector._write_held(max(0.0, deadline - time.monotonic()))
    return True


def _attribute_length_limit() -> int:
    for name in ("OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT", "OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT"):
        value = os.environ.get(name, "").strip()
        if value.isdigit() and int(value) > 0:
            return int(value)
    return DEFAULT_ATTRIBUTE_LENGTH


def _flow() -> tuple[int, int]:
    """Where an event comes from: its thread and, inside an event loop, its asyncio task.

    Gathered tool calls all run on the loop's thread; the task tells them apart, so a
    completion is matched to the attempt made by the same task.
    """
    loop = asyncio._get_running_loop()  # None outside a loop, where current_task() would raise
    task = asyncio.current_task(loop) if loop is not None else None
    return threading.get_ident(), id(task) if task is not None else 0


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


def _opt_str(value: Any) -> str | None:
    if value is None or value == "":
        return None
    return value if isinstance(value, str) else str(value)


def _given_ids(telemetry: Any) -> tuple[int, int] | None:
    """The (trace id, span id) of a canonical record's ``telemetry``; None when it has no valid pair."""
    if not isinstance(telemetry, Mapping):
        return None
    trace_hex, span_hex = telemetry.get("trace_id"), telemetry.get("span_id")
    if not (isinstance(trace_hex, str) and _TRACE_HEX.fullmatch(trace_hex)):
        return None
    if not (isinstance(span_hex, str) and _SPAN_HEX.fullmatch(span_hex)):
        return None
    trace_id, span_id = int(trace_hex, 16), int(span_hex, 16)
    return (trace_id, span_id) if trace_id and span_id else None


def _ids_of(span: Span) -> tuple[int, int]:
    ctx = span.get_span_context()
    return (ctx.trace_id, ctx.span_id) if ctx.is_valid else (0, 0)

"""The turn and tool-call state machine: which turn and which call each event belongs to.

Plain Python, no OpenTelemetry import: spans are opaque values handed out
and taken back by a span sink (``SpanSink``; the collector's is
``_spans.SpanWriter``), so the matching, the bounds, the held records and
the evictions can be driven and tested without a tracer.

* ``turn_start`` opens a turn (a repeated one is an event of it); ``turn_end``
  ends it (an unknown turn is opened *synthetic* first).
* The events that govern a call come before its attempt (loop check, policy
  decision, argument hook): they open a *pending* call, whose records are
  held until the attempt (``_hold``); a refusal (policy denial, loop block)
  ends the call at once.
* The attempt starts the call's span; a completion or failure ends it. A
  failed call is remembered so that its retry links to it; a refused call so
  that a failure the runtime reports for it later is the same call.
* Matching: same ``metadata["tool_call_id"]``, else the call made on the same
  thread and asyncio task (``_flow``), else the oldest of that tool.

``route(event)`` returns the records the event gives, in order: its own
(unless held) and those of the rule matches it set off. Records it let go
that other events held are left in ``released``, to be written before them.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from .. import attributes as attr
from .._bounded import BoundReport
from ..events import (
    ErrorEvent,
    HookMutationEvent,
    SandboxDecisionEvent,
    ToolCallAttemptEvent,
    ToolCallCompleteEvent,
    ToolCallFailureEvent,
    ToolLoopBlockEvent,
    ToolLoopWarningEvent,
    ToolPolicyDecisionEvent,
    TurnEndEvent,
    TurnStartEvent,
)
from ..governance import governance_envelope, is_refusal
from ..records import empty_governance
from ..semantic_types import EVENT_TYPE_OPERATIONS
from ._attributes import (
    call_attributes,
    call_end_attributes,
    error_attributes,
    prompt_attributes,
    sandbox_attributes,
    text,
    turn_attributes,
    turn_end_attributes,
    turn_incomplete_attributes,
    turn_name,
)
from ._records import AGENT_ACTION, event_record

if TYPE_CHECKING:
    from ..rules import RuleEngine, RuleMatch

__all__ = ["MAX_REMEMBERED_CALLS", "Call", "Event", "SpanSink", "StateMachine", "Turn", "flow"]

_logger = logging.getLogger("auditspan.collector")

# The event tags, as the event classes declare them.
TURN_START = TurnStartEvent.event_type
TURN_END = TurnEndEvent.event_type
ATTEMPT = ToolCallAttemptEvent.event_type
COMPLETE = ToolCallCompleteEvent.event_type
FAILURE = ToolCallFailureEvent.event_type
POLICY = ToolPolicyDecisionEvent.event_type
SANDBOX = SandboxDecisionEvent.event_type
LOOP_WARNING = ToolLoopWarningEvent.event_type
LOOP_BLOCK = ToolLoopBlockEvent.event_type
HOOK = HookMutationEvent.event_type
ERROR = ErrorEvent.event_type

#: Events whose record is a tool call's (when they name a tool).
_CALL_EVENTS = frozenset({ATTEMPT, COMPLETE, FAILURE, POLICY, SANDBOX, LOOP_WARNING, LOOP_BLOCK, HOOK})
#: Events that come before a call's attempt and belong to that call.
_GOVERNING = frozenset({POLICY, LOOP_WARNING, LOOP_BLOCK})
#: Event types a call always remembers having had (``_find(fresh=True)``); others only while few and short.
_TRACKED_TYPES = frozenset({ATTEMPT, POLICY, LOOP_WARNING, LOOP_BLOCK, HOOK, SANDBOX})
_MAX_SEEN_TYPES = 16
_MAX_SEEN_TYPE_LENGTH = 64
#: Failed calls remembered for linking their retries, and refused calls for pairing the failure a
#: runtime may report after a refusal: each at most this many, in all turns together (least recent first).
MAX_REMEMBERED_CALLS = 10_000
#: The semantic type of each event that is not a tool call, by name (an enum's ``.value`` is a Python-level
#: property: looked up once here, not per event).
_EVENT_OPERATION_NAMES = {event_type: op.value for event_type, op in EVENT_TYPE_OPERATIONS.items()}

TurnKey = tuple[str | None, str | None, str | None]


class SpanSink(Protocol):
    """What the state machine needs of spans: ``_spans.SpanWriter`` is the collector's (see it for each
    method's contract).

    Contexts are opaque values to the machine. A span is an object with the
    OTel API's ``set_attributes(attributes)`` and ``end(end_time=ns)``, which the
    machine calls itself (a call less per event than through the sink); a
    status, links and ids, which need the API's types, go through the sink.
    """

    max_length: int

    @property
    def ids_hold(self) -> bool: ...

    def parent(self) -> Any: ...

    def parent_trace_id(self, parent: Any) -> int: ...

    def current(self) -> Any: ...

    def in_context(self, span: Any) -> Any: ...

    def ids_of(self, span: Any) -> tuple[int, int]: ...

    def start(
        self,
        name: str,
        parent: Any,
        start_ns: int,
        attributes: dict[str, Any],
        trace_id: int,
        span_id: int,
        retry_of: tuple[int, int] | None = None,
    ) -> Any: ...

    def add_event(self, span: Any, fields: dict[str, Any], event_id: str | None, ts: int) -> None: ...

    def fail(self, span: Any, attributes: dict[str, Any], error: str) -> None: ...


class Event:
    """One event on its way through the collector: its cleaned fields, id and time."""

    __slots__ = ("fields", "held", "id", "raw_args", "ts")

    def __init__(self, fields: dict[str, Any], event_id: str, ts: int, raw_args: str | None = None) -> None:
        self.fields = fields
        self.id = event_id
        self.ts = ts
        #: Whether the event's own record is held (a governing event of a call not yet attempted).
        self.held = False
        #: The arguments preview before the capture policy (classification only; never recorded).
        self.raw_args = raw_args


@dataclass(eq=False, slots=True)
class Call:
    """One tool call attempt, from its first governing event to its end."""

    tool_name: str
    trace_id: int
    span_id: int  # chosen at the first event (and injected into the span); the span's own once started
    parent: Any  # the context its span starts in (its turn's), None for a root
    start_ns: int
    thread: tuple[int, int]  # (thread, asyncio task) that made the attempt: see flow()
    call_id: str | None
    classification: Any = None
    attempt: int = 1
    span: Any = None
    attributes: dict[str, Any] = field(default_factory=dict)
    events: list[Event] = field(default_factory=list)
    seen: set[str] = field(default_factory=set)
    governance: dict[str, Any] | None = None
    #: (trace id, span id) of the failed attempt this one retries (its span links to it).
    retry_of: tuple[int, int] | None = None
    refused: bool = False
    #: The call's records held until its attempt or refusal: (event, governance at its time).
    held: list[tuple[Event, dict[str, Any] | None]] = field(default_factory=list)
    #: The held records were written early (bound, flush): the classification is fixed from then on.
    written_early: bool = False


@dataclass(eq=False, slots=True)
class Turn:
    """An open turn (or, with ``span=None``, the home of tool calls that have no turn)."""

    key: TurnKey
    span: Any
    context: Any
    trace_id: int
    span_id: int
    agent_id: str | None
    session_id: str | None
    turn_id: str | None
    start_ns: int
    last_ns: int
    last_seen: float
    pending: dict[str, list[Call]] = field(default_factory=dict)
    open: dict[str, list[Call]] = field(default_factory=dict)
    calls: int = 0
    agent_name: str | None = None


class _Refused:
    """What is kept of a refused call: a runtime may report the refusal again as a failure."""

    __slots__ = ("classification", "governance", "span_id", "trace_id")

    def __init__(self, call: Call) -> None:
        self.trace_id = call.trace_id
        self.span_id = call.span_id
        self.governance = call.governance
        self.classification = call.classification


class StateMachine:
    """Open turns and unfinished calls, matched to events, within bounds (``SpanCollector`` lists them).

    Args:
        spans: where spans start and end (``SpanSink``).
        calls: classifies calls (``_classify.CallClassifier``: ``classify``, ``classify_arguments``).
        ids: ``RandomIds`` / ``DeterministicIds`` (``trace_id``, ``span_id``, ``event_id``).
        stats: the collector's counters.
        rules: a ``RuleEngine`` (or None), told of every attempt's record.

    Not thread-safe: the collector calls it under its lock. Before each
    event the caller sets ``position`` (the event's number) and ``given``
    (the ids a replayed record carries, or None).
    """

    def __init__(
        self,
        spans: SpanSink,
        calls: Any,
        ids: Any,
        stats: Any,
        *,
        rules: RuleEngine | None = None,
        max_open_turns: int = 10_000,
        max_calls_per_turn: int = 1_024,
        max_open_calls: int = 100_000,
        stale_turn_after_s: float = 3_600.0,
        max_held_records: int = 4_096,
    ) -> None:
        self.spans = spans
        self.calls = calls
        self.ids = ids
        self.stats = stats
        self.rules = rules
        self.max_open_turns = max_open_turns
        self.max_calls_per_turn = max_calls_per_turn
        self.max_open_calls = max_open_calls
        self.stale_after = stale_turn_after_s
        self.max_held = max_held_records
        self._bounds = BoundReport(_logger)
        #: The number of the event being routed (for ids), and the (trace id, span id) of a replayed record.
        self.position = 0
        self.given: tuple[int, int] | None = None
        #: After shutdown a held record would never be written: it is written at once.
        self.closed = False
        self.reset()

    def reset(self) -> None:
        """Forget every turn, call and held record (in a forked child: they are the parent's)."""
        self.turns: OrderedDict[TurnKey, Turn] = OrderedDict()
        self.latest: dict[tuple[str | None, str | None], TurnKey] = {}
        #: Every unfinished call (pending or open), oldest first, with its turn: the global call bound.
        self.unfinished: OrderedDict[Call, Turn] = OrderedDict()
        #: (turn key, tool) -> (trace id, span id, attempt) of its last failed call, for the retry's link.
        self.failed: OrderedDict[tuple[Any, str], tuple[int, int, int]] = OrderedDict()
        #: (turn key, tool) -> its last refused call.
        self.refused: OrderedDict[tuple[Any, str], _Refused] = OrderedDict()
        #: Calls holding records (insertion order: the oldest is written first when the bound is hit).
        self.holding: dict[Call, None] = {}
        self.held_total = 0
        #: Held records let go, waiting to be written (after the lock) by the emit or flush that let them go.
        self.released: list[tuple[dict[str, Any], int]] = []

    # ----------------------------------------------------------------- routing
    def route(self, ev: Event) -> list[dict[str, Any]]:
        """The records ``ev`` gives now: its own unless held (``ev.held``), then its rule matches'."""
        fields = ev.fields
        event_type: str = fields["event_type"]
        tool_name = fields.get("tool_name")
        if event_type == TURN_START:
            return [self._on_turn_start(ev)]
        if event_type == TURN_END:
            return [self._on_turn_end(ev)]
        turn = self._turn_for(fields, ev.ts)
        if isinstance(tool_name, str) and tool_name:
            if event_type == ATTEMPT:
                return self._on_attempt(turn, ev)
            if event_type in (COMPLETE, FAILURE):
                return [self._on_call_end(turn, ev)]
            if event_type in _GOVERNING or (event_type == HOOK and fields.get("mutated_field") != "result"):
                return self._on_governing(turn, ev)
            if event_type in (SANDBOX, HOOK) or self._find(turn.open, fields) is not None:
                return self._on_during_call(turn, ev)
        return [self._on_turn_event(turn, ev)]

    # turns ----------------------------------------------------------------------
    def _on_turn_start(self, ev: Event) -> dict[str, Any]:
        fields, ts = ev.fields, ev.ts
        key = _key(fields)
        turn = self.turns.get(key)
        if turn is None or turn.span is None:
            self.end_stale_turns(time.monotonic())
            turn = self._open_turn(key, fields, ts, synthetic=False)
        else:  # a repeated turn_start: same turn, noted as an event
            self.spans.add_event(turn.span, fields, ev.id, ts)
        prompt = fields.get("prompt_preview")
        if prompt and turn.span is not None:  # captured: absent under the "none" policy
            turn.span.set_attributes(prompt_attributes(prompt, self.spans.max_length))
        return event_record(
            fields, ev.id, turn.trace_id, turn.span_id, _EVENT_OPERATION_NAMES.get(TURN_START, AGENT_ACTION)
        )

    def _on_turn_end(self, ev: Event) -> dict[str, Any]:
        fields, ts = ev.fields, ev.ts
        key = _key(fields)
        turn = self.turns.get(key)
        if turn is None or turn.span is None:
            turn = self._open_turn(key, fields, ts, synthetic=True)
        record = event_record(
            fields, ev.id, turn.trace_id, turn.span_id, _EVENT_OPERATION_NAMES.get(TURN_END, AGENT_ACTION)
        )
        turn.span.set_attributes(turn_end_attributes(fields, self.spans.max_length))
        self.end_turn(turn, ts, incomplete=None)
        return record

    def _open_turn(self, key: TurnKey, fields: dict[str, Any], ts: int, *, synthetic: bool) -> Turn:
        session_id, turn_id, _ = key
        agent_id = _opt_str(fields.get("agent_id"))
        agent_name = _opt_str(fields["metadata"].get("agent_name")) or agent_id
        spans = self.spans
        parent = spans.parent()
        anchor = f"{session_id}|{turn_id}|{fields.get('timestamp')}"
        trace_id = spans.parent_trace_id(parent) or self.ids.trace_id(anchor)
        span_id = self.ids.span_id("turn|" + anchor)
        given = self.given
        if given is not None:
            trace_id = given[0]
            if fields.get("event_type") not in _CALL_EVENTS or not fields.get("tool_name"):
                span_id = given[1]  # a turn's own record: its span id is the turn's
        if synthetic:
            self.stats.synthetic_turns += 1
        attributes = turn_attributes(agent_id, agent_name, session_id, turn_id, synthetic=synthetic)
        span = spans.start(turn_name(agent_name), parent, ts, attributes, trace_id, span_id)
        own_trace, own_span = spans.ids_of(span)
        turn = Turn(
            key=key,
            span=span,
            context=spans.in_context(span),
            trace_id=own_trace or trace_id,
            span_id=own_span or span_id,
            agent_id=agent_id,
            session_id=session_id,
            turn_id=turn_id,
            start_ns=ts,
            last_ns=ts,
            last_seen=time.monotonic(),
        )
        turn.agent_name = agent_name
        self.turns[key] = turn
        self.latest[(session_id, agent_id)] = key
        self.stats.turns_started += 1
        self._enforce_turn_bound()
        return turn

    def _enforce_turn_bound(self) -> None:
        """End the least recently active turns (or homes of events without a turn) beyond the bound."""
        while len(self.turns) > self.max_open_turns:
            oldest = next(iter(self.turns.values()))
            if oldest.span is None:
                self.stats.home_turns_evicted += 1
            else:
                self.stats.turns_evicted += 1
            self._bounds.hit(
                "open turns",
                f"max_open_turns={self.max_open_turns}: the least recently active turn is ended "
                f'({attr.TURN_INCOMPLETE}="evicted")',
            )
            self.end_turn(oldest, oldest.last_ns, incomplete="evicted")

    def _turn_for(self, fields: dict[str, Any], ts: int) -> Turn:
        """The turn an event belongs to (``auditspan.collector``'s doc says where events without one go)."""
        session_id: str | None = fields.get("session_id") or None  # cleaned: a string or None
        turn_id: str | None = fields.get("turn_id") or None
        agent_id: str | None = fields.get("agent_id") or None
        if turn_id is not None:
            key: TurnKey = (session_id, turn_id, None)
            turn = self.turns.get(key)
            if turn is None:
                turn = self._open_turn(key, fields, ts, synthetic=True)
        else:
            latest = self.latest.get((session_id, agent_id))
            turn = self.turns.get(latest) if latest is not None else None
            if turn is None:
                key = (session_id, None, agent_id)
                turn = self.turns.get(key)
                if turn is None:
                    turn = Turn(key, None, None, 0, 0, agent_id, session_id, None, ts, ts, time.monotonic())
                    self.turns[key] = turn
                    self._enforce_turn_bound()  # homes count against max_open_turns like turns
        turn.last_seen = time.monotonic()
        turn.last_ns = max(turn.last_ns, ts)
        self.turns.move_to_end(turn.key)
        return turn

    def end_turn(self, turn: Turn, ts: int, *, incomplete: str | None) -> None:
        """End ``turn`` and its unfinished calls at ``ts``; ``incomplete`` says why when no turn_end came."""
        for calls in list(turn.pending.values()) + list(turn.open.values()):
            for call in list(calls):
                self._finish_unended_call(turn, call, max(ts, call.start_ns))
        span = turn.span
        if span is not None:
            if incomplete is not None:
                self.spans.fail(span, *turn_incomplete_attributes(incomplete))
            span.end(end_time=max(ts, turn.start_ns))
            self.stats.turns_ended += 1
        self.turns.pop(turn.key, None)
        latest_key = (turn.session_id, turn.agent_id)
        if self.latest.get(latest_key) == turn.key:
            del self.latest[latest_key]

    def end_stale_turns(self, now: float) -> None:
        """End the turns idle for ``stale_turn_after_s`` or more at ``now`` (monotonic)."""
        while self.turns:
            oldest = next(iter(self.turns.values()))
            if now - oldest.last_seen < self.stale_after:
                return
            self.stats.turns_stale += 1
            self.end_turn(oldest, oldest.last_ns, incomplete="stale")

    def end_all(self) -> None:
        """End every open turn, marked incomplete (``shutdown``); held records come out from now on."""
        self.closed = True
        for turn in list(self.turns.values()):
            self.end_turn(turn, turn.last_ns, incomplete="shutdown")

    def _on_turn_event(self, turn: Turn, ev: Event) -> dict[str, Any]:
        """An event of the turn itself: errors and event types without a tool call."""
        fields, ts = ev.fields, ev.ts
        event_type = fields["event_type"]
        spans = self.spans
        span = turn.span
        if span is None:
            span = spans.current()
            if span is None:  # nothing to hang it on: a span of its own, as short as the event
                span = spans.start(
                    attr.EVENT_NAME_PREFIX + event_type,
                    None,
                    ts,
                    {},
                    *(
                        self.given
                        or (
                            self.ids.trace_id(f"lone|{self.position}"),
                            self.ids.span_id(f"lone|{self.position}|{fields.get('timestamp')}"),
                        )
                    ),
                )
                if event_type == ERROR:
                    self._decorate_error(span, fields)
                spans.add_event(span, fields, ev.id, ts)
                span.end(end_time=ts)
                return event_record(
                    fields, ev.id, *spans.ids_of(span), _EVENT_OPERATION_NAMES.get(event_type, AGENT_ACTION)
                )
        if event_type == ERROR:
            self._decorate_error(span, fields)
        trace_id, span_id = spans.ids_of(span)
        spans.add_event(span, fields, ev.id, ts)
        return event_record(
            fields, ev.id, trace_id, span_id, _EVENT_OPERATION_NAMES.get(event_type, AGENT_ACTION)
        )

    def _decorate_error(self, span: Any, fields: dict[str, Any]) -> None:
        error = error_attributes(fields, self.spans.max_length)
        if error is not None:
            self.spans.fail(span, *error)

    # tool calls -------------------------------------------------------------------
    def _new_call(self, turn: Turn, fields: dict[str, Any], ts: int) -> Call:
        tool_name: str = fields["tool_name"]
        metadata = fields["metadata"]
        call_id = _opt_str(metadata.get("tool_call_id") or metadata.get("call_id"))
        if turn.span is not None:
            parent, trace_id = turn.context, turn.trace_id
        else:
            parent = self.spans.parent()
            trace_id = self.spans.parent_trace_id(parent) or (
                self.given[0]
                if self.given is not None
                else self.ids.trace_id(
                    f"call|{turn.session_id}|{tool_name}|{fields.get('timestamp')}|{self.position}"
                )
            )
        span_id = (
            self.given[1]
            if self.given is not None
            else self.ids.span_id(
                f"call|{trace_id:032x}|{tool_name}|{fields.get('timestamp')}|{self.position}"
            )
        )
        call = Call(
            tool_name=tool_name,
            trace_id=trace_id,
            span_id=span_id,
            parent=parent,
            start_ns=ts,
            thread=flow(),
            call_id=call_id,
        )
        call.classification = self.calls.classify(tool_name, "", metadata)
        turn.calls += 1
        unfinished = self.unfinished
        unfinished[call] = turn
        if turn.calls > self.max_calls_per_turn:
            self._evict_one_call(turn)
        if len(unfinished) > self.max_open_calls:
            # The oldest unfinished call of any turn (never the new one: it is last).
            oldest, its_turn = next(iter(unfinished.items()))
            self._evict_call(its_turn, oldest, f"max_open_calls={self.max_open_calls}")
        return call

    def _evict_one_call(self, turn: Turn) -> None:
        for calls in list(turn.pending.values()) + list(turn.open.values()):
            if calls:
                self._evict_call(turn, calls[0], f"max_calls_per_turn={self.max_calls_per_turn}")
                return

    def _evict_call(self, turn: Turn, call: Call, bound: str) -> None:
        self.stats.calls_evicted += 1
        self._bounds.hit("unfinished tool calls", f'{bound}: one is ended ({attr.TOOL_INCOMPLETE}="evicted")')
        self._finish_unended_call(turn, call, turn.last_ns, evicted=True)

    @staticmethod
    def _find(
        calls_by_tool: dict[str, list[Call]], fields: dict[str, Any], *, fresh: bool = False
    ) -> Call | None:
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
        thread = flow()
        ordered = [c for c in calls if c.thread == thread] + [c for c in calls if c.thread != thread]
        if fresh:
            event_type = fields["event_type"]
            return next((c for c in ordered if event_type not in c.seen), ordered[0])
        return ordered[0]

    @staticmethod
    def _remove(calls_by_tool: dict[str, list[Call]], call: Call) -> None:
        calls = calls_by_tool.get(call.tool_name)
        if calls and call in calls:
            calls.remove(call)
            if not calls:
                del calls_by_tool[call.tool_name]

    def _pending_call(self, turn: Turn, fields: dict[str, Any], ts: int) -> Call:
        """The not-yet-attempted call a governing event belongs to (new if it already had one)."""
        call = self._find(turn.pending, fields, fresh=True)
        if call is None or fields["event_type"] in call.seen:
            call = self._new_call(turn, fields, ts)
            turn.pending.setdefault(call.tool_name, []).append(call)
        return call

    def _on_governing(self, turn: Turn, ev: Event) -> list[dict[str, Any]]:
        fields, ts = ev.fields, ev.ts
        call = self._pending_call(turn, fields, ts)
        event_type = fields["event_type"]
        call.seen.add(event_type)
        record_governance = call.governance
        if event_type == POLICY:
            call.governance = governance_envelope(
                fields.get("action"), fields.get("policy_source"), fields["metadata"]
            )
            record_governance = call.governance
            decision = str(fields.get("action") or "")
            call.attributes[attr.POLICY_DECISION] = call.governance.get("decision") or decision
            if fields.get("policy_source"):
                call.attributes[attr.POLICY_SOURCE] = text(fields["policy_source"], self.spans.max_length)
            call.events.append(ev)
            if is_refusal(call.governance.get("decision")):
                call.refused = True
        elif event_type == LOOP_WARNING:
            level = str(fields.get("severity_level") or "")
            call.attributes[attr.LOOP_STATUS] = level or "warning"
            # The runtime checks every call and reports "ok"/"none": an attribute, not an event.
            if not (level == "ok" and fields.get("pattern") in ("none", "", None)):
                call.events.append(ev)
        else:  # loop block or argument hook
            if event_type == LOOP_BLOCK:
                call.attributes[attr.LOOP_STATUS] = "blocked"
                call.refused = True
            call.events.append(ev)
        records = self._hold(ev, call, record_governance)
        if call.refused:
            # No attempt will come: the call is what its name says, and its records go out now.
            self._remove(turn.pending, call)
            outcome = attr.OUTCOME_BLOCKED if event_type == LOOP_BLOCK else attr.OUTCOME_DENIED
            self._start_call_span(turn, call, fields)
            self.release(call)
            self._end_call(turn, call, ts, outcome=outcome, fields=fields)
            refused = self.refused
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
        return records

    def _hold(self, ev: Event, call: Call, governance: dict[str, Any] | None) -> list[dict[str, Any]]:
        """Hold the record of an event that comes before its call's attempt; ``[]`` when held.

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
        if self.closed:  # after shutdown nothing would write it later: at once, and the type is fixed
            call.written_early = True
        if call.written_early:
            return [self._held_record(ev, call, governance)]
        call.held.append((ev, governance))
        ev.held = True
        if len(call.held) == 1:
            self.holding[call] = None
        self.held_total += 1
        while self.held_total > self.max_held and self.holding:
            self.release(next(iter(self.holding)), early=True)
        return []

    def release(self, call: Call, *, early: bool = False) -> None:
        """Let the call's held records go (to ``released``); ``early``: before its attempt (type fixed)."""
        if early and call.span is None:
            call.written_early = True
        held = call.held
        if not held:
            return
        call.held = []
        self.holding.pop(call, None)
        self.held_total -= len(held)
        for ev, governance in held:
            self.released.append((self._held_record(ev, call, governance), ev.ts))

    def release_all(self) -> None:
        """Let every held record go (``flush``, a signal): each holding call's type is fixed."""
        for call in list(self.holding):
            self.release(call, early=True)

    def _held_record(self, ev: Event, call: Call, governance: dict[str, Any] | None) -> dict[str, Any]:
        """A held event's record: the call's classification, the governance as it was at the event."""
        record = self._call_record(ev, call, governance)
        if governance is None and call.governance is not None:
            record["governance"] = empty_governance()  # no decision had been made yet at its time
        return record

    def _on_attempt(self, turn: Turn, ev: Event) -> list[dict[str, Any]]:
        fields, ts = ev.fields, ev.ts
        call = self._find(turn.pending, fields)
        if call is not None:
            self._remove(turn.pending, call)
        else:
            call = self._new_call(turn, fields, ts)
        previous = self.failed.pop((turn.key, call.tool_name), None) if self.failed else None
        if previous is not None:
            failed_trace, failed_span, failed_attempt = previous
            call.attempt = failed_attempt + 1
            call.retry_of = (failed_trace, failed_span)
        attempt = fields["metadata"].get("attempt")
        if isinstance(attempt, int) and not isinstance(attempt, bool) and attempt > 0:
            call.attempt = attempt
        args = fields.get("arguments_preview")
        args_text = args if isinstance(args, str) else ""
        if not call.written_early:  # records already written keep their type: the call's stays the same
            call.classification = self.calls.classify_arguments(
                call.tool_name, args_text, ev.raw_args, fields["metadata"]
            )
        if args_text:  # captured: absent under the "none" policy
            shown = text(args_text, self.spans.max_length)
            call.attributes[attr.TOOL_ARGUMENTS_PREVIEW] = shown
            call.attributes[attr.GEN_AI_TOOL_CALL_ARGUMENTS] = shown
            call.attributes[attr.INPUT_VALUE] = shown
        call.seen.add(ATTEMPT)
        self._start_call_span(turn, call, fields)
        self.release(call)
        turn.open.setdefault(call.tool_name, []).append(call)
        record = self._call_record(ev, call)
        if self.rules is None:
            return [record]
        return [
            record,
            *(self._on_rule_match(call, record, match, ts) for match in self.rules.observe(record)),
        ]

    def _on_rule_match(self, call: Call, record: dict[str, Any], match: RuleMatch, ts: int) -> dict[str, Any]:
        """A behavioural rule fired on this call: span event, attributes and a record of its own."""
        self.stats.rule_matches += 1
        fields = match.event_fields(record, attr.EVENT_TYPE_RULE_MATCH)
        # Its id from its content alone (the match's and the trigger's event ids make it unique): the
        # same match gets the same id whatever position its call's records have in a replayed log.
        match_event = Event(fields, self.ids.event_id(fields, 0), ts)
        span = call.span
        if span is not None:
            span.set_attributes({attr.RULE_ACTION: match.action, attr.RULE_NAME: match.rule})
            self.spans.add_event(span, fields, match_event.id, ts)
        governance = {
            "decision": match.action,
            "policies_evaluated": [match.rule],
            "trust_score_at_time": None,
        }
        return self._call_record(match_event, call, governance)

    def _on_during_call(self, turn: Turn, ev: Event) -> list[dict[str, Any]]:
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
        if fields["event_type"] == SANDBOX:
            call.span.set_attributes(sandbox_attributes(fields, self.spans.max_length))
        self.spans.add_event(call.span, fields, ev.id, ts)
        return [self._call_record(ev, call)]

    def _on_call_end(self, turn: Turn, ev: Event) -> dict[str, Any]:
        fields, ts = ev.fields, ev.ts
        refused = self.refused.pop((turn.key, fields["tool_name"]), None) if self.refused else None
        if (
            refused is not None
            and fields["event_type"] == FAILURE
            and self._find(turn.open, fields) is None
            and self._find(turn.pending, fields) is None
        ):
            # The successor runtime follows a denial or loop block with a failure
            # (ToolPolicyViolation / ToolLoopError): that is the refused call, not a new one.
            return event_record(
                fields,
                ev.id,
                refused.trace_id,
                refused.span_id,
                AGENT_ACTION,
                refused.governance,
                refused.classification,
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
            self.release(call)
        record = self._call_record(ev, call)
        failed = fields["event_type"] == FAILURE
        self._end_call(
            turn, call, ts, outcome=attr.OUTCOME_FAILURE if failed else attr.OUTCOME_SUCCESS, fields=fields
        )
        remembered = self.failed
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

    def _finish_unended_call(self, turn: Turn, call: Call, ts: int, *, evicted: bool = False) -> None:
        if call.span is None:
            self._remove(turn.pending, call)
            self._start_call_span(turn, call, None)
            self.release(call)
            self._end_call(turn, call, ts, outcome=attr.OUTCOME_NOT_ATTEMPTED, fields=None, evicted=evicted)
        else:
            self._remove(turn.open, call)
            self._end_call(turn, call, ts, outcome=attr.OUTCOME_INCOMPLETE, fields=None, evicted=evicted)

    def _start_call_span(self, turn: Turn, call: Call, fields: dict[str, Any] | None) -> None:
        attributes = call_attributes(
            call.tool_name,
            call.attempt,
            call.call_id,
            fields["metadata"].get("tool_type") if fields is not None else None,
            turn.agent_id,
            turn.agent_name,
            turn.session_id,
            turn.turn_id,
            call.classification,
        )
        attributes.update(call.attributes)
        spans = self.spans
        span = spans.start(
            f"{attr.OPERATION_EXECUTE_TOOL} {call.tool_name}",
            call.parent,
            call.start_ns,
            attributes,
            call.trace_id,
            call.span_id,
            call.retry_of,
        )
        call.span = span
        # What the call's records carry from now on: the span's own ids (the chosen ones when the SDK
        # took them), the trace id kept when the span has none (the API's no-op tracer).
        trace_id, call.span_id = spans.ids_of(span)
        if trace_id:
            call.trace_id = trace_id
        self.stats.tool_spans += 1
        for pending in call.events:
            spans.add_event(span, pending.fields, pending.id, pending.ts)
        call.events.clear()

    def _end_call(
        self,
        turn: Turn,
        call: Call,
        ts: int,
        *,
        outcome: str,
        fields: dict[str, Any] | None,
        evicted: bool = False,
    ) -> None:
        turn.calls = max(0, turn.calls - 1)
        self.unfinished.pop(call, None)
        # The attributes at once: one lock, one check in the SDK.
        attributes, error = call_end_attributes(outcome, fields, self.spans.max_length, evicted=evicted)
        span = call.span
        if error is None:
            span.set_attributes(attributes)
        else:
            self.spans.fail(span, attributes, error)
        span.end(end_time=max(ts, call.start_ns))

    def _call_record(self, ev: Event, call: Call, governance: dict[str, Any] | None = None) -> dict[str, Any]:
        span_id = call.span_id
        if call.span is None and not self.spans.ids_hold:
            span_id = 0  # no way to give the span the id chosen now
        return event_record(
            ev.fields,
            ev.id,
            call.trace_id,
            span_id,
            AGENT_ACTION,
            governance if governance is not None else call.governance,
            call.classification,
        )


def _key(fields: dict[str, Any]) -> TurnKey:
    # Cleaned fields: these are strings or None (an empty string is no id).
    return (fields.get("session_id") or None, fields.get("turn_id") or None, None)


def _opt_str(value: Any) -> str | None:
    if value is None or value == "":
        return None
    return value if isinstance(value, str) else str(value)


def flow() -> tuple[int, int]:
    """Where an event comes from: its thread and, inside an event loop, its asyncio task.

    Gathered tool calls all run on the loop's thread; the task tells them apart, so a
    completion is matched to the attempt made by the same task.
    """
    loop = asyncio._get_running_loop()  # None outside a loop, where current_task() would raise
    task = asyncio.current_task(loop) if loop is not None else None
    return threading.get_ident(), id(task) if task is not None else 0

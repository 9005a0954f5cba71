"""The collector's facade: ``SpanCollector`` owns the lock, the stats and the lifecycle.

Each event goes down one pipeline, read top to bottom in ``emit``:
``_normalise`` (fields, capture policy) -> under the lock, ``_state`` (turn and
call matching, which drives ``_spans`` with the mappings of ``_attributes``
and builds ``_records``) -> after the lock, ``_writer`` (audit log, log records).
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import IO, Any

from opentelemetry import trace
from opentelemetry.trace import SpanContext

from .. import _deep, _fork, _signals
from .._bounded import run_bounded
from .._ids import DeterministicIds, RandomIds
from .._sanitize import clean_str
from ..audit_log import AuditLogExporter, JsonLinesAuditLog, open_audit_log
from ..classification import Classifier
from ..redaction import Redactor
from ..rules import RuleEngine
from ._classify import CallClassifier
from ._normalise import INVALID, Normaliser
from ._records import bare_record
from ._spans import SpanWriter
from ._state import Event, StateMachine
from ._writer import RecordWriter

__all__ = ["DEFAULT_ATTRIBUTE_LENGTH", "EVENTS_AS", "CollectorStats", "SpanCollector"]

_logger = logging.getLogger("auditspan.collector")

_EVENT_ID = re.compile(r"evt_[0-9A-Za-z_-]{1,128}")
_TRACE_HEX = re.compile(r"[0-9a-f]{32}")
_SPAN_HEX = re.compile(r"[0-9a-f]{16}")

#: Longest string auditspan puts on a span unless the OTel length limits say otherwise.
DEFAULT_ATTRIBUTE_LENGTH = 8_192

#: Accepted values of ``events_as``.
EVENTS_AS = ("span_events", "logs", "both")


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

    Threading -- the lock contract. ``emit`` may be called from any thread. One
    reentrant lock per collector is held while an event is routed: while it
    is matched to its turn and call, while the call is **classified** (the
    ``classifier``), while the **rules** observe its record, and while its
    spans start and end -- so the **user's span processors' ``on_start`` /
    ``on_end``**, which the SDK calls synchronously inside ``start_span`` and
    ``end``, run under it too (as do the sampler and the id generator).
    Hence: a classifier, rule engine or span processor that blocks, blocks
    every thread that emits; one that waits for another thread which emits
    deadlocks. Turning the input into fields (the capture policy, redaction)
    and writing records (the audit log, log records) happen outside the lock,
    so a slow disk or exporter never holds it; ``flush()`` takes it only to
    end stale turns and let held records go. A signal's flush
    (``auditspan._signals``) waits for it within a bound, and defers itself
    when it arrives inside this thread's own ``emit``.

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
        self.stats = CollectorStats()
        self._tracer_provider = tracer_provider
        self._logger_provider = logger_provider
        self.events_as = events_as
        redactor = redactor if redactor is not None else Redactor()
        if rules is not None and not isinstance(rules, RuleEngine):
            rules = RuleEngine(rules)
        self._ids = ids or RandomIds()
        self._flush_timeout_ms = int(flush_timeout_s * 1000)
        self._normaliser = Normaliser(redactor, self.stats)
        self._calls = CallClassifier(
            classifier if classifier is not None else Classifier(), redactor, self._internal_error
        )
        self._spans = SpanWriter(
            tracer_provider,
            max_attribute_length or _attribute_length_limit(),
            events_as in ("span_events", "both"),
            self.stats,
        )
        spans = self._spans
        self._writer = RecordWriter(
            None,
            logger_provider,
            events_as in ("logs", "both"),
            lambda: spans.max_length,
            self.stats,
            self._internal_error,
        )
        self.audit_log = open_audit_log(audit_log)
        self._state = StateMachine(
            self._spans,
            self._calls,
            self._ids,
            self.stats,
            rules=rules,
            max_open_turns=max_open_turns,
            max_calls_per_turn=max_calls_per_turn,
            max_open_calls=max_open_calls,
            stale_turn_after_s=stale_turn_after_s,
            max_held_records=max_held_records,
        )
        self._lock = threading.RLock()
        self._closed = False
        self._error_logged = False
        _live.add(self)
        _fork.track(self, tier=0)

    # ------------------------------------------------------------------ public
    @property
    def classifier(self) -> Any:
        """Maps a tool call to its semantic type (``classify(tool_name, arguments_preview, metadata)``)."""
        return self._calls.classifier

    @classifier.setter
    def classifier(self, classifier: Any) -> None:
        self._calls.classifier = classifier

    @property
    def redactor(self) -> Any:
        """Applies the capture policy (``capture``, ``scrub``, ``redact_value``, maybe ``scrub_name``)."""
        return self._normaliser.redactor

    @redactor.setter
    def redactor(self, redactor: Any) -> None:
        self._normaliser.bind(redactor)
        self._calls.redactor = redactor

    @property
    def rules(self) -> RuleEngine | None:
        """The behavioural-rule engine every attempt's record goes through (None: no rules)."""
        return self._state.rules

    @rules.setter
    def rules(self, rules: RuleEngine | None) -> None:
        self._state.rules = rules

    @property
    def audit_log(self) -> AuditLogExporter | None:
        """The audit-log exporter records go to (None: no log). May be replaced."""
        return self._writer.audit_log

    @audit_log.setter
    def audit_log(self, log: AuditLogExporter | None) -> None:
        self._writer.audit_log = log

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
                fields, ts, raw_args = self._normaliser.fields_of(source)
            except RecursionError:
                raise  # for the handler at the end: the event is made again with room to spare
            except Exception as exc:
                self._internal_error(exc)
                fields, ts, raw_args = self._normaliser.cleaned(
                    {"metadata": {INVALID: clean_str(type(source).__name__)}}
                )
            event_id = ""
            held = False
            try:
                with self._lock:
                    self.stats.events += 1
                    state = self._state
                    state.position += 1
                    event_id = self._event_id(fields)
                    routed = Event(fields, event_id, ts, raw_args)
                    state.given = given
                    try:
                        own = state.route(routed)
                    finally:
                        state.given = None
                    routed_once = True
                    held = routed.held
                    # Held records this event let go come first: their events came before it.
                    if state.released:
                        records, state.released = state.released, []
                    for record in own:
                        records.append((record, ts))
            except RecursionError:
                raise
            except Exception as exc:  # nothing may reach the agent
                self._internal_error(exc)
                routed_once = True
            if not records and not held:
                records = [(bare_record(fields, event_id, self._ids, self._state.position), ts)]
            write = self._writer.write
            for record, at in records:
                write(record, at)
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
            self._writer.write(record, ts)
            job[1] += 1

    def flush(self) -> None:
        """End stale turns and push spans, log records and audit records out (bounded wait)."""
        try:
            _deep.drain()  # events kept from calls too deep in the stack
            with self._lock:
                self._state.end_stale_turns(time.monotonic())
            self.force_flush(self._flush_timeout_ms)
        except Exception as exc:
            self._internal_error(exc)

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        """Write the held records, flush the audit log, the tracer and logger providers; True if all did.

        A held record (see ``_state.StateMachine._hold``) written here fixes its
        call's semantic type: the call's attempt, if it still comes, keeps it, so
        every record of the call still agrees.
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
                self._state.end_all()
            self.force_flush(self._flush_timeout_ms)
        except Exception as exc:
            self._internal_error(exc)
        if self.audit_log is not None:
            if isinstance(self.audit_log, JsonLinesAuditLog):
                # Its own default would wait 30 s more for a disk that did not take the flush above.
                self.audit_log.shutdown(self._flush_timeout_ms)
            else:
                self.audit_log.shutdown()
            self._writer.after_shutdown()
        if self.stats.internal_errors:
            _logger.warning("auditspan: %d internal errors during this run", self.stats.internal_errors)

    def _fork_child(self) -> None:
        """After ``os.fork()``, in the child: a fresh lock, and none of the parent's open turns, calls
        or held records (the parent ends them and writes their records; the child would duplicate them)."""
        self._lock = threading.RLock()
        self._state.reset()

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
        scrub_name = self._normaliser.scrub_name
        session_id = scrub_name(session_id) if session_id else None
        turn_id = scrub_name(turn_id) if turn_id else None
        if tool_call_id:
            tool_call_id = scrub_name(tool_call_id)
        with self._lock:
            turns = self._state.turns
            if turn_id is not None:
                found = turns.get((session_id, turn_id, None))
                candidates = [found] if found is not None else []
            else:
                candidates = [t for t in turns.values() if t.session_id == session_id]
            for turn in candidates:
                span = turn.span
                if tool_call_id is not None:
                    calls = [c for same_tool in turn.open.values() for c in same_tool]
                    span = next((c.span for c in calls if c.call_id == tool_call_id), None)
                if span is not None:
                    ctx: SpanContext = span.get_span_context()
                    return ctx if ctx.is_valid else None
        return None

    @property
    def open_turns(self) -> int:
        """How many turns are open now (bounded by ``max_open_turns``)."""
        return sum(1 for turn in self._state.turns.values() if turn.span is not None)

    def state_sizes(self) -> dict[str, int]:
        """The size of every structure the collector keeps, to watch against its bound (see the class).

        ``turns`` counts open turns and homes of events without a turn together
        (``max_open_turns``); ``unfinished_calls`` the calls pending or open in
        all turns (``max_open_calls``), ``max_calls_in_a_turn`` the most in one
        (``max_calls_per_turn``). Takes the lock and walks the turns: for
        monitoring, not for every event.
        """
        with self._lock:
            state = self._state
            turns = list(state.turns.values())
            calls = [c for t in turns for same in (*t.pending.values(), *t.open.values()) for c in same]
            return {
                "turns": len(turns),
                "home_turns": sum(1 for t in turns if t.span is None),
                "latest": len(state.latest),
                "unfinished_calls": len(state.unfinished),
                "calls_in_turns": len(calls),
                "max_calls_in_a_turn": max((t.calls for t in turns), default=0),
                "held_span_events": sum(len(c.events) for c in calls),
                "max_seen_types": max((len(c.seen) for c in calls), default=0),
                "failed_remembered": len(state.failed),
                "refused_remembered": len(state.refused),
                "held_records": state.held_total,
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
                state = self._state
                state.release_all()
                records, state.released = state.released, []
            finally:
                self._lock.release()
        except Exception as exc:
            self._internal_error(exc)
            return
        for record, ts in records:
            self._writer.write(record, ts)

    def _owns_lock(self) -> bool:
        is_owned = getattr(self._lock, "_is_owned", None)
        return bool(is_owned is not None and is_owned())

    def _event_id(self, fields: dict[str, Any]) -> str:
        # A replayed canonical record keeps its id (the envelope key is not an event field), unless
        # it holds a secret ("evt_ghp_..."): then a new id, as for an event without one.
        existing = fields.pop("event_id", None)
        if (
            isinstance(existing, str)
            and _EVENT_ID.fullmatch(existing)
            and self._normaliser.scrub_name(existing) == existing
        ):
            return existing
        return self._ids.event_id(fields, self._state.position)

    def _internal_error(self, exc: BaseException) -> None:
        self.stats.internal_errors += 1
        if not self._error_logged:
            self._error_logged = True
            try:
                _logger.error("auditspan: internal error (further ones are only counted)", exc_info=exc)
            except Exception:  # a handler that fails (or no stack left to log with) must not raise
                self._error_logged = False


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


_signals.on_signal(_signals.HELD_RECORDS, _write_held_for_signal)


def _attribute_length_limit() -> int:
    for name in ("OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT", "OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT"):
        value = os.environ.get(name, "").strip()
        if value.isdigit() and int(value) > 0:
            return int(value)
    return DEFAULT_ATTRIBUTE_LENGTH


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

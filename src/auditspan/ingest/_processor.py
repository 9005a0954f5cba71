"""``AuditSpanProcessor``: the agent and tool spans of any instrumentation, written as audit records.

Runtimes that emit the GenAI conventions' spans themselves (Pydantic AI, the MCP SDK, ADK,
Strands, AutoGen) and the instrumentors of the others (OpenInference, OpenLLMetry, the
``opentelemetry-instrumentation-genai-*`` packages) already describe every turn and tool
call. Added to the TracerProvider, this processor reads those spans (see ``_conventions``)
and writes the canonical records beside them, with the same classification, behavioural
rules, redaction and governance envelope as ``SpanCollector``:

==========================  ==================================================================
span                        records
==========================  ==================================================================
agent                       ``turn_start`` (with the span's start time) before the first record
                            of the turn, or at its end; ``error`` if it failed and ``turn_end``
                            when it ends. The prompt is the agent span's input, else the last
                            user message of the first model call under it.
tool                        ``tool_call_attempt`` (and any ``behavior_rule_match``) when it
                            starts, then ``tool_call_complete`` or ``tool_call_failure``
                            (``error_type`` from the span) when it ends; a Pydantic AI
                            deferral first writes its ``tool_policy_decision``
guardrail (OpenInference)   ``tool_policy_decision`` (``policy_source`` ``guardrail:{name}``);
                            inside a tool span, the call's governance from then on
==========================  ==================================================================

Each record carries that span's own trace and span id; times and durations are the
span's own. A span recognised only at its end (OpenInference's LangChain instrumentor
sets every attribute then) gets all its records at its end. ``turn_id`` is the agent
span's span id; a call's turn is its nearest agent ancestor, found through the open
spans below that agent. Spans that start with no attributes at all (and the spans under
them) are remembered as of unknown kind: the records of a span recognised at its end
below one are held there until it ends. If it turns out an agent span, its ``turn_start``
is written first, then the held records with its ``turn_id`` / ``agent_id`` (their ids,
times and telemetry unchanged), then its ``turn_end``; otherwise they go up to the next
such open ancestor, or are written. At most ``max_held_records`` records and about
``max_held_bytes`` bytes are held in all: past that, records are written at once
(without their turn, counted in ``stats.held_over_bound``), never dropped; ``force_flush``,
``shutdown`` and eviction at the bound write what is held.

One span per call: the processor never makes a span. A tool span directly under an open
tool span of the same call -- MCP's server span under its client's request span, or the
request under a framework's ``execute_tool``, or a second instrumentation of the same
tool -- is not a second call: its failure (MCP's ``isError``) is carried to the outer
call's records. auditspan's own spans (scope ``auditspan``) are skipped.

Threading: ``on_start`` / ``on_end`` run on the thread that starts or ends the span
(the agent's). They never raise: an internal failure is counted
(``stats.internal_errors``) and logged once. They wait only for the audit log, whose
``export`` blocks for at most its documented bound (``max_block_s``, 0.5 s) when its
queue is full. State is bounded: at most ``max_open_spans`` open spans are remembered
(agent, tool and guardrail spans and the spans under an agent); beyond that the oldest
is forgotten, counted in ``stats.spans_evicted`` and logged once per episode -- its
records are still written when it ends (read from the span itself), though a turn's
call count is then lost.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
import weakref
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import IO, Any, Final

from opentelemetry.context import Context
from opentelemetry.sdk.trace import Event, ReadableSpan, Span, SpanProcessor
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import SpanContext, Status, StatusCode

from .. import _deep, _fork, _signals
from .. import attributes as attr
from .._bounded import BoundReport
from .._ids import RandomIds
from ..audit_log import AuditLogExporter, AuditLogExportResult, open_audit_log
from ..classification import Classification, Classifier
from ..governance import governance_envelope, strongest_decision
from ..records import AGENT_ACTION, event_record
from ..redaction import CapturePolicy, Redactor
from ..rules import BehaviourRule, RuleEngine, RuleMatch
from ._conventions import (
    AGENT,
    GUARDRAIL,
    MCP,
    RECOGNITION_KEYS,
    TOOL,
    Outcome,
    Recognized,
    ToolFacts,
    agent_facts,
    guardrail_verdict,
    is_own_scope,
    outcome,
    recognize,
    tool_facts,
)

__all__ = ["AuditSpanProcessor", "IngestStats"]

_logger = logging.getLogger("auditspan")

#: Content (arguments, results, prompts, replies) is cut to this many characters in a record.
PREVIEW_CHARS: Final = 2_048
#: Content longer than this is cut before it is redacted (a secret at the cut is still redacted whole).
_REDACT_CHARS: Final = 16_384

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=timezone.utc)
#: A model call's input, read for a turn's prompt (a set test: the SDK's mapping makes ``in`` slow).
_PROMPT_KEYS: Final = frozenset({attr.GEN_AI_INPUT_MESSAGES})

# The role of a remembered open span.
_ROLE_TURN: Final = 1
_ROLE_CALL: Final = 2
_ROLE_SAME_CALL: Final = 3  # a second span of a call already open (MCP server under its client, ...)
_ROLE_GUARDRAIL: Final = 4
_ROLE_INSIDE: Final = 5  # any other span under an agent: it only passes the turn down
_ROLE_UNKNOWN: Final = 6  # a span of no kind known yet (attributes at its end): holds the records below it
#: What a held record counts in ``max_held_bytes`` beyond its text fields (ids, times, envelope).
_RECORD_OVERHEAD_BYTES: Final = 512


@dataclass
class IngestStats:
    """Counters of an ``AuditSpanProcessor`` (read them; they only grow).

    ``turns`` / ``tool_calls`` / ``guardrails``: spans recorded; ``same_call_spans``: tool
    spans recognised as a second view of a call already recorded; ``records``: records
    handed to the audit log (``records_failed``: refused by it); ``rule_matches``;
    ``spans_evicted``: open spans forgotten at the ``max_open_spans`` bound;
    ``own_spans_skipped``: auditspan's own spans; ``internal_errors``: failures caught;
    ``records_held``: records held under a span of unknown kind until it ended;
    ``held_over_bound``: records written at once because ``max_held_records`` /
    ``max_held_bytes`` was reached (without the turn they would have been given).
    """

    turns: int = 0
    tool_calls: int = 0
    guardrails: int = 0
    same_call_spans: int = 0
    records: int = 0
    records_failed: int = 0
    rule_matches: int = 0
    spans_evicted: int = 0
    own_spans_skipped: int = 0
    internal_errors: int = 0
    records_held: int = 0
    held_over_bound: int = 0


class _Turn:
    """An agent span's turn. Its ``turn_start`` is written when the first record of the turn is
    (a call's attempt, a guardrail's decision) or when it ends: until then the prompt may still
    come, from the first model call under it (Pydantic AI sets none on its agent span before it
    ends)."""

    __slots__ = (
        "agent_id",
        "calls",
        "prompt",
        "session_id",
        "span_id",
        "start_ns",
        "started",
        "trace_id",
        "turn_id",
    )

    def __init__(
        self,
        trace_id: int,
        span_id: int,
        start_ns: int | None,
        agent_id: str | None,
        session_id: str | None,
        prompt: str | None,
    ) -> None:
        self.trace_id = trace_id
        self.span_id = span_id
        self.turn_id = _hex_span(span_id)
        self.start_ns = start_ns
        self.agent_id = agent_id
        self.session_id = session_id
        self.prompt = prompt
        self.calls = 0
        self.started = False


class _Call:
    __slots__ = (
        "agent_id",
        "arguments",
        "call_id",
        "classification",
        "convention",
        "governance",
        "inner",
        "session_id",
        "tool_name",
        "turn",
    )

    def __init__(
        self,
        turn: _Turn | None,
        tool_name: str,
        call_id: str | None,
        agent_id: str | None,
        session_id: str | None,
        classification: Classification,
        convention: str,
        arguments: str,
    ) -> None:
        self.turn = turn
        #: The arguments as the capture policy lets them into the records.
        self.arguments = arguments
        self.tool_name = tool_name
        self.call_id = call_id
        self.agent_id = agent_id
        self.session_id = session_id
        self.classification = classification
        self.convention = convention
        #: The call's governance envelope once something decided on it (a guardrail, MCP's isError).
        self.governance: dict[str, Any] | None = None
        #: A failure reported by a second span of this call (MCP's server span under its request).
        self.inner: Outcome | None = None


class _Open:
    """What is remembered of an open span: its role, its turn, its call (the state is this small)."""

    __slots__ = ("call", "role", "turn")

    def __init__(self, role: int, turn: _Turn | None, call: _Call | None) -> None:
        self.role = role
        self.turn = turn
        self.call = call


class _Unknown(_Open):
    """An open span whose kind is not known yet (its attributes may all come at its end, as
    OpenInference's LangChain instrumentor sets them): the records of the spans recognised
    under it wait here, in order, until it ends and its kind is known."""

    __slots__ = ("closed", "held", "held_bytes", "taken")

    def __init__(self) -> None:
        super().__init__(_ROLE_UNKNOWN, None, None)
        self.held: list[dict[str, Any]] = []
        self.held_bytes = 0
        #: Ended (or forgotten): nothing more is held here.
        self.closed = False
        #: What was held when it closed (a re-run on a fresh stack takes the same records).
        self.taken: list[dict[str, Any]] = []


class _Ended:
    """What the processor reads of an ended span, read once.

    The SDK hands attributes out as a read-only view of its bounded mapping, where every
    lookup of an absent key costs a raised ``KeyError``; the conventions look up many absent
    keys, so they read a plain copy.
    """

    __slots__ = (
        "attributes",
        "context",
        "end_time",
        "events",
        "name",
        "parent",
        "scope",
        "start_time",
        "status",
    )

    def __init__(self, span: ReadableSpan) -> None:
        self.name: str = span.name
        self.context: SpanContext | None = span.context
        self.parent: SpanContext | None = span.parent
        raw = span.attributes
        self.attributes: dict[str, Any] = dict(raw) if raw else {}
        self.status: Status = span.status
        self.events: Sequence[Event] = span.events
        self.start_time: int | None = span.start_time
        self.end_time: int | None = span.end_time
        self.scope: InstrumentationScope | None = span.instrumentation_scope


def _iso(ns: int | None) -> str:
    """A span time as the seed writes timestamps (``2026-11-21T19:24:17.134534+00:00``)."""
    if not ns:
        return datetime.now(timezone.utc).isoformat()
    return (_EPOCH + timedelta(microseconds=ns // 1_000)).isoformat()


def _hex_span(span_id: int) -> str:
    return f"{span_id:016x}"


class AuditSpanProcessor(SpanProcessor):
    """Write the canonical audit records of every agent and tool span, whoever instruments them.

    Args:
        audit_log: where the records go: a path (a ``JsonLinesAuditLog`` is opened on it,
            and closed by ``shutdown``), a stream, or an audit-log exporter (flushed by
            ``shutdown``, not closed: its owner closes it).
        classifier: the ``Classifier`` of tool calls (default: a new one).
        redactor: the capture policy (default: ``Redactor()``, policy ``redacted``).
        rules: a ``RuleEngine`` or ``BehaviourRule`` s (default: none; ``configure()``
            passes the configured rules).
        max_open_spans: how many open spans are remembered (see the module docstring).
        max_held_records: how many records, in all, may wait for the end of a span of
            unknown kind above them (see the module docstring); 0 holds none.
        max_held_bytes: about how many bytes of records (their text) may wait so, in all.

    Add it to a ``TracerProvider`` (``configure()`` does, unless ``ingest_spans=False``)::

        provider.add_span_processor(AuditSpanProcessor("audit.jsonl"))

    Records do not depend on sampling only if the processor sees the spans: a span the
    sampler drops never reaches any processor. Wrap the sampler in ``AuditSampler``.
    """

    def __init__(
        self,
        audit_log: str | os.PathLike[str] | IO[Any] | AuditLogExporter,
        *,
        classifier: Classifier | None = None,
        redactor: Redactor | None = None,
        rules: RuleEngine | Iterable[BehaviourRule] | None = None,
        max_open_spans: int = 100_000,
        max_held_records: int = 4_096,
        max_held_bytes: int = 8 * 1024 * 1024,
    ) -> None:
        owned = isinstance(audit_log, (str, os.PathLike)) or hasattr(audit_log, "write")
        log = open_audit_log(audit_log)
        if log is None:
            raise ValueError(
                "audit_log: an AuditSpanProcessor needs an audit log (a path, a stream or an exporter)"
            )
        if max_open_spans < 1:
            raise ValueError(f"max_open_spans must be at least 1, got {max_open_spans!r}")
        for name, value in (("max_held_records", max_held_records), ("max_held_bytes", max_held_bytes)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{name} must be an integer of at least 0, got {value!r}")
        self.audit_log: AuditLogExporter = log
        self._owns_log = owned
        self.classifier = classifier if classifier is not None else Classifier()
        self.redactor = redactor if redactor is not None else Redactor()
        if rules is None or isinstance(rules, RuleEngine):
            self.rules: RuleEngine | None = rules
        else:
            rule_list = list(rules)
            self.rules = RuleEngine(rule_list) if rule_list else None
        self.stats = IngestStats()
        self._max_open = max_open_spans
        self._max_held = max_held_records
        self._max_held_bytes = max_held_bytes
        self._held_count = 0  # records held now, all spans of unknown kind together
        self._held_bytes = 0
        # Insertion order is age: the oldest is forgotten first, in O(1).
        self._open: OrderedDict[int, _Open] = OrderedDict()
        self._lock = _fork.fork_safe_lock()
        self._ids = RandomIds()
        self._bounds = BoundReport(_logger)
        self._closed = False
        self._errors_logged = False
        #: In a forked child: spans started before this time are the parent's (it writes their records).
        self._forked_at_ns = 0
        _fork.track(self, tier=0)
        _live.add(self)

    # --- SpanProcessor ---------------------------------------------------------------
    @_deep.guard
    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        """Remember an agent, tool or guardrail span; write what is known at its start. Never raises."""
        try:
            if self._closed:
                return
            raw = span.attributes
            parent = span.parent
            home = self._open.get(parent.span_id) if parent is not None else None
            if raw and not RECOGNITION_KEYS.isdisjoint(raw):
                self._started(span, dict(raw), home)  # see _Ended for the copy
            elif home is not None:  # under an agent or a call: passes the turn and call down
                self._remember(span, _inside(home))
            elif not raw:  # nothing known of it yet: its kind may come at its end (OpenInference)
                self._remember(span, _Unknown())
        except RecursionError:
            raise  # no stack left: _deep.guard finishes it on a fresh one (nothing was half done)
        except Exception:
            self._internal_error("on_start")

    @_deep.roomy
    def _started(self, span: Span, attributes: dict[str, Any], home: _Open | None) -> None:
        """A span with one of the conventions' keys (on a fresh stack when the caller's is nearly out)."""
        try:
            recognized = recognize(span.name, attributes)
            if recognized is None:
                if home is not None:
                    self._remember(span, _inside(home))
                return
            scope = span.instrumentation_scope
            if scope is not None and is_own_scope(scope.name):
                self.stats.own_spans_skipped += 1
                return
            if recognized.role == AGENT:
                self._start_turn(span, attributes)
            elif recognized.role == TOOL:
                self._start_call(span, attributes, recognized, home)
            else:
                self._remember(span, _Open(_ROLE_GUARDRAIL, home.turn if home else None, _call_of(home)))
        except RecursionError:
            raise  # finished on a fresh stack (auditspan._deep)
        except Exception:
            self._internal_error("on_start")

    @_deep.guard
    def on_end(self, readable: ReadableSpan) -> None:
        """Write the records of an ended agent, tool or guardrail span. Never raises."""
        span_id = None
        try:
            context = readable.context
            if context is None:
                return
            span_id = context.span_id
            # Forgotten once its records are written: run again on a fresh stack (_deep.guard),
            # the end still finds what its start remembered.
            state = self._open.get(span_id)
            self._end(readable, state)
            if state is not None:
                self._forget(span_id)
        except RecursionError:
            raise  # no stack left: _deep.guard finishes it on a fresh one
        except Exception:
            if span_id is not None:
                self._forget(span_id)
            self._internal_error("on_end")

    def _end(self, readable: ReadableSpan, state: _Open | None) -> None:
        if self._closed or (self._forked_at_ns and (readable.start_time or 0) < self._forked_at_ns):
            return
        if state is None or state.role == _ROLE_INSIDE:
            raw = readable.attributes
            if not raw:
                return
            if state is None:
                if RECOGNITION_KEYS.isdisjoint(raw):  # no agent, tool or guardrail span
                    return
            else:  # a span under a turn: perhaps the model call that carries its prompt
                turn = state.turn
                if turn is None or turn.started or turn.prompt is not None:
                    return
                if _PROMPT_KEYS.isdisjoint(raw):
                    return
        elif state.role == _ROLE_UNKNOWN:
            raw = readable.attributes
            if (not raw or RECOGNITION_KEYS.isdisjoint(raw)) and not self._held_count:
                assert isinstance(state, _Unknown)
                if not self._take_held(state):  # no agent or tool, and nothing held under it
                    return
        self._ended_span(_Ended(readable), state)

    @_deep.roomy
    def _ended_span(self, span: _Ended, state: _Open | None) -> None:
        """The records of an ended span (on a fresh stack when the caller's is nearly out)."""
        try:
            if state is None:
                self._end_unseen(span)
            elif state.role == _ROLE_TURN:
                assert state.turn is not None
                self._end_turn(span, state.turn)
            elif state.role == _ROLE_CALL:
                assert state.call is not None
                self._end_call(span, state.call, attempt_written=True)
            elif state.role == _ROLE_SAME_CALL:
                self._end_same_call(span, state.call)
            elif state.role == _ROLE_GUARDRAIL:
                self._end_guardrail(span, state.turn, state.call)
            elif state.role == _ROLE_UNKNOWN:
                assert isinstance(state, _Unknown)
                self._end_unseen(span, self._take_held(state))
            elif state.turn is not None:
                self._prompt_from(span, state.turn)
        except RecursionError:
            raise  # finished on a fresh stack (auditspan._deep)
        except Exception:
            self._internal_error("on_end")

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        """Write the records held for a turn (without it: they are evidence before they are
        complete), then flush the audit log (at most ``timeout_millis``); True when everything
        is written."""
        try:
            self._release_held()
            return bool(self.audit_log.force_flush(timeout_millis))
        except Exception:
            self._internal_error("force_flush")
            return False

    def shutdown(self) -> None:
        """Stop recording; close the audit log if the processor opened it, else flush it."""
        if self._closed:
            return
        self._closed = True
        try:
            self._release_held()
        except Exception:
            self._internal_error("shutdown")
        try:
            if self._owns_log:
                self.audit_log.shutdown()
            else:
                self.audit_log.force_flush()
        except Exception:
            self._internal_error("shutdown")
        with self._lock:
            self._open.clear()

    @property
    def closed(self) -> bool:
        """True after ``shutdown()``: nothing more is recorded."""
        return self._closed

    def open_spans(self) -> int:
        """How many open spans are remembered now (at most ``max_open_spans``)."""
        return len(self._open)

    # --- fork -----------------------------------------------------------------------
    def _fork_child(self) -> None:
        # The open spans are the parent's: it writes their records. The child starts empty and
        # ignores the ends of spans started before the fork (os.fork children that unwind them).
        self._open = OrderedDict()
        self._held_count = self._held_bytes = 0  # the held records are the parent's too
        self._forked_at_ns = time.time_ns()

    # --- records held under a span of unknown kind ---------------------------------------
    def _emit(self, records: list[dict[str, Any]], home: _Open | None) -> None:
        """Write ``records``, or hold them under ``home`` if it is a span of unknown kind."""
        if not records:
            return
        if home is not None and home.role == _ROLE_UNKNOWN:
            assert isinstance(home, _Unknown)
            size = sum(_record_bytes(record) for record in records)
            with self._lock:
                if not home.closed and not self._closed:
                    if (
                        self._held_count + len(records) <= self._max_held
                        and self._held_bytes + size <= self._max_held_bytes
                    ):
                        home.held.extend(records)
                        home.held_bytes += size
                        self._held_count += len(records)
                        self._held_bytes += size
                        self.stats.records_held += len(records)
                        return
                    self.stats.held_over_bound += len(records)
                    over = True
                else:
                    over = False
            if over:
                self._bounds.hit(
                    "held records",
                    f"max_held_records={self._max_held} / max_held_bytes={self._max_held_bytes}: "
                    "records waiting for a span of unknown kind above them were written at once, "
                    "without their turn",
                )
        self._write(records)

    def _take_held(self, state: _Unknown) -> list[dict[str, Any]]:
        """The records held under an ended (or forgotten) span; nothing is held there after."""
        with self._lock:
            if state.closed:
                return state.taken
            state.closed = True
            held = state.taken = state.held
            state.held = []
            self._held_count -= len(held)
            self._held_bytes -= state.held_bytes
            state.held_bytes = 0
        return held

    def _release_held(self, timeout_s: float = -1) -> bool:
        """Write every held record now (force_flush, shutdown, a signal): evidence is never kept
        back. False when the lock was not free within ``timeout_s`` (-1: wait for it)."""
        if not self._held_count:
            return True
        if not self._lock.acquire(timeout=timeout_s):
            return False
        try:
            batches: list[list[dict[str, Any]]] = []
            for state in self._open.values():
                if isinstance(state, _Unknown) and state.held:
                    batches.append(state.held)
                    state.held = []
                    state.held_bytes = 0
            self._held_count = self._held_bytes = 0
        finally:
            self._lock.release()
        for held in batches:
            self._write(held)
        return True

    def _claim(self, held: list[dict[str, Any]], turn: _Turn) -> list[dict[str, Any]]:
        """Held records that had no turn are this turn's (a nested turn's keep their own)."""
        for record in held:
            if record.get("turn_id") is not None:
                continue
            record["turn_id"] = turn.turn_id
            record["agent_id"] = turn.agent_id
            if turn.session_id is not None:
                record["session_id"] = turn.session_id
            if record.get("event_type") == "tool_call_attempt":
                turn.calls += 1
        return held

    # --- turns ----------------------------------------------------------------------
    def _start_turn(self, span: Span, attributes: Mapping[str, Any]) -> None:
        facts = agent_facts(span.name, attributes)
        context = span.context
        turn = _Turn(
            context.trace_id,
            context.span_id,
            span.start_time,
            self._name(facts.agent_id),
            self._name(facts.session_id),
            facts.prompt,
        )
        # Marks the span as seen at its start: if the processor forgets it (bound), its end
        # knows its turn_start was written (an unstarted turn is started when forgotten).
        span.set_attribute(attr.TURN_ID, turn.turn_id)
        self._remember(span, _Open(_ROLE_TURN, turn, None))
        with self._lock:
            self.stats.turns += 1

    def _prompt_from(self, span: _Ended, turn: _Turn) -> None:
        """A model call under a turn that has no prompt yet: its input's last user message is it."""
        attributes = span.attributes
        if attributes and attr.GEN_AI_INPUT_MESSAGES in attributes:
            turn.prompt = agent_facts(
                "", {attr.GEN_AI_INPUT_MESSAGES: attributes[attr.GEN_AI_INPUT_MESSAGES]}
            ).prompt

    def _turn_start(self, turn: _Turn) -> list[dict[str, Any]]:
        """``[turn_start]`` the first time it is asked for, ``[]`` after (whatever the thread)."""
        with self._lock:
            if turn.started:
                return []
            turn.started = True
        fields = self._fields(
            "turn_start", turn.start_ns, turn.agent_id, turn.turn_id, turn.session_id, "info"
        )
        fields["prompt_preview"] = self._content(turn.prompt)
        return [self._record(fields, "WORKFLOW_START", None, turn.trace_id, turn.span_id)]

    def _end_turn(
        self,
        span: _Ended,
        turn: _Turn,
        held: list[dict[str, Any]] | None = None,
        home: _Open | None = None,
    ) -> None:
        attributes = span.attributes
        facts = agent_facts(span.name, attributes)
        if facts.prompt is not None and not turn.started:
            turn.prompt = facts.prompt  # the agent span's own, set by its end
        records = self._turn_start(turn)
        if held:
            records += self._claim(held, turn)
        status = span.status
        ended = outcome(
            attributes,
            is_error=status.status_code is StatusCode.ERROR,
            status_description=status.description,
            events=span.events,
        )
        if ended.failed:
            fields = self._fields(
                "error", span.end_time, turn.agent_id, turn.turn_id, turn.session_id, "error"
            )
            fields["error_type"] = self._name(ended.error_type) or ""
            fields["error_message"] = self.redactor.scrub(ended.error_message)
            fields["error_context"] = self.redactor.scrub(f"agent span {span.name}")
            records.append(
                self._record(fields, "AGENT_ACTION", None, turn.trace_id, turn.span_id, custom_type="error")
            )
        fields = self._fields("turn_end", span.end_time, turn.agent_id, turn.turn_id, turn.session_id, "info")
        fields["content_preview"] = self._content(facts.reply)
        fields["function_calls_count"] = turn.calls
        records.append(self._record(fields, "WORKFLOW_COMPLETE", None, turn.trace_id, turn.span_id))
        self._emit(records, home)

    # --- tool calls -------------------------------------------------------------------
    def _start_call(
        self, span: Span, attributes: Mapping[str, Any], recognized: Recognized, home: _Open | None
    ) -> None:
        facts = tool_facts(span.name, attributes)
        outer = _outer_call(home)
        if outer is not None and self._same_call(recognized, facts, outer):
            self.stats.same_call_spans += 1
            self._remember(span, _Open(_ROLE_SAME_CALL, outer.turn, outer))
            return
        call = self._new_call(facts, recognized, home)
        self._remember(span, _Open(_ROLE_CALL, call.turn, call))
        self._enrich(span, call.classification)
        context = span.context
        self._write(self._attempt(call, span.start_time, context.trace_id, context.span_id, span))

    def _new_call(self, facts: ToolFacts, recognized: Recognized, home: _Open | None) -> _Call:
        turn = home.turn if home is not None else None
        tool_name = self._name(facts.tool_name) or ""
        if turn is not None:
            agent_id, session_id = turn.agent_id, turn.session_id
        else:  # no agent span above it: the tool span may name its agent and conversation itself
            agent_id, session_id = self._name(facts.agent_id), self._name(facts.session_id)
        with self._lock:  # parallel calls of one turn may start on several threads
            if turn is not None:
                turn.calls += 1
            self.stats.tool_calls += 1
        captured = self._content(facts.arguments)
        raw = facts.arguments[:PREVIEW_CHARS] if facts.arguments else ""
        return _Call(
            turn,
            tool_name,
            self._name(facts.call_id),
            agent_id,
            session_id,
            self._classify(tool_name, raw, captured),
            recognized.convention,
            captured,
        )

    def _same_call(self, recognized: Recognized, facts: ToolFacts, outer: _Call) -> bool:
        """Whether a tool span directly under an open call's span is that call again, not a new one.

        MCP's request span is how the outer call is carried out, and the server's span under
        it is the same call executed; a tool span of the same tool directly inside another
        is a second instrumentation of one call. A different tool called from inside a tool
        is a call of its own.
        """
        if recognized.transport or (recognized.convention == MCP and outer.convention == MCP):
            return True
        return self._name(facts.tool_name) == outer.tool_name

    def _attempt(
        self,
        call: _Call,
        start_ns: int | None,
        trace_id: int,
        span_id: int,
        live: Span | None,
    ) -> list[dict[str, Any]]:
        """The attempt's record and the behavioural-rule matches it completes."""
        records = self._turn_start(call.turn) if call.turn is not None else []
        fields = self._call_fields(call, "tool_call_attempt", start_ns, "info")
        fields["arguments_preview"] = call.arguments
        record = self._record(fields, None, call.classification, trace_id, span_id)
        records.append(record)
        if self.rules is not None:
            for match in self.rules.observe(record):
                records.append(self._rule_match(record, match, call))
                if live is not None:  # where tail sampling reads it
                    live.set_attributes({attr.RULE_ACTION: match.action, attr.RULE_NAME: match.rule})
        return records

    def _ended(self, span: _Ended, convention: str | None) -> Outcome:
        status = span.status
        return outcome(
            span.attributes,
            is_error=status.status_code is StatusCode.ERROR,
            status_description=status.description,
            events=span.events,
            convention=convention,
        )

    def _end_call(
        self,
        span: _Ended,
        call: _Call,
        *,
        attempt_written: bool,
        held: list[dict[str, Any]] | None = None,
        home: _Open | None = None,
    ) -> None:
        context = span.context
        assert context is not None
        facts = tool_facts(span.name, span.attributes)
        ended = self._ended(span, call.convention)
        if not ended.failed and call.inner is not None:
            ended = call.inner  # the server said isError (or failed) under a request that went fine
        records: list[dict[str, Any]] = []
        if not attempt_written:
            records += self._attempt(call, span.start_time, context.trace_id, context.span_id, None)
        if held:
            records += held  # what ran inside the call, between its attempt and its end
        trace_id, span_id = context.trace_id, context.span_id
        if ended.decision is not None:
            governance = governance_envelope(ended.decision, ended.policy, None)
            call.governance = _stronger(call.governance, governance)
            if ended.policy is not None and ended.policy.startswith("pydantic_ai:"):
                # The tool asked for approval (or deferred the call): the runtime's own policy decision.
                fields = self._call_fields(call, "tool_policy_decision", span.end_time, "warning")
                fields["action"] = ended.decision.lower()
                fields["policy_source"] = ended.policy
                records.append(
                    self._record(fields, None, call.classification, trace_id, span_id, governance=governance)
                )
        if ended.failed:
            fields = self._call_fields(call, "tool_call_failure", span.end_time, "error")
            fields["error_type"] = self._name(ended.error_type) or ""
            fields["error_message"] = self.redactor.scrub(ended.error_message)
        else:
            fields = self._call_fields(call, "tool_call_complete", span.end_time, "info")
            fields["status"] = "success"
            fields["duration_ms"] = _duration_ms(span)
            fields["result_preview"] = self._content(facts.result)
        records.append(
            self._record(fields, None, call.classification, trace_id, span_id, governance=call.governance)
        )
        self._emit(records, home)

    def _end_same_call(self, span: _Ended, call: _Call | None) -> None:
        if call is None:
            return
        recognized = recognize(span.name, span.attributes)
        ended = self._ended(span, recognized.convention if recognized is not None else None)
        if ended.failed:
            call.inner = ended

    # --- guardrails -------------------------------------------------------------------
    def _end_guardrail(
        self,
        span: _Ended,
        turn: _Turn | None,
        call: _Call | None,
        held: list[dict[str, Any]] | None = None,
        home: _Open | None = None,
    ) -> None:
        attributes = span.attributes
        context = span.context
        assert context is not None
        self.stats.guardrails += 1
        verdict = guardrail_verdict(attributes, is_error=span.status.status_code is StatusCode.ERROR)
        source = f"guardrail:{span.name}"
        governance = governance_envelope(verdict, self.redactor.scrub(source), None)
        if call is not None:
            call.governance = _stronger(call.governance, governance)
            fields = self._call_fields(call, "tool_policy_decision", span.end_time, "info")
            classification: Classification | None = call.classification
        else:
            fields = self._fields(
                "tool_policy_decision",
                span.end_time,
                turn.agent_id if turn else None,
                turn.turn_id if turn else None,
                turn.session_id if turn else None,
                "info",
            )
            fields["tool_name"] = ""
            classification = None
        fields["action"] = verdict.lower()
        fields["policy_source"] = (
            governance["policies_evaluated"][0] if governance["policies_evaluated"] else ""
        )
        record = self._record(
            fields,
            "AGENT_ACTION",
            classification,
            context.trace_id,
            context.span_id,
            governance=governance,
            custom_type="guardrail",
        )
        self._emit([*(self._turn_start(turn) if turn is not None else ()), *(held or ()), record], home)

    # --- spans not seen at their start ------------------------------------------------
    def _end_unseen(self, span: _Ended, held: list[dict[str, Any]] | None = None) -> None:
        """A span recognised only at its end, forgotten at the bound, or started before the
        processor; ``held``: the records held under it (a span of unknown kind until now)."""
        parent = span.parent
        home = self._open.get(parent.span_id) if parent is not None else None
        attributes = span.attributes
        recognized = recognize(span.name, attributes) if attributes else None
        if recognized is None:
            if held:
                self._emit(held, home)  # no agent: up to the next span of unknown kind, or written
            return
        scope = span.scope
        if scope is not None and is_own_scope(scope.name):
            self.stats.own_spans_skipped += 1
            if held:
                self._emit(held, home)
            return
        context = span.context
        assert context is not None
        if recognized.role == AGENT:
            agent = agent_facts(span.name, attributes)
            turn = _Turn(
                context.trace_id,
                context.span_id,
                span.start_time,
                self._name(agent.agent_id),
                self._name(agent.session_id),
                agent.prompt,
            )
            if attributes.get(attr.TURN_ID) == turn.turn_id:
                turn.started = True  # seen at its start, and started when it was forgotten
            else:
                with self._lock:
                    self.stats.turns += 1
            self._end_turn(span, turn, held, home)
        elif recognized.role == TOOL:
            facts = tool_facts(span.name, attributes)
            outer = _outer_call(home)
            if outer is not None and self._same_call(recognized, facts, outer):
                self.stats.same_call_spans += 1
                self._end_same_call(span, outer)
                if held:
                    self._emit(held, home)
                return
            # Enriched at its start (then forgotten at the bound): its attempt was written then.
            attempt_written = attr.OPERATION_TYPE in attributes
            call = self._new_call(facts, recognized, home)
            if attempt_written:
                with self._lock:  # counted at its start
                    self.stats.tool_calls -= 1
                    if call.turn is not None:
                        call.turn.calls -= 1
            self._end_call(span, call, attempt_written=attempt_written, held=held, home=home)
        elif recognized.role == GUARDRAIL:
            self._end_guardrail(span, home.turn if home else None, _call_of(home), held, home)

    # --- records ----------------------------------------------------------------------
    def _fields(
        self,
        event_type: str,
        ns: int | None,
        agent_id: str | None,
        turn_id: str | None,
        session_id: str | None,
        severity: str,
        metadata: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        return {
            "event_type": event_type,
            "timestamp": _iso(ns),
            "agent_id": agent_id,
            "turn_id": turn_id,
            "session_id": session_id,
            "severity": severity,
            "metadata": metadata if metadata is not None else {},
        }

    def _call_fields(self, call: _Call, event_type: str, ns: int | None, severity: str) -> dict[str, Any]:
        # The runtime's call id pairs the call's records exactly (``metadata.tool_call_id``, as in events).
        metadata: dict[str, Any] = {"tool_call_id": call.call_id} if call.call_id else {}
        fields = self._fields(
            event_type,
            ns,
            call.agent_id,
            call.turn.turn_id if call.turn is not None else None,
            call.session_id,
            severity,
            metadata,
        )
        fields["tool_name"] = call.tool_name
        return fields

    def _record(
        self,
        fields: dict[str, Any],
        operation_type: str | None,
        classification: Classification | None,
        trace_id: int,
        span_id: int,
        *,
        governance: dict[str, Any] | None = None,
        custom_type: str | None = None,
    ) -> dict[str, Any]:
        """The canonical record of ``fields``, as the collector builds it (``records.event_record``);
        ``custom_type`` names the kind of an event of no tool call (``guardrail``, ``error``)."""
        record = event_record(
            fields,
            self._ids.event_id(fields, 0),
            trace_id,
            span_id,
            operation_type or AGENT_ACTION,
            governance,
            classification,
        )
        if classification is None and custom_type is not None:
            record["parameters"]["custom_type"] = custom_type
        return record

    def _rule_match(self, record: dict[str, Any], match: RuleMatch, call: _Call) -> dict[str, Any]:
        """A behavioural rule fired on this call's attempt: its own record, as ``SpanCollector`` writes it."""
        self.stats.rule_matches += 1
        fields = match.event_fields(record, attr.EVENT_TYPE_RULE_MATCH)
        telemetry = record["telemetry"]
        trace_hex, span_hex = telemetry["trace_id"], telemetry["span_id"]
        governance = {
            "decision": match.action,
            "policies_evaluated": [match.rule],
            "trust_score_at_time": None,
        }
        result = self._record(
            fields,
            None,
            call.classification,
            int(trace_hex, 16) if trace_hex else 0,
            int(span_hex, 16) if span_hex else 0,
            governance=governance,
        )
        return result

    def _write(self, records: list[dict[str, Any]]) -> None:
        try:
            result = self.audit_log.export(records)
        except Exception:
            self.stats.records_failed += len(records)
            self._internal_error("the audit log's export")
            return
        if result is AuditLogExportResult.FAILURE or getattr(result, "name", None) == "FAILURE":
            self.stats.records_failed += len(records)
        else:
            self.stats.records += len(records)

    # --- the capture policy --------------------------------------------------------------
    def _name(self, value: str | None) -> str | None:
        """An id, name or tag: scrubbed (memoised), ``None`` kept."""
        if value is None:
            return None
        return self.redactor.scrub_name(value)

    def _content(self, value: str | None) -> str:
        """A prompt, reply, arguments or result, under the capture policy, cut to ``PREVIEW_CHARS``."""
        if not value:
            return ""
        if self.redactor.policy is CapturePolicy.NONE:
            return ""
        text = self.redactor.capture(value[:_REDACT_CHARS])
        if len(text) > PREVIEW_CHARS:
            text = text[:PREVIEW_CHARS]
        return text

    def _classify(self, tool_name: str, raw_arguments: str, captured: str) -> Classification:
        """Classify on the arguments as sent (as ``SpanCollector`` does), so that redaction does not
        hide the target; what it derives is then scrubbed like any captured string. When capturing
        changed nothing there is nothing to clean; under ``none`` it gets nothing."""
        redactor = self.redactor
        if raw_arguments == captured or not captured:
            return self.classifier.classify(tool_name, captured)
        classification = self.classifier.classify(tool_name, raw_arguments)
        target = classification.target
        parameters = classification.parameters
        clean_target = redactor.scrub(target) if isinstance(target, str) and target else target
        clean_parameters = redactor.redact_value(dict(parameters)) if parameters else parameters
        if clean_target == target and clean_parameters == dict(parameters):
            return classification
        return Classification(
            type=classification.type,
            custom_type=classification.custom_type,
            target=clean_target,
            parameters=clean_parameters,
            risk=classification.risk,
            category=classification.category,
            source=classification.source,
        )

    def _enrich(self, span: Span, classification: Classification) -> None:
        """The call's semantic type on the live span, where tail sampling and viewers read it."""
        enrichment: dict[str, Any] = {attr.OPERATION_TYPE: classification.type}
        if classification.risk:
            enrichment[attr.OPERATION_RISK] = classification.risk
        if classification.category:
            enrichment[attr.OPERATION_CATEGORY] = classification.category
        if classification.custom_type:
            enrichment[attr.OPERATION_CUSTOM_TYPE] = classification.custom_type
        if classification.target:
            enrichment[attr.OPERATION_TARGET] = classification.target
        span.set_attributes(enrichment)

    # --- bounded state ------------------------------------------------------------------
    def _remember(self, span: Span, state: _Open) -> None:
        span_id = span.context.span_id
        evicted: _Open | None = None
        with self._lock:
            table = self._open
            if len(table) >= self._max_open:
                evicted = table.popitem(last=False)[1]
                self.stats.spans_evicted += 1
            table[span_id] = state
        if evicted is not None:
            if isinstance(evicted, _Unknown):
                held = self._take_held(evicted)
                if held:
                    self._write(held)  # its end will not find them
            elif evicted.role == _ROLE_TURN and evicted.turn is not None:
                self._write(self._turn_start(evicted.turn))  # its end will not know whether it was
            self._bounds.hit(
                "ingested open spans",
                f"max_open_spans={self._max_open}: the oldest open span was forgotten "
                "(its records are still written at its end)",
            )

    def _forget(self, span_id: int) -> None:
        with self._lock:
            self._open.pop(span_id, None)

    def _internal_error(self, where: str) -> None:
        self.stats.internal_errors += 1
        if self._errors_logged:
            return
        self._errors_logged = True
        with contextlib.suppress(Exception):  # a failing log handler must not raise into the agent
            _logger.exception(
                "auditspan: AuditSpanProcessor.%s failed (counted in stats.internal_errors; logged once)",
                where,
            )


#: Every AuditSpanProcessor of this process (weakly): whose held records a signal's flush writes.
_live: weakref.WeakSet[AuditSpanProcessor] = weakref.WeakSet()
#: The longest a signal's flush waits for one processor's lock (held for microseconds by another thread).
_SIGNAL_LOCK_WAIT_S: Final = 0.2


def _write_held_for_signal(deadline: float) -> bool:
    """Write the held records of every live processor (before the audit logs are flushed).

    The lock is waited for a bounded time: if the interrupted thread itself holds it (it is
    held only around a few list and counter updates), that processor's records stay held.
    """
    for _ in range(3):
        try:
            processors = list(_live)
            break
        except RuntimeError:  # changed size during iteration (another thread made a processor)
            continue
    else:
        return True
    for processor in processors:
        if processor._closed:
            continue
        wait = min(_SIGNAL_LOCK_WAIT_S, max(0.001, deadline - time.monotonic()))
        try:
            processor._release_held(wait)
        except Exception:
            processor._internal_error("the signal's flush")
    return True


_signals.on_signal(_signals.HELD_RECORDS, _write_held_for_signal)


def _inside(home: _Open) -> _Open:
    """What a span under ``home`` that is no agent, tool or guardrail span (yet) is remembered as."""
    if home.role == _ROLE_UNKNOWN:
        return _Unknown()  # its kind, too, may come at its end
    return _Open(_ROLE_INSIDE, home.turn, home.call)


def _record_bytes(record: dict[str, Any]) -> int:
    """About a record's size for ``max_held_bytes``: its text fields (where content is) and a fixed rest."""
    return _RECORD_OVERHEAD_BYTES + sum(len(value) for value in record.values() if isinstance(value, str))


def _call_of(state: _Open | None) -> _Call | None:
    return state.call if state is not None else None


def _outer_call(home: _Open | None) -> _Call | None:
    """The call whose span (or second span) is the direct parent, if any."""
    if home is not None and home.role in (_ROLE_CALL, _ROLE_SAME_CALL):
        return home.call
    return None


def _stronger(current: dict[str, Any] | None, new: dict[str, Any]) -> dict[str, Any]:
    """The governance envelope with the stronger decision (the earlier one on a tie)."""
    if current is None:
        return new
    if strongest_decision(current.get("decision"), new.get("decision")) == current.get("decision"):
        return current
    return new


def _duration_ms(span: _Ended) -> float:
    start, end = span.start_time, span.end_time
    if start is None or end is None or end < start:
        return 0.0
    return (end - start) / 1e6

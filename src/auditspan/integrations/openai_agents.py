"""OpenAI Agents SDK adapter: its tracing processor interface, mapped onto audit events.

Register the processor once; every ``Runner.run`` is then audited::

    import auditspan
    from agents import set_trace_processors
    from auditspan.integrations.openai_agents import AuditSpanProcessor

    processor = AuditSpanProcessor(auditspan.configure(service_name="support-bot"))
    set_trace_processors([processor])        # replaces the SDK's exporter to the vendor
    # or: add_trace_processor(processor)    # keeps it

How the SDK's spans become audit events (and so spans and audit records):

=========================  ===================================================================
SDK span                   audit events
=========================  ===================================================================
agent                      ``turn_start`` / ``turn_end`` (the turn span ``invoke_agent {name}``);
                           an error on the span is an ``error`` event
function (a tool call)     ``tool_call_attempt``, then ``tool_call_complete`` or
                           ``tool_call_failure`` (the SDK records a failing tool as an error
                           on its span; the exception's class is not known to it, so
                           ``error_type`` is ``ToolError``)
guardrail                  ``tool_policy_decision`` of the turn (``allow``; ``deny`` when its
                           tripwire triggered), ``policy_source`` = ``guardrail:{name}``
handoff                    ``agent_switch`` (from / to agent)
generation / response      the turn's prompt (the last user message of the model's input, on
                           ``turn_start``), its reply (``content_preview``) and the model's
                           tool call ids, when the model records them
=========================  ===================================================================

Times are the SDK spans' own. A call's ``tool_call_id`` (``gen_ai.tool.call.id``)
is the model's own call id (``call_...``): the SDK puts none on a function
span, so it is taken from the model's recorded response (the next call of
that tool name in the response, in the model's order) or from a tool
guardrail's context; only when neither exists is it the SDK's span id
(``span_...``). Either way parallel calls are paired exactly.

The turn's start waits for the model's first recorded call, which carries the
prompt: a turn's ``turn_start`` is emitted then (with the agent span's own
start time), input-guardrail decisions that finished before it follow it.

Per-call policy decisions: the SDK has tool *input guardrails* but records no
span for them, so ``processor.tool_guardrail(policy)`` makes one that does --
it asks ``policy(tool_name, arguments)`` and emits the decision before the
call's attempt; a refusal rejects the call (the model is told) and it becomes
a denied span::

    guard = processor.tool_guardrail(lambda tool, args: tool != "delete_records")

    @function_tool(tool_input_guardrails=[guard])
    def delete_records(table: str) -> str: ...

Parents: a turn is a child of the OpenTelemetry span current when the SDK
starts the agent, except that an agent run as a tool by another agent
(``agent.as_tool()``) is a child of that tool call's span, and an agent that
receives a handoff is a child of the turn that handed off -- so one
``Runner.run`` stays one trace.

Not available from the tracing interface: the prompt, the reply and the
model's call ids when the model records no response / generation span (a
custom ``Model`` without tracing, or ``trace_include_sensitive_data`` off:
the SDK's own models then record no input and output), the exception class
of a failed tool, and tool-guardrail decisions made by guardrails other than
``tool_guardrail``.
"""

from __future__ import annotations

import json
import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import NonRecordingSpan, SpanContext

try:
    from agents.tracing import Span, Trace, TracingProcessor, get_current_span
    from agents.tracing.span_data import (
        AgentSpanData,
        FunctionSpanData,
        GenerationSpanData,
        GuardrailSpanData,
        HandoffSpanData,
        ResponseSpanData,
    )
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "auditspan.integrations.openai_agents needs the OpenAI Agents SDK: pip install openai-agents"
    ) from exc

from .. import _deep
from .._bounded import BoundReport
from .._targets import collector_of, emitter_for
from ..context import find_span_collector, span_context_for
from ..emitter import _preview_of, new_turn_id
from ..events import (
    AuditEvent,
    ErrorEvent,
    GenericAuditEvent,
    ToolCallAttemptEvent,
    ToolCallCompleteEvent,
    ToolCallFailureEvent,
    ToolPolicyDecisionEvent,
    TurnEndEvent,
    TurnStartEvent,
    parse_timestamp,
)
from ..governance import is_refusal

__all__ = ["TOOL_ERROR_TYPE", "AuditSpanProcessor"]

_logger = logging.getLogger(__name__)

#: ``error_type`` of a tool call the SDK reports as failed (it keeps no exception class).
TOOL_ERROR_TYPE = "ToolError"
#: How many SDK spans the processor tracks at once (a bound, should spans never end).
_MAX_OPEN_SPANS = 100_000
#: How many SDK traces (their session and pending handoff) it tracks at once.
_MAX_OPEN_TRACES = 10_000
#: Metadata key on the ``turn_end`` written early for an agent span evicted by ``_MAX_OPEN_SPANS``.
EVICTED_KEY = "auditspan.evicted"
#: Events of a turn held until the turn is opened, and the model's call ids kept per turn, at most.
_MAX_DEFERRED = 64


def _now() -> str:
    return datetime.now(timezone.utc).isoformat()


@dataclass(eq=False)
class _TurnState:
    agent: str
    turn_id: str
    session_id: str | None
    emitter: Any
    span_context: SpanContext | None = None
    calls: int = 0
    content: str = ""
    #: ``turn_start`` waits for the model's first response, which carries the prompt (see ``_open``).
    start: TurnStartEvent | None = None
    parent: SpanContext | None = None
    #: Events of the turn that came before it was opened (input guardrails), emitted after its start.
    deferred: list[AuditEvent] = field(default_factory=list)
    #: The model's tool calls not yet matched to a function span: name -> [(call id, arguments)].
    call_ids: dict[str, list[tuple[str, str]]] = field(default_factory=dict)


@dataclass(eq=False)
class _CallState:
    name: str
    call_id: str
    turn: _TurnState | None
    started_at: str
    arguments: str = ""
    attempted: bool = False
    decided_at: str | None = None
    denied: bool = False


@dataclass(eq=False)
class _SpanInfo:
    kind: str
    parent_id: str | None
    trace_id: str
    turn: _TurnState | None = None
    call: _CallState | None = None


@dataclass(eq=False)
class _TraceState:
    session_id: str | None
    #: The turn that handed off, and to whom: the receiving agent's turn becomes its child.
    handoff: tuple[str, SpanContext | None] | None = None


class AuditSpanProcessor(TracingProcessor):
    """An OpenAI Agents SDK ``TracingProcessor`` that emits audit events (see the module docstring).

    Args:
        target: the handle of ``auditspan.configure()``, a ``SpanCollector``,
            an ``AuditEmitter``, or None for the process collector
            (``auditspan.instrumentation.process_collector()``).
        session_id: the session of runs whose trace has no ``group_id`` (the
            SDK's conversation id, used when set). Ignored when ``target`` is an
            emitter (its own session is used).
        max_sessions: how many per-session emitters are kept.

    Every method catches its own failures: tracing never breaks a run. Called
    with the stack nearly exhausted (an agent deep in recursion), a method
    does its work on a fresh stack (``auditspan._deep``).

    Bounded state: at most ``max_sessions`` emitters (least recently used
    dropped: nothing is lost, one is made again), 100,000 SDK spans not yet
    ended (the oldest is forgotten: an agent span's ``turn_end`` is written at
    once with ``metadata["auditspan.evicted"]``; a function span's records are
    still written when it ends, outside its turn if that was forgotten too) and
    10,000 traces not yet ended (the oldest forgotten: its later turns use the
    default session). ``spans_evicted`` / ``traces_evicted`` count them; each
    episode is logged once.
    """

    def __init__(
        self, target: Any = None, *, session_id: str | None = None, max_sessions: int = 1024
    ) -> None:
        #: Where events go (``_emitter_for`` makes the emitters of each session from it).
        self._target: Any = collector_of(None) if target is None else target  # None: made now, once
        self._collector: Any = collector_of(self._target)
        self._span_collector: Any = find_span_collector(self._collector)
        self._session_id = session_id
        self._emitters: OrderedDict[str | None, Any] = OrderedDict()
        self._max_sessions = max_sessions
        self._spans: OrderedDict[str, _SpanInfo] = OrderedDict()
        self._traces: OrderedDict[str, _TraceState] = OrderedDict()
        self._lock = threading.RLock()
        self._error_logged = False
        self.spans_evicted = 0
        self.traces_evicted = 0
        self._bounds = BoundReport(_logger)

    # ------------------------------------------------------------------ the SDK's interface
    @_deep.roomy
    def on_trace_start(self, trace: Trace) -> None:
        """Remember the trace's session (its ``group_id``)."""
        try:
            group_id = getattr(trace, "group_id", None)
            with self._lock:
                self._traces[trace.trace_id] = _TraceState(
                    session_id=group_id if isinstance(group_id, str) and group_id else self._session_id
                )
                if len(self._traces) > _MAX_OPEN_TRACES:
                    self._traces.popitem(last=False)
                    self.traces_evicted += 1
                    self._bounds.hit(
                        "OpenAI Agents traces", f"{_MAX_OPEN_TRACES} not ended: the oldest is forgotten"
                    )
        except Exception as exc:
            self._failed(exc)

    @_deep.roomy
    def on_trace_end(self, trace: Trace) -> None:
        """Forget the trace."""
        try:
            with self._lock:
                self._traces.pop(trace.trace_id, None)
        except Exception as exc:
            self._failed(exc)

    @_deep.roomy
    def on_span_start(self, span: Span[Any]) -> None:
        """Start a turn (agent span) or a tool call (function span)."""
        try:
            with self._lock:
                self._on_start(span)
        except Exception as exc:
            self._failed(exc)

    @_deep.roomy
    def on_span_end(self, span: Span[Any]) -> None:
        """End a turn or a tool call; record guardrail decisions, handoffs and replies."""
        try:
            with self._lock:
                self._on_end(span)
        except Exception as exc:
            self._failed(exc)

    def shutdown(self) -> None:
        """Flush the collector (its owner shuts it down)."""
        self.force_flush()

    @_deep.roomy
    def force_flush(self) -> None:
        """Start the turns still waiting for their prompt, then flush the collector."""
        try:
            with self._lock:
                for info in list(self._spans.values()):
                    if info.turn is not None:
                        self._open(info.turn)  # a run cut short still leaves its turn_start
            self._collector.flush()
        except Exception as exc:
            self._failed(exc)

    # ------------------------------------------------------------------ per-call policy
    def tool_guardrail(
        self,
        policy: Callable[[str, Mapping[str, Any]], Any],
        *,
        source: str | None = None,
        message: str = "This tool call was refused by policy.",
        name: str = "auditspan_policy",
    ) -> Any:
        """A tool input guardrail that asks ``policy(tool_name, arguments)`` and records its verdict.

        ``policy`` returns True / "allow", False / "deny", another verdict
        word, or ``(verdict, source)``. A refusal rejects the call: the model
        receives ``message`` instead of a result, and the call is a denied span.
        """
        from agents import ToolGuardrailFunctionOutput, ToolInputGuardrail

        policy_source = source or getattr(policy, "__name__", "") or "policy"
        if policy_source == "<lambda>":
            policy_source = "policy"

        def guard(data: Any) -> Any:
            context = data.context
            try:
                arguments = json.loads(context.tool_arguments or "{}")
            except ValueError:
                arguments = {"arguments": context.tool_arguments}
            verdict = policy(context.tool_name, arguments if isinstance(arguments, dict) else {})
            verdict_source = policy_source
            if isinstance(verdict, tuple) and len(verdict) == 2:
                verdict, verdict_source = verdict[0], str(verdict[1])
            action = ("allow" if verdict else "deny") if isinstance(verdict, bool) else str(verdict)
            self.record_policy_decision(
                context.tool_name, action, verdict_source, tool_call_id=getattr(context, "tool_call_id", None)
            )
            if is_refusal(action):
                return ToolGuardrailFunctionOutput.reject_content(message, output_info={"decision": action})
            return ToolGuardrailFunctionOutput.allow(output_info={"decision": action})

        return ToolInputGuardrail(guardrail_function=guard, name=name)

    @_deep.roomy
    def record_policy_decision(
        self, tool_name: str, action: str, source: str = "", *, tool_call_id: str | None = None
    ) -> None:
        """Record a verdict on the tool call the SDK is running now (call it from a tool guardrail).

        A refusal means the call will not run: no attempt is recorded for it.
        ``tool_call_id``: the model's call id (a tool guardrail's
        ``data.context.tool_call_id``), which the call then carries.
        """
        try:
            with self._lock:
                current = get_current_span()
                info = self._spans.get(current.span_id) if current is not None else None
                call = info.call if info is not None else None
                turn = call.turn if call is not None else None
                if call is not None and tool_call_id and not call.attempted and call.decided_at is None:
                    call.call_id = tool_call_id
                if turn is not None:
                    self._open(turn)
                emitter = turn.emitter if turn is not None else self._emitter_for(None)
                when = _now()
                event = ToolPolicyDecisionEvent(
                    timestamp=when,
                    tool_name=tool_name,
                    action=action,
                    policy_source=source,
                    agent_id=turn.agent if turn is not None else None,
                    turn_id=turn.turn_id if turn is not None else None,
                    metadata={"tool_call_id": call.call_id} if call is not None else {},
                )
                emitter.emit(event)
                if call is not None and not call.attempted:
                    call.decided_at = when
                    call.denied = is_refusal(action)
        except Exception as exc:
            self._failed(exc)

    # ------------------------------------------------------------------ internals
    def _on_start(self, span: Span[Any]) -> None:
        data = span.span_data
        info = _SpanInfo(kind=data.type, parent_id=span.parent_id, trace_id=span.trace_id)
        self._remember(span.span_id, info)
        if isinstance(data, AgentSpanData):
            info.turn = self._start_turn(span, data.name or "agent", info)
        elif isinstance(data, FunctionSpanData):
            turn = self._enclosing_turn(span.parent_id)
            info.call = _CallState(
                name=data.name,
                # The model's call id (call_...) from its response; the SDK span id when none was recorded.
                call_id=self._model_call_id(turn, data.name) or span.span_id,
                turn=turn,
                started_at=span.started_at or _now(),
            )

    def _start_turn(self, span: Span[Any], agent: str, info: _SpanInfo) -> _TurnState:
        trace_state = self._traces.get(span.trace_id)
        session_id = trace_state.session_id if trace_state is not None else self._session_id
        emitter = self._emitter_for(session_id)
        turn = _TurnState(
            agent=agent,
            turn_id=new_turn_id(),
            session_id=getattr(emitter, "session_id", session_id),
            emitter=emitter,
        )
        parent: SpanContext | None = None
        outer_call = self._enclosing_call(span.parent_id)
        if outer_call is not None:  # an agent run as a tool: under that tool call's span
            self._attempt(outer_call)
            parent = self._call_span_context(outer_call)
        elif trace_state is not None and trace_state.handoff is not None and trace_state.handoff[0] == agent:
            parent = trace_state.handoff[1]
            trace_state.handoff = None
        turn.start = TurnStartEvent(
            timestamp=span.started_at or _now(),
            agent_id=agent,
            turn_id=turn.turn_id,
            metadata={
                "agent_name": agent,
                "openai_agents": {"trace_id": span.trace_id, "span_id": span.span_id},
            },
        )
        turn.parent = parent
        return turn

    def _open(self, turn: _TurnState) -> None:
        """Emit the turn's start (with the prompt, when the model's response told it) and what waited."""
        event, turn.start = turn.start, None
        if event is None:
            return
        token = (
            otel_context.attach(trace.set_span_in_context(NonRecordingSpan(turn.parent)))
            if turn.parent is not None
            else None
        )
        try:
            turn.emitter.emit(event)
        finally:
            if token is not None:
                otel_context.detach(token)
        if self._span_collector is not None:
            turn.span_context = span_context_for(self._span_collector, turn.session_id, turn.turn_id)
        deferred, turn.deferred = turn.deferred, []
        for waiting in deferred:
            turn.emitter.emit(waiting)

    def _emit(self, turn: _TurnState | None, event: AuditEvent, *, wait: bool = False) -> None:
        """Emit an event of ``turn`` (opening it first); with ``wait``, hold it until the turn opens."""
        if turn is None:
            self._emitter_for(None).emit(event)
            return
        if wait and turn.start is not None and len(turn.deferred) < _MAX_DEFERRED:
            turn.deferred.append(event)
            return
        self._open(turn)
        turn.emitter.emit(event)

    def _model_call_id(self, turn: _TurnState | None, name: str) -> str | None:
        """The next call id the model's response gave a call of tool ``name`` (first come, first served)."""
        queue = turn.call_ids.get(name) if turn is not None else None
        if not queue:
            return None
        call_id, _ = queue.pop(0)
        return call_id

    def _model_response(self, span: Span[Any], data: ResponseSpanData | GenerationSpanData) -> None:
        """What the model's response carries: the turn's prompt (its input), reply and tool call ids."""
        turn = self._enclosing_turn(span.parent_id)
        if turn is None:
            return
        if turn.start is not None and not turn.start.prompt_preview:
            turn.start.prompt_preview = _preview_of(_prompt_text(data))
        text = _reply_text(data)
        if text:
            turn.content = text
        # The SDK runs a response's tool calls before it asks the model again: ids of calls that made no
        # function span (handoffs, hosted tools) must not be paired with the next response's calls.
        turn.call_ids = {}
        for call_id, name, arguments in _tool_calls(data):
            queue = turn.call_ids.setdefault(name, [])
            if len(queue) < _MAX_DEFERRED:
                queue.append((call_id, arguments))
        self._open(turn)

    def _on_end(self, span: Span[Any]) -> None:
        info = self._spans.pop(span.span_id, None)
        data = span.span_data
        ended = span.ended_at or _now()
        if info is None and isinstance(data, FunctionSpanData):
            # Forgotten (the open-span bound): its records are still written, in the turn if known.
            info = _SpanInfo(kind=data.type, parent_id=span.parent_id, trace_id=span.trace_id)
            info.call = _CallState(
                name=data.name,
                call_id=span.span_id,
                turn=self._enclosing_turn(span.parent_id),
                started_at=span.started_at or ended,
            )
        if info is not None and info.call is not None:
            self._end_call(info.call, span, ended)
        elif info is not None and info.turn is not None:
            self._end_turn(info.turn, span, ended)
        elif isinstance(data, GuardrailSpanData):
            self._guardrail(span, data, ended)
        elif isinstance(data, HandoffSpanData):
            self._handoff(span, data, ended)
        elif isinstance(data, (ResponseSpanData, GenerationSpanData)):
            self._model_response(span, data)

    def _end_call(self, call: _CallState, span: Span[Any], ended: str) -> None:
        turn = call.turn
        if turn is not None:
            turn.calls += 1
        if call.denied:
            return  # the decision made it a denied span; the tool did not run
        data = span.span_data
        if isinstance(data, FunctionSpanData) and data.input:
            call.arguments = data.input
        self._attempt(call)
        common: dict[str, Any] = {
            "timestamp": ended,
            "tool_name": call.name,
            "agent_id": turn.agent if turn is not None else None,
            "turn_id": turn.turn_id if turn is not None else None,
            "metadata": {"tool_call_id": call.call_id},
        }
        error = span.error
        event: AuditEvent
        if error:
            detail = error.get("data") or {}
            message = str(error.get("message") or "")
            extra = detail.get("error") if isinstance(detail, dict) else None
            event = ToolCallFailureEvent(
                error_type=TOOL_ERROR_TYPE,
                error_message=f"{message}: {extra}" if extra else message,
                **common,
            )
        else:
            output = data.output if isinstance(data, FunctionSpanData) else None
            event = ToolCallCompleteEvent(
                status="success",
                duration_ms=_duration_ms(call.started_at, ended),
                result_preview=_preview_of(output),
                **common,
            )
        self._emit(turn, event)

    def _attempt(self, call: _CallState) -> None:
        """Emit the call's attempt once (at the span's start, or after its policy decision)."""
        if call.attempted or call.denied:
            return
        call.attempted = True
        turn = call.turn
        self._emit(
            turn,
            ToolCallAttemptEvent(
                timestamp=call.decided_at or call.started_at,
                tool_name=call.name,
                arguments_preview=_preview_of(call.arguments),
                agent_id=turn.agent if turn is not None else None,
                turn_id=turn.turn_id if turn is not None else None,
                metadata={"tool_call_id": call.call_id},
            ),
        )

    def _end_turn(self, turn: _TurnState, span: Span[Any], ended: str) -> None:
        self._open(turn)
        error = span.error
        if error:
            turn.emitter.emit(
                ErrorEvent(
                    timestamp=ended,
                    error_type=str((error.get("data") or {}).get("type") or "AgentError"),
                    error_message=str(error.get("message") or ""),
                    error_context="agent",
                    agent_id=turn.agent,
                    turn_id=turn.turn_id,
                )
            )
        turn.emitter.emit(
            TurnEndEvent(
                timestamp=ended,
                agent_id=turn.agent,
                turn_id=turn.turn_id,
                content_preview=_preview_of(turn.content),
                function_calls_count=turn.calls,
            )
        )

    def _guardrail(self, span: Span[Any], data: GuardrailSpanData, ended: str) -> None:
        turn = self._enclosing_turn(span.parent_id)
        event = ToolPolicyDecisionEvent(
            timestamp=ended,
            tool_name="",
            action="deny" if data.triggered else "allow",
            policy_source=f"guardrail:{data.name}",
            agent_id=turn.agent if turn is not None else None,
            turn_id=turn.turn_id if turn is not None else None,
            metadata={"guardrail": data.name},
        )
        if turn is None:
            self._emitter_for(self._session_of(span)).emit(event)
        else:  # input guardrails run beside the model's first call: the turn may wait for its prompt
            self._emit(turn, event, wait=True)

    def _handoff(self, span: Span[Any], data: HandoffSpanData, ended: str) -> None:
        turn = self._enclosing_turn(span.parent_id)
        if turn is not None:
            self._open(turn)
        emitter = turn.emitter if turn is not None else self._emitter_for(self._session_of(span))
        emitter.emit(
            GenericAuditEvent(
                event_type="agent_switch",
                timestamp=ended,
                agent_id=turn.agent if turn is not None else data.from_agent,
                turn_id=turn.turn_id if turn is not None else None,
                extra={
                    "from_agent": data.from_agent or "",
                    "to_agent": data.to_agent or "",
                    "reason": "handoff",
                },
            )
        )
        trace_state = self._traces.get(span.trace_id)
        if trace_state is not None and data.to_agent:
            trace_state.handoff = (data.to_agent, turn.span_context if turn is not None else None)

    def _enclosing_turn(self, span_id: str | None) -> _TurnState | None:
        info = self._walk(span_id, lambda i: i.turn is not None)
        return info.turn if info is not None else None

    def _enclosing_call(self, span_id: str | None) -> _CallState | None:
        """The tool call a span runs inside of, unless a turn is nearer (then it is that turn's)."""
        info = self._walk(span_id, lambda i: i.turn is not None or i.call is not None)
        return info.call if info is not None else None

    def _walk(self, span_id: str | None, stop: Callable[[_SpanInfo], bool]) -> _SpanInfo | None:
        for _ in range(256):  # parent chains are short; the bound only guards against cycles
            if span_id is None:
                return None
            info = self._spans.get(span_id)
            if info is None:
                return None
            if stop(info):
                return info
            span_id = info.parent_id
        return None

    def _call_span_context(self, call: _CallState) -> SpanContext | None:
        turn = call.turn
        if self._span_collector is None:
            return None
        return span_context_for(
            self._span_collector,
            turn.session_id if turn is not None else self._session_id,
            turn.turn_id if turn is not None else None,
            call.call_id,
        )

    def _session_of(self, span: Span[Any]) -> str | None:
        state = self._traces.get(span.trace_id)
        return state.session_id if state is not None else self._session_id

    def _emitter_for(self, session_id: str | None) -> Any:
        """The emitter of ``session_id`` (``_targets.emitter_for``), kept for the next ``max_sessions``."""
        emitter = self._emitters.get(session_id)
        if emitter is None:
            emitter = self._emitters[session_id] = emitter_for(self._target, session_id)
            while len(self._emitters) > self._max_sessions:
                self._emitters.popitem(last=False)
        else:
            self._emitters.move_to_end(session_id)
        return emitter

    def _remember(self, span_id: str, info: _SpanInfo) -> None:
        self._spans[span_id] = info
        while len(self._spans) > _MAX_OPEN_SPANS:
            _, evicted = self._spans.popitem(last=False)
            self.spans_evicted += 1
            self._bounds.hit("OpenAI Agents spans", f"{_MAX_OPEN_SPANS} not ended: the oldest is forgotten")
            turn = evicted.turn
            if turn is not None:  # its turn_end now, marked, rather than never
                self._open(turn)
                turn.emitter.emit(
                    TurnEndEvent(
                        timestamp=_now(),
                        agent_id=turn.agent,
                        turn_id=turn.turn_id,
                        content_preview=_preview_of(turn.content),
                        function_calls_count=turn.calls,
                        metadata={EVICTED_KEY: "open span bound"},
                    )
                )

    def _failed(self, exc: BaseException) -> None:
        if not self._error_logged:
            self._error_logged = True
            try:
                _logger.error(
                    "auditspan: the OpenAI Agents processor failed (further failures are not logged)",
                    exc_info=exc,
                )
            except Exception:  # a failing handler, or no stack left to log with: never into the run
                self._error_logged = False


def _duration_ms(started: str, ended: str) -> float:
    try:
        return max(0.0, (parse_timestamp(ended) - parse_timestamp(started)).total_seconds() * 1000)
    except ValueError:
        return 0.0


def _text_of(content: Any) -> str:
    """The text of a message's content: a string, or the text parts of a list of parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, (list, tuple)):
        texts = [p.get("text") for p in content if isinstance(p, Mapping) and isinstance(p.get("text"), str)]
        return "\n".join(t for t in texts if t)
    return ""


def _prompt_text(data: ResponseSpanData | GenerationSpanData) -> str:
    """The last user message of the model's input (the turn's prompt); "" when the input was not recorded."""
    try:
        items = data.input
        if isinstance(items, str):
            return items
        for item in reversed(list(items or ())):
            if isinstance(item, Mapping) and item.get("role") == "user":
                text = _text_of(item.get("content"))
                if text:
                    return text
    except Exception:
        return ""
    return ""


def _tool_calls(data: ResponseSpanData | GenerationSpanData) -> list[tuple[str, str, str]]:
    """(call id, tool name, arguments) of each tool call in the model's recorded response, in order."""
    calls: list[tuple[str, str, str]] = []
    try:
        if isinstance(data, ResponseSpanData):
            response = data.response
            for item in getattr(response, "output", None) or ():
                if getattr(item, "type", None) == "function_call":
                    call_id, name = getattr(item, "call_id", None), getattr(item, "name", None)
                    if isinstance(call_id, str) and call_id and isinstance(name, str):
                        calls.append((call_id, name, str(getattr(item, "arguments", "") or "")))
            return calls
        for message in data.output or ():
            for tool_call in (message.get("tool_calls") if isinstance(message, Mapping) else None) or ():
                function = tool_call.get("function") if isinstance(tool_call, Mapping) else None
                call_id = tool_call.get("id") if isinstance(tool_call, Mapping) else None
                if isinstance(function, Mapping) and isinstance(call_id, str) and call_id:
                    calls.append(
                        (call_id, str(function.get("name") or ""), str(function.get("arguments") or ""))
                    )
    except Exception:
        return calls
    return calls


def _reply_text(data: ResponseSpanData | GenerationSpanData) -> str:
    """The model's text reply recorded on a response / generation span ("" when not recorded)."""
    try:
        if isinstance(data, ResponseSpanData):
            response = data.response
            text = getattr(response, "output_text", "") if response is not None else ""
            return text if isinstance(text, str) else ""
        for message in reversed(list(data.output or ())):
            content = message.get("content") if isinstance(message, Mapping) else None
            if isinstance(content, str) and content:
                return content
    except Exception:
        return ""
    return ""

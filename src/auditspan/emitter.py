"""``AuditEmitter``: one ``emit_*`` method per event type, for runtimes to call.

Method names and keywords are those of the seed system's emitter, so code
written against it runs unchanged; each method also takes an optional
keyword-only ``metadata`` dict (for ``operation_type``, ``tool_call_id``,
``trust_score`` ...). A runtime that never heard of the seed system can
instrument itself with this class alone::

    import auditspan

    telemetry = auditspan.configure(service_name="my-agent")
    audit = telemetry.emitter(session_id="sess-01")
    turn = audit.emit_turn_start(agent_id="planner", prompt="Book a flight")
    audit.emit_tool_call_attempt("search_flights", args="{'to': 'LIS'}", turn_id=turn)
    audit.emit_tool_call_complete("search_flights", duration_ms=812.0, result="3 flights", turn_id=turn)
    audit.emit_turn_end(agent_id="planner", turn_id=turn, content="Booked.", fc_count=1)
"""

from __future__ import annotations

import uuid
from typing import Any, Protocol, runtime_checkable

from . import _deep
from ._fork import fork_safe_lock
from ._sanitize import PREVIEW_LIMIT, preview
from .events import (
    AuditEvent,
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

__all__ = ["PREVIEW_LIMIT", "AuditCollector", "AuditEmitter", "CompositeCollector", "new_turn_id"]


@runtime_checkable
class AuditCollector(Protocol):
    """What an emitter writes to: the seed system's collector protocol."""

    def emit(self, event: Any) -> None:
        """Receive one audit event."""

    def flush(self) -> None:
        """Push out whatever is buffered."""


# Ids and previews are made here, and only here, for every source of events: this emitter, the
# hooks (``auditspan.hooks``) and the OpenAI Agents adapter.


def new_turn_id() -> str:
    """A new turn id as the seed system makes them: 12 lowercase hex characters."""
    return uuid.uuid4().hex[:12]


def _new_call_id() -> str:
    """A new tool call id, for a call whose runtime gave none: 16 lowercase hex characters."""
    return uuid.uuid4().hex[:16]


def _preview_of(value: Any) -> str:
    """The preview an event carries of ``value``: "" for None, else ``str(value)`` cut to ``PREVIEW_LIMIT``.

    Its cost is bounded by the limit whatever the value (``_sanitize.preview``). Never raises.
    """
    return "" if value is None else preview(value, PREVIEW_LIMIT)


def _preview(text: Any) -> str:
    """``_preview_of`` as the seed system's emitter previews: an empty or zero value is ""."""
    if type(text) is str:
        return text[:PREVIEW_LIMIT]  # the common case, and already text: no walk, no repair
    if type(text) in _PLAIN and not text:
        return ""
    return _preview_of(text)


_PLAIN = frozenset({bytes, bytearray, int, float, bool, list, tuple, dict, set, frozenset})


class CompositeCollector:
    """Fans each event out to several collectors, as the seed system's class of that name.

    One collector failing does not keep the event from the others; running
    out of stack (an agent deep in recursion) does not either: the collectors
    not reached yet get the event from a fresh stack (``auditspan._deep``).
    """

    def __init__(self, *collectors: AuditCollector) -> None:
        self.collectors: list[AuditCollector] = list(collectors)

    def emit(self, event: Any) -> None:
        """Pass ``event`` to every collector."""
        reached = [0]  # collectors done: a retry from a fresh stack goes on from there
        try:
            self._emit_from(event, reached)
        except RecursionError:
            try:
                _deep.rescue(self._emit_from, (event, reached), {})
            except Exception:  # no room for even one call: kept without one
                if _deep.counts["deferred"] < _deep.MAX_DEFERRED:
                    _deep.DEFERRED = (self._emit_from, (event, reached), {}, _deep.DEFERRED)
                    _deep.counts["deferred"] += 1
                else:
                    _deep.counts["lost"] += 1

    def _emit_from(self, event: Any, reached: list[int]) -> None:
        collectors = self.collectors
        while reached[0] < len(collectors):
            collector = collectors[reached[0]]
            try:
                collector.emit(event)
            except RecursionError:
                raise
            except Exception:
                _log_collector_failure(collector, "emit")
            reached[0] += 1

    def flush(self) -> None:
        """Flush every collector."""
        for collector in self.collectors:
            try:
                collector.flush()
            except Exception:
                _log_collector_failure(collector, "flush")


def _log_collector_failure(collector: object, what: str) -> None:
    import logging

    try:  # noqa: SIM105 -- contextlib.suppress is a call, and there may be no room for one
        logging.getLogger(__name__).exception("audit collector %r failed in %s()", collector, what)
    except Exception:  # a failing handler, or no stack left to log with: never into the agent
        pass


class AuditEmitter:
    """Thread-safe emitter that turns method calls into typed audit events.

    Every event is stamped with the emitter's ``session_id`` (overwriting the
    event's own, as the seed system does) and handed to ``collector.emit``
    under a lock. Previews are cut to ``PREVIEW_LIMIT`` characters, at a cost
    bounded by it whatever the value (``_sanitize.preview``).

    Running out of stack never raises from these methods: called from deep
    recursion, the event is made and handed on from a fresh stack, or kept
    for the next call with room (``auditspan._deep``); only then may
    ``emit_turn_start`` return None instead of the id. A collector's own
    exceptions pass as before.

    Args:
        collector: anything with ``emit(event)`` and ``flush()`` -- usually the
            ``SpanCollector`` of ``auditspan.configure()``.
        session_id: stamped on every event.
    """

    def __init__(self, collector: AuditCollector, session_id: str | None = None) -> None:
        self._collector = collector
        self._session_id = session_id
        self._lock = fork_safe_lock()

    @property
    def collector(self) -> AuditCollector:
        """The collector events are handed to."""
        return self._collector

    @property
    def session_id(self) -> str | None:
        """The session id stamped on every event."""
        return self._session_id

    @_deep.guard
    def emit(self, event: AuditEvent) -> None:
        """Stamp ``event`` with the session id and hand it to the collector."""
        event.session_id = self._session_id
        with self._lock:
            self._collector.emit(event)

    @_deep.guard
    def flush(self) -> None:
        """Flush the collector."""
        with self._lock:
            self._collector.flush()

    @_deep.guard
    def emit_turn_start(
        self,
        agent_id: str | None = None,
        turn_id: str | None = None,
        prompt: str = "",
        *,
        metadata: dict[str, Any] | None = None,
    ) -> str:
        """Start a turn and return its id (a new 12-hex id when ``turn_id`` is not given)."""
        tid = turn_id or new_turn_id()
        self.emit(
            TurnStartEvent(
                agent_id=agent_id, turn_id=tid, prompt_preview=_preview(prompt), metadata=metadata or {}
            )
        )
        return tid

    @_deep.guard
    def emit_turn_end(
        self,
        agent_id: str | None = None,
        turn_id: str | None = None,
        content: str = "",
        fc_count: int = 0,
        *,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        """End a turn, with the reply's preview and how many tool calls it made."""
        self.emit(
            TurnEndEvent(
                agent_id=agent_id,
                turn_id=turn_id,
                content_preview=_preview(content),
                function_calls_count=fc_count,
                metadata=metadata or {},
            )
        )

    @_deep.guard
    def emit_tool_call_attempt(
        self,
        tool_name: str,
        args: str = "",
        agent_id: str | None = None,
        turn_id: str | None = None,
        *,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        """A tool call is about to run; ``args`` is its argument string."""
        self.emit(
            ToolCallAttemptEvent(
                tool_name=tool_name,
                arguments_preview=_preview(args),
                agent_id=agent_id,
                turn_id=turn_id,
                metadata=metadata or {},
            )
        )

    @_deep.guard
    def emit_tool_call_complete(
        self,
        tool_name: str,
        status: str = "success",
        duration_ms: float = 0.0,
        result: str = "",
        agent_id: str | None = None,
        turn_id: str | None = None,
        *,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        """A tool call returned, after ``duration_ms`` of wall-clock time."""
        self.emit(
            ToolCallCompleteEvent(
                tool_name=tool_name,
                status=status,
                duration_ms=duration_ms,
                result_preview=_preview(result),
                agent_id=agent_id,
                turn_id=turn_id,
                metadata=metadata or {},
            )
        )

    @_deep.guard
    def emit_tool_call_failure(
        self,
        tool_name: str,
        error_type: str = "",
        error_msg: str = "",
        agent_id: str | None = None,
        turn_id: str | None = None,
        *,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        """A tool call raised; ``error_type`` is usually the exception class name."""
        self.emit(
            ToolCallFailureEvent(
                tool_name=tool_name,
                error_type=error_type,
                error_message=error_msg,
                agent_id=agent_id,
                turn_id=turn_id,
                metadata=metadata or {},
            )
        )

    @_deep.guard
    def emit_tool_policy_decision(
        self,
        tool_name: str,
        agent_id: str | None = None,
        action: str = "",
        source: str = "",
        turn_id: str | None = None,
        *,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        """The policy engine decided on a tool call (``action``: ``allow`` / ``deny`` / ...)."""
        self.emit(
            ToolPolicyDecisionEvent(
                tool_name=tool_name,
                agent_id=agent_id,
                action=action,
                policy_source=source,
                turn_id=turn_id,
                metadata=metadata or {},
            )
        )

    @_deep.guard
    def emit_tool_loop_warning(
        self,
        tool_name: str,
        pattern: str = "",
        severity: str = "warning",
        count: int = 0,
        agent_id: str | None = None,
        turn_id: str | None = None,
        *,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        """The loop detector's verdict on a call (``severity`` becomes ``severity_level``)."""
        self.emit(
            ToolLoopWarningEvent(
                tool_name=tool_name,
                pattern=pattern,
                severity_level=severity,
                call_count=count,
                agent_id=agent_id,
                turn_id=turn_id,
                metadata=metadata or {},
            )
        )

    @_deep.guard
    def emit_tool_loop_block(
        self,
        tool_name: str,
        pattern: str = "",
        count: int = 0,
        agent_id: str | None = None,
        turn_id: str | None = None,
        *,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        """The loop detector blocked a call: it will not run."""
        self.emit(
            ToolLoopBlockEvent(
                tool_name=tool_name,
                pattern=pattern,
                call_count=count,
                agent_id=agent_id,
                turn_id=turn_id,
                metadata=metadata or {},
            )
        )

    @_deep.guard
    def emit_sandbox_decision(
        self,
        tool_name: str,
        context: str = "",
        reason: str = "",
        backend_type: str = "",
        agent_id: str | None = None,
        turn_id: str | None = None,
        *,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        """The sandbox router chose where a call runs (``context``: ``host`` / ``sandbox``)."""
        self.emit(
            SandboxDecisionEvent(
                tool_name=tool_name,
                context=context,
                reason=reason,
                backend_type=backend_type,
                agent_id=agent_id,
                turn_id=turn_id,
                metadata=metadata or {},
            )
        )

    @_deep.guard
    def emit_hook_mutation(
        self,
        hook_name: str,
        tool_name: str = "",
        agent_id: str | None = None,
        field: str = "",
        turn_id: str | None = None,
        *,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        """A hook changed a call's ``arguments`` or ``result`` (``field``)."""
        self.emit(
            HookMutationEvent(
                hook_name=hook_name,
                tool_name=tool_name,
                agent_id=agent_id,
                mutated_field=field,
                turn_id=turn_id,
                metadata=metadata or {},
            )
        )

    @_deep.guard
    def emit_error(
        self,
        error_type: str = "",
        error_msg: str = "",
        context: str = "",
        agent_id: str | None = None,
        turn_id: str | None = None,
        *,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        """An error not tied to one tool call."""
        self.emit(
            ErrorEvent(
                error_type=error_type,
                error_message=error_msg,
                error_context=context,
                agent_id=agent_id,
                turn_id=turn_id,
                metadata=metadata or {},
            )
        )

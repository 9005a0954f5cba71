"""Audit hooks for runtimes that emit no audit events of their own.

A few lines around an agent loop produce the same event sequence as the seed
runtime -- loop check, policy decision, attempt, sandbox decision, then
completion or failure, inside ``turn_start`` .. ``turn_end`` -- and so the
same spans and audit records::

    import auditspan
    from auditspan.hooks import Audit

    audit = Audit(auditspan.configure(service_name="trip-agent"), session_id="sess-01",
                  policy=lambda tool, args: tool != "delete_records")

    @audit.tool
    def web_search(query: str) -> str: ...

    @audit.tool(name="db.read", operation_type="DATABASE_READ")
    async def read_rows(table: str) -> list[dict]: ...

    with audit.turn(agent_id="planner", prompt=user_prompt) as turn:
        hits = web_search("flights to Lisbon")
        with audit.tool_call("summarise", {"n": len(hits)}) as call:
            call.result = summarise(hits)
        turn.content = "Found 3 flights."

What the hooks do for you:

* ``duration_ms`` is measured (from the attempt to the end of the call);
  results and arguments become previews (``str(...)``, 200 characters).
* An exception in a tool is recorded as ``tool_call_failure`` (its class
  name is ``error_type``) and re-raised unchanged; in a turn, as an ``error``
  event. Calling a failed tool again in the same turn is recorded as a retry.
* Sync and async functions, sync and async generators (the call lasts until
  the generator is exhausted or closed) can be decorated.
* A policy (``Audit(policy=...)`` or ``tool_call(..., decision=...)``) that
  refuses a call raises ``ToolCallDenied`` before the tool runs; a loop check
  that answers ``critical`` raises ``ToolLoopBlocked``. Both are recorded.
* Inside ``with audit.turn(...)`` the turn's span is the current OpenTelemetry
  span, and inside a tool call the call's span is: spans of other
  instrumentations, and turns of nested agents, get the right parent.
  (The collector parents a turn on the span current at ``turn_start``.)

The current turn is kept in a context variable, like the current span: it
follows ``await`` and asyncio tasks, but not plain threads -- submit tool work
through ``auditspan.context.ContextExecutor`` (see ``auditspan.context``).
Emitting never raises into the agent, at any stack depth: called from deep
recursion, the events go out from a fresh stack (``auditspan._deep``).
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import logging
import time
import uuid
from collections.abc import AsyncGenerator, Callable, Generator, Iterator, Mapping
from contextvars import ContextVar, Token
from dataclasses import dataclass
from types import TracebackType
from typing import Any, TypeVar, cast, overload

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import NonRecordingSpan, SpanContext

from . import _deep
from ._fork import fork_safe_lock
from ._sanitize import PREVIEW_LIMIT, preview
from .context import find_span_collector, span_context_for
from .emitter import AuditEmitter
from .governance import is_refusal

__all__ = [
    "Audit",
    "LoopVerdict",
    "SandboxVerdict",
    "ToolCall",
    "ToolCallDenied",
    "ToolLoopBlocked",
    "Turn",
    "current_turn",
]

_logger = logging.getLogger(__name__)
F = TypeVar("F", bound=Callable[..., Any])

#: The turn the code runs in (set by ``with audit.turn(...)``).
_CURRENT_TURN: ContextVar[Turn | None] = ContextVar("auditspan_current_turn", default=None)


def _keep(work: Callable[..., Any], args: tuple[Any, ...]) -> None:
    """Finish ``work(*args)`` from a fresh stack, else keep it for later (``auditspan._deep``)."""
    try:
        _deep.rescue(work, args, {})
    except Exception:  # not even room to keep it with a call: kept without one
        if _deep.counts["deferred"] < _deep.MAX_DEFERRED:
            _deep.DEFERRED = (work, args, {}, _deep.DEFERRED)
            _deep.counts["deferred"] += 1
        else:
            _deep.counts["lost"] += 1


def current_turn() -> Turn | None:
    """The ``Turn`` whose ``with`` block the code runs in, or None."""
    return _CURRENT_TURN.get()


class ToolCallDenied(PermissionError):
    """A policy refused the tool call; it did not run. Raised by ``tool_call`` / ``@audit.tool``."""

    def __init__(self, tool_name: str, decision: str, source: str = "") -> None:
        self.tool_name = tool_name
        self.decision = decision
        self.source = source
        by = f" by {source}" if source else ""
        super().__init__(f"tool call {tool_name!r} refused ({decision}){by}")


class ToolLoopBlocked(RuntimeError):
    """The loop check blocked the tool call; it did not run."""

    def __init__(self, tool_name: str, pattern: str = "", count: int = 0) -> None:
        self.tool_name = tool_name
        self.pattern = pattern
        self.count = count
        super().__init__(
            f"tool call {tool_name!r} blocked as a loop ({pattern or 'repeated'}, {count} calls)"
        )


@dataclass(frozen=True)
class LoopVerdict:
    """What a loop check says about a call: ``severity`` ``ok`` / ``warning`` / ``critical`` (blocks)."""

    severity: str = "ok"
    pattern: str = "none"
    count: int = 0


@dataclass(frozen=True)
class SandboxVerdict:
    """Where a call runs: ``context`` ``host`` / ``sandbox``."""

    context: str = "host"
    reason: str = ""
    backend_type: str = ""


#: ``policy(tool_name, arguments)``: True/"allow", False/"deny", any verdict word, ``(verdict, source)``,
#: or None to make no decision.
Policy = Callable[[str, Mapping[str, Any]], Any]
LoopCheck = Callable[[str, Mapping[str, Any]], "LoopVerdict | None"]
Sandbox = Callable[[str, Mapping[str, Any]], "SandboxVerdict | None"]


def _preview(value: Any) -> str:
    """``str(value)`` cut to ``PREVIEW_LIMIT``, at a cost bounded by it whatever the value (``preview``)."""
    return "" if value is None else preview(value, PREVIEW_LIMIT)


def _new_call_id() -> str:
    return uuid.uuid4().hex[:16]


def _message(exc: BaseException) -> str:
    """An exception's message; its own ``__str__`` may raise: never into the agent."""
    try:
        return str(exc)
    except Exception:
        return f"<unprintable {type(exc).__name__}>"


class _Activation:
    """Makes one span context current, and undoes it (a token per ``attach``)."""

    __slots__ = ("_ctx", "_token")

    def __init__(self, span_context: SpanContext | None) -> None:
        self._ctx = span_context
        self._token: Token[otel_context.Context] | None = None

    def enter(self) -> None:
        if self._ctx is not None:
            try:
                self._token = otel_context.attach(trace.set_span_in_context(NonRecordingSpan(self._ctx)))
            except RecursionError:  # no stack left: the span is not made current, nothing raises
                self._token = None

    def exit(self) -> None:
        token, self._token = self._token, None
        if token is not None:
            try:  # noqa: SIM105 -- contextlib.suppress is a call, and there may be no room for one
                otel_context.detach(token)
            except RecursionError:
                pass


#: What a turn or call activates before it has a span context (shared: it holds no state).
_INACTIVE = _Activation(None)

_Block = TypeVar("_Block", bound="_AsyncWith")


class _AsyncWith:
    """``async with`` for a block whose ``with`` does no I/O: the same enter and exit."""

    def __enter__(self: _Block) -> _Block:
        raise NotImplementedError

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        raise NotImplementedError

    async def __aenter__(self: _Block) -> _Block:
        return self.__enter__()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.__exit__(exc_type, exc, tb)


class Turn(_AsyncWith):
    """One turn: ``turn_start`` on entering, ``turn_end`` on leaving (``with`` or ``async with``).

    Set ``content`` to the reply before the block ends; ``calls`` counts the
    tool calls made in the turn (denied and retried ones included) and becomes
    ``function_calls_count``. An exception leaving the block is recorded as an
    ``error`` event (the turn's span gets status ERROR) and propagates unchanged.
    """

    def __init__(
        self,
        audit: Audit,
        agent_id: str | None,
        prompt: str,
        turn_id: str | None,
        metadata: Mapping[str, Any] | None,
    ) -> None:
        self.audit = audit
        self.agent_id = agent_id
        self.prompt = prompt
        self.turn_id = turn_id
        self.metadata = dict(metadata or {})
        self.content: Any = None
        self.calls = 0
        self._lock = fork_safe_lock()
        self._entered = False
        self._error_sent = False
        self._token: Token[Turn | None] | None = None
        self._activation = _INACTIVE

    def _count_call(self) -> None:
        with self._lock:
            self.calls += 1

    def __enter__(self) -> Turn:
        if self._entered:
            raise RuntimeError("a Turn is entered once; call audit.turn(...) again for the next turn")
        self._entered = True
        audit = self.audit
        self.turn_id = audit._emit_turn_start(self.agent_id, self.turn_id, self.prompt, self.metadata)
        try:
            self._token = _CURRENT_TURN.set(self)
            self._activation = _Activation(audit._span_context(self.turn_id, None))
            self._activation.enter()
        except RecursionError:  # no stack left: the turn is not made current; its events are recorded
            pass
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            self._activation.exit()
            if self._token is not None:
                with contextlib.suppress(ValueError):  # reset from another context: nothing to undo there
                    _CURRENT_TURN.reset(self._token)
                self._token = None
        except RecursionError:  # no stack left to restore the context: the events below still go out
            pass
        try:
            self._end(exc)
        except RecursionError:
            try:
                _keep(self._end, (exc,))
            except RecursionError:  # no room even to call that: kept without a call
                if _deep.counts["deferred"] < _deep.MAX_DEFERRED:
                    _deep.DEFERRED = (self._end, (exc,), {}, _deep.DEFERRED)
                    _deep.counts["deferred"] += 1
                else:
                    _deep.counts["lost"] += 1

    def _end(self, exc: BaseException | None) -> None:
        """The turn's error (if any) and end; each sent once, also when retried from a fresh stack."""
        audit = self.audit
        if exc is not None and not self._error_sent:
            audit._safe(
                audit.emitter.emit_error,
                error_type=type(exc).__name__,
                error_msg=_message(exc),
                context="turn",
                agent_id=self.agent_id,
                turn_id=self.turn_id,
            )
            self._error_sent = True
        audit._safe(
            audit.emitter.emit_turn_end,
            agent_id=self.agent_id,
            turn_id=self.turn_id,
            content=_preview(self.content),
            fc_count=self.calls,
        )


class ToolCall(_AsyncWith):
    """One tool call (``with`` or ``async with``): governing events and attempt on entering,
    completion or failure on leaving.

    Set ``result`` (and, if not ``"success"``, ``status``) in the block. Entering
    raises ``ToolCallDenied`` / ``ToolLoopBlocked`` when the call may not run.
    """

    def __init__(
        self,
        audit: Audit,
        name: str,
        arguments: Mapping[str, Any] | Any,
        *,
        operation_type: str | None,
        tool_call_id: str | None,
        decision: str | None,
        policy_source: str | None,
        metadata: Mapping[str, Any] | None,
    ) -> None:
        self.audit = audit
        self.name = name
        self.arguments = arguments
        try:
            self.tool_call_id = tool_call_id or _new_call_id()
        except RecursionError:  # no stack left: begin() makes one
            self.tool_call_id = ""
        self.result: Any = None
        self.status = "success"
        self.duration_ms: float | None = None
        self.turn: Turn | None = None
        self._decision = decision
        self._policy_source = policy_source
        self._metadata = dict(metadata or {})
        self._metadata["tool_call_id"] = self.tool_call_id
        if operation_type:
            self._metadata["operation_type"] = operation_type
        self._started: float | None = None
        self._begun = False
        self._step = 0  # begin()'s steps done: a retry from a fresh stack goes on from there
        self._loop: Any = None
        self._verdict: tuple[str | None, str | None] = (decision, policy_source)
        self._finished = False
        self._activation = _INACTIVE

    # -- the three phases, also used step by step for generators --------------------
    def begin(self) -> None:
        """Loop check, policy decision, attempt, sandbox decision (raises when the call may not run).

        With no stack left for auditspan's own calls (an agent deep in
        recursion) the remaining steps run from a fresh stack -- a refusal is
        still raised here -- or, with not even room for that, are kept for later.
        """
        if self._begun:
            raise RuntimeError("a ToolCall is entered once; call audit.tool_call(...) again")
        self._begun = True
        try:
            self._begin_steps()
        except RecursionError:
            started = [False]
            try:
                _deep.on_fresh_stack(self._begin_steps, (), {}, started)
            except RecursionError:
                if not started[0] and _deep.counts["deferred"] < _deep.MAX_DEFERRED:
                    _deep.DEFERRED = (self._begin_steps, (), {}, _deep.DEFERRED)
                    _deep.counts["deferred"] += 1
                elif not started[0]:
                    _deep.counts["lost"] += 1

    def _begin_steps(self) -> None:
        """``begin``'s steps; each one done once, also when retried from a fresh stack (``_step``)."""
        audit = self.audit
        if self._step < 1:
            if not self.tool_call_id:
                self.tool_call_id = _new_call_id()
                self._metadata["tool_call_id"] = self.tool_call_id
            turn = self.turn = _CURRENT_TURN.get()
            if turn is not None:
                turn._count_call()
            self._step = 1
        turn = self.turn
        agent_id, turn_id = (turn.agent_id, turn.turn_id) if turn is not None else (audit.agent_id, None)
        args = self.arguments if isinstance(self.arguments, Mapping) else {"arguments": self.arguments}
        emitter = audit.emitter
        meta = self._metadata

        if self._step < 2:
            if audit.loop_check is not None:
                self._loop = audit._ask(audit.loop_check, self.name, args)
            self._step = 2
        verdict = self._loop
        if isinstance(verdict, LoopVerdict):
            blocked = verdict.severity == "critical"
            if self._step < 3:
                audit._safe(
                    emitter.emit_tool_loop_block if blocked else emitter.emit_tool_loop_warning,
                    self.name,
                    pattern=verdict.pattern,
                    **({} if blocked else {"severity": verdict.severity}),
                    count=verdict.count,
                    agent_id=agent_id,
                    turn_id=turn_id,
                    metadata=dict(meta),
                )
                self._step = 3
            if blocked:
                self._finished = True
                raise ToolLoopBlocked(self.name, verdict.pattern, verdict.count)

        if self._step < 4:
            decision, source = self._decision, self._policy_source
            if decision is None and audit.policy is not None:
                decision, source = audit._policy_verdict(self.name, args)
            self._verdict = (decision, source)
            self._step = 4
        decision, source = self._verdict
        if decision is not None:
            source = source if source is not None else audit.policy_source
            if self._step < 5:
                audit._safe(
                    emitter.emit_tool_policy_decision,
                    self.name,
                    agent_id=agent_id,
                    action=decision,
                    source=source,
                    turn_id=turn_id,
                    metadata=dict(meta),
                )
                self._step = 5
            if is_refusal(decision):
                self._finished = True
                raise ToolCallDenied(self.name, decision, source or "")

        if self._step < 6:
            audit._safe(
                emitter.emit_tool_call_attempt,
                self.name,
                args=_preview(self.arguments),
                agent_id=agent_id,
                turn_id=turn_id,
                metadata=dict(meta),
            )
            self._started = time.perf_counter()
            self._step = 6
        if self._step < 7:
            if audit.sandbox is not None:
                where = audit._ask(audit.sandbox, self.name, args)
                if isinstance(where, SandboxVerdict):
                    self.sandbox_decision(where.context, where.reason, where.backend_type)
            self._step = 7
        self._activation = _Activation(audit._span_context(turn_id, self.tool_call_id))

    def sandbox_decision(self, context: str, reason: str = "", backend_type: str = "") -> None:
        """Record where this call runs (``host`` / ``sandbox``); call it before the tool runs."""
        turn = self.turn
        self.audit._safe(
            self.audit.emitter.emit_sandbox_decision,
            self.name,
            context=context,
            reason=reason,
            backend_type=backend_type,
            agent_id=turn.agent_id if turn is not None else self.audit.agent_id,
            turn_id=turn.turn_id if turn is not None else None,
            metadata=dict(self._metadata),
        )

    @contextlib.contextmanager
    def active(self) -> Iterator[None]:
        """This call's span is the current span inside the block."""
        self._activation.enter()
        try:
            yield
        finally:
            self._activation.exit()

    def finish(self, exc: BaseException | None) -> None:
        """``tool_call_complete`` (``exc`` None or ``GeneratorExit``) or ``tool_call_failure``."""
        if self._finished:
            return
        try:
            self._finish(exc)
        except RecursionError:
            try:
                _keep(self._finish, (exc,))
            except RecursionError:  # no room even to call that: kept without a call
                if _deep.counts["deferred"] < _deep.MAX_DEFERRED:
                    _deep.DEFERRED = (self._finish, (exc,), {}, _deep.DEFERRED)
                    _deep.counts["deferred"] += 1
                else:
                    _deep.counts["lost"] += 1

    def _finish(self, exc: BaseException | None) -> None:
        if self._finished:
            return
        if self.duration_ms is None:
            started = self._started if self._started is not None else time.perf_counter()
            self.duration_ms = (time.perf_counter() - started) * 1000
        turn = self.turn
        agent_id = turn.agent_id if turn is not None else self.audit.agent_id
        turn_id = turn.turn_id if turn is not None else None
        emitter = self.audit.emitter
        if exc is None or isinstance(exc, GeneratorExit):
            self.audit._safe(
                emitter.emit_tool_call_complete,
                self.name,
                status="closed" if exc is not None else self.status,
                duration_ms=self.duration_ms,
                result=_preview(self.result),
                agent_id=agent_id,
                turn_id=turn_id,
                metadata=dict(self._metadata),
            )
        else:
            self.audit._safe(
                emitter.emit_tool_call_failure,
                self.name,
                error_type=type(exc).__name__,
                error_msg=_message(exc),
                agent_id=agent_id,
                turn_id=turn_id,
                metadata=dict(self._metadata),
            )
        self._finished = True  # only now: a retry from a fresh stack must still send it

    # -- context manager -----------------------------------------------------------
    def __enter__(self) -> ToolCall:
        self.begin()
        try:  # noqa: SIM105 -- contextlib.suppress is a call, and there may be no room for one
            self._activation.enter()
        except RecursionError:  # no stack left: the call's span is not made current
            pass
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:  # noqa: SIM105 -- as in __enter__
            self._activation.exit()
        except RecursionError:
            pass
        self.finish(exc)


class Audit:
    """Audit hooks bound to one session: turns, tool calls, decisions.

    Args:
        target: where events go -- the handle of ``auditspan.configure()``, a
            ``SpanCollector`` (or any collector), an ``AuditEmitter`` (this
            package's or the seed system's), or None for the process collector
            (``auditspan.instrumentation.process_collector()``).
        session_id: stamped on every event (ignored when ``target`` is an
            emitter: it has its own).
        agent_id: the agent of tool calls made outside any turn.
        policy: ``policy(tool_name, arguments)`` -> True / "allow", False /
            "deny", another verdict word, ``(verdict, source)``, or None for no
            decision; consulted before every call.
        policy_source: the ``policy_source`` of its decisions (default: the
            policy function's name).
        loop_check: ``loop_check(tool_name, arguments)`` -> ``LoopVerdict`` or None.
        sandbox: ``sandbox(tool_name, arguments)`` -> ``SandboxVerdict`` or None.
    """

    def __init__(
        self,
        target: Any = None,
        *,
        session_id: str | None = None,
        agent_id: str | None = None,
        policy: Policy | None = None,
        policy_source: str | None = None,
        loop_check: LoopCheck | None = None,
        sandbox: Sandbox | None = None,
    ) -> None:
        self.emitter: Any = _emitter_for(target, session_id)
        #: The SpanCollector the events reach (for making audit spans current), or None.
        self.collector: Any = find_span_collector(self.emitter)
        self._session_id = session_id
        # The seed system's emitter takes no ``metadata`` (so no tool call ids, no operation types).
        self._takes_metadata = _accepts_keyword(self.emitter.emit_tool_call_attempt, "metadata")
        self.agent_id = agent_id
        self.policy = policy
        self.policy_source = policy_source or (getattr(policy, "__name__", "") if policy else "")
        if self.policy_source == "<lambda>":
            self.policy_source = "policy"
        self.loop_check = loop_check
        self.sandbox = sandbox
        self._error_logged = False

    @property
    def session_id(self) -> str | None:
        """The session id the emitter stamps on events."""
        return getattr(self.emitter, "session_id", self._session_id)

    # -- turns and calls -------------------------------------------------------------
    def turn(
        self,
        agent_id: str | None = None,
        prompt: Any = "",
        *,
        turn_id: str | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> Turn:
        """A turn of ``agent_id`` answering ``prompt``: use as ``with`` / ``async with``.

        Example::

            with audit.turn(agent_id="planner", prompt=question) as turn:
                turn.content = answer(question)
        """
        return Turn(self, agent_id or self.agent_id, _preview(prompt), turn_id, metadata)

    def tool_call(
        self,
        name: str,
        arguments: Mapping[str, Any] | Any = None,
        *,
        operation_type: str | None = None,
        tool_call_id: str | None = None,
        decision: str | None = None,
        policy_source: str | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> ToolCall:
        """One call of tool ``name``: use as ``with`` / ``async with``; set ``call.result`` in the block.

        ``decision`` records a policy verdict made elsewhere (instead of asking
        ``Audit.policy``); a refusal raises ``ToolCallDenied`` on entering.
        ``operation_type`` sets the semantic type (``DATABASE_READ`` ...).

        Example::

            with audit.tool_call("web_search", {"query": q}) as call:
                call.result = search(q)
        """
        return ToolCall(
            self,
            name,
            arguments if arguments is not None else {},
            operation_type=operation_type,
            tool_call_id=tool_call_id,
            decision=decision,
            policy_source=policy_source,
            metadata=metadata,
        )

    @overload
    def tool(self, fn: F, /) -> F: ...

    @overload
    def tool(
        self,
        fn: None = None,
        /,
        *,
        name: str | None = None,
        operation_type: str | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> Callable[[F], F]: ...

    def tool(
        self,
        fn: F | None = None,
        /,
        *,
        name: str | None = None,
        operation_type: str | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> F | Callable[[F], F]:
        """Decorate a tool: each call is a ``tool_call`` (sync, async, generator or async generator).

        Example::

            @audit.tool
            def web_search(query: str) -> str: ...

            @audit.tool(name="db.read", operation_type="DATABASE_READ")
            async def read_rows(table: str) -> list[dict]: ...
        """

        def decorate(func: F) -> F:
            return cast(F, _wrap_tool(self, func, name or func.__name__, operation_type, metadata))

        return decorate(fn) if fn is not None else decorate

    # -- decisions outside a tool call -------------------------------------------------
    def policy_decision(
        self,
        tool_name: str,
        action: str,
        source: str = "",
        *,
        tool_call_id: str | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> bool:
        """Record a policy verdict on a call of ``tool_name``; True if the call may run.

        For runtimes that call their tools without ``tool_call``: a refused
        call then appears as a denied span, an allowed one is joined to the
        attempt that follows.
        """
        turn = _CURRENT_TURN.get()
        meta = dict(metadata or {})
        if tool_call_id:
            meta["tool_call_id"] = tool_call_id
        self._safe(
            self.emitter.emit_tool_policy_decision,
            tool_name,
            agent_id=turn.agent_id if turn is not None else self.agent_id,
            action=action,
            source=source,
            turn_id=turn.turn_id if turn is not None else None,
            metadata=meta,
        )
        return not is_refusal(action)

    def sandbox_decision(
        self,
        tool_name: str,
        context: str,
        reason: str = "",
        backend_type: str = "",
        *,
        tool_call_id: str | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> None:
        """Record where a call of ``tool_name`` runs (``host`` / ``sandbox``), after its attempt."""
        turn = _CURRENT_TURN.get()
        meta = dict(metadata or {})
        if tool_call_id:
            meta["tool_call_id"] = tool_call_id
        self._safe(
            self.emitter.emit_sandbox_decision,
            tool_name,
            context=context,
            reason=reason,
            backend_type=backend_type,
            agent_id=turn.agent_id if turn is not None else self.agent_id,
            turn_id=turn.turn_id if turn is not None else None,
            metadata=meta,
        )

    def error(self, error_type: str, message: str = "", context: str = "") -> None:
        """Record an error of the current turn that is not tied to one tool call."""
        turn = _CURRENT_TURN.get()
        self._safe(
            self.emitter.emit_error,
            error_type=error_type,
            error_msg=message,
            context=context,
            agent_id=turn.agent_id if turn is not None else self.agent_id,
            turn_id=turn.turn_id if turn is not None else None,
        )

    def flush(self) -> None:
        """Flush the emitter's collector. Never raises."""
        self._safe(self.emitter.flush)

    # -- internals ---------------------------------------------------------------------
    def _emit_turn_start(
        self, agent_id: str | None, turn_id: str | None, prompt: str, metadata: dict[str, Any]
    ) -> str:
        kwargs: dict[str, Any] = {"agent_id": agent_id, "turn_id": turn_id, "prompt": prompt}
        if metadata and self._takes_metadata:
            kwargs["metadata"] = metadata
        try:
            returned = self.emitter.emit_turn_start(**kwargs)
        except RecursionError:
            try:
                returned = self._rescue(self.emitter.emit_turn_start, (), kwargs)
            except RecursionError:
                returned = None
        except Exception:
            self._log_failure()
            returned = None
        if type(returned) is str and returned:
            return returned
        if turn_id:
            return turn_id
        try:
            return uuid.uuid4().hex[:12]
        except RecursionError:  # no stack left (the event itself was kept for later)
            return ""

    def _span_context(self, turn_id: str | None, tool_call_id: str | None) -> SpanContext | None:
        if self.collector is None:
            return None
        try:
            return span_context_for(self.collector, self.session_id, turn_id, tool_call_id)
        except RecursionError:  # no stack left: no span is made current; the events are still recorded
            return None

    def _policy_verdict(self, tool_name: str, args: Mapping[str, Any]) -> tuple[str | None, str | None]:
        answer = self._ask(self.policy, tool_name, args)
        source: str | None = None
        if isinstance(answer, tuple) and len(answer) == 2:
            answer, source = answer[0], str(answer[1])
        if answer is None:
            return None, None
        if isinstance(answer, bool):
            return ("allow" if answer else "deny"), source
        return str(answer), source

    def _ask(self, fn: Callable[..., Any] | None, tool_name: str, args: Mapping[str, Any]) -> Any:
        """The user's policy / loop / sandbox callback; its exceptions propagate (they are the agent's)."""
        if fn is None:
            return None
        return fn(tool_name, args)

    def _safe(self, method: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        """Call an emitter method; never raise into the agent."""
        if not self._takes_metadata:
            kwargs.pop("metadata", None)
        try:
            method(*args, **kwargs)
        except RecursionError:  # an emitter of the seed system's, say: no stack left for its calls
            try:
                self._rescue(method, args, kwargs)
            except RecursionError:  # no room even to call that: kept without a call
                if _deep.counts["deferred"] < _deep.MAX_DEFERRED:
                    _deep.DEFERRED = (method, args, kwargs, _deep.DEFERRED)
                    _deep.counts["deferred"] += 1
                else:
                    _deep.counts["lost"] += 1
        except Exception:
            self._log_failure()

    @staticmethod
    def _rescue(method: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """``method`` from a fresh stack, else kept for later (``auditspan._deep``); never raises."""
        try:
            return _deep.rescue(method, args, kwargs)
        except Exception:  # not even room to keep it with a call: kept without one
            if _deep.counts["deferred"] < _deep.MAX_DEFERRED:
                _deep.DEFERRED = (method, args, kwargs, _deep.DEFERRED)
                _deep.counts["deferred"] += 1
            else:
                _deep.counts["lost"] += 1
            return None

    def _log_failure(self) -> None:
        if not self._error_logged:
            self._error_logged = True
            try:
                _logger.exception("auditspan: emitting an audit event failed (further ones are not logged)")
            except Exception:  # a failing handler, or no stack left to log with: never into the agent
                self._error_logged = False


def _accepts_keyword(method: Callable[..., Any], name: str) -> bool:
    try:
        parameters = inspect.signature(method).parameters.values()
    except (TypeError, ValueError):
        return False
    return any(p.name == name or p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters)


def _emitter_for(target: Any, session_id: str | None) -> Any:
    if target is None:
        from .instrumentation import process_collector

        return AuditEmitter(process_collector(), session_id=session_id)
    if hasattr(target, "emit_tool_call_attempt"):  # an emitter already
        return target
    make = getattr(target, "emitter", None)
    if callable(make) and hasattr(target, "collector"):  # the handle of configure()
        return make(session_id)
    if hasattr(target, "emit"):
        return AuditEmitter(target, session_id=session_id)
    raise TypeError(
        f"Audit target must be an AuditSpanHandle, a collector or an emitter, not {type(target).__name__}"
    )


# ---------------------------------------------------------------------- decorators
def _arguments_of(signature: inspect.Signature | None, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    if signature is None:
        return {"args": args, "kwargs": kwargs} if kwargs else list(args)
    try:
        bound = signature.bind(*args, **kwargs)
    except TypeError:  # the call itself will fail the same way, and be recorded as a failure
        return {"args": args, "kwargs": kwargs}
    arguments = dict(bound.arguments)
    for name in ("self", "cls"):
        arguments.pop(name, None)
    return arguments


class _ItemsPreview:
    """A generator call's result preview: its items, while they fit in the preview."""

    def __init__(self) -> None:
        self.count = 0
        self._parts: list[str] = []
        self._size = 0

    def add(self, item: Any) -> None:
        self.count += 1
        if self._size < PREVIEW_LIMIT:
            text = _preview(item)
            self._parts.append(text)
            self._size += len(text) + 2

    def text(self) -> str:
        return "[" + ", ".join(self._parts) + (", ...]" if self._size >= PREVIEW_LIMIT else "]")


def _wrap_tool(
    audit: Audit,
    func: Callable[..., Any],
    name: str,
    operation_type: str | None,
    metadata: Mapping[str, Any] | None,
) -> Callable[..., Any]:
    try:
        signature: inspect.Signature | None = inspect.signature(func)
    except (TypeError, ValueError):
        signature = None

    def new_call(args: tuple[Any, ...], kwargs: dict[str, Any]) -> ToolCall:
        try:
            arguments = _arguments_of(signature, args, kwargs)
        except RecursionError:  # no stack left to bind them: as they came
            arguments = {"args": args, "kwargs": kwargs}
        return audit.tool_call(name, arguments, operation_type=operation_type, metadata=metadata)

    if inspect.isasyncgenfunction(func):

        @functools.wraps(func)
        async def async_gen_wrapper(*args: Any, **kwargs: Any) -> AsyncGenerator[Any, Any]:
            try:
                call = new_call(args, kwargs)
            except RecursionError:  # no stack left even to describe the call: it runs, counted
                _deep.counts["lost"] += 1
                async for item in func(*args, **kwargs):
                    yield item
                return
            call.begin()
            inner = func(*args, **kwargs)
            items = _ItemsPreview()
            sent: Any = None
            thrown: BaseException | None = None
            try:
                while True:
                    with call.active():
                        try:
                            item = await (inner.athrow(thrown) if thrown is not None else inner.asend(sent))
                        except StopAsyncIteration:
                            break
                        finally:
                            thrown = None
                    items.add(item)
                    try:
                        sent = yield item
                    except GeneratorExit:
                        await inner.aclose()
                        raise
                    except BaseException as exc:
                        thrown, sent = exc, None
            except BaseException as exc:
                call.result = items.text()
                call.finish(exc)
                raise
            call.result = items.text()
            call.finish(None)

        return async_gen_wrapper

    if inspect.isgeneratorfunction(func):

        @functools.wraps(func)
        def gen_wrapper(*args: Any, **kwargs: Any) -> Generator[Any, Any, Any]:
            try:
                call = new_call(args, kwargs)
            except RecursionError:  # no stack left even to describe the call: it runs, counted
                _deep.counts["lost"] += 1
                return (yield from func(*args, **kwargs))
            call.begin()
            inner = func(*args, **kwargs)
            items = _ItemsPreview()
            sent: Any = None
            thrown: BaseException | None = None
            try:
                while True:
                    with call.active():
                        try:
                            item = inner.throw(thrown) if thrown is not None else inner.send(sent)
                        except StopIteration as stop:
                            returned = stop.value
                            break
                        finally:
                            thrown = None
                    items.add(item)
                    try:
                        sent = yield item
                    except GeneratorExit:
                        inner.close()
                        raise
                    except BaseException as exc:
                        thrown, sent = exc, None
            except BaseException as exc:
                call.result = items.text()
                call.finish(exc)
                raise
            call.result = returned if returned is not None else items.text()
            call.finish(None)
            return returned

        return gen_wrapper

    if inspect.iscoroutinefunction(func):

        @functools.wraps(func)
        async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
            try:
                call = new_call(args, kwargs)
            except RecursionError:  # no stack left even to describe the call: it runs, counted
                _deep.counts["lost"] += 1
                return await func(*args, **kwargs)
            async with call:
                call.result = await func(*args, **kwargs)
            return call.result

        return async_wrapper

    @functools.wraps(func)
    def sync_wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            call = new_call(args, kwargs)
        except RecursionError:  # no stack left even to describe the call (within a few frames of the
            _deep.counts["lost"] += 1  # limit): it runs unaudited, counted and reported (_deep.report)
            return func(*args, **kwargs)
        with call:
            call.result = func(*args, **kwargs)
        return call.result

    return sync_wrapper

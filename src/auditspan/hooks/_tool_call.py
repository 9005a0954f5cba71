"""``ToolCall``: one tool call, from its governing events and attempt to its completion or failure."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator, Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any

from .. import _deep
from ..emitter import _new_call_id, _preview_of
from ..governance import is_refusal
from ._blocks import INACTIVE, Activation, AsyncWith, message_of
from ._session import AuditSession, rescue
from ._turn import CURRENT_TURN, Turn
from ._verdicts import LoopVerdict, SandboxVerdict, ToolCallDenied, ToolLoopBlocked

if TYPE_CHECKING:  # for the annotation only: ``Audit`` makes tool calls
    from ._audit import Audit

__all__ = ["ToolCall"]


class ToolCall(AsyncWith):
    """One tool call (``with`` or ``async with``): governing events and attempt on entering,
    completion or failure on leaving.

    Made by ``Audit.tool_call`` (and by ``@audit.tool`` for each call). Set
    ``result`` (and, if not ``"success"``, ``status``) in the block. Entering
    raises ``ToolCallDenied`` / ``ToolLoopBlocked`` when the call may not run.
    ``audit`` is the ``Audit`` it belongs to.
    """

    def __init__(
        self,
        session: AuditSession,
        name: str,
        arguments: Mapping[str, Any] | Any,
        *,
        operation_type: str | None,
        tool_call_id: str | None,
        decision: str | None,
        policy_source: str | None,
        metadata: Mapping[str, Any] | None,
        audit: Audit,
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
        self._session = session
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
        self._activation = INACTIVE

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
        session = self._session
        if self._step < 1:
            if not self.tool_call_id:
                self.tool_call_id = _new_call_id()
                self._metadata["tool_call_id"] = self.tool_call_id
            turn = self.turn = CURRENT_TURN.get()
            if turn is not None:
                turn._count_call()
            self._step = 1
        turn = self.turn
        agent_id, turn_id = (turn.agent_id, turn.turn_id) if turn is not None else (session.agent_id, None)
        args = self.arguments if isinstance(self.arguments, Mapping) else {"arguments": self.arguments}
        emitter = session.emitter
        meta = self._metadata

        if self._step < 2:
            if session.loop_check is not None:
                self._loop = session.ask(session.loop_check, self.name, args)
            self._step = 2
        verdict = self._loop
        if isinstance(verdict, LoopVerdict):
            blocked = verdict.severity == "critical"
            if self._step < 3:
                session.send(
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
            if decision is None and session.policy is not None:
                decision, source = session.policy_verdict(self.name, args)
            self._verdict = (decision, source)
            self._step = 4
        decision, source = self._verdict
        if decision is not None:
            source = source if source is not None else session.policy_source
            if self._step < 5:
                session.send(
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
            session.send(
                emitter.emit_tool_call_attempt,
                self.name,
                args=_preview_of(self.arguments),
                agent_id=agent_id,
                turn_id=turn_id,
                metadata=dict(meta),
            )
            self._started = time.perf_counter()
            self._step = 6
        if self._step < 7:
            if session.sandbox is not None:
                where = session.ask(session.sandbox, self.name, args)
                if isinstance(where, SandboxVerdict):
                    self.sandbox_decision(where.context, where.reason, where.backend_type)
            self._step = 7
        self._activation = Activation(session.span_context(turn_id, self.tool_call_id))

    def sandbox_decision(self, context: str, reason: str = "", backend_type: str = "") -> None:
        """Record where this call runs (``host`` / ``sandbox``); call it before the tool runs."""
        turn = self.turn
        session = self._session
        session.send(
            session.emitter.emit_sandbox_decision,
            self.name,
            context=context,
            reason=reason,
            backend_type=backend_type,
            agent_id=turn.agent_id if turn is not None else session.agent_id,
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
                rescue(self._finish, (exc,), {})
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
        session = self._session
        turn = self.turn
        agent_id = turn.agent_id if turn is not None else session.agent_id
        turn_id = turn.turn_id if turn is not None else None
        emitter = session.emitter
        if exc is None or isinstance(exc, GeneratorExit):
            session.send(
                emitter.emit_tool_call_complete,
                self.name,
                status="closed" if exc is not None else self.status,
                duration_ms=self.duration_ms,
                result=_preview_of(self.result),
                agent_id=agent_id,
                turn_id=turn_id,
                metadata=dict(self._metadata),
            )
        else:
            session.send(
                emitter.emit_tool_call_failure,
                self.name,
                error_type=type(exc).__name__,
                error_msg=message_of(exc),
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

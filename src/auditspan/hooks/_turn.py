"""``Turn``: one turn of an agent, and the context variable that says which turn the code runs in."""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from contextvars import ContextVar, Token
from types import TracebackType
from typing import TYPE_CHECKING, Any

from .. import _deep
from .._fork import fork_safe_lock
from ..emitter import _preview_of
from ._blocks import INACTIVE, Activation, AsyncWith, message_of
from ._session import AuditSession, rescue

if TYPE_CHECKING:  # for the annotation only: ``Audit`` makes turns
    from ._audit import Audit

__all__ = ["CURRENT_TURN", "Turn", "current_turn"]

#: The turn the code runs in (set by ``with audit.turn(...)``).
CURRENT_TURN: ContextVar[Turn | None] = ContextVar("auditspan_current_turn", default=None)


def current_turn() -> Turn | None:
    """The ``Turn`` whose ``with`` block the code runs in, or None."""
    return CURRENT_TURN.get()


class Turn(AsyncWith):
    """One turn: ``turn_start`` on entering, ``turn_end`` on leaving (``with`` or ``async with``).

    Made by ``Audit.turn``. Set ``content`` to the reply before the block ends;
    ``calls`` counts the tool calls made in the turn (denied and retried ones
    included) and becomes ``function_calls_count``. An exception leaving the
    block is recorded as an ``error`` event (the turn's span gets status
    ERROR) and propagates unchanged. ``audit`` is the ``Audit`` it belongs to.
    """

    def __init__(
        self,
        session: AuditSession,
        agent_id: str | None,
        prompt: str,
        turn_id: str | None,
        metadata: Mapping[str, Any] | None,
        *,
        audit: Audit,
    ) -> None:
        self.audit = audit
        self.agent_id = agent_id
        self.prompt = prompt
        self.turn_id = turn_id
        self.metadata = dict(metadata or {})
        self.content: Any = None
        self.calls = 0
        self._session = session
        self._lock = fork_safe_lock()
        self._entered = False
        self._error_sent = False
        self._token: Token[Turn | None] | None = None
        self._activation = INACTIVE

    def _count_call(self) -> None:  # by the turn's tool calls, on any thread
        with self._lock:
            self.calls += 1

    def __enter__(self) -> Turn:
        if self._entered:
            raise RuntimeError("a Turn is entered once; call audit.turn(...) again for the next turn")
        self._entered = True
        session = self._session
        self.turn_id = session.start_turn(self.agent_id, self.turn_id, self.prompt, self.metadata)
        try:
            self._token = CURRENT_TURN.set(self)
            self._activation = Activation(session.span_context(self.turn_id, None))
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
                    CURRENT_TURN.reset(self._token)
                self._token = None
        except RecursionError:  # no stack left to restore the context: the events below still go out
            pass
        try:
            self._end(exc)
        except RecursionError:
            try:
                rescue(self._end, (exc,), {})
            except RecursionError:  # no room even to call that: kept without a call
                if _deep.counts["deferred"] < _deep.MAX_DEFERRED:
                    _deep.DEFERRED = (self._end, (exc,), {}, _deep.DEFERRED)
                    _deep.counts["deferred"] += 1
                else:
                    _deep.counts["lost"] += 1

    def _end(self, exc: BaseException | None) -> None:
        """The turn's error (if any) and end; each sent once, also when retried from a fresh stack."""
        session = self._session
        if exc is not None and not self._error_sent:
            session.send(
                session.emitter.emit_error,
                error_type=type(exc).__name__,
                error_msg=message_of(exc),
                context="turn",
                agent_id=self.agent_id,
                turn_id=self.turn_id,
            )
            self._error_sent = True
        session.send(
            session.emitter.emit_turn_end,
            agent_id=self.agent_id,
            turn_id=self.turn_id,
            content=_preview_of(self.content),
            fc_count=self.calls,
        )

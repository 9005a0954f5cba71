"""``Audit``: the public face of the hooks -- turns, tool calls, decorated tools, decisions."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar, cast, overload

from .._targets import emitter_for
from ..emitter import _preview_of
from ..governance import is_refusal
from ._session import AuditSession
from ._tool_call import ToolCall
from ._tools import wrap_tool
from ._turn import CURRENT_TURN, Turn
from ._verdicts import LoopCheck, Policy, Sandbox

__all__ = ["Audit"]

F = TypeVar("F", bound=Callable[..., Any])


class Audit:
    """Audit hooks bound to one session: turns, tool calls, decisions.

    Its turns and tool calls reach it through one ``AuditSession`` (the
    emitter, the session id, the callbacks, the never-raise wrapper); the
    attributes below read and change that session, also for turns already open.

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

    Raises:
        TypeError: ``target`` is none of the above.
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
        self._session = AuditSession(
            emitter_for(target, session_id),
            session_id=session_id,
            agent_id=agent_id,
            policy=policy,
            policy_source=policy_source,
            loop_check=loop_check,
            sandbox=sandbox,
        )

    # -- what the session holds ------------------------------------------------------
    @property
    def emitter(self) -> Any:
        """The emitter events go to."""
        return self._session.emitter

    @emitter.setter
    def emitter(self, emitter: Any) -> None:
        self._session.emitter = emitter

    @property
    def collector(self) -> Any:
        """The ``SpanCollector`` the events reach (for making audit spans current), or None."""
        return self._session.collector

    @collector.setter
    def collector(self, collector: Any) -> None:
        self._session.collector = collector

    @property
    def session_id(self) -> str | None:
        """The session id the emitter stamps on events."""
        return self._session.session_id

    @property
    def agent_id(self) -> str | None:
        """The agent of tool calls made outside any turn (and of turns not given one)."""
        return self._session.agent_id

    @agent_id.setter
    def agent_id(self, agent_id: str | None) -> None:
        self._session.agent_id = agent_id

    @property
    def policy(self) -> Policy | None:
        """The policy consulted before every call, or None."""
        return self._session.policy

    @policy.setter
    def policy(self, policy: Policy | None) -> None:
        self._session.policy = policy

    @property
    def policy_source(self) -> str:
        """The ``policy_source`` of the policy's decisions."""
        return self._session.policy_source

    @policy_source.setter
    def policy_source(self, source: str) -> None:
        self._session.policy_source = source

    @property
    def loop_check(self) -> LoopCheck | None:
        """The loop check consulted before every call, or None."""
        return self._session.loop_check

    @loop_check.setter
    def loop_check(self, loop_check: LoopCheck | None) -> None:
        self._session.loop_check = loop_check

    @property
    def sandbox(self) -> Sandbox | None:
        """The sandbox router asked after every attempt, or None."""
        return self._session.sandbox

    @sandbox.setter
    def sandbox(self, sandbox: Sandbox | None) -> None:
        self._session.sandbox = sandbox

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
        session = self._session
        return Turn(session, agent_id or session.agent_id, _preview_of(prompt), turn_id, metadata, audit=self)

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
            self._session,
            name,
            arguments if arguments is not None else {},
            operation_type=operation_type,
            tool_call_id=tool_call_id,
            decision=decision,
            policy_source=policy_source,
            metadata=metadata,
            audit=self,
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
            return cast(F, wrap_tool(self.tool_call, func, name or func.__name__, operation_type, metadata))

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
        session = self._session
        turn = CURRENT_TURN.get()
        meta = dict(metadata or {})
        if tool_call_id:
            meta["tool_call_id"] = tool_call_id
        session.send(
            session.emitter.emit_tool_policy_decision,
            tool_name,
            agent_id=turn.agent_id if turn is not None else session.agent_id,
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
        session = self._session
        turn = CURRENT_TURN.get()
        meta = dict(metadata or {})
        if tool_call_id:
            meta["tool_call_id"] = tool_call_id
        session.send(
            session.emitter.emit_sandbox_decision,
            tool_name,
            context=context,
            reason=reason,
            backend_type=backend_type,
            agent_id=turn.agent_id if turn is not None else session.agent_id,
            turn_id=turn.turn_id if turn is not None else None,
            metadata=meta,
        )

    def error(self, error_type: str, message: str = "", context: str = "") -> None:
        """Record an error of the current turn that is not tied to one tool call."""
        session = self._session
        turn = CURRENT_TURN.get()
        session.send(
            session.emitter.emit_error,
            error_type=error_type,
            error_msg=message,
            context=context,
            agent_id=turn.agent_id if turn is not None else session.agent_id,
            turn_id=turn.turn_id if turn is not None else None,
        )

    def flush(self) -> None:
        """Flush the emitter's collector. Never raises."""
        session = self._session
        session.send(session.emitter.flush)

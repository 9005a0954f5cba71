"""The session object: all that a turn or a tool call needs from its ``Audit``.

``Audit`` is the public face (its constructor, ``turn``, ``tool_call``,
``@audit.tool``, the decision methods). ``Turn`` and ``ToolCall`` talk to one
``AuditSession`` instead, the internal contract between them and their
``Audit``:

* where events go: ``emitter``, ``session_id`` and ``collector`` (the
  ``SpanCollector`` they reach, to make audit spans current);
* ``agent_id``, the agent of tool calls made outside any turn;
* the user's callbacks, ``policy`` (asked through ``policy_verdict``),
  ``loop_check`` and ``sandbox`` (through ``ask``): their exceptions are the
  agent's and propagate;
* ``send``, which calls an emitter method and never raises into the agent,
  at any stack depth (``auditspan._deep``).
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable, Mapping
from typing import Any

from opentelemetry.trace import SpanContext

from .. import _deep
from ..context import find_span_collector, span_context_for
from ..emitter import new_turn_id
from ._verdicts import LoopCheck, Policy, Sandbox

__all__ = ["AuditSession", "rescue"]

_logger = logging.getLogger("auditspan.hooks")


class AuditSession:
    """What the turns and tool calls of one ``Audit`` need from it (see the module docstring).

    Threading: ``Audit`` sets the attributes (when made, or through its
    properties); turns and calls on any thread only read them and call
    ``send``, which takes no lock of its own (the emitter has one).

    Args:
        emitter: where events go (``auditspan._targets.emitter_for``).
        session_id: the session when the emitter tells none.
        agent_id, policy, policy_source, loop_check, sandbox: as ``Audit`` takes them.
    """

    __slots__ = (
        "_error_logged",
        "_session_id",
        "_takes_metadata",
        "agent_id",
        "collector",
        "emitter",
        "loop_check",
        "policy",
        "policy_source",
        "sandbox",
    )

    def __init__(
        self,
        emitter: Any,
        *,
        session_id: str | None,
        agent_id: str | None,
        policy: Policy | None,
        policy_source: str | None,
        loop_check: LoopCheck | None,
        sandbox: Sandbox | None,
    ) -> None:
        self.emitter: Any = emitter
        #: The SpanCollector the events reach (for making audit spans current), or None.
        self.collector: Any = find_span_collector(emitter)
        self._session_id = session_id
        # The seed system's emitter takes no ``metadata`` (so no tool call ids, no operation types).
        self._takes_metadata = _accepts_keyword(emitter.emit_tool_call_attempt, "metadata")
        self.agent_id = agent_id
        self.policy = policy
        source: str = policy_source or (getattr(policy, "__name__", "") if policy else "") or ""
        self.policy_source = "policy" if source == "<lambda>" else source
        self.loop_check = loop_check
        self.sandbox = sandbox
        self._error_logged = False

    @property
    def session_id(self) -> str | None:
        """The session id the emitter stamps on events."""
        return getattr(self.emitter, "session_id", self._session_id)

    # -- the events ------------------------------------------------------------------
    def start_turn(
        self, agent_id: str | None, turn_id: str | None, prompt: str, metadata: dict[str, Any]
    ) -> str:
        """Emit ``turn_start``; return the turn's id (the emitter's, else ``turn_id``, else a new one).

        Never raises.
        """
        kwargs: dict[str, Any] = {"agent_id": agent_id, "turn_id": turn_id, "prompt": prompt}
        if metadata and self._takes_metadata:
            kwargs["metadata"] = metadata
        try:
            returned = self.emitter.emit_turn_start(**kwargs)
        except RecursionError:
            try:
                returned = rescue(self.emitter.emit_turn_start, (), kwargs)
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
            return new_turn_id()
        except RecursionError:  # no stack left (the event itself was kept for later)
            return ""

    def send(self, method: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        """Call an emitter method; never raise into the agent.

        Without stack left for it, the call goes on from a fresh stack or is
        kept for later (``auditspan._deep``); any other failure is logged once.
        """
        if not self._takes_metadata:
            kwargs.pop("metadata", None)
        try:
            method(*args, **kwargs)
        except RecursionError:  # an emitter of the seed system's, say: no stack left for its calls
            try:
                rescue(method, args, kwargs)
            except RecursionError:  # no room even to call that: kept without a call
                if _deep.counts["deferred"] < _deep.MAX_DEFERRED:
                    _deep.DEFERRED = (method, args, kwargs, _deep.DEFERRED)
                    _deep.counts["deferred"] += 1
                else:
                    _deep.counts["lost"] += 1
        except Exception:
            self._log_failure()

    def span_context(self, turn_id: str | None, tool_call_id: str | None) -> SpanContext | None:
        """The audit span of a turn (or of a call in it), to make current; None if there is none."""
        if self.collector is None:
            return None
        try:
            return span_context_for(self.collector, self.session_id, turn_id, tool_call_id)
        except RecursionError:  # no stack left: no span is made current; the events are still recorded
            return None

    # -- the user's callbacks --------------------------------------------------------------
    def policy_verdict(self, tool_name: str, args: Mapping[str, Any]) -> tuple[str | None, str | None]:
        """``policy``'s answer as ``(verdict, source)``: ``(None, None)`` when it makes no decision."""
        answer = self.ask(self.policy, tool_name, args)
        source: str | None = None
        if isinstance(answer, tuple) and len(answer) == 2:
            answer, source = answer[0], str(answer[1])
        if answer is None:
            return None, None
        if isinstance(answer, bool):
            return ("allow" if answer else "deny"), source
        return str(answer), source

    def ask(self, fn: Callable[..., Any] | None, tool_name: str, args: Mapping[str, Any]) -> Any:
        """The user's policy / loop / sandbox callback; its exceptions propagate (they are the agent's)."""
        if fn is None:
            return None
        return fn(tool_name, args)

    def _log_failure(self) -> None:
        if not self._error_logged:
            self._error_logged = True
            try:
                _logger.exception("auditspan: emitting an audit event failed (further ones are not logged)")
            except Exception:  # a failing handler, or no stack left to log with: never into the agent
                self._error_logged = False


def rescue(work: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """``work`` from a fresh stack, else kept for later (``auditspan._deep``); its result, or None.

    Never raises once it runs; a caller with no room even to call it catches
    that ``RecursionError`` and keeps the work without a call, inline.
    """
    try:
        return _deep.rescue(work, args, kwargs)
    except Exception:  # not even room to keep it with a call: kept without one
        if _deep.counts["deferred"] < _deep.MAX_DEFERRED:
            _deep.DEFERRED = (work, args, kwargs, _deep.DEFERRED)
            _deep.counts["deferred"] += 1
        else:
            _deep.counts["lost"] += 1
        return None


def _accepts_keyword(method: Callable[..., Any], name: str) -> bool:
    try:
        parameters = inspect.signature(method).parameters.values()
    except (TypeError, ValueError):
        return False
    return any(p.name == name or p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters)

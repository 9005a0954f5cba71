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

The modules of this package: ``_audit`` (``Audit``, the public face),
``_session`` (``AuditSession``: all that its turns and calls need from an
``Audit``), ``_turn`` (``Turn``, ``current_turn``), ``_tool_call``
(``ToolCall``), ``_tools`` (``@audit.tool``, one driver for sync and async
generators), ``_verdicts`` (the callbacks' answers and the refusals),
``_blocks`` (making a span current; ``async with``).
"""

from __future__ import annotations

from ._audit import Audit
from ._tool_call import ToolCall
from ._turn import Turn, current_turn
from ._verdicts import LoopCheck as LoopCheck  # the callbacks' types, importable from here (not in __all__)
from ._verdicts import LoopVerdict, SandboxVerdict, ToolCallDenied, ToolLoopBlocked
from ._verdicts import Policy as Policy
from ._verdicts import Sandbox as Sandbox

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

"""AuditEmitter: the seed emitter's methods, keywords and behaviour."""

from __future__ import annotations

import re
import threading
from typing import Any

from auditspan import AuditEmitter, CompositeCollector
from auditspan import events as ev


class ListCollector:
    def __init__(self) -> None:
        self.events: list[Any] = []
        self.flushed = 0

    def emit(self, event: Any) -> None:
        self.events.append(event)

    def flush(self) -> None:
        self.flushed += 1


def test_every_method_makes_its_event_with_seed_keywords() -> None:
    c = ListCollector()
    e = AuditEmitter(c, session_id="s1")
    tid = e.emit_turn_start(agent_id="a", prompt="p" * 500)
    assert re.fullmatch(r"[0-9a-f]{12}", tid)
    assert e.emit_turn_start(agent_id="a", turn_id="given") == "given"
    e.emit_tool_call_attempt("t", args="x" * 300, agent_id="a", turn_id=tid)
    e.emit_tool_call_complete(
        "t", status="success", duration_ms=5.5, result="r" * 201, agent_id="a", turn_id=tid
    )
    e.emit_tool_call_failure("t", error_type="ValueError", error_msg="m" * 1000, agent_id="a", turn_id=tid)
    e.emit_tool_policy_decision("t", agent_id="a", action="deny", source="ops", turn_id=tid)
    e.emit_sandbox_decision(
        "t", context="sandbox", reason="why", backend_type="docker", agent_id="a", turn_id=tid
    )
    e.emit_tool_loop_warning("t", pattern="same", severity="critical", count=3, agent_id="a", turn_id=tid)
    e.emit_tool_loop_block("t", pattern="same", count=5, agent_id="a", turn_id=tid)
    e.emit_hook_mutation("h", tool_name="t", agent_id="a", field="result", turn_id=tid)
    e.emit_error(error_type="E", error_msg="boom", context="ctx", agent_id="a", turn_id=tid)
    e.emit_turn_end(agent_id="a", turn_id=tid, content="c" * 999, fc_count=2)
    e.flush()
    types = [type(x) for x in c.events]
    assert types == [
        ev.TurnStartEvent,
        ev.TurnStartEvent,
        ev.ToolCallAttemptEvent,
        ev.ToolCallCompleteEvent,
        ev.ToolCallFailureEvent,
        ev.ToolPolicyDecisionEvent,
        ev.SandboxDecisionEvent,
        ev.ToolLoopWarningEvent,
        ev.ToolLoopBlockEvent,
        ev.HookMutationEvent,
        ev.ErrorEvent,
        ev.TurnEndEvent,
    ]
    assert all(x.session_id == "s1" for x in c.events)
    start, _, attempt, complete, failure, policy, sandbox, warning, block, hook, error, end = c.events
    assert len(start.prompt_preview) == 200
    assert len(attempt.arguments_preview) == 200
    assert len(complete.result_preview) == 200 and complete.duration_ms == 5.5
    assert len(failure.error_message) == 1000  # error messages are never cut
    assert (policy.action, policy.policy_source) == ("deny", "ops")
    assert (sandbox.context, sandbox.backend_type) == ("sandbox", "docker")
    assert (warning.severity_level, warning.call_count, warning.severity) == ("critical", 3, "warning")
    assert (block.call_count, hook.mutated_field) == (5, "result")
    assert (error.error_context, end.function_calls_count, len(end.content_preview)) == ("ctx", 2, 200)
    assert c.flushed == 1


def test_session_id_overwrites_even_with_none() -> None:
    c = ListCollector()
    event = ev.TurnStartEvent(session_id="old")
    AuditEmitter(c).emit(event)
    assert c.events[0].session_id is None


def test_metadata_keyword() -> None:
    c = ListCollector()
    AuditEmitter(c).emit_tool_call_attempt(
        "run_sql", args="SELECT 1", metadata={"operation_type": "DATABASE_READ"}
    )
    assert c.events[0].metadata == {"operation_type": "DATABASE_READ"}


def test_thread_safe_emits_arrive_whole() -> None:
    c = ListCollector()
    e = AuditEmitter(c, session_id="s")
    threads = [
        threading.Thread(target=lambda: [e.emit_error(error_msg="x") for _ in range(500)]) for _ in range(8)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(c.events) == 4000


def test_composite_keeps_going_when_one_collector_fails() -> None:
    class Broken:
        def emit(self, event: Any) -> None:
            raise RuntimeError("down")

        def flush(self) -> None:
            raise RuntimeError("down")

    good = ListCollector()
    composite = CompositeCollector(Broken(), good)
    AuditEmitter(composite).emit_error(error_msg="x")
    composite.flush()
    assert len(good.events) == 1 and good.flushed == 1

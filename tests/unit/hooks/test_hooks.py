"""``auditspan.hooks``: turns, tool calls and decorators for runtimes without audit events."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.trace import StatusCode

from auditspan.hooks import Audit, LoopVerdict, SandboxVerdict, ToolCallDenied, ToolLoopBlocked, current_turn

from ...conftest import checkpoint_count, event_records, event_spans, hex_span
from ...fixtures.standin import STANDIN_PATH


def _types(records: list[dict[str, Any]]) -> list[str]:
    return [r["event_type"] for r in records]


def _allow_all_but_delete(tool: str, args: Any) -> bool:
    return not tool.startswith("delete")


@pytest.fixture
def audit(harness: Any) -> Audit:
    return Audit(harness.collector, session_id="sess-h", policy=_allow_all_but_delete)


# ------------------------------------------------------------------------------ sequence
def test_sync_tool_in_a_turn_emits_the_seed_sequence(harness: Any, audit: Audit) -> None:
    audit.sandbox = lambda tool, args: SandboxVerdict("sandbox", "untrusted", "docker")

    @audit.tool
    def web_search(query: str, limit: int = 3) -> str:
        return f"{limit} results for {query}"

    with audit.turn(agent_id="planner", prompt="find flights") as turn:
        assert web_search("flights", limit=2) == "2 results for flights"
        turn.content = "found"

    records = harness.records()
    assert _types(records) == [
        "turn_start",
        "tool_policy_decision",
        "tool_call_attempt",
        "sandbox_decision",
        "tool_call_complete",
        "turn_end",
    ]
    policy, attempt, sandbox, complete = records[1:5]
    assert policy["action"] == "allow" and policy["policy_source"] == "_allow_all_but_delete"
    assert attempt["arguments_preview"] == "{'query': 'flights', 'limit': 2}"
    assert sandbox["context"] == "sandbox" and sandbox["backend_type"] == "docker"
    assert complete["result_preview"] == "2 results for flights"
    assert complete["duration_ms"] > 0
    assert complete["telemetry"]["duration_ms"] == complete["duration_ms"]
    assert records[-1]["content_preview"] == "found" and records[-1]["function_calls_count"] == 1
    assert {r["turn_id"] for r in records} == {turn.turn_id} and len(turn.turn_id or "") == 12
    assert {r["session_id"] for r in records} == {"sess-h"}
    call_id = attempt["metadata"]["tool_call_id"]
    assert all(r["metadata"]["tool_call_id"] == call_id for r in records[1:5])

    tool_span = harness.span("execute_tool web_search")
    turn_span = harness.span("invoke_agent planner")
    assert tool_span.parent is not None and tool_span.parent.span_id == turn_span.context.span_id
    assert tool_span.attributes["auditspan.sandbox.context"] == "sandbox"
    assert tool_span.attributes["gen_ai.tool.call.id"] == call_id


def test_exceptions_are_failures_and_reraised_unchanged(harness: Any, audit: Audit) -> None:
    boom = KeyError("missing")

    @audit.tool
    def lookup(key: str) -> str:
        raise boom

    with pytest.raises(KeyError) as caught, audit.turn(agent_id="a"):
        lookup("k")
    assert caught.value is boom
    records = harness.records()
    failure = next(r for r in records if r["event_type"] == "tool_call_failure")
    assert failure["error_type"] == "KeyError" and failure["error_message"] == "'missing'"
    # The exception also left the turn: an error event, and the turn's span is an error.
    assert _types(records)[-2:] == ["error", "turn_end"]
    assert harness.span("invoke_agent a").status.status_code is StatusCode.ERROR
    assert harness.span("execute_tool lookup").status.status_code is StatusCode.ERROR


def test_retry_after_failure_is_attempt_two(harness: Any, audit: Audit) -> None:
    calls = {"n": 0}

    @audit.tool
    def flaky() -> str:
        calls["n"] += 1
        if calls["n"] == 1:
            raise TimeoutError("slow")
        return "ok"

    with audit.turn(agent_id="a"):
        with pytest.raises(TimeoutError):
            flaky()
        assert flaky() == "ok"
    spans = sorted(
        (s for s in harness.spans() if s.name == "execute_tool flaky"),
        key=lambda s: s.attributes["auditspan.tool.attempt"],
    )
    assert [s.attributes["auditspan.tool.attempt"] for s in spans] == [1, 2]
    assert [s.attributes["auditspan.tool.outcome"] for s in spans] == ["failure", "success"]
    assert spans[1].links[0].context.span_id == spans[0].context.span_id


def test_denied_call_raises_and_never_runs(harness: Any, audit: Audit) -> None:
    ran = []

    @audit.tool(name="delete_records")
    def delete(table: str) -> None:
        ran.append(table)

    with audit.turn(agent_id="a") as turn:
        with pytest.raises(ToolCallDenied) as caught:
            delete("users")
        assert caught.value.decision == "deny" and caught.value.tool_name == "delete_records"
        with pytest.raises(ToolCallDenied), audit.tool_call("wire_money", {"amount": 5}, decision="block"):
            ran.append("wire")
    assert ran == []
    assert turn.calls == 2
    records = harness.records()
    assert "tool_call_attempt" not in _types(records)
    for name in ("execute_tool delete_records", "execute_tool wire_money"):
        span = harness.span(name)
        assert span.status.status_code is StatusCode.ERROR
        assert span.attributes["auditspan.tool.outcome"] == "denied"


def test_loop_block_raises_and_warning_is_recorded(harness: Any) -> None:
    verdicts = iter([LoopVerdict("warning", "repeat", 3), LoopVerdict("critical", "repeat", 4)])
    audit = Audit(harness.collector, loop_check=lambda tool, args: next(verdicts))

    @audit.tool
    def poll() -> str:
        return "same"

    with audit.turn(agent_id="a"):
        assert poll() == "same"
        with pytest.raises(ToolLoopBlocked):
            poll()
    assert _types(harness.records()) == [
        "turn_start",
        "tool_loop_warning",
        "tool_call_attempt",
        "tool_call_complete",
        "tool_loop_block",
        "turn_end",
    ]
    outcomes = sorted(
        s.attributes["auditspan.tool.outcome"] for s in harness.spans() if s.name == "execute_tool poll"
    )
    assert outcomes == ["blocked", "success"]


def test_policy_decision_helper_and_operation_type(harness: Any, audit: Audit) -> None:
    with audit.turn(agent_id="a"):
        assert audit.policy_decision("drop_table", "deny", "opa") is False
        with audit.tool_call("fetch", {"id": 1}, operation_type="DATABASE_READ") as call:
            call.result = {"id": 1}
    assert harness.span("execute_tool drop_table").attributes["auditspan.tool.outcome"] == "denied"
    fetch = harness.span("execute_tool fetch")
    assert fetch.attributes["auditspan.operation.type"] == "DATABASE_READ"
    assert fetch.attributes["auditspan.tool.result_preview"] == "{'id': 1}"


# ------------------------------------------------------------------------------ function kinds
def test_async_function(harness: Any, audit: Audit) -> None:
    @audit.tool(name="fetch_page")
    async def fetch(url: str) -> str:
        await asyncio.sleep(0)
        return "<html>"

    async def main() -> str:
        async with audit.turn(agent_id="a"):
            return await fetch("https://example.com")

    assert asyncio.run(main()) == "<html>"
    assert _types(harness.records())[1:-1] == [
        "tool_policy_decision",
        "tool_call_attempt",
        "tool_call_complete",
    ]
    assert harness.span("execute_tool fetch_page").attributes["auditspan.tool.outcome"] == "success"


def test_generator_spans_its_whole_iteration(harness: Any, audit: Audit) -> None:
    @audit.tool
    def rows(n: int) -> Iterator[int]:
        for i in range(n):
            assert trace.get_current_span().get_span_context().is_valid  # the call is current while it runs
            yield i

    with audit.turn(agent_id="a"):
        gen = rows(3)
        assert harness.records()[-1]["event_type"] == "turn_start"  # nothing happens before iterating
        assert list(gen) == [0, 1, 2]
    complete = next(r for r in harness.records() if r["event_type"] == "tool_call_complete")
    assert complete["result_preview"] == "[0, 1, 2]" and complete["status"] == "success"


def test_generator_closed_early_and_failing_generator(harness: Any, audit: Audit) -> None:
    cleaned = []

    @audit.tool
    def endless() -> Iterator[int]:
        try:
            i = 0
            while True:
                yield i
                i += 1
        finally:
            cleaned.append(True)

    @audit.tool
    def broken() -> Iterator[int]:
        yield 1
        raise ValueError("bad row")

    with audit.turn(agent_id="a"):
        gen = endless()
        assert [next(gen), next(gen)] == [0, 1]
        gen.close()
        with pytest.raises(ValueError, match="bad row"):
            list(broken())
    assert cleaned == [True]
    records = harness.records()
    complete = next(r for r in records if r["event_type"] == "tool_call_complete")
    assert complete["tool_name"] == "endless" and complete["status"] == "closed"
    failure = next(r for r in records if r["event_type"] == "tool_call_failure")
    assert failure["tool_name"] == "broken" and failure["error_type"] == "ValueError"


def test_generator_send_and_throw_reach_the_inner_generator(harness: Any, audit: Audit) -> None:
    @audit.tool
    def echo() -> Iterator[str]:
        received = yield "ready"
        while True:
            try:
                received = yield f"got {received}"
            except KeyError:
                received = yield "recovered"

    with audit.turn(agent_id="a"):
        gen = echo()
        assert next(gen) == "ready"
        assert gen.send("x") == "got x"
        assert gen.throw(KeyError("k")) == "recovered"
        gen.close()
    assert harness.span("execute_tool echo").attributes["auditspan.tool.outcome"] == "success"


def test_async_generator(harness: Any, audit: Audit) -> None:
    @audit.tool
    async def stream(n: int) -> AsyncIterator[int]:
        for i in range(n):
            await asyncio.sleep(0)
            yield i

    async def main() -> list[int]:
        async with audit.turn(agent_id="a"):
            return [i async for i in stream(2)]

    assert asyncio.run(main()) == [0, 1]
    complete = next(r for r in harness.records() if r["event_type"] == "tool_call_complete")
    assert complete["result_preview"] == "[0, 1]"


def test_methods_record_arguments_without_self(harness: Any, audit: Audit) -> None:
    class Toolbox:
        @audit.tool
        def add(self, a: int, b: int) -> int:
            return a + b

    with audit.turn(agent_id="a"):
        assert Toolbox().add(1, b=2) == 3
    attempt = next(r for r in harness.records() if r["event_type"] == "tool_call_attempt")
    assert attempt["arguments_preview"] == "{'a': 1, 'b': 2}"


# ------------------------------------------------------------------------------ current span
def test_turn_and_call_spans_are_current_and_nested_agents_nest(harness: Any, audit: Audit) -> None:
    tracer = harness.tracer_provider.get_tracer("app")
    seen: dict[str, Any] = {}

    @audit.tool
    def ask_researcher(question: str) -> str:
        seen["in_tool"] = trace.get_current_span().get_span_context().span_id
        with tracer.start_as_current_span("http GET"):
            pass
        with audit.turn(agent_id="researcher", prompt=question) as inner:
            seen["inner_turn"] = current_turn()
            inner.content = "42"
        return "42"

    with audit.turn(agent_id="planner") as outer:
        seen["in_turn"] = trace.get_current_span().get_span_context().span_id
        assert current_turn() is outer
        ask_researcher("meaning?")
    assert current_turn() is None
    assert not trace.get_current_span().get_span_context().is_valid

    planner = harness.span("invoke_agent planner")
    tool = harness.span("execute_tool ask_researcher")
    researcher = harness.span("invoke_agent researcher")
    http = harness.span("http GET")
    assert seen["in_turn"] == planner.context.span_id
    assert seen["in_tool"] == tool.context.span_id
    assert tool.parent.span_id == planner.context.span_id
    assert http.parent.span_id == tool.context.span_id
    assert researcher.parent.span_id == tool.context.span_id
    assert {s.context.trace_id for s in harness.spans()} == {planner.context.trace_id}
    assert seen["inner_turn"].agent_id == "researcher"


def test_turn_under_an_application_span(harness: Any, audit: Audit) -> None:
    tracer = harness.tracer_provider.get_tracer("app")
    with tracer.start_as_current_span("http POST /chat") as request, audit.turn(agent_id="a"):
        pass
    assert harness.span("invoke_agent a").parent.span_id == request.get_span_context().span_id


def test_tool_call_outside_a_turn_is_a_child_of_the_current_span(harness: Any, audit: Audit) -> None:
    tracer = harness.tracer_provider.get_tracer("app")
    with tracer.start_as_current_span("job") as job, audit.tool_call("cleanup") as call:
        call.result = "ok"
    span = harness.span("execute_tool cleanup")
    assert (
        span.parent is not None and hex_span(harness.span("job")) == f"{job.get_span_context().span_id:016x}"
    )
    assert span.parent.span_id == job.get_span_context().span_id


# ------------------------------------------------------------------------------ robustness
def test_emitting_never_breaks_the_agent(caplog: pytest.LogCaptureFixture) -> None:
    class Broken:
        def emit(self, event: Any) -> None:
            raise OSError("collector down")

        def flush(self) -> None:
            raise OSError("collector down")

    audit = Audit(Broken())

    @audit.tool
    def add(a: int, b: int) -> int:
        return a + b

    with audit.turn(agent_id="a") as turn:
        assert add(1, 2) == 3
        turn.content = "3"
    audit.flush()
    assert len(turn.turn_id or "") == 12
    assert "emitting an audit event failed" in caplog.text


def test_a_turn_is_entered_once(audit: Audit) -> None:
    turn = audit.turn(agent_id="a")
    with turn:
        pass
    with pytest.raises(RuntimeError, match="entered once"), turn:
        pass


def test_the_seed_systems_emitter_as_target(harness: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Its methods take no ``metadata``: the hooks still work (without call ids)."""
    monkeypatch.syspath_prepend(str(STANDIN_PATH))
    try:
        from calute.audit import AuditEmitter as SeedEmitter

        audit = Audit(SeedEmitter(collector=harness.collector, session_id="seed"), policy=lambda t, a: True)
        with audit.turn(agent_id="a"), audit.tool_call("web_search", {"q": "x"}) as call:
            call.result = "r"
        records = harness.records()
        assert _types(records)[1:4] == ["tool_policy_decision", "tool_call_attempt", "tool_call_complete"]
        assert all("tool_call_id" not in r["metadata"] for r in records)
        assert {r["session_id"] for r in records} == {"seed"}
        assert harness.span("execute_tool web_search").parent is not None
    finally:
        for name in [n for n in sys.modules if n == "calute" or n.startswith("calute.")]:
            del sys.modules[name]


def test_bad_target_is_refused() -> None:
    with pytest.raises(TypeError, match="Audit target"):
        Audit(42)


def test_no_target_uses_the_process_collector(tmp_path: Any) -> None:
    """``Audit()`` writes through ``auditspan.configure()``'s defaults (in a subprocess: it sets globals)."""
    import os
    import subprocess

    from auditspan.otlp_file import read_spans

    code = (
        "from auditspan.hooks import Audit\n"
        "audit = Audit(session_id='s')\n"
        "with audit.turn(agent_id='solo'):\n"
        "    with audit.tool_call('ping') as call:\n"
        "        call.result = 'pong'\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "AUDITSPAN_"))}
    env["AUDITSPAN_OUTPUT_DIR"] = str(tmp_path)
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    names = sorted(s["name"] for s in event_spans(read_spans(tmp_path / "traces.jsonl")))
    assert names == ["execute_tool ping", "invoke_agent solo"]
    lines = (tmp_path / "audit.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(event_records(lines)) == 4 and len(lines) == 4 + checkpoint_count(tmp_path / "audit.jsonl")

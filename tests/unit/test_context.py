"""Context propagation: which parent a tool call / nested agent / inner span gets, where the work runs.

Each test asserts parent span ids. The cases that break without help are asserted as broken, so
that the documentation in ``auditspan.context`` stays true.
"""

from __future__ import annotations

import asyncio
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan

from auditspan import AuditEmitter
from auditspan.context import ContextExecutor, run_in_executor, submit_with_context, wrap
from auditspan.hooks import Audit


def _parent(span: ReadableSpan) -> int | None:
    return span.parent.span_id if span.parent is not None else None


def _id(span: ReadableSpan) -> int:
    assert span.context is not None
    return span.context.span_id


def _trace(span: ReadableSpan) -> int:
    assert span.context is not None
    return span.context.trace_id


def _tool_spans(harness: Any, name: str) -> list[ReadableSpan]:
    return [s for s in harness.spans() if s.name == f"execute_tool {name}"]


@pytest.fixture
def audit(harness: Any) -> Audit:
    return Audit(harness.collector, session_id="sess-ctx")


def _search_tool(audit: Audit) -> Any:
    @audit.tool
    def search(query: str) -> str:
        return f"hits for {query}"

    return search


# ------------------------------------------------------------------------------ threads
def test_plain_thread_pool_loses_the_turn_of_decorated_tools(harness: Any, audit: Audit) -> None:
    """Broken without help: the worker does not know the turn; the call becomes a root of its own trace."""
    search = _search_tool(audit)
    with audit.turn(agent_id="planner"), ThreadPoolExecutor(max_workers=2) as pool:
        list(pool.map(search, ["a", "b"]))
    turn = harness.span("invoke_agent planner")
    calls = _tool_spans(harness, "search")
    assert len(calls) == 2
    for call in calls:
        assert _parent(call) is None
        assert _trace(call) != _trace(turn)


def test_plain_thread_pool_falls_back_to_the_agents_latest_turn(harness: Any) -> None:
    """With ``Audit(agent_id=...)`` the collector puts turn-less calls in that agent's most recent open turn:
    right with one turn at a time, wrong when two turns of that agent are open at once."""
    audit = Audit(harness.collector, session_id="sess-ctx", agent_id="planner")
    search = _search_tool(audit)
    with audit.turn() as first, ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(search, "a").result()
        with audit.turn():  # a second open turn of the same agent
            pool.submit(search, "b").result()
    turns = {
        s.attributes["auditspan.turn.id"]: s for s in harness.spans() if s.name == "invoke_agent planner"
    }
    first_span = turns[first.turn_id]
    other = next(s for tid, s in turns.items() if tid != first.turn_id)
    by_query = {s.attributes["auditspan.tool.arguments_preview"]: s for s in _tool_spans(harness, "search")}
    assert _parent(by_query["{'query': 'a'}"]) == _id(first_span)
    assert _parent(by_query["{'query': 'b'}"]) == _id(other)


@pytest.mark.parametrize("how", ["ContextExecutor", "submit_with_context", "wrap+Thread"])
def test_context_helpers_keep_the_turn_in_threads(harness: Any, audit: Audit, how: str) -> None:
    search = _search_tool(audit)
    with audit.turn(agent_id="planner"):
        if how == "ContextExecutor":
            with ContextExecutor(max_workers=2) as pool:
                assert list(pool.map(search, ["a", "b"])) == ["hits for a", "hits for b"]
        elif how == "submit_with_context":
            with ThreadPoolExecutor(max_workers=2) as plain:
                futures = [submit_with_context(plain, search, q) for q in ("a", "b")]
                assert [f.result() for f in futures] == ["hits for a", "hits for b"]
        else:
            threads = [threading.Thread(target=wrap(search), args=(q,)) for q in ("a", "b")]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
    turn = harness.span("invoke_agent planner")
    calls = _tool_spans(harness, "search")
    assert len(calls) == 2
    assert {_parent(c) for c in calls} == {_id(turn)}
    assert {_trace(c) for c in calls} == {_trace(turn)}


def test_wrapped_function_can_run_in_two_threads_at_once(audit: Audit, harness: Any) -> None:
    barrier = threading.Barrier(2, timeout=10)

    @audit.tool
    def meet(x: int) -> int:
        barrier.wait()  # both calls are inside the same wrapped function at the same time
        return x

    with audit.turn(agent_id="planner"):
        bound = wrap(meet)
        with ThreadPoolExecutor(max_workers=2) as pool:
            assert sorted(pool.map(bound, [1, 2])) == [1, 2]
    assert {_parent(c) for c in _tool_spans(harness, "meet")} == {_id(harness.span("invoke_agent planner"))}


def test_spans_inside_a_tool_in_a_worker_need_the_context(harness: Any, audit: Audit) -> None:
    tracer = harness.tracer_provider.get_tracer("http-client")

    @audit.tool
    def fetch(url: str) -> str:
        with tracer.start_as_current_span(f"GET {url}"):
            return "200"

    with audit.turn(agent_id="planner"):
        with ContextExecutor(max_workers=1) as pool:
            pool.submit(fetch, "/with").result()
        with ThreadPoolExecutor(max_workers=1) as plain:
            plain.submit(fetch, "/without").result()
    with_ctx = harness.span("GET /with")
    without = harness.span("GET /without")
    calls = {s.attributes["auditspan.tool.arguments_preview"]: s for s in _tool_spans(harness, "fetch")}
    assert _parent(with_ctx) == _id(calls["{'url': '/with'}"])
    assert _parent(without) == _id(calls["{'url': '/without'}"])  # the tool span is current in the worker ...
    assert _parent(calls["{'url': '/without'}"]) is None  # ... but the tool span itself lost its turn


# ------------------------------------------------------------------------------ asyncio
def test_asyncio_gather_keeps_the_turn(harness: Any, audit: Audit) -> None:
    @audit.tool
    async def lookup(key: str) -> str:
        await asyncio.sleep(0)
        return key

    async def main() -> None:
        async with audit.turn(agent_id="gather"):
            assert await asyncio.gather(lookup("a"), lookup("b")) == ["a", "b"]

    asyncio.run(main())
    gather = harness.span("invoke_agent gather")
    assert {_parent(s) for s in _tool_spans(harness, "lookup")} == {_id(gather)}
    assert len(_tool_spans(harness, "lookup")) == 2


@pytest.mark.skipif(sys.version_info < (3, 11), reason="asyncio.TaskGroup is new in Python 3.11")
def test_asyncio_task_group_keeps_the_turn(harness: Any, audit: Audit) -> None:
    @audit.tool
    async def lookup(key: str) -> str:
        await asyncio.sleep(0)
        return key

    async def main() -> None:
        async with audit.turn(agent_id="taskgroup"), asyncio.TaskGroup() as group:  # type: ignore[attr-defined]
            group.create_task(lookup("c"))
            group.create_task(lookup("d"))

    asyncio.run(main())
    group_turn = harness.span("invoke_agent taskgroup")
    assert {_parent(s) for s in _tool_spans(harness, "lookup")} == {_id(group_turn)}
    assert len(_tool_spans(harness, "lookup")) == 2


def test_run_in_executor_needs_the_helper_and_to_thread_does_not(harness: Any, audit: Audit) -> None:
    search = _search_tool(audit)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        async with audit.turn(agent_id="planner"):
            await loop.run_in_executor(None, search, "plain")
            await run_in_executor(None, search, "helper")
            await asyncio.to_thread(search, "to_thread")

    asyncio.run(main())
    turn = harness.span("invoke_agent planner")
    calls = {s.attributes["auditspan.tool.arguments_preview"]: s for s in _tool_spans(harness, "search")}
    assert _parent(calls["{'query': 'plain'}"]) is None
    assert _parent(calls["{'query': 'helper'}"]) == _id(turn)
    assert _parent(calls["{'query': 'to_thread'}"]) == _id(turn)


# ------------------------------------------------------------------------------ nested agents
def test_nested_agent_in_a_worker_needs_the_context(harness: Any, audit: Audit) -> None:
    researcher = Audit(harness.collector, session_id="sess-researcher")

    def run_researcher(question: str) -> str:
        with researcher.turn(agent_id="researcher", prompt=question) as turn:
            turn.content = "42"
        return "42"

    @audit.tool
    def ask(question: str) -> str:
        with ContextExecutor(max_workers=1) as pool:
            with_ctx = pool.submit(run_researcher, "with").result()
        with ThreadPoolExecutor(max_workers=1) as plain:
            plain.submit(run_researcher, "without").result()
        return with_ctx

    with audit.turn(agent_id="planner"):
        ask("meaning?")
    tool = _tool_spans(harness, "ask")[0]
    inner = {
        s.attributes["auditspan.turn.prompt_preview"]: s
        for s in harness.spans()
        if s.name.endswith("researcher")
    }
    assert _parent(inner["with"]) == _id(tool)
    assert _trace(inner["with"]) == _trace(tool)
    assert _parent(inner["without"]) is None  # a new trace
    assert _trace(inner["without"]) != _trace(tool)


# ------------------------------------------------------------------------------ seed-style emitters
def test_events_that_name_their_turn_keep_their_parent_in_any_thread(harness: Any) -> None:
    """The seed runtime passes turn_id: plain threads are fine for its tool spans."""
    emitter = AuditEmitter(harness.collector, session_id="sess-seed")
    turn = emitter.emit_turn_start(agent_id="planner")

    def call(q: str) -> None:
        emitter.emit_tool_call_attempt("search", args=q, agent_id="planner", turn_id=turn)
        emitter.emit_tool_call_complete("search", result=f"r-{q}", agent_id="planner", turn_id=turn)

    with ThreadPoolExecutor(max_workers=2) as pool:
        list(pool.map(call, ["a", "b"]))
    emitter.emit_turn_end(agent_id="planner", turn_id=turn)
    turn_span = harness.span("invoke_agent planner")
    calls = _tool_spans(harness, "search")
    assert {_parent(c) for c in calls} == {_id(turn_span)}
    assert {
        c.attributes["auditspan.tool.arguments_preview"]: c.attributes["auditspan.tool.result_preview"]
        for c in calls
    } == {
        "a": "r-a",
        "b": "r-b",
    }


def test_completions_from_other_threads_pair_by_call_id_only(make_harness: Any) -> None:
    """Attempts emitted by one thread, completions by others, out of order: thread matching cannot pair
    them (FIFO); ``metadata["tool_call_id"]`` does. Copying the context changes nothing here."""
    results = {}
    for with_ids in (False, True):
        h = make_harness()
        emitter = AuditEmitter(h.collector, session_id="s")
        turn = emitter.emit_turn_start(agent_id="planner")

        def meta(call_id: str, with_ids: bool = with_ids) -> dict[str, Any]:
            return {"tool_call_id": call_id} if with_ids else {}

        emitter.emit_tool_call_attempt("search", args="a", turn_id=turn, metadata=meta("c-a"))
        emitter.emit_tool_call_attempt("search", args="b", turn_id=turn, metadata=meta("c-b"))
        with ContextExecutor(max_workers=1) as pool:  # b finishes first, in a worker
            for q in ("b", "a"):
                pool.submit(
                    emitter.emit_tool_call_complete,
                    "search",
                    result=f"r-{q}",
                    turn_id=turn,
                    metadata=meta(f"c-{q}"),
                ).result()
        emitter.emit_turn_end(agent_id="planner", turn_id=turn)
        results[with_ids] = {
            s.attributes["auditspan.tool.arguments_preview"]: s.attributes["auditspan.tool.result_preview"]
            for s in _tool_spans(h, "search")
        }
    assert results[False] == {"a": "r-b", "b": "r-a"}  # swapped
    assert results[True] == {"a": "r-a", "b": "r-b"}

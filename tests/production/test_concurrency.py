"""Concurrency: 32 agent threads and 1,000 asyncio tasks, every parent link and every call checked.

Each call carries its own index in both its arguments and its result (``call=<id>`` /
``result-of=<id>`` / ``fail-of=<id>``), so a completion matched to the wrong attempt shows as
a span whose result does not belong to its arguments. Checked for every span:

* each tool span's parent is its own turn span (same ``auditspan.turn.id``), in the same trace;
* each turn span is a root, or the child of the application span that was current when the
  turn started;
* retries are attempt 2 with a link to the failed attempt; denials are ERROR spans;
* no span is left open, no turn stays open, and there is one record per event, each id once,
  each record on the span of its own call.
"""

from __future__ import annotations

import asyncio
import random
import re
import threading
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from opentelemetry import context as otel_context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode, set_span_in_context

from auditspan import AuditEmitter, SpanCollector
from auditspan import attributes as attr

from ..conftest import event_records

CALL = re.compile(r"call=(\S+)")
RESULT = re.compile(r"(?:result|fail)-of=(\S+)")


class OpenSpanTracker(SpanProcessor):
    """Counts spans started and ended (a span processor like any other)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.open: set[int] = set()
        self.started = 0
        self.ended = 0

    def on_start(self, span: Span, parent_context: otel_context.Context | None = None) -> None:
        with self._lock:
            self.started += 1
            self.open.add(span.context.span_id)

    def on_end(self, span: ReadableSpan) -> None:
        with self._lock:
            self.ended += 1
            assert span.context is not None
            self.open.discard(span.context.span_id)


@dataclass
class Rig:
    """A collector with in-memory spans, an open-span tracker and an audit file."""

    path: Path
    exporter: InMemorySpanExporter = field(default_factory=InMemorySpanExporter)
    tracker: OpenSpanTracker = field(default_factory=OpenSpanTracker)
    provider: TracerProvider = field(default_factory=TracerProvider)
    collector: SpanCollector = field(init=False)

    def __post_init__(self) -> None:
        self.provider.add_span_processor(self.tracker)
        self.provider.add_span_processor(SimpleSpanProcessor(self.exporter))
        self.collector = SpanCollector(tracer_provider=self.provider, audit_log=self.path)

    def close(self) -> None:
        self.collector.shutdown()
        self.provider.shutdown()

    def records(self) -> list[dict[str, Any]]:
        return event_records(self.path.read_bytes().splitlines())


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    made = Rig(tmp_path / "audit.jsonl")
    yield made
    made.close()


@dataclass
class Expected:
    """What the workload did, written down by the workload itself (thread-safe)."""

    events: int = 0
    turns: dict[str, int | None] = field(default_factory=dict)  # turn id -> outer span id (or None)
    calls: dict[str, str] = field(default_factory=dict)  # call id -> its turn id
    retried: set[str] = field(default_factory=set)  # turn ids with a retried call
    denied: Counter[str] = field(default_factory=Counter)  # turn id -> denied calls
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, events: int = 0, **kw: Any) -> None:
        with self.lock:
            self.events += events
            if "turn" in kw:
                self.turns[kw["turn"]] = kw.get("outer")
            if "call" in kw:
                self.calls[kw["call"]] = kw["call_turn"]


def a(span: ReadableSpan) -> dict[str, Any]:
    """A span's attributes as a plain dict."""
    return dict(span.attributes or {})


def check_everything(rig: Rig, expected: Expected) -> None:
    """The assertions shared by the thread and asyncio workloads."""
    rig.collector.flush()
    spans = rig.exporter.get_finished_spans()
    assert rig.tracker.started == rig.tracker.ended and not rig.tracker.open, "spans left open"
    assert rig.collector.open_turns == 0
    assert rig.collector.stats.internal_errors == 0

    turn_spans = {a(s)[attr.TURN_ID]: s for s in spans if s.name.startswith("invoke_agent")}
    assert set(turn_spans) == set(expected.turns)
    for turn_id, outer in expected.turns.items():
        span = turn_spans[turn_id]
        assert a(span).get(attr.TURN_INCOMPLETE) is None, turn_id
        if outer is None:
            assert span.parent is None, f"turn {turn_id} should be a root"
        else:
            assert span.parent is not None and span.parent.span_id == outer, f"turn {turn_id}: wrong parent"

    tool_spans = [s for s in spans if s.name.startswith("execute_tool")]
    by_call: dict[str, list[ReadableSpan]] = defaultdict(list)
    for span in tool_spans:
        turn = turn_spans[a(span)[attr.TURN_ID]]
        assert span.parent is not None and span.parent.span_id == turn.context.span_id, span.name
        assert span.context.trace_id == turn.context.trace_id
        outcome = a(span)[attr.TOOL_OUTCOME]
        if outcome == attr.OUTCOME_DENIED:
            assert span.status.status_code is StatusCode.ERROR
            continue
        assert outcome in (attr.OUTCOME_SUCCESS, attr.OUTCOME_FAILURE), (span.name, outcome)
        args = CALL.search(str(a(span)[attr.TOOL_ARGUMENTS_PREVIEW]))
        end = a(span).get(attr.TOOL_RESULT_PREVIEW) or a(span).get(attr.TOOL_ERROR_MESSAGE)
        result = RESULT.search(str(end))
        assert args and result, (span.name, a(span))
        assert args[1] == result[1], f"{span.name}: arguments of call {args[1]} got the result of {result[1]}"
        assert expected.calls[args[1]] == a(span)[attr.TURN_ID]
        by_call[args[1]].append(span)
    assert set(by_call) == set(expected.calls), "some calls have no span"
    for call_id, attempts in by_call.items():
        attempts.sort(key=lambda s: int(a(s)[attr.TOOL_ATTEMPT]))
        assert [a(s)[attr.TOOL_ATTEMPT] for s in attempts] == list(range(1, len(attempts) + 1))
        if len(attempts) == 2:  # a retry: the failed attempt, then the one that worked
            first, second = attempts
            assert a(first)[attr.TOOL_OUTCOME] == attr.OUTCOME_FAILURE
            assert a(second)[attr.TOOL_OUTCOME] == attr.OUTCOME_SUCCESS
            assert [link.context.span_id for link in second.links] == [first.context.span_id], call_id
    retried_turns = {a(s)[attr.TURN_ID] for s in tool_spans if a(s)[attr.TOOL_ATTEMPT] == 2}
    assert retried_turns == expected.retried
    denied = Counter(a(s)[attr.TURN_ID] for s in tool_spans if a(s)[attr.TOOL_OUTCOME] == attr.OUTCOME_DENIED)
    assert denied == expected.denied

    records = rig.records()
    assert len(records) == expected.events == rig.collector.stats.events
    assert len({r["event_id"] for r in records}) == len(records)
    span_of_call = {
        CALL.search(str(a(s)[attr.TOOL_ARGUMENTS_PREVIEW]))[1]: s  # type: ignore[index]
        for s in tool_spans
        if a(s).get(attr.TOOL_ATTEMPT) == 1 and attr.TOOL_ARGUMENTS_PREVIEW in a(s)
    }
    for record in records:  # each completion's record is on the span of its own call
        if record["event_type"] == "tool_call_complete":
            call_id = RESULT.search(record["result_preview"])[1]  # type: ignore[index]
            spans_of_call = by_call[call_id]
            assert record["telemetry"]["span_id"] == f"{spans_of_call[-1].context.span_id:016x}", call_id
        elif record["event_type"] == "tool_call_attempt" and call_id_of(record) in span_of_call:
            assert (
                record["telemetry"]["trace_id"] == f"{span_of_call[call_id_of(record)].context.trace_id:032x}"
            )


def call_id_of(record: dict[str, Any]) -> str:
    found = CALL.search(record.get("arguments_preview") or "")
    return found[1] if found else ""


# --- threads --------------------------------------------------------------------------------------


def run_thread_turn(
    audit: AuditEmitter, expected: Expected, t: int, i: int, rng: random.Random, tracer: Any
) -> None:
    """One turn: parallel calls of the same and different names, a retry, a denial, worker threads."""
    agent = f"agent-{t % 4}"
    turn = f"T{t}-{i}"
    events = 0

    def cid(k: int | str) -> str:
        return f"{turn}.{k}"

    def complete(name: str, call: str, **meta: Any) -> None:
        audit.emit_tool_call_complete(
            name, duration_ms=1.0, result=f"result-of={call}", agent_id=agent, turn_id=turn, metadata=meta
        )

    outer_span = tracer.start_span(f"request {turn}") if i % 2 == 1 else None
    if outer_span is not None:  # the application's own span is current when the turn starts
        token = otel_context.attach(set_span_in_context(outer_span))
        try:
            audit.emit_turn_start(agent_id=agent, turn_id=turn, prompt=f"turn {turn}")
        finally:
            otel_context.detach(token)
    else:
        audit.emit_turn_start(agent_id=agent, turn_id=turn, prompt=f"turn {turn}")
    expected.add(turn=turn, outer=outer_span.get_span_context().span_id if outer_span else None)
    events += 1

    # 1. Three calls of one tool with call ids, completed in a random order.
    ids = [cid(f"s{k}") for k in range(3)]
    for call in ids:
        audit.emit_tool_policy_decision(
            "search",
            agent_id=agent,
            action="allow",
            source="p",
            turn_id=turn,
            metadata={"tool_call_id": call},
        )
        audit.emit_tool_call_attempt(
            "search", args=f"call={call}", agent_id=agent, turn_id=turn, metadata={"tool_call_id": call}
        )
        expected.add(call=call, call_turn=turn)
        events += 2
    for call in rng.sample(ids, len(ids)):
        complete("search", call, tool_call_id=call)
        events += 1

    # 2. Two calls of one tool without ids, interleaved with another tool: FIFO order.
    fifo = [cid("r0"), cid("r1")]
    audit.emit_tool_call_attempt("read", args=f"call={fifo[0]}", agent_id=agent, turn_id=turn)
    audit.emit_tool_call_attempt("write", args=f"call={cid('w')}", agent_id=agent, turn_id=turn)
    audit.emit_tool_call_attempt("read", args=f"call={fifo[1]}", agent_id=agent, turn_id=turn)
    complete("read", fifo[0])
    complete("write", cid("w"))
    complete("read", fifo[1])
    for call in [*fifo, cid("w")]:
        expected.add(call=call, call_turn=turn)
    events += 6

    # 3. Two worker threads run the same tool at once, each on its own thread (no ids).
    def worker(k: int) -> None:
        call = cid(f"f{k}")
        audit.emit_tool_call_attempt("fetch", args=f"call={call}", agent_id=agent, turn_id=turn)
        complete("fetch", call)

    workers = [threading.Thread(target=worker, args=(k,)) for k in range(2)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    for k in range(2):
        expected.add(call=cid(f"f{k}"), call_turn=turn)
    events += 4

    # 4. A retry (every other turn): fails, then the same tool again succeeds.
    if i % 2 == 0:
        call = cid("retry")
        audit.emit_tool_call_attempt(f"flaky{t}", args=f"call={call}", agent_id=agent, turn_id=turn)
        audit.emit_tool_call_failure(
            f"flaky{t}", error_type="Timeout", error_msg=f"fail-of={call}", agent_id=agent, turn_id=turn
        )
        audit.emit_tool_call_attempt(f"flaky{t}", args=f"call={call}", agent_id=agent, turn_id=turn)
        complete(f"flaky{t}", call)
        expected.add(call=call, call_turn=turn)
        with expected.lock:
            expected.retried.add(turn)
        events += 4

    # 5. A denial: the policy refuses, no attempt follows.
    audit.emit_tool_policy_decision(
        "rm_rf", agent_id=agent, action="deny", source="safety.rego", turn_id=turn
    )
    with expected.lock:
        expected.denied[turn] += 1
    events += 1

    audit.emit_turn_end(agent_id=agent, turn_id=turn, content="done", fc_count=9)
    events += 1
    if outer_span is not None:
        outer_span.end()
    expected.add(events=events)


TURNS_PER_THREAD = 10


def test_32_threads_of_interleaved_turns_keep_every_link(rig: Rig) -> None:
    tracer = rig.provider.get_tracer("app")
    expected = Expected()
    errors: list[BaseException] = []
    barrier = threading.Barrier(32)

    def agent_thread(t: int) -> None:
        try:
            rng = random.Random(t)
            audit = AuditEmitter(rig.collector, session_id=f"sess-{t % 8}")  # sessions shared by 4 threads
            barrier.wait()
            for i in range(TURNS_PER_THREAD):
                run_thread_turn(audit, expected, t, i, rng, tracer)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=agent_thread, args=(t,)) for t in range(32)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(expected.turns) == 32 * TURNS_PER_THREAD
    check_everything(rig, expected)


# --- asyncio --------------------------------------------------------------------------------------


async def async_call(
    audit: AuditEmitter, turn: str, agent: str, call: str, name: str, steps: int, with_ids: bool
) -> None:
    meta = {"tool_call_id": call} if with_ids else None
    audit.emit_tool_call_attempt(name, args=f"call={call}", agent_id=agent, turn_id=turn, metadata=meta)
    for _ in range(steps):  # the tool's work: a seeded number of trips through the event loop
        await asyncio.sleep(0)
    audit.emit_tool_call_complete(
        name, duration_ms=1.0, result=f"result-of={call}", agent_id=agent, turn_id=turn, metadata=meta
    )


async def async_turn(
    audit: AuditEmitter,
    expected: Expected,
    turn: str,
    calls: int,
    rng: random.Random,
    with_ids: bool,
    tracer: Any,
    outer: bool,
) -> None:
    agent = "async-agent"
    span = tracer.start_span(f"request {turn}") if outer else None
    token = None
    if span is not None:
        token = otel_context.attach(set_span_in_context(span))
    try:
        audit.emit_turn_start(agent_id=agent, turn_id=turn, prompt="go")
        expected.add(events=1, turn=turn, outer=span.get_span_context().span_id if span else None)
        jobs = []
        for k in range(calls):
            call = f"{turn}.{k}"
            expected.add(events=2, call=call, call_turn=turn)
            name = ("search", "fetch", "read")[k % 3]  # many calls of the same name at once
            jobs.append(async_call(audit, turn, agent, call, name, rng.randint(0, 5), with_ids))
        await asyncio.gather(*jobs)
        audit.emit_turn_end(agent_id=agent, turn_id=turn, fc_count=calls)
        expected.add(events=1)
    finally:
        if token is not None:
            otel_context.detach(token)
        if span is not None:
            span.end()


@pytest.mark.parametrize("with_ids", [True, False], ids=["with_call_ids", "without_call_ids"])
@pytest.mark.parametrize("shape", ["one_turn_1000_calls", "100_turns_10_calls"])
def test_1000_concurrent_asyncio_tasks_keep_every_link(rig: Rig, shape: str, with_ids: bool) -> None:
    """Gathered tool calls complete in another order than they started, all on one thread.

    Without ``tool_call_id`` the collector can only tell the calls apart by the task that
    emitted them (thread affinity cannot: every task runs on the loop's thread).
    """
    tracer = rig.provider.get_tracer("app")
    expected = Expected()
    rng = random.Random(f"{shape}-{with_ids}")
    audit = AuditEmitter(rig.collector, session_id="async")

    async def main() -> None:
        if shape == "one_turn_1000_calls":
            await async_turn(audit, expected, "A0", 1_000, rng, with_ids, tracer, outer=True)
        else:
            await asyncio.gather(
                *(
                    async_turn(audit, expected, f"A{n}", 10, rng, with_ids, tracer, outer=n % 2 == 0)
                    for n in range(100)
                )
            )

    asyncio.run(main())
    check_everything(rig, expected)

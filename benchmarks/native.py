"""What ``AuditSpanProcessor`` costs per framework span, on a real runtime that emits its own spans.

The runtime is Pydantic AI (the ``frameworks`` extra) with a scripted ``FunctionModel``: turns of
agent ``planner`` with 4 tool calls each (two steps of two parallel calls, then the answer; one
call in ten raises ``ModelRetry``, which the model is told of), instrumented by Pydantic AI itself with
arguments and results on the spans. Two cases, interleaved (``timing.interleave``), each
repetition on a fresh provider with the baseline's ``BatchSpanProcessor`` over a no-op exporter:

* ``bare_sdk``: the runtime and the SDK, nothing else;
* ``auditspan``: the same plus ``AuditSpanProcessor`` writing its records to a temp file.

Figures are per span the runtime produced (agent, chat and tool spans alike; counted by a
processor that sees every end): the median wall and agent-thread CPU time of the whole run
(the model, the agent loop and the tools included -- what the application waits), their ratio,
and the difference -- the processor's added cost per framework span. ``in_processor_us`` is the
time spent inside the processor's ``on_start`` and ``on_end`` alone, per span (a timing wrapper
around it, wall clock; its own clock reads are in the figure). Each repetition checks its counts:
spans produced and exported, records written, no internal error.

``spans_only`` isolates the processor from the runtime: the same spans (names and attributes of a
Pydantic AI turn: ``invoke_agent``, ``chat``, ``execute_tool`` with arguments and results) made by
a loop on the SDK's tracer, without and with the processor -- its cost against what the SDK itself
costs for those spans.

    .venv/bin/python -m benchmarks.native --turns 40 --reps 7
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor, TracerProvider

from .baseline import CountingProcessor, make_provider
from .micro import count_lines
from .timing import Case, Sample, Stopwatch, interleave

__all__ = ["Timed", "measure", "records_per_turn", "run_turns"]

_CALLS_PER_TURN = 4
#: Every how many calls one raises ModelRetry first (and is called again): about one in ten.
_FAIL_EVERY = 10


class Timed(SpanProcessor):
    """Wraps a span processor and adds up the wall time spent in its ``on_start`` and ``on_end``.

    Wall time only: it includes waiting for the GIL while other threads (the runtime's, the
    batch processor's, the audit log writer's) run. ``time.thread_time`` costs microseconds a
    read here (``perf_counter`` well under one): reading it around every call would weigh on
    the very figure it measures.
    """

    def __init__(self, inner: SpanProcessor) -> None:
        self.inner = inner
        self.seconds = 0.0

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        """Time the wrapped ``on_start``."""
        t0 = time.perf_counter()
        self.inner.on_start(span, parent_context)
        self.seconds += time.perf_counter() - t0

    def on_end(self, span: ReadableSpan) -> None:
        """Time the wrapped ``on_end``."""
        t0 = time.perf_counter()
        self.inner.on_end(span)
        self.seconds += time.perf_counter() - t0

    def shutdown(self) -> None:
        """Shut the wrapped processor down."""
        self.inner.shutdown()

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        """Flush the wrapped processor."""
        return self.inner.force_flush(timeout_millis)


def _agent(provider: TracerProvider) -> tuple[Any, Callable[[int], None]]:
    """A Pydantic AI agent on ``provider`` and a function that runs turn ``n`` on it."""
    from pydantic_ai import Agent, InstrumentationSettings, ModelRetry
    from pydantic_ai.capabilities import Instrumentation
    from pydantic_ai.messages import ModelMessage, ModelResponse, TextPart, ToolCallPart
    from pydantic_ai.models.function import AgentInfo, FunctionModel

    state = {"turn": 0, "calls": 0}

    def model(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        step = sum(isinstance(message, ModelResponse) for message in messages)
        turn = state["turn"]
        if step >= _CALLS_PER_TURN // 2:
            return ModelResponse(parts=[TextPart("done")])
        parts = [
            ToolCallPart(
                "fetch_url" if i == 0 else "read_file",
                {"url": f"https://api.example.com/{turn}/{step}"}
                if i == 0
                else {"path": f"/srv/{turn}/{step}.txt"},
                tool_call_id=f"call-{turn}-{step}-{i}",
            )
            for i in range(2)
        ]
        return ModelResponse(parts=parts)

    agent = Agent(
        FunctionModel(model),
        name="planner",
        retries=3,
        capabilities=[
            Instrumentation(InstrumentationSettings(tracer_provider=provider, include_content=True))
        ],
    )

    @agent.tool_plain
    def fetch_url(url: str) -> str:
        state["calls"] += 1
        if state["calls"] % _FAIL_EVERY == 0:
            raise ModelRetry(f"upstream timed out for {url}")
        return f"200 OK from {url}"

    @agent.tool_plain
    def read_file(path: str) -> str:
        state["calls"] += 1
        return f"2 lines in {path}"

    def run(turn: int) -> None:
        state["turn"] = turn
        agent.run_sync(f"Plan trip {turn}")

    return agent, run


def records_per_turn() -> int:
    """Records a turn gives: turn_start and turn_end, and an attempt and an outcome per tool call."""
    return 2 + 2 * _CALLS_PER_TURN


def run_turns(provider: TracerProvider, turns: int) -> None:
    """Run ``turns`` turns of the benchmark's agent on ``provider`` (for tests and warm-up)."""
    _agent_obj, run = _agent(provider)
    for turn in range(turns):
        run(turn)


def _case(kind: str, turns: int, workdir: Path, checks: list[str], timed: list[tuple[float, float]]) -> Case:
    counter = [0]

    def case() -> Sample:
        counter[0] += 1
        provider, noop = make_provider()
        produced = CountingProcessor()
        processor: Timed | None = None
        log = workdir / f"{kind}-{counter[0]}.jsonl"
        if kind == "auditspan":
            from auditspan import AuditSpanProcessor

            processor = Timed(AuditSpanProcessor(audit_log=log))
            provider.add_span_processor(processor)
        provider.add_span_processor(produced)
        _agent_obj, run = _agent(provider)
        with Stopwatch() as watch:
            for turn in range(turns):
                run(turn)
        provider.force_flush()
        if processor is not None:
            processor.shutdown()
            inner = processor.inner
            stats = inner.stats  # type: ignore[attr-defined]
            lines = count_lines(log)  # the chain's checkpoints are not counted
            tools = stats.tool_calls
            expected = turns * records_per_turn()
            if stats.internal_errors or lines != expected or tools != turns * _CALLS_PER_TURN:
                checks.append(f"{kind}: {lines} records for {turns} turns and {tools} calls, {stats}")
            timed.append(processor.seconds / max(produced.ended, 1))
        provider.shutdown()
        if noop.spans != produced.ended:
            checks.append(f"{kind}: {produced.ended} spans produced, {noop.spans} exported")
        return watch.sample(produced.ended)

    return case


def _span_loop(provider: TracerProvider, turns: int) -> None:
    """A Pydantic AI turn's spans, made directly with the SDK's tracer (same names and attributes)."""
    tracer = provider.get_tracer("pydantic-ai")
    agent_attributes = {"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "planner"}
    for turn in range(turns):
        conversation = {"gen_ai.conversation.id": f"conv-{turn}"}
        with tracer.start_as_current_span(f"invoke_agent {agent_attributes['gen_ai.agent.name']}") as agent:
            agent.set_attributes({**agent_attributes, **conversation})
            for step in range(_CALLS_PER_TURN // 2 + 1):
                with tracer.start_as_current_span("chat function:model:") as chat:
                    chat.set_attributes({"gen_ai.operation.name": "chat", **conversation})
                if step == _CALLS_PER_TURN // 2:
                    break
                for i in range(2):
                    tool = "fetch_url" if i == 0 else "read_file"
                    attributes = {
                        "gen_ai.operation.name": "execute_tool",
                        "gen_ai.tool.name": tool,
                        "gen_ai.tool.call.id": f"call-{turn}-{step}-{i}",
                        "gen_ai.tool.call.arguments": json.dumps(
                            {"url": f"https://api.example.com/{turn}/{step}"}
                        )
                        if i == 0
                        else json.dumps({"path": f"/srv/{turn}/{step}.txt"}),
                        "gen_ai.agent.name": "planner",
                        **conversation,
                    }
                    with tracer.start_as_current_span(f"execute_tool {tool}", attributes=attributes) as span:
                        span.set_attribute("gen_ai.tool.call.result", f"done {turn} {step} {i}")


def _spans_case(kind: str, turns: int, workdir: Path, checks: list[str]) -> Case:
    counter = [0]

    def case() -> Sample:
        counter[0] += 1
        provider, noop = make_provider()
        produced = CountingProcessor()
        processor = None
        log = workdir / f"spans-{kind}-{counter[0]}.jsonl"
        if kind == "auditspan":
            from auditspan import AuditSpanProcessor

            processor = AuditSpanProcessor(audit_log=log)
            provider.add_span_processor(processor)
        provider.add_span_processor(produced)
        with Stopwatch() as watch:
            _span_loop(provider, turns)
        provider.force_flush()
        if processor is not None:
            processor.shutdown()
            if count_lines(log) != turns * records_per_turn() or processor.stats.internal_errors:
                checks.append(f"spans_only {kind}: {count_lines(log)} records for {turns} turns")
        provider.shutdown()
        if noop.spans != produced.ended:
            checks.append(f"spans_only {kind}: {produced.ended} spans produced, {noop.spans} exported")
        return watch.sample(produced.ended)

    return case


def measure(turns: int = 40, reps: int = 7) -> dict[str, Any]:
    """Interleave the bare runtime and the runtime with ``AuditSpanProcessor``; figures per framework span."""
    checks: list[str] = []
    timed: list[float] = []
    with tempfile.TemporaryDirectory(prefix="auditspan-native-") as tmp:
        workdir = Path(tmp)
        measured = interleave(
            {
                "bare_sdk": _case("bare_sdk", turns, workdir, checks, []),
                "auditspan": _case("auditspan", turns, workdir, checks, timed),
            },
            reps,
        )
        spans_only = interleave(
            {
                "bare_sdk": _spans_case("bare_sdk", turns * 5, workdir, checks),
                "auditspan": _spans_case("auditspan", turns * 5, workdir, checks),
            },
            reps,
        )
    summary = measured.summary("bare_sdk")
    timed.sort()
    return {
        "runtime": "pydantic-ai",
        "turns": turns,
        "reps": reps,
        "spans_per_run": measured.ops["auditspan"],
        "spans_per_turn": measured.ops["auditspan"] / turns,
        "cases": summary,
        "ratio_wall": summary["auditspan"]["ratio_wall"],
        "ratio_cpu": summary["auditspan"]["ratio_cpu"],
        "added_us_per_span_wall": measured.us("auditspan") - measured.us("bare_sdk"),
        "added_us_per_span_cpu": measured.us("auditspan", "cpu") - measured.us("bare_sdk", "cpu"),
        "in_processor_us_per_span": timed[len(timed) // 2] * 1e6,
        "spans_only": {
            "cases": spans_only.summary("bare_sdk"),
            "ratio_wall": spans_only.ratio("auditspan", "bare_sdk"),
            "ratio_cpu": spans_only.ratio("auditspan", "bare_sdk", "cpu"),
            "added_us_per_span_cpu": spans_only.us("auditspan", "cpu") - spans_only.us("bare_sdk", "cpu"),
        },
        "mismatches": checks,
    }


def main(argv: list[str] | None = None) -> None:
    """Print the figures as a table, then as one JSON line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--turns", type=int, default=40)
    parser.add_argument("--reps", type=int, default=7)
    args = parser.parse_args(argv)
    result = measure(args.turns, args.reps)
    for name, row in result["cases"].items():
        print(
            f"{name:10} {row['us_wall']:9.1f} us/span wall {row['us_cpu']:9.1f} us/span cpu"
            f"  ratio {row.get('ratio_wall', 1):.3f} wall {row.get('ratio_cpu', 1):.3f} cpu"
            f"  spread {row['spread_wall']:.0%}",
            file=sys.stderr,
        )
    print(
        f"added per framework span: {result['added_us_per_span_wall']:.1f} us wall, "
        f"{result['added_us_per_span_cpu']:.1f} us cpu; inside the processor: "
        f"{result['in_processor_us_per_span']:.1f} us wall; "
        f"mismatches: {len(result['mismatches'])}",
        file=sys.stderr,
    )
    alone = result["spans_only"]
    print(
        f"the same spans without the runtime: ratio {alone['ratio_wall']:.2f} wall, "
        f"{alone['ratio_cpu']:.2f} cpu; "
        f"added {alone['added_us_per_span_cpu']:.1f} us cpu per span "
        f"(bare SDK {alone['cases']['bare_sdk']['us_cpu']:.1f} us cpu per span)",
        file=sys.stderr,
    )
    print(json.dumps(result))


if __name__ == "__main__":
    main()

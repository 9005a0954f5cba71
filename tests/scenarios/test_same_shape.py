"""One logical run, four ways of instrumenting it, one trace shape.

The run (tests/fixtures/scenario.py): two turns of agent ``planner``; the first makes a call, has
one denied by policy and retries one that fails once; the second makes two calls in parallel. It
is driven through the plain ``AuditEmitter``, the ``auditspan.hooks`` decorators, the stand-in seed
runtime under ``opentelemetry-instrument`` (zero code), and the OpenAI Agents SDK adapter with a
scripted model. Each must give the same span names, parent/child structure, outcomes, statuses,
attempt numbers, policy decisions and semantic types.

Runtimes that emit their own spans (Pydantic AI, AutoGen; tests/fixtures/native_runtimes.py) are
recorded by ``AuditSpanProcessor`` from those spans: their row compares the audit records -- turns,
calls in order (parallel calls as a set), semantic types, outcomes, error types -- with the plain
emitter's, apart from what such a runtime does not carry: the seed's policy, sandbox and loop
events (so the denied call, which has no others, is not in the comparison).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider

from auditspan import AuditEmitter, AuditSpanProcessor
from auditspan.context import ContextExecutor
from auditspan.hooks import Audit, ToolCallDenied
from auditspan.otlp_file import read_spans

from ..conftest import event_records, event_spans
from ..fixtures import shape as shapes
from ..fixtures.scenario import AGENT, DENIED, TURNS, Tools

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures"
VENV_BIN = Path(sys.executable).parent

#: The shape every path must produce, written out once so that a path that is wrong in the same way
#: as another still fails.
EXPECTED_TURN_1 = {
    ("execute_tool web_search", "UNSET", "success", 1, "EXTERNAL_API_CALL", "ALLOW"),
    # A denied call has no arguments in its events: it is classified by its name alone.
    ("execute_tool delete_records", "ERROR", "denied", 1, "AGENT_ACTION", "DENY"),
    ("execute_tool fetch_url", "ERROR", "failure", 1, "EXTERNAL_API_CALL", "ALLOW"),
    ("execute_tool fetch_url", "UNSET", "success", 2, "EXTERNAL_API_CALL", "ALLOW"),
}
EXPECTED_TURN_2 = {
    ("execute_tool get_weather", "UNSET", "success", 1, "AGENT_ACTION", "ALLOW"),
    ("execute_tool read_file", "UNSET", "success", 1, "FILE_READ", "ALLOW"),
}


def _summary(node: tuple[Any, ...]) -> tuple[Any, ...]:
    name, status, facts, _children = node
    f = dict(facts)
    return (
        name,
        status,
        f["auditspan.tool.outcome"],
        f["auditspan.tool.attempt"],
        f["auditspan.operation.type"],
        f["auditspan.policy.decision"],
    )


def _check_expected(forest: list[Any]) -> None:
    assert [(root[0], root[1]) for root in forest] == [("invoke_agent planner", "UNSET")] * 2
    assert {_summary(child) for child in forest[0][3]} == EXPECTED_TURN_1
    assert len(forest[0][3]) == 4
    assert {_summary(child) for child in forest[1][3]} == EXPECTED_TURN_2
    for root in forest:
        for child in root[3]:
            assert child[3] == (), "tool calls have no children here"


# ------------------------------------------------------------------------------ the four drivers
def run_plain_emitter(make_harness: Any) -> list[dict[str, Any]]:
    from ..fixtures.standin import MiniRuntime

    h = make_harness()
    emitter = AuditEmitter(h.collector, session_id="sess-plain")
    runtime = MiniRuntime(emitter, Tools().table(), denied=DENIED)
    for prompt, steps in TURNS:
        runtime.run_turn(AGENT, prompt, steps)
    return shapes.from_readable(h.spans())


def run_decorators(make_harness: Any) -> list[dict[str, Any]]:
    h = make_harness()
    audit = Audit(h.collector, session_id="sess-hooks", policy=lambda tool, args: tool not in DENIED)
    audit.policy_source = "policy.yaml"
    tools = {name: audit.tool(name=name)(fn) for name, fn in Tools().table().items()}

    def call(name: str, arguments: dict[str, Any]) -> Any:
        for _attempt in range(2):  # one retry, as the seed runtime's max_retries=1
            try:
                return tools[name](**arguments)
            except ToolCallDenied:
                return "denied"
            except TimeoutError:
                continue
        return None

    for prompt, steps in TURNS:
        with audit.turn(agent_id=AGENT, prompt=prompt) as turn:
            for step in steps:
                with ContextExecutor(max_workers=len(step)) as pool:
                    list(pool.map(lambda c: call(*c), step))
            turn.content = "done"
    return shapes.from_readable(h.spans())


def run_zero_code(tmp_path: Path) -> list[dict[str, Any]]:
    from ..fixtures.zero_code import zero_code_env

    out = tmp_path / "zero"
    env = zero_code_env(tmp_path, out)
    subprocess.run(
        [
            str(VENV_BIN / "opentelemetry-instrument"),
            sys.executable,
            str(FIXTURES / "seed_standin" / "agent.py"),
            str(tmp_path / "app.jsonl"),
        ],
        env=env,
        check=True,
        capture_output=True,
        timeout=120,
    )
    return shapes.from_otlp(event_spans(read_spans(out / "traces.jsonl")))


def run_openai_agents(make_harness: Any) -> list[dict[str, Any]]:
    pytest.importorskip("agents", reason="openai-agents is not installed")
    from agents import Agent, RunConfig, Runner, function_tool, set_trace_processors

    from auditspan.integrations.openai_agents import AuditSpanProcessor

    from ..fixtures.fake_model import ScriptedModel

    h = make_harness()
    processor = AuditSpanProcessor(h.collector, session_id="sess-openai")
    set_trace_processors([processor])
    try:
        guard = processor.tool_guardrail(lambda tool, args: tool not in DENIED, source="policy.yaml")
        impl = Tools()
        tools = [
            function_tool(fn, name_override=name, tool_input_guardrails=[guard])
            for name, fn in impl.table().items()
        ]
        scripts = [
            [
                [("web_search", {"query": "flights to Lisbon"})],
                [("delete_records", {"table": "users"})],
                [("fetch_url", {"url": "https://api.example.com/lisbon"})],
                [("fetch_url", {"url": "https://api.example.com/lisbon"})],  # the model retries
                "done",
            ],
            [
                [("get_weather", {"city": "Lisbon"}), ("read_file", {"path": "/srv/hotels/lisbon.txt"})],
                "done",
            ],
        ]

        async def main() -> None:
            for (prompt, _steps), script in zip(TURNS, scripts, strict=True):
                agent = Agent(name=AGENT, instructions="plan", model=ScriptedModel(script), tools=tools)
                await Runner.run(agent, prompt, run_config=RunConfig(workflow_name="trip"))

        asyncio.run(main())
        assert impl.flaky_calls == 2
    finally:
        set_trace_processors([])
    return shapes.from_readable(h.spans())


# ------------------------------------------------------------------------------ the tests
def test_plain_emitter_gives_the_expected_shape(make_harness: Any) -> None:
    _check_expected(shapes.shape(run_plain_emitter(make_harness)))


def test_decorators_give_the_same_shape_as_the_plain_emitter(make_harness: Any) -> None:
    plain = shapes.shape(run_plain_emitter(make_harness))
    hooks = shapes.shape(run_decorators(make_harness))
    _check_expected(hooks)
    assert hooks == plain


def test_zero_code_instrumented_seed_emitter_gives_the_same_shape(make_harness: Any, tmp_path: Path) -> None:
    plain = shapes.shape(run_plain_emitter(make_harness))
    zero = shapes.shape(run_zero_code(tmp_path))
    _check_expected(zero)
    assert zero == plain


def test_openai_agents_adapter_gives_the_same_shape(make_harness: Any) -> None:
    """Equal but for ``error.type``: the SDK swallows a failing tool's exception and keeps no class name."""
    plain_spans = run_plain_emitter(make_harness)
    openai_spans = run_openai_agents(make_harness)
    openai = shapes.shape(openai_spans)
    _check_expected(openai)
    without_error_type = frozenset({"error.type"})
    assert shapes.shape(openai_spans, ignore=without_error_type) == shapes.shape(
        plain_spans, ignore=without_error_type
    )
    assert openai != shapes.shape(plain_spans)  # ... and the difference is exactly that one value:
    failed = [c for c in openai[0][3] if dict(c[2])["auditspan.tool.outcome"] == "failure"]
    assert [dict(c[2])["error.type"] for c in failed] == ["ToolError"]


def test_shape_sees_a_difference() -> None:
    """The normaliser is not blind: a changed outcome or parent changes the shape."""
    base = [
        {
            "id": "a",
            "trace": "t",
            "parent": None,
            "name": "invoke_agent x",
            "status": "UNSET",
            "attributes": {},
        },
        {
            "id": "b",
            "trace": "t",
            "parent": "a",
            "name": "execute_tool y",
            "status": "UNSET",
            "attributes": {"auditspan.tool.outcome": "success"},
        },
    ]
    for span in base:
        span["start"] = 0
    changed_outcome = [dict(s) for s in base]
    changed_outcome[1] = {**base[1], "attributes": {"auditspan.tool.outcome": "failure"}}
    orphaned = [dict(s) for s in base]
    orphaned[1] = {**base[1], "parent": None}
    assert shapes.shape(base) != shapes.shape(changed_outcome)
    assert shapes.shape(base) != shapes.shape(orphaned)


# ------------------------------------------------------------------------------ native-span runtimes
#: The records a native-span runtime gives, of those the emitter path writes.
CARRIED = frozenset(
    {"turn_start", "tool_call_attempt", "tool_call_complete", "tool_call_failure", "turn_end"}
)


def record_shape(
    records: list[dict[str, Any]],
    *,
    ignore: frozenset[str] = frozenset(),
    without_tools: frozenset[str] = frozenset(),
) -> list[Any]:
    """Turns in order; in each, its agent and its steps in order, a step being the calls that overlapped
    (a set); a call is its tool, semantic type, outcome and error type. Ids and times are dropped."""
    turns: list[tuple[Any, list[list[tuple[Any, ...]]]]] = []
    by_turn: dict[Any, list[list[tuple[Any, ...]]]] = {}
    open_calls: set[str] = set()
    calls: dict[str, dict[str, Any]] = {}
    for record in records:
        event, tool = record["event_type"], record.get("tool_name")
        if event not in CARRIED:
            continue
        if event == "turn_start":
            by_turn[record["turn_id"]] = steps = []
            turns.append((record["agent_id"], steps))
            continue
        if event == "turn_end":
            continue
        span = record["telemetry"]["span_id"]
        steps = by_turn[record["turn_id"]]
        if event == "tool_call_attempt":
            if not open_calls:
                steps.append([])
            open_calls.add(span)
            calls[span] = {"tool": tool, "type": record["type"]}
            steps[-1].append(span)  # type: ignore[arg-type]
        else:
            open_calls.discard(span)
            calls[span]["outcome"] = event
            calls[span]["error_type"] = record.get("error_type")

    def call(span: str) -> tuple[Any, ...]:
        facts = calls[span]
        return tuple(facts.get(key) for key in ("tool", "type", "outcome", "error_type") if key not in ignore)

    return [
        (agent, [sorted((call(span) for span in step), key=repr) for step in steps])  # type: ignore[misc]
        for agent, steps in turns
    ]


def plain_emitter_records(make_harness: Any) -> list[dict[str, Any]]:
    from ..fixtures.standin import MiniRuntime

    h = make_harness()
    runtime = MiniRuntime(AuditEmitter(h.collector, session_id="sess-plain"), Tools().table(), denied=DENIED)
    for prompt, steps in TURNS:
        runtime.run_turn(AGENT, prompt, steps)
    records: list[dict[str, Any]] = h.records()
    return records


EXPECTED_RECORD_SHAPE = [
    (
        AGENT,
        [
            [("web_search", "EXTERNAL_API_CALL", "tool_call_complete", None)],
            [("fetch_url", "EXTERNAL_API_CALL", "tool_call_failure", "TimeoutError")],
            [("fetch_url", "EXTERNAL_API_CALL", "tool_call_complete", None)],
        ],
    ),
    (
        AGENT,
        [
            [
                ("get_weather", "AGENT_ACTION", "tool_call_complete", None),
                ("read_file", "FILE_READ", "tool_call_complete", None),
            ]
        ],
    ),
]


def test_plain_emitter_records_have_the_expected_shape(make_harness: Any) -> None:
    records = plain_emitter_records(make_harness)
    assert record_shape(records) == EXPECTED_RECORD_SHAPE
    # The denied call never ran: its records are the policy decision and the loop warning only.
    denied = {r["event_type"] for r in records if r.get("tool_name") in DENIED}
    assert denied == {"tool_policy_decision", "tool_loop_warning"}


def test_pydantic_ai_native_spans_give_the_same_records_as_the_emitter(
    make_harness: Any, tmp_path: Path
) -> None:
    """Equal but for ``error_type``: Pydantic AI's failed call ends in ``ModelRetry``, recorded as its
    own ``ToolRetryError``, not the tool's exception class."""
    from ..fixtures.native_runtimes import run_pydantic_ai

    provider = TracerProvider()
    processor = AuditSpanProcessor(audit_log=tmp_path / "native.jsonl")
    provider.add_span_processor(processor)
    run_pydantic_ai(provider)
    processor.shutdown()
    native = event_records((tmp_path / "native.jsonl").read_text(encoding="utf-8").splitlines())
    plain = plain_emitter_records(make_harness)
    without_error_type = frozenset({"error_type"})
    assert record_shape(native, ignore=without_error_type) == record_shape(plain, ignore=without_error_type)
    failed = [c for step in record_shape(native)[0][1] for c in step if c[2] == "tool_call_failure"]
    assert failed == [
        ("fetch_url", "EXTERNAL_API_CALL", "tool_call_failure", "pydantic_ai.exceptions.ToolRetryError")
    ]


def test_autogen_native_spans_give_the_same_records_as_the_emitter(make_harness: Any, tmp_path: Path) -> None:
    from ..fixtures import native_runtimes

    python = native_runtimes.runtime_python("autogen")
    if not python.exists():
        pytest.fail(f"AutoGen is not installed at {python}: run scripts/install-test-servers", pytrace=False)
    native_runtimes.run_in_venv("autogen", tmp_path / "autogen", audit_log=tmp_path / "native.jsonl")
    native = event_records((tmp_path / "native.jsonl").read_text(encoding="utf-8").splitlines())
    assert record_shape(native) == EXPECTED_RECORD_SHAPE
    assert record_shape(native) == record_shape(
        plain_emitter_records(make_harness), without_tools=frozenset(DENIED)
    )


@pytest.fixture(autouse=True)
def _no_endpoint_from_outside(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("OTEL_"):
            monkeypatch.delenv(name)

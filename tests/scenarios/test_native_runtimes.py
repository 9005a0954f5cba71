"""Real agent runtimes, offline: the spans they emit themselves, as auditspan's ingest reads them.

Each runtime runs the logical run of ``tests/fixtures/native_runtimes.py`` (agent ``planner``; a
call with a secret among its arguments; a call that raises and is retried; two calls in parallel)
with its own test model, on an SDK ``TracerProvider`` with an in-memory exporter. The tests pin the
facts that ``auditspan.AuditSpanProcessor`` relies on, read from the real packages of the
``frameworks`` extra: span names and kinds, the attributes that name the operation, the tool and
the call, the argument and result attributes, how a failure shows (status, ``exception`` event,
``error.type``), the parent/child structure, and that each call has exactly one tool span.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from auditspan import AuditSpanProcessor, Redactor, configure
from auditspan import attributes as attr
from auditspan.exporters._scrubbing import ScrubbingSpanExporter
from auditspan.otlp_file import attribute_map

from ..conftest import event_records
from ..fixtures import native_runtimes as native
from ..fixtures.native_runtimes import (
    FETCH_ARGUMENTS,
    FETCH_FAILURE,
    PROMPTS,
    READ_ARGUMENTS,
    SEARCH_ARGUMENTS,
    SECRET,
    WEATHER_ARGUMENTS,
    NativeRun,
)
from ..fixtures.scenario import AGENT

#: (tool, arguments) of every call, in the order the model asked for them; the pair of turn 2 ran
#: in parallel.
CALLS = [
    ("web_search", SEARCH_ARGUMENTS),
    ("fetch_url", FETCH_ARGUMENTS),
    ("fetch_url", FETCH_ARGUMENTS),
    ("get_weather", WEATHER_ARGUMENTS),
    ("read_file", READ_ARGUMENTS),
]
RESULTS = {
    "web_search": "3 results for flights to Lisbon",
    "fetch_url": "200 OK from https://api.example.com/lisbon",
    "get_weather": "sunny in Lisbon",
    "read_file": "2 hotels listed in /srv/hotels/lisbon.txt",
}


def _attributes(span: ReadableSpan) -> dict[str, Any]:
    return dict(span.attributes or {})


def _parent_id(span: ReadableSpan) -> int | None:
    return span.parent.span_id if span.parent is not None else None


def _span_id(span: ReadableSpan) -> int:
    assert span.context is not None
    return span.context.span_id


def _trace_id(span: ReadableSpan) -> int:
    assert span.context is not None
    return span.context.trace_id


def _by_start(spans: list[ReadableSpan]) -> list[ReadableSpan]:
    return sorted(spans, key=lambda s: s.start_time or 0)


def _overlap(a: ReadableSpan, b: ReadableSpan) -> bool:
    assert a.start_time and a.end_time and b.start_time and b.end_time
    return a.start_time < b.end_time and b.start_time < a.end_time


def _in_call_order(tool_spans: list[ReadableSpan], name_of: Any) -> list[ReadableSpan]:
    """Tool spans in the model's call order: by start, the parallel pair put in the scenario's order."""
    ordered = _by_start(tool_spans)
    head, pair = ordered[:3], ordered[3:]
    rank = {"get_weather": 0, "read_file": 1}
    return head + sorted(pair, key=lambda s: rank[name_of(s)])


def _secret_in(spans: list[ReadableSpan]) -> list[str]:
    """Where SECRET appears in the spans (attribute values, event attributes, status descriptions)."""
    found = []
    for span in spans:
        for key, value in _attributes(span).items():
            if SECRET in str(value):
                found.append(f"{span.name}: {key}")
        for event in span.events:
            for key, value in dict(event.attributes or {}).items():
                if SECRET in str(value):
                    found.append(f"{span.name}: event {event.name} {key}")
        if span.status.description and SECRET in span.status.description:
            found.append(f"{span.name}: status")
    return found


# ------------------------------------------------------------------------------ Pydantic AI
@pytest.fixture(scope="module")
def pydantic_run() -> NativeRun:
    return native.run_pydantic_ai(TracerProvider())


def test_pydantic_ai_emits_invoke_agent_and_execute_tool_spans(pydantic_run: NativeRun) -> None:
    spans = pydantic_run.spans
    agents = _by_start([s for s in spans if _attributes(s).get("gen_ai.operation.name") == "invoke_agent"])
    tools = [s for s in spans if _attributes(s).get("gen_ai.operation.name") == "execute_tool"]

    assert pydantic_run.outputs == ["done", "done"]
    assert [s.name for s in agents] == [f"invoke_agent {AGENT}"] * 2
    for agent in agents:
        assert agent.kind is SpanKind.INTERNAL
        assert agent.parent is None
        assert _attributes(agent)["gen_ai.agent.name"] == AGENT
        assert agent.status.status_code is StatusCode.UNSET
    # Every span of a turn is in its agent span's trace; tools hang right under the agent span.
    ordered = _in_call_order(tools, lambda s: _attributes(s)["gen_ai.tool.name"])
    turn_of = [0, 0, 0, 1, 1]
    for span, turn in zip(ordered, turn_of, strict=True):
        assert span.kind is SpanKind.INTERNAL
        assert _parent_id(span) == _span_id(agents[turn])
        assert _trace_id(span) == _trace_id(agents[turn])
    assert _trace_id(agents[0]) != _trace_id(agents[1])
    # One execute_tool span per call, named after its tool, with the model's call id.
    assert [s.name for s in ordered] == [f"execute_tool {name}" for name, _ in CALLS]
    assert [_attributes(s)["gen_ai.tool.name"] for s in ordered] == [name for name, _ in CALLS]
    assert [_attributes(s)["gen_ai.tool.call.id"] for s in ordered] == [c.call_id for c in pydantic_run.calls]
    assert [c.call_id for c in pydantic_run.calls] == ["call-1", "call-2", "call-3", "call-4", "call-5"]
    # The pair of turn 2 ran in parallel.
    assert _overlap(ordered[3], ordered[4])
    # Model calls are spans too ("chat"), but never tool or agent spans.
    chats = [s for s in spans if _attributes(s).get("gen_ai.operation.name") == "chat"]
    assert len(chats) == 6
    assert all(s.kind is SpanKind.CLIENT for s in chats)
    assert len(spans) == len(agents) + len(tools) + len(chats)


def test_pydantic_ai_tool_spans_carry_arguments_results_and_the_failure(pydantic_run: NativeRun) -> None:
    tools = [s for s in pydantic_run.spans if _attributes(s).get("gen_ai.operation.name") == "execute_tool"]
    ordered = _in_call_order(tools, lambda s: _attributes(s)["gen_ai.tool.name"])
    # Arguments: a JSON object string; results: the tool's return value (a plain string here).
    assert [json.loads(_attributes(s)["gen_ai.tool.call.arguments"]) for s in ordered] == [
        a for _, a in CALLS
    ]
    succeeded = [s for i, s in enumerate(ordered) if i != 1]
    for span in succeeded:
        attributes = _attributes(span)
        assert attributes["gen_ai.tool.call.result"] == RESULTS[attributes["gen_ai.tool.name"]]
        assert span.status.status_code is StatusCode.UNSET
        assert span.events == ()
        assert "error.type" not in attributes
    # The failure: status ERROR (no description), an exception event with the tool's message, the
    # message again as the call's result, Pydantic AI's own retry attributes, and no error.type.
    failed = _attributes(ordered[1])
    assert ordered[1].status.status_code is StatusCode.ERROR
    assert ordered[1].status.description is None
    assert "error.type" not in failed
    assert failed["gen_ai.tool.call.result"] == FETCH_FAILURE
    assert failed["pydantic_ai.tool.retry.cause"] == "model_retry"
    assert failed["pydantic_ai.tool.retry.attempt"] == 1
    [event] = ordered[1].events
    assert event.name == "exception"
    event_attributes = dict(event.attributes or {})
    assert event_attributes["exception.type"] == "pydantic_ai.exceptions.ToolRetryError"
    assert event_attributes["exception.message"] == FETCH_FAILURE
    assert "exception.stacktrace" in event_attributes


def test_pydantic_ai_spans_carry_the_secret_unredacted(pydantic_run: NativeRun) -> None:
    """What auditspan must scrub: the raw key in the arguments, the failure and the model messages."""
    where = _secret_in(pydantic_run.spans)
    assert "execute_tool web_search: gen_ai.tool.call.arguments" in where
    assert "execute_tool fetch_url: gen_ai.tool.call.result" in where
    assert "execute_tool fetch_url: event exception exception.message" in where
    assert "invoke_agent planner: pydantic_ai.all_messages" in where
    assert any(w.startswith("chat ") and w.endswith("gen_ai.output.messages") for w in where)


# ------------------------------------------------------------------------------ LangChain (OpenInference)
@pytest.fixture(scope="module")
def langchain_run() -> NativeRun:
    return native.run_langchain(TracerProvider())


def _kind(span: ReadableSpan) -> Any:
    return _attributes(span).get("openinference.span.kind")


def test_langchain_through_openinference_emits_agent_chain_and_tool_spans(langchain_run: NativeRun) -> None:
    spans = langchain_run.spans
    agents = _by_start([s for s in spans if _kind(s) == "AGENT"])
    tools = [s for s in spans if _kind(s) == "TOOL"]
    steps = [s for s in spans if s.name == "tools"]

    assert langchain_run.outputs == ["done", "done"]
    assert [s.name for s in agents] == [native.LANGCHAIN_AGENT_RUN] * 2
    assert [_attributes(s)["input.value"] for s in agents] == list(PROMPTS)
    assert [_attributes(s)["output.value"] for s in agents] == ["done", "done"]
    for agent in agents:
        assert agent.parent is None
        assert agent.status.status_code is StatusCode.OK
        # OpenInference sets no GenAI convention attributes and no agent name attribute.
        assert not any(key.startswith("gen_ai.") for key in _attributes(agent))
        assert "agent.name" not in _attributes(agent)
    # Each call: a TOOL span, named after the tool, under the runnable that ran it ("tools", a CHAIN
    # span, as LangGraph's tool node), under the turn's AGENT span.
    assert len(tools) == len(steps) == len(CALLS)
    ordered = _in_call_order(tools, lambda s: _attributes(s)["tool.name"])
    assert [s.name for s in ordered] == [name for name, _ in CALLS]
    assert [_attributes(s)["tool.name"] for s in ordered] == [name for name, _ in CALLS]
    by_id = {_span_id(s): s for s in spans}
    turn_of = [0, 0, 0, 1, 1]
    for span, turn in zip(ordered, turn_of, strict=True):
        step = by_id[_parent_id(span)]  # type: ignore[index]
        assert step.name == "tools" and _kind(step) == "CHAIN"
        assert _parent_id(step) == _span_id(agents[turn])
        assert _trace_id(span) == _trace_id(agents[turn])
        assert span.kind is SpanKind.INTERNAL
        # The TOOL span carries no call id: only the step span's input (the model's tool call) has it.
        assert not any("call" in key and "id" in key for key in _attributes(span))
        assert (
            json.loads(_attributes(step)["input.value"])["id"]
            == langchain_run.calls[ordered.index(span)].call_id
        )
    assert _overlap(ordered[3], ordered[4])
    llms = [s for s in spans if _kind(s) == "LLM"]
    assert len(llms) == 6
    assert len(spans) == len(agents) + len(tools) + len(steps) + len(llms)


def test_langchain_tool_spans_carry_input_output_and_the_failure(langchain_run: NativeRun) -> None:
    tools = [s for s in langchain_run.spans if _kind(s) == "TOOL"]
    ordered = _in_call_order(tools, lambda s: _attributes(s)["tool.name"])
    # input.value: the arguments as JSON when the tool takes several, the bare value when it takes one.
    search = _attributes(ordered[0])
    assert json.loads(search["input.value"]) == SEARCH_ARGUMENTS
    assert search["input.mime_type"] == "application/json"
    assert [_attributes(s)["input.value"] for s in ordered[1:]] == [
        FETCH_ARGUMENTS["url"],
        FETCH_ARGUMENTS["url"],
        WEATHER_ARGUMENTS["city"],
        READ_ARGUMENTS["path"],
    ]
    # output.value: the ToolMessage, serialised, whose content is the result and which carries the call id.
    for index, span in enumerate(ordered):
        if index == 1:
            continue
        message = json.loads(_attributes(span)["output.value"])
        assert message["type"] == "tool"
        assert message["data"]["content"] == RESULTS[_attributes(span)["tool.name"]]
        assert message["data"]["tool_call_id"] == langchain_run.calls[index].call_id
        assert span.status.status_code is StatusCode.OK
        assert span.events == ()
    # The failure: status ERROR whose description is the exception's repr and traceback (message
    # included), an exception event with the class name and message, no output, and no error.type.
    failed = ordered[1]
    assert failed.status.status_code is StatusCode.ERROR
    assert failed.status.description is not None
    assert failed.status.description.startswith(repr(TimeoutError(FETCH_FAILURE)) + "Traceback")
    assert "output.value" not in _attributes(failed)
    assert "error.type" not in _attributes(failed)
    [event] = failed.events
    assert event.name == "exception"
    assert dict(event.attributes or {})["exception.type"] == "TimeoutError"
    assert dict(event.attributes or {})["exception.message"] == FETCH_FAILURE
    # The loop caught it: the step span and the agent span are OK.
    step = next(s for s in langchain_run.spans if _span_id(s) == _parent_id(failed))
    assert step.status.status_code is StatusCode.OK


def test_langchain_spans_carry_the_secret_unredacted(langchain_run: NativeRun) -> None:
    where = _secret_in(langchain_run.spans)
    assert "web_search: input.value" in where
    assert "fetch_url: status" in where
    assert "fetch_url: event exception exception.message" in where
    assert "tools: input.value" in where


# ------------------------------------------------------------------------------ MCP
@pytest.fixture(scope="module")
def mcp_run() -> NativeRun:
    logger = logging.getLogger("mcp")
    records: list[logging.LogRecord] = []

    class _Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    handler = _Keep(level=logging.DEBUG)
    logger.addHandler(handler)
    try:
        run = native.run_mcp(TracerProvider())
    finally:
        logger.removeHandler(handler)
    run.log_records = records  # type: ignore[attr-defined]
    return run


def test_mcp_server_emits_one_tools_call_span_per_call(mcp_run: NativeRun) -> None:
    spans = mcp_run.spans
    calls = [s for s in spans if _attributes(s).get("mcp.method.name") == "tools/call"]

    assert [(c.name, c.failed) for c in mcp_run.calls] == [
        ("web_search", False),
        ("fetch_url", True),
        ("fetch_url", False),
        ("get_weather", False),
        ("read_file", False),
    ]
    assert mcp_run.outputs[1] == "Error executing tool fetch_url"  # the client sees no secret
    ordered = _in_call_order(calls, lambda s: _attributes(s)["gen_ai.tool.name"])
    assert [s.name for s in ordered] == [f"tools/call {name}" for name, _ in CALLS]
    for span in ordered:
        attributes = _attributes(span)
        assert span.kind is SpanKind.SERVER
        assert attributes["gen_ai.operation.name"] == "execute_tool"
        assert attributes["mcp.protocol.version"]
        # Neither arguments nor results are on MCP's spans.
        assert not any("argument" in key or "result" in key for key in attributes)
        assert span.events == ()
    # The JSON-RPC request id is the only id of a call, unique within the session.
    request_ids = [_attributes(s)["jsonrpc.request.id"] for s in ordered]
    assert len(set(request_ids)) == len(CALLS)
    assert all(r.isdigit() for r in request_ids)
    # With no agent around the calls, each server span is the root of its own trace.
    assert all(s.parent is None for s in ordered)
    assert len({_trace_id(s) for s in ordered}) == len(CALLS)
    assert _overlap(ordered[3], ordered[4])
    # The session's other requests are SERVER spans with mcp.method.name and no operation name; the
    # in-memory transport makes no client span ("MCP send ...").
    others = [s for s in spans if s not in calls]
    assert sorted(_attributes(s)["mcp.method.name"] for s in others) == ["server/discover", "tools/list"]
    assert not any("gen_ai.operation.name" in _attributes(s) for s in others)
    assert not any(s.kind is SpanKind.CLIENT for s in spans)


def test_mcp_tool_failure_shows_as_is_error_without_exception_event(mcp_run: NativeRun) -> None:
    calls = [s for s in mcp_run.spans if _attributes(s).get("mcp.method.name") == "tools/call"]
    failed = [s for s in calls if s.status.status_code is StatusCode.ERROR]
    assert [s.name for s in failed] == ["tools/call fetch_url"]
    assert _attributes(failed[0])["error.type"] == "tool_error"  # the isError result, not a class name
    assert failed[0].status.description is None
    assert failed[0].events == ()
    assert all(s.status.status_code is StatusCode.UNSET for s in calls if s not in failed)
    # The spans never see the secret (no arguments, no messages) ...
    assert _secret_in(mcp_run.spans) == []
    # ... but the server logs the tool's traceback, secret included, through logging.
    logged = [r for r in mcp_run.log_records if r.exc_info and SECRET in str(r.exc_info[1].__cause__)]  # type: ignore[attr-defined]
    assert len(logged) == 1
    assert logged[0].getMessage() == "Tool 'fetch_url' raised an unexpected exception"


# ------------------------------------------------------------------------------ AutoGen (own venv)
@pytest.fixture(scope="module")
def autogen_run(tmp_path_factory: pytest.TempPathFactory) -> native.VenvRun:
    python = native.runtime_python("autogen")
    if not python.exists():
        pytest.fail(f"AutoGen is not installed at {python}: run scripts/install-test-servers", pytrace=False)
    return native.run_in_venv("autogen", tmp_path_factory.mktemp("autogen"))


def _otlp_by_start(spans: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(spans, key=lambda s: int(s["startTimeUnixNano"]))


def test_autogen_emits_invoke_agent_and_execute_tool_spans(autogen_run: native.VenvRun) -> None:
    spans = autogen_run.spans
    operation = [s["attributeMap"].get("gen_ai.operation.name") for s in spans]
    agents = _otlp_by_start([s for s, op in zip(spans, operation, strict=True) if op == "invoke_agent"])
    tools = [s for s, op in zip(spans, operation, strict=True) if op == "execute_tool"]

    assert autogen_run.outputs == ["done", "done"]
    # Each turn: a create_agent span (its own root) and an invoke_agent span, both CLIENT kind.
    assert (
        sorted(op for op in operation if op not in ("invoke_agent", "execute_tool")) == ["create_agent"] * 2
    )
    assert [s["name"] for s in agents] == [f"invoke_agent {AGENT}"] * 2
    for agent in agents:
        assert agent["kind"] == "SPAN_KIND_CLIENT"
        assert not agent.get("parentSpanId")
        assert agent["attributeMap"]["gen_ai.agent.name"] == AGENT
        assert agent["attributeMap"]["gen_ai.system"] == "autogen"
    ordered = _otlp_by_start(tools)
    ordered = ordered[:3] + sorted(ordered[3:], key=lambda s: s["attributeMap"]["gen_ai.tool.call.id"])
    assert [s["name"] for s in ordered] == [f"execute_tool {name}" for name, _ in CALLS]
    assert [s["attributeMap"]["gen_ai.tool.call.id"] for s in ordered] == [
        c.call_id for c in autogen_run.calls
    ]
    for span, turn in zip(ordered, [0, 0, 0, 1, 1], strict=True):
        assert span["kind"] == "SPAN_KIND_INTERNAL"
        assert span["parentSpanId"] == agents[turn]["spanId"]
        assert span["traceId"] == agents[turn]["traceId"]
        # No arguments and no results on AutoGen's tool spans.
        assert not any("argument" in key or "result" in key for key in span["attributeMap"])
    pair = ordered[3:]
    assert int(pair[0]["startTimeUnixNano"]) < int(pair[1]["endTimeUnixNano"])
    assert int(pair[1]["startTimeUnixNano"]) < int(pair[0]["endTimeUnixNano"])


def test_autogen_tool_failure_has_error_type_and_the_message_twice(autogen_run: native.VenvRun) -> None:
    tools = [s for s in autogen_run.spans if s["attributeMap"].get("gen_ai.operation.name") == "execute_tool"]
    failed = [s for s in tools if s["status"].get("code") == "STATUS_CODE_ERROR"]
    assert [s["attributeMap"]["gen_ai.tool.call.id"] for s in failed] == ["call-2"]
    # error.type is the class name; the status message is "Class: message" (secret included); the
    # exception is recorded twice (by the tool span's helper and by start_as_current_span).
    assert failed[0]["attributeMap"]["error.type"] == "TimeoutError"
    assert failed[0]["status"]["message"] == f"TimeoutError: {FETCH_FAILURE}"
    events = failed[0]["events"]
    assert [e["name"] for e in events] == ["exception", "exception"]
    for event in events:
        attributes = attribute_map(event["attributes"])
        assert attributes["exception.type"] == "TimeoutError"
        assert attributes["exception.message"] == FETCH_FAILURE
    assert all(not s["status"] for s in tools if s is not failed[0])


# ================================================================================ audit records
# The same runs with auditspan.AuditSpanProcessor first on the provider: the records it writes from
# the runtimes' own spans, their ids, their order, and the secret kept out of them.
TURN_1_TYPES = [
    ("turn_start", None),
    ("tool_call_attempt", "web_search"),
    ("tool_call_complete", "web_search"),
    ("tool_call_attempt", "fetch_url"),
    ("tool_call_failure", "fetch_url"),
    ("tool_call_attempt", "fetch_url"),
    ("tool_call_complete", "fetch_url"),
    ("turn_end", None),
]


def _records_of(path: Path) -> list[dict[str, Any]]:
    text = path.read_text(encoding="utf-8")
    return event_records(text.splitlines())


def _hex(value: int, width: int) -> str:
    return f"{value:0{width}x}"


def _check_turn_2(records: list[dict[str, Any]]) -> None:
    """Turn 2: turn_start, the parallel pair's attempts and outcomes in any order, turn_end."""
    assert (records[0]["event_type"], records[-1]["event_type"]) == ("turn_start", "turn_end")
    middle = [(r["event_type"], r["tool_name"]) for r in records[1:-1]]
    assert sorted(middle) == sorted(
        (event, tool)
        for tool in ("get_weather", "read_file")
        for event in ("tool_call_attempt", "tool_call_complete")
    )
    for tool in ("get_weather", "read_file"):
        assert middle.index(("tool_call_attempt", tool)) < middle.index(("tool_call_complete", tool))


def _check_one_record_pair_per_call(records: list[dict[str, Any]], tool_span_ids: list[str]) -> None:
    """Each tool span: exactly one attempt and one outcome, both carrying its span id; no other call."""
    calls = [r for r in records if r["event_type"].startswith("tool_call_")]
    by_span: dict[str, list[str]] = {}
    for record in calls:
        by_span.setdefault(record["telemetry"]["span_id"], []).append(record["event_type"])
    assert sorted(by_span) == sorted(tool_span_ids)
    for events in by_span.values():
        assert events[0] == "tool_call_attempt"
        assert events[1:] in (["tool_call_complete"], ["tool_call_failure"])


def _check_no_secret(path: Path, records: list[dict[str, Any]], *, carries_arguments: bool = True) -> None:
    """SECRET is nowhere in the audit log; where the runtime carries arguments, the rest of them is kept."""
    assert SECRET not in path.read_text(encoding="utf-8")
    search = next(
        r for r in records if r["event_type"] == "tool_call_attempt" and r["tool_name"] == "web_search"
    )
    if carries_arguments:
        assert "flights to Lisbon" in search["arguments_preview"]
        assert "[REDACTED" in search["arguments_preview"]
    else:
        assert search["arguments_preview"] == ""


def _audited_provider(log: Path) -> tuple[TracerProvider, AuditSpanProcessor, InMemorySpanExporter]:
    """A provider with the ingesting processor first, then the runtime's spans exported through
    auditspan's scrubbing exporter (the capture policy on every span that leaves the process)."""
    provider = TracerProvider()
    processor = AuditSpanProcessor(audit_log=log)
    provider.add_span_processor(processor)
    memory = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(ScrubbingSpanExporter(memory, Redactor())))
    return provider, processor, memory


@pytest.fixture(scope="module")
def pydantic_audited(tmp_path_factory: pytest.TempPathFactory) -> tuple[NativeRun, Path]:
    log = tmp_path_factory.mktemp("pydantic-audit") / "audit.jsonl"
    provider, processor, memory = _audited_provider(log)
    run = native.run_pydantic_ai(provider, memory)
    processor.shutdown()
    assert processor.stats.internal_errors == 0
    return run, log


def test_pydantic_ai_records_in_order_with_the_runtime_span_ids(
    pydantic_audited: tuple[NativeRun, Path],
) -> None:
    run, log = pydantic_audited
    records = _records_of(log)
    agents = _by_start(
        [s for s in run.spans if _attributes(s).get("gen_ai.operation.name") == "invoke_agent"]
    )
    tools = {
        _attributes(s)["gen_ai.tool.call.id"]: s for s in run.spans if s.name.startswith("execute_tool ")
    }

    turn_1, turn_2 = records[: len(TURN_1_TYPES)], records[len(TURN_1_TYPES) :]
    assert [(r["event_type"], r.get("tool_name")) for r in turn_1] == TURN_1_TYPES
    assert len(turn_2) == 6
    _check_turn_2(turn_2)
    for agent, turn in zip(agents, (turn_1, turn_2), strict=True):
        turn_id = _hex(_span_id(agent), 16)
        for record in turn:
            assert record["turn_id"] == turn_id
            assert record["agent_id"] == AGENT
            assert record["session_id"] == _attributes(agent)["gen_ai.conversation.id"]
            assert record["telemetry"]["trace_id"] == _hex(_trace_id(agent), 32)
        assert turn[0]["telemetry"]["span_id"] == turn[-1]["telemetry"]["span_id"] == turn_id
    # Call records carry the runtime's call id and its execute_tool span's id.
    for record in records:
        if record["event_type"].startswith("tool_call_"):
            span = tools[record["metadata"]["tool_call_id"]]
            assert record["telemetry"]["span_id"] == _hex(_span_id(span), 16)
            assert record["tool_name"] == _attributes(span)["gen_ai.tool.name"]
    _check_one_record_pair_per_call(records, [_hex(_span_id(s), 16) for s in tools.values()])
    # The processor makes no span of its own: the runtime's spans, no more.
    assert len(run.spans) == 2 + 5 + 6
    assert all(
        s.instrumentation_scope is None or s.instrumentation_scope.name == "pydantic-ai" for s in run.spans
    )


def test_pydantic_ai_records_carry_content_failure_and_no_secret(
    pydantic_audited: tuple[NativeRun, Path],
) -> None:
    run, log = pydantic_audited
    records = _records_of(log)
    completes = {r["metadata"]["tool_call_id"]: r for r in records if r["event_type"] == "tool_call_complete"}
    assert completes["call-1"]["result_preview"] == RESULTS["web_search"]
    assert completes["call-1"]["type"] == "EXTERNAL_API_CALL"
    assert completes["call-5"]["type"] == "FILE_READ"
    for record in completes.values():
        assert record["status"] == "success"
        assert record["duration_ms"] > 0
    [failure] = [r for r in records if r["event_type"] == "tool_call_failure"]
    assert failure["metadata"]["tool_call_id"] == "call-2"
    assert failure["error_type"] == "pydantic_ai.exceptions.ToolRetryError"
    assert failure["error_message"].startswith("upstream timed out (key [REDACTED")
    _check_no_secret(log, records)
    # The runtime's own spans left the process scrubbed: no secret in any attribute, event or status,
    # the rest of the arguments and the failure's message kept.
    assert _secret_in(run.spans) == []
    search = next(s for s in run.spans if s.name == "execute_tool web_search")
    assert json.loads(_attributes(search)["gen_ai.tool.call.arguments"])["query"] == "flights to Lisbon"
    [retry] = [e for s in run.spans if s.name == "execute_tool fetch_url" for e in s.events]
    assert str(dict(retry.attributes or {})["exception.message"]).startswith(
        "upstream timed out (key [REDACTED"
    )
    # The live tool spans were enriched at their start with the classification the records hold.
    for span in run.spans:
        if span.name.startswith("execute_tool "):
            record = next(
                r
                for r in records
                if r["event_type"] == "tool_call_attempt"
                and r["metadata"]["tool_call_id"] == _attributes(span)["gen_ai.tool.call.id"]
            )
            assert _attributes(span)[attr.OPERATION_TYPE] == record["type"]
            assert attr.OPERATION_RISK in _attributes(span)


@pytest.fixture(scope="module")
def mcp_audited(tmp_path_factory: pytest.TempPathFactory) -> tuple[NativeRun, Path]:
    log = tmp_path_factory.mktemp("mcp-audit") / "audit.jsonl"
    provider, processor, memory = _audited_provider(log)
    run = native.run_mcp(provider, memory)
    processor.shutdown()
    assert processor.stats.internal_errors == 0
    return run, log


def test_mcp_records_one_call_per_tools_call_span(mcp_audited: tuple[NativeRun, Path]) -> None:
    run, log = mcp_audited
    records = _records_of(log)
    by_request = {
        _attributes(s)["jsonrpc.request.id"]: s
        for s in run.spans
        if _attributes(s).get("mcp.method.name") == "tools/call"
    }
    # No agent: no turn records; the calls' records, attempt before outcome, none for the session's
    # other requests (server/discover, tools/list).
    assert {r["event_type"] for r in records} == {
        "tool_call_attempt",
        "tool_call_complete",
        "tool_call_failure",
    }
    assert len(records) == 2 * len(CALLS)
    for record in records:
        span = by_request[record["metadata"]["tool_call_id"]]  # the JSON-RPC request id is the call id
        assert record["telemetry"]["span_id"] == _hex(_span_id(span), 16)
        assert record["telemetry"]["trace_id"] == _hex(_trace_id(span), 32)
        assert record["tool_name"] == _attributes(span)["gen_ai.tool.name"]
        assert record["turn_id"] is None and record["agent_id"] is None
    _check_one_record_pair_per_call(records, [_hex(_span_id(s), 16) for s in by_request.values()])
    [failure] = [r for r in records if r["event_type"] == "tool_call_failure"]
    assert failure["tool_name"] == "fetch_url"
    assert failure["error_type"] == "tool_error"  # MCP's isError, as its span says
    assert SECRET not in log.read_text(encoding="utf-8")
    sequence = [(r["event_type"], r["tool_name"]) for r in records]
    assert sequence[:6] == [(event, tool) for event, tool in TURN_1_TYPES[1:-1]]
    assert len(run.spans) == len(CALLS) + 2


@pytest.fixture(scope="module")
def langchain_audited(tmp_path_factory: pytest.TempPathFactory) -> tuple[NativeRun, Path]:
    log = tmp_path_factory.mktemp("langchain-audit") / "audit.jsonl"
    provider, processor, memory = _audited_provider(log)
    run = native.run_langchain(provider, memory)
    processor.shutdown()
    assert processor.stats.internal_errors == 0
    return run, log


def test_langchain_records_carry_the_openinference_span_ids(
    langchain_audited: tuple[NativeRun, Path],
) -> None:
    """OpenInference sets every attribute at a span's end: each span's records are written then."""
    run, log = langchain_audited
    records = _records_of(log)
    agents = _by_start([s for s in run.spans if _kind(s) == "AGENT"])
    tools = [s for s in run.spans if _kind(s) == "TOOL"]
    turns = [r for r in records if r["event_type"] in ("turn_start", "turn_end")]
    assert [(r["event_type"], r["telemetry"]["span_id"]) for r in turns] == [
        (event, _hex(_span_id(agent), 16)) for agent in agents for event in ("turn_start", "turn_end")
    ]
    for agent in agents:
        [start] = [
            r for r in turns if r["event_type"] == "turn_start" and r["turn_id"] == _hex(_span_id(agent), 16)
        ]
        assert start["prompt_preview"] == _attributes(agent)["input.value"]
    _check_one_record_pair_per_call(records, [_hex(_span_id(s), 16) for s in tools])
    by_span = {_hex(_span_id(s), 16): s for s in tools}
    for record in records:
        if record["event_type"].startswith("tool_call_"):
            span = by_span[record["telemetry"]["span_id"]]
            assert record["tool_name"] == _attributes(span)["tool.name"]
            assert record["telemetry"]["trace_id"] == _hex(_trace_id(span), 32)
    [failure] = [r for r in records if r["event_type"] == "tool_call_failure"]
    assert failure["error_type"] == "TimeoutError"
    assert failure["error_message"].startswith("upstream timed out (key [REDACTED")
    _check_no_secret(log, records)
    assert _secret_in(run.spans) == []  # exported scrubbed: input.value, the status, the exception event
    search = next(s for s in run.spans if s.name == "web_search")
    assert json.loads(_attributes(search)["input.value"])["query"] == "flights to Lisbon"
    # Only AGENT and TOOL spans give records: the LLM and CHAIN spans none.
    assert len(records) == 2 * len(agents) + 2 * len(tools)


def test_langchain_calls_belong_to_their_turn_in_order(tmp_path: Path) -> None:
    """OpenInference (LangChain) sets every attribute at a span's END, so at on_start the processor
    cannot tell the AGENT span ("planner agent") or the TOOL spans from any other span. The calls'
    records are held under the still-open span of unknown kind until it ends as the AGENT span:
    then turn_start comes first, and every call carries its turn (the AGENT span's id) and agent."""
    log = tmp_path / "audit.jsonl"
    provider = TracerProvider()
    processor = AuditSpanProcessor(audit_log=log)
    provider.add_span_processor(processor)
    run = native.run_langchain(provider)
    processor.shutdown()
    records = _records_of(log)
    agents = _by_start([s for s in run.spans if _kind(s) == "AGENT"])
    turn_1, turn_2 = records[: len(TURN_1_TYPES)], records[len(TURN_1_TYPES) :]
    assert [(r["event_type"], r.get("tool_name")) for r in turn_1] == TURN_1_TYPES
    _check_turn_2(turn_2)
    for agent, turn in zip(agents, (turn_1, turn_2), strict=True):
        for record in turn:
            assert record["turn_id"] == f"{_span_id(agent):016x}"
            assert record["agent_id"] == native.LANGCHAIN_AGENT_RUN  # the name OpenInference gives the run


def _exported(exporter: InMemorySpanExporter) -> list[ReadableSpan]:
    return list(exporter.get_finished_spans())


def test_configure_records_a_native_runtime_and_scrubs_its_spans(tmp_path: Path, monkeypatch: Any) -> None:
    """Issue 17 items 2 and 3: configure() installs the ingesting processor by default, and wraps the
    exporters it builds in the scrubbing exporters: records from Pydantic AI's spans, and no SECRET
    in the exported execute_tool / chat / invoke_agent spans (gen_ai.tool.call.arguments / .result,
    the exception event's message, gen_ai.input/output.messages, pydantic_ai.all_messages)."""
    for name in ("AUDITSPAN_CHAIN", "OTEL_TRACES_EXPORTER", "OTEL_LOGS_EXPORTER"):
        monkeypatch.delenv(name, raising=False)
    exporter = InMemorySpanExporter()
    log = tmp_path / "audit.jsonl"
    handle = configure(
        "native-runtimes",
        audit_log=log,
        span_exporter=exporter,
        tracer_provider=TracerProvider(),
        set_global=False,
        flush_on_signal=False,
        chain=False,
    )
    try:
        native.run_pydantic_ai(handle.tracer_provider, exporter)
        handle.force_flush()
    finally:
        handle.shutdown()
    records = _records_of(log)
    assert [r["event_type"] for r in records].count("tool_call_attempt") == 5
    assert {r["agent_id"] for r in records} == {AGENT}
    spans = _exported(exporter)
    assert any(s.name == "execute_tool web_search" for s in spans)
    assert _secret_in(spans) == []
    assert SECRET not in log.read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def autogen_audited(tmp_path_factory: pytest.TempPathFactory) -> tuple[native.VenvRun, Path]:
    python = native.runtime_python("autogen")
    if not python.exists():
        pytest.fail(f"AutoGen is not installed at {python}: run scripts/install-test-servers", pytrace=False)
    out = tmp_path_factory.mktemp("autogen-audit")
    return native.run_in_venv("autogen", out, audit_log=out / "audit.jsonl", scrub=True), out / "audit.jsonl"


def test_autogen_records_in_order_with_the_runtime_span_ids(
    autogen_audited: tuple[native.VenvRun, Path],
) -> None:
    run, log = autogen_audited
    records = _records_of(log)
    agents = _otlp_by_start(
        [s for s in run.spans if s["attributeMap"].get("gen_ai.operation.name") == "invoke_agent"]
    )
    tools = {
        s["attributeMap"]["gen_ai.tool.call.id"]: s
        for s in run.spans
        if s["attributeMap"].get("gen_ai.operation.name") == "execute_tool"
    }
    turn_1, turn_2 = records[: len(TURN_1_TYPES)], records[len(TURN_1_TYPES) :]
    assert [(r["event_type"], r.get("tool_name")) for r in turn_1] == TURN_1_TYPES
    assert len(turn_2) == 6
    _check_turn_2(turn_2)
    for agent, turn in zip(agents, (turn_1, turn_2), strict=True):
        for record in turn:
            assert record["turn_id"] == agent["spanId"]
            assert record["agent_id"] == AGENT
            assert record["telemetry"]["trace_id"] == agent["traceId"]
    for record in records:
        if record["event_type"].startswith("tool_call_"):
            assert record["telemetry"]["span_id"] == tools[record["metadata"]["tool_call_id"]]["spanId"]
    _check_one_record_pair_per_call(records, [s["spanId"] for s in tools.values()])
    [failure] = [r for r in records if r["event_type"] == "tool_call_failure"]
    assert failure["error_type"] == "TimeoutError"  # the span's error.type
    assert failure["error_message"].startswith("upstream timed out (key [REDACTED")
    _check_no_secret(log, records, carries_arguments=False)
    # Exported scrubbed: the failure's status message and both exception events.
    assert SECRET not in json.dumps(run.spans)
    [failed] = [s for s in run.spans if s["status"].get("code") == "STATUS_CODE_ERROR"]
    assert failed["status"]["message"].startswith("TimeoutError: upstream timed out (key [REDACTED")
    # The create_agent spans give no record.
    assert len(records) == len(TURN_1_TYPES) + 6

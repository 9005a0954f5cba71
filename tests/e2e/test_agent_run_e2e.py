"""A realistic agent run through auditspan into real receivers, read back from Arize Phoenix.

The demo agent (several turns and sessions, parallel and sequential tool calls,
a denied call, a retried failing call, a loop block, an error event, hook
mutations) runs in a subprocess configured only through environment variables,
as an application is: ``OTEL_EXPORTER_OTLP_ENDPOINT`` / ``_PROTOCOL``,
``OTEL_RESOURCE_ATTRIBUTES``, ``AUDITSPAN_AUDIT_LOG``. Both OTLP protocols, each
directly into Phoenix and through a rotel collector hop. The checks read what
Phoenix holds: every expected span, names, parent links, statuses, ``gen_ai.*``
and ``auditspan.*`` attributes, span events, and that every canonical record's
trace and span id resolves to a span Phoenix holds. Span kinds and the Resource,
which Phoenix does not return, are checked in rotel's view of the same spans.
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from auditspan import attributes as attr
from auditspan.attributes import CHECKPOINT_SPAN_NAME

from ..conftest import event_records, event_spans
from .servers import PHOENIX_PROJECT_ATTRIBUTE, OtlpProtocol, Phoenix, RotelFactory

PROTOCOLS: list[OtlpProtocol] = ["grpc", "http"]
ERROR_OUTCOMES = {attr.OUTCOME_FAILURE, attr.OUTCOME_DENIED, attr.OUTCOME_BLOCKED}

# The application: the demo agent, configured by auditspan.configure() from the environment only.
AGENT = """
import dataclasses, json, sys
import auditspan
from auditspan.demo import run_demo_agent

telemetry = auditspan.configure()
run = run_demo_agent(telemetry.emitter, latency_scale=0.0)
telemetry.shutdown()
json.dump({"run": dataclasses.asdict(run), "exported": telemetry.span_stats.exported,
           "failed": telemetry.span_stats.failed}, sys.stdout)
"""


@dataclass
class AgentRun:
    """What the agent reported, the canonical records it wrote, and the spans Phoenix holds."""

    run: dict[str, Any]
    records: list[dict[str, Any]]
    spans: list[dict[str, Any]]

    @property
    def expected_spans(self) -> int:
        return len(self.run["turns"]) + sum(len(t["calls"]) for t in self.run["turns"])


def run_agent(
    tmp: Path, project: str, endpoint_env: dict[str, str], extra_env: dict[str, str] | None = None
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "AUDITSPAN_"))}
    env.update(
        OTEL_SERVICE_NAME="e2e-travel-agent",
        OTEL_RESOURCE_ATTRIBUTES=f"{PHOENIX_PROJECT_ATTRIBUTE}={project},deployment.environment=e2e",
        AUDITSPAN_AUDIT_LOG=str(tmp / "audit.jsonl"),
        AUDITSPAN_OUTPUT_DIR=str(tmp),
        **endpoint_env,
        **(extra_env or {}),
    )
    done = subprocess.run([sys.executable, "-c", AGENT], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["failed"] == 0, report
    records = event_records((tmp / "audit.jsonl").read_text().splitlines())
    return report, records


def endpoint_env(protocol: OtlpProtocol, grpc_endpoint: str, http_endpoint: str) -> dict[str, str]:
    return {
        "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc" if protocol == "grpc" else "http/protobuf",
        "OTEL_EXPORTER_OTLP_ENDPOINT": grpc_endpoint if protocol == "grpc" else http_endpoint,
    }


# ----------------------------------------------------------------------------- checks
def check_run(agent: AgentRun) -> None:
    """Every assertion about the trace shape; raises AssertionError naming what is wrong."""
    spans, run = event_spans(agent.spans), agent.run  # the chain's witness spans apart
    assert len(spans) == agent.expected_spans, (
        f"{len(spans)} spans in Phoenix, expected {agent.expected_spans}"
    )
    by_id = {s["context"]["span_id"]: s for s in spans}
    assert len(by_id) == len(spans), "duplicate span ids"

    turns = {s["attributes"][attr.TURN_ID]: s for s in spans if s["name"].startswith("invoke_agent")}
    expected_tools = Counter(f"execute_tool {c['tool']}" for t in run["turns"] for c in t["calls"])
    assert Counter(s["name"] for s in spans if s["name"].startswith("execute_tool")) == expected_tools

    for turn in run["turns"]:
        span = turns[turn["turn_id"]]
        a = span["attributes"]
        assert span["parent_id"] is None, f"turn {turn['turn_id']} is not a root"
        assert span["name"] == f"invoke_agent {a[attr.GEN_AI_AGENT_NAME]}"
        assert a[attr.GEN_AI_OPERATION_NAME] == "invoke_agent"
        assert a[attr.GEN_AI_AGENT_ID] == turn["agent_id"]
        assert a[attr.GEN_AI_CONVERSATION_ID] == turn["session_id"]
        assert a[attr.TURN_FUNCTION_CALLS_COUNT] == len(turn["calls"])
        assert span["status_code"] == ("ERROR" if turn["errors"] else "UNSET"), turn
        tools = [s for s in spans if s["parent_id"] == span["context"]["span_id"]]
        assert all(s["context"]["trace_id"] == span["context"]["trace_id"] for s in tools)
        got = Counter(
            (
                s["attributes"][attr.GEN_AI_TOOL_NAME],
                s["attributes"][attr.TOOL_OUTCOME],
                s["attributes"][attr.TOOL_ATTEMPT],
            )
            for s in tools
        )
        want = Counter((c["tool"], c["outcome"], c["attempt"]) for c in turn["calls"])
        assert got == want, f"tool calls of turn {turn['scenario']}: {got} != {want}"
        for tool in tools:
            ta = tool["attributes"]
            assert tool["name"] == f"execute_tool {ta[attr.GEN_AI_TOOL_NAME]}"
            assert ta[attr.GEN_AI_OPERATION_NAME] == "execute_tool"
            assert ta[attr.GEN_AI_AGENT_ID] == turn["agent_id"]
            assert ta[attr.GEN_AI_AGENT_NAME] == a[attr.GEN_AI_AGENT_NAME]
            assert ta[attr.GEN_AI_CONVERSATION_ID] == turn["session_id"]
            assert ta[attr.TURN_ID] == turn["turn_id"]
            assert ta[attr.OPERATION_TYPE]
            assert tool["status_code"] == ("ERROR" if ta[attr.TOOL_OUTCOME] in ERROR_OUTCOMES else "UNSET"), (
                tool["name"]
            )
    assert len(turns) == len(run["turns"])

    # Every canonical record resolves to a span Phoenix holds, in the same trace.
    for record in agent.records:
        telemetry = record["telemetry"]
        span = by_id.get(telemetry["span_id"])
        assert span is not None, f"record {record['event_id']} ({record['event_type']}) points at no span"
        assert span["context"]["trace_id"] == telemetry["trace_id"]
        if record["event_type"] == "tool_policy_decision":
            events = [e for e in span["events"] if e["name"] == "audit.tool_policy_decision"]
            assert any(e["attributes"].get(attr.EVENT_ID) == record["event_id"] for e in events)
            event = next(e for e in events if e["attributes"][attr.EVENT_ID] == record["event_id"])
            assert event["attributes"][attr.EVENT_FIELD_PREFIX + "action"] == record["action"]
            assert span["attributes"][attr.POLICY_DECISION] == record["governance"]["decision"]
    assert {r["event_type"] for r in agent.records} >= {
        "turn_start",
        "turn_end",
        "tool_call_attempt",
        "tool_call_complete",
        "tool_call_failure",
        "tool_policy_decision",
        "sandbox_decision",
        "tool_loop_warning",
        "tool_loop_block",
        "hook_mutation",
        "error",
    }


# ----------------------------------------------------------------------------- tests
@pytest.fixture(scope="module")
def direct_http_run(phoenix: Phoenix, tmp_path_factory: pytest.TempPathFactory) -> Iterator[AgentRun]:
    project = "e2e-direct-http-shared"
    report, records = run_agent(
        tmp_path_factory.mktemp("direct-http"),
        project,
        endpoint_env("http", phoenix.grpc_endpoint, phoenix.http_endpoint),
    )
    agent = AgentRun(report["run"], records, [])
    agent.spans = event_spans(phoenix.wait_for_spans(project, agent.expected_spans, timeout=90))
    yield agent


def test_direct_http(direct_http_run: AgentRun) -> None:
    check_run(direct_http_run)


def test_direct_grpc(phoenix: Phoenix, phoenix_project: str, tmp_path: Path) -> None:
    report, records = run_agent(
        tmp_path, phoenix_project, endpoint_env("grpc", phoenix.grpc_endpoint, phoenix.http_endpoint)
    )
    agent = AgentRun(report["run"], records, [])
    agent.spans = event_spans(phoenix.wait_for_spans(phoenix_project, agent.expected_spans, timeout=90))
    check_run(agent)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_through_rotel(
    protocol: OtlpProtocol, phoenix: Phoenix, rotel: RotelFactory, phoenix_project: str, tmp_path: Path
) -> None:
    hop = rotel(protocol, debug_log=True)
    base = hop.grpc_endpoint if protocol == "grpc" else hop.http_endpoint
    report, records = run_agent(tmp_path, phoenix_project, endpoint_env(protocol, base, base))
    agent = AgentRun(report["run"], records, [])
    agent.spans = event_spans(phoenix.wait_for_spans(phoenix_project, agent.expected_spans, timeout=90))
    check_run(agent)
    # What Phoenix does not return, rotel's view of the same spans shows: kinds and the Resource.
    seen = [
        s
        for s in hop.wait_for_debug_spans(agent.expected_spans, timeout=30)
        if s.name != CHECKPOINT_SPAN_NAME
    ]
    assert {s.span_id for s in seen} == {s["context"]["span_id"] for s in agent.spans}
    assert {s.kind for s in seen} == {"SPAN_KIND_INTERNAL"}
    assert {s.resource.get("service.name") for s in seen} == {"e2e-travel-agent"}
    assert {s.scope for s in seen} <= {"auditspan"} or all("auditspan" in str(s.scope) for s in seen)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_headers_and_gzip_reach_the_receiver(
    protocol: OtlpProtocol, phoenix: Phoenix, phoenix_project: str, tmp_path: Path
) -> None:
    mark = phoenix.mark()
    report, _ = run_agent(
        tmp_path,
        phoenix_project,
        endpoint_env(protocol, phoenix.grpc_endpoint, phoenix.http_endpoint),
        {
            "OTEL_EXPORTER_OTLP_HEADERS": "x-auditspan-tenant=acme%20corp,x-team=agents",
            "OTEL_EXPORTER_OTLP_COMPRESSION": "gzip",
        },
    )
    requests = [r for r in phoenix.received_requests(since=mark) if r.protocol == protocol]
    assert requests, "no OTLP request reached Phoenix"
    assert {r.header("x-auditspan-tenant") for r in requests} == {"acme corp"}
    assert {r.header("x-team") for r in requests} == {"agents"}
    if protocol == "http":
        assert all(r.body_is_gzip for r in requests)
    else:
        assert set(phoenix.grpc_message_encodings(since=mark)) == {"gzip"}
    agent = AgentRun(report["run"], [], [])
    delivered = event_spans(phoenix.wait_for_spans(phoenix_project, agent.expected_spans, timeout=90))
    assert len(delivered) == agent.expected_spans


def _broken(agent: AgentRun, mutate: Any) -> AgentRun:
    broken = AgentRun(agent.run, agent.records, copy.deepcopy(agent.spans))
    mutate(broken.spans)
    return broken


def test_the_checks_catch_a_broken_mapping(direct_http_run: AgentRun) -> None:
    """A tool span with the wrong parent, a lost span, a wrong status: each one fails the checks."""
    tools = [i for i, s in enumerate(direct_http_run.spans) if s["name"].startswith("execute_tool")]
    roots = [s for s in direct_http_run.spans if s["parent_id"] is None]

    def wrong_parent(spans: list[dict[str, Any]]) -> None:
        victim = spans[tools[0]]
        other = next(r for r in roots if r["context"]["span_id"] != victim["parent_id"])
        victim["parent_id"] = other["context"]["span_id"]

    def lost_span(spans: list[dict[str, Any]]) -> None:
        del spans[tools[-1]]

    def wrong_status(spans: list[dict[str, Any]]) -> None:
        failed = next(s for s in spans if s["attributes"].get(attr.TOOL_OUTCOME) == attr.OUTCOME_FAILURE)
        failed["status_code"] = "UNSET"

    for mutate in (wrong_parent, lost_span, wrong_status):
        with pytest.raises(AssertionError):
            check_run(_broken(direct_http_run, mutate))

"""The OPA input document, and the seed's Rego policies evaluated on it by a real Rego engine (regorus).

The engine is the ``regorus`` module of the ``gordon-to-regorus`` wheel (a
maintained build of microsoft/regorus's Python bindings; microsoft does not
publish one). The seed writes its policies in the pre-1.0 syntax
(``allow { ... }``); the engine runs them unchanged in Rego v0 mode
(``set_rego_v0(True)``). Without the engine those tests skip; the shape tests
still run.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from auditspan import events as ev
from auditspan.classification import Classifier
from auditspan.governance import governance_envelope
from auditspan.policy import policy_input, policy_inputs

from ..conftest import Harness

POLICIES = Path(__file__).parents[1] / "data" / "policies"
TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
SPAN = "00f067aa0ba902b7"


def canonical(
    tool: str,
    args: dict[str, Any],
    metadata: dict[str, Any] | None = None,
    *,
    action: str = "allow",
    policy_source: str = "default",
) -> dict[str, Any]:
    """A canonical tool-call-attempt record, built the way the collector builds it."""
    metadata = metadata or {}
    preview = str(args)[:200]
    c = Classifier().classify(tool, preview, metadata)
    return {
        "event_type": "tool_call_attempt",
        "timestamp": "2026-11-21T19:24:17.134534+00:00",
        "agent_id": "a1",
        "turn_id": "0a1b2c3d4e5f",
        "session_id": "s1",
        "severity": "info",
        "metadata": metadata,
        "tool_name": tool,
        "arguments_preview": preview,
        "event_id": "evt_" + "ab" * 16,
        **c.to_record_fields(),
        "governance": governance_envelope(action, policy_source, metadata),
        "telemetry": {"duration_ms": None, "trace_id": TRACE, "span_id": SPAN},
    }


def test_document_shape_for_a_canonical_record() -> None:
    record = canonical("run_sql", {"query": "SELECT email FROM customers.pii_emails"}, {"trust_score": 87})
    assert policy_input(record) == {
        "operation": {
            "type": "DATABASE_READ",
            "target": "customers.pii_emails",
            "parameters": {"operation": "select", "table": "customers.pii_emails"},
            "metadata": {"operation": "select", "table": "customers.pii_emails", "trust_score": 87},
            "custom_type": None,
            "category": "Data",
            "risk": "Low-Medium",
            "tool_name": "run_sql",
            "arguments_preview": "{'query': 'SELECT email FROM customers.pii_emails'}",
        },
        "agent": {"id": "a1", "trust_score": 87},
        "session": {"id": "s1"},
        "turn": {"id": "0a1b2c3d4e5f"},
        "event": {
            "id": "evt_" + "ab" * 16,
            "type": "tool_call_attempt",
            "timestamp": "2026-11-21T19:24:17.134534+00:00",
            "severity": "info",
        },
        "governance": {"decision": "ALLOW", "policies_evaluated": ["default"], "trust_score_at_time": 87},
        "telemetry": {"duration_ms": None, "trace_id": TRACE, "span_id": SPAN},
    }


def test_metadata_merges_with_parameters_and_wins() -> None:
    record = canonical("charge_card", {"amount": 250}, {"custom_type": "payment_processing", "amount": 250})
    op = policy_input(record)["operation"]
    assert op["type"] == "AGENT_ACTION"
    assert op["parameters"] == {"custom_type": "payment_processing"}
    assert op["metadata"] == {"custom_type": "payment_processing", "amount": 250}
    assert op["custom_type"] == "payment_processing"
    # without a declared custom type, the classifier's (the tool name) is there
    plain = policy_input(canonical("charge_card", {"amount": 5}))["operation"]
    assert plain["metadata"]["custom_type"] == plain["custom_type"] == "charge_card"
    clash = policy_input({"parameters": {"table": "derived", "x": 1}, "metadata": {"table": "declared"}})
    assert clash["operation"]["metadata"] == {"table": "declared", "x": 1}


@pytest.mark.parametrize(
    ("metadata", "agent"),
    [
        ({"trust_tier": 3}, {"id": "a1", "trust_tier": 3}),
        ({"trust_tier": "3"}, {"id": "a1", "trust_tier": 3}),
        ({"trust_tier": " 2.5 "}, {"id": "a1", "trust_tier": 2.5}),
        ({"trust_tier": "gold"}, {"id": "a1", "trust_tier": "gold"}),
        ({"trust_tier": None}, {"id": "a1"}),
        ({"trust_score_at_time": 40}, {"id": "a1", "trust_score": 40}),
        ({}, {"id": "a1"}),
    ],
)
def test_agent_trust(metadata: dict[str, Any], agent: dict[str, Any]) -> None:
    assert policy_input(canonical("x", {}, metadata))["agent"] == agent


def test_trust_score_falls_back_to_the_governance_envelope() -> None:
    record = {"agent_id": "a", "governance": {"trust_score_at_time": 55.5}}
    assert policy_input(record)["agent"] == {"id": "a", "trust_score": 55.5}


def test_any_mapping_is_read_and_output_is_json_safe() -> None:
    class Thing:
        def __str__(self) -> str:
            return "thing"

    deep: dict[str, Any] = {}
    node = deep
    for _ in range(50):
        node["d"] = {}
        node = node["d"]
    doc = policy_input(
        {
            "type": "FILE_WRITE",
            "metadata": {"tags": {"b", "a"}, "nan": math.nan, "obj": Thing(), 1: "int key", "deep": deep},
            "parameters": ("not", "a mapping"),
        }
    )
    json.dumps(doc, allow_nan=False)
    meta = doc["operation"]["metadata"]
    assert meta["tags"] == ["a", "b"]
    assert meta["nan"] == "nan"
    assert meta["obj"] == "thing"
    assert meta["1"] == "int key"
    assert doc["operation"]["parameters"] == {}
    assert doc["operation"]["target"] is None
    assert doc["session"] == {"id": None}
    empty = policy_input({})
    assert empty["operation"]["type"] is None and empty["operation"]["category"] is None
    with pytest.raises(TypeError, match="mapping"):
        policy_input(["not", "a", "record"])  # type: ignore[arg-type]


def test_policy_inputs_reads_a_jsonl_log() -> None:
    records = [
        canonical("run_sql", {"query": "SELECT 1 FROM a.b"}),
        {"event_type": "turn_end", "type": "WORKFLOW_COMPLETE"},
    ]
    lines = [json.dumps(records[0]) + "\n", "\n", json.dumps(records[1]).encode() + b"\n"]
    docs = list(policy_inputs(lines))
    assert [d["operation"]["type"] for d in docs] == ["DATABASE_READ", "WORKFLOW_COMPLETE"]
    only = list(policy_inputs(lines, event_types={"tool_call_attempt"}))
    assert [d["event"]["type"] for d in only] == ["tool_call_attempt"]


def test_policy_inputs_names_the_bad_line() -> None:
    lines = ['{"type": "LLM_CALL"}', "", "{not json", "[1, 2]", '{"type": "FILE_READ"}']
    with pytest.raises(ValueError, match="line 3: not valid JSON"):
        list(policy_inputs(lines))
    with pytest.raises(ValueError, match="line 3: a record must be a JSON object"):
        list(policy_inputs(lines[:2] + lines[3:]))
    assert [d["operation"]["type"] for d in policy_inputs(lines, strict=False)] == ["LLM_CALL", "FILE_READ"]


# --------------------------------------------------------------------------- the seed's policies, evaluated


@pytest.fixture(scope="module")
def engine() -> Any:
    regorus = pytest.importorskip("regorus")
    rego = regorus.Engine()
    rego.set_rego_v0(True)  # the seed's `allow { ... }` is pre-1.0 syntax
    for name in ("seed.rego", "seed_custom.rego"):
        rego.add_policy(name, (POLICIES / name).read_text(encoding="utf-8"))
    return rego


def verdicts(engine: Any, doc: dict[str, Any]) -> dict[str, bool]:
    """The rules of ``data.openbox.policy`` that are true for ``doc`` (undefined ones are absent)."""
    engine.set_input_json(json.dumps(doc))
    result = json.loads(engine.eval_query_as_json("data.openbox.policy"))
    value: dict[str, bool] = result["result"][0]["expressions"][0]["value"]
    return value


def test_policy_files_are_the_seed_text_unchanged() -> None:
    seed = next(
        (p for root in Path(__file__).resolve().parents for p in (root / "shared" / "seeds").glob("004_*")),
        None,
    )
    if seed is None:
        pytest.skip("shared/seeds/004_*.txt is not beside this checkout")
    text = seed.read_text(encoding="utf-8")
    policies = (POLICIES / "seed.rego").read_text(encoding="utf-8")
    assert policies.strip() in text
    for block in (POLICIES / "seed_custom.rego").read_text(encoding="utf-8").split("\n\n")[1:]:
        assert block.strip() in text


SEED_CASES = [
    ("read is allowed", "run_sql", {"query": "SELECT * FROM customers.pii_emails"}, {}, {"allow": True}),
    ("external call needs approval", "http_request", {"method": "POST", "url": "https://api.x.io/v1"}, {},
     {"require_approval": True}),
    ("file write by tier 3 is denied", "write_file", {"path": "/tmp/o.csv"}, {"trust_tier": 3},
     {"deny": True}),
    ("tier '4' as a string is still a number", "write_file", {"path": "/tmp/o"}, {"trust_tier": "4"},
     {"deny": True}),
    ("tier '2' as a string does not deny", "write_file", {"path": "/tmp/o"}, {"trust_tier": "2"}, {}),
    ("file write by tier 2 is not denied", "write_file", {"path": "/tmp/o"}, {"trust_tier": 2}, {}),
    ("file write with no tier is not denied", "write_file", {"path": "/tmp/o"}, {}, {}),
    ("file read is none of them", "read_file", {"path": "/etc/hosts"}, {"trust_tier": 5}, {}),
    ("db write is none of them", "run_sql", {"query": "DELETE FROM t"}, {}, {}),
    ("payment over 100 needs approval", "charge_card", {"amount": 250},
     {"custom_type": "payment_processing", "amount": 250}, {"require_approval": True}),
    ("payment under 100 does not", "charge_card", {"amount": 99.99},
     {"custom_type": "payment_processing", "amount": 99.99}, {}),
    ("another custom type does not", "charge_card", {"amount": 250},
     {"custom_type": "refund", "amount": 250}, {}),
    ("explicit type from metadata", "mystery", {}, {"operation_type": "EXTERNAL_API_CALL"},
     {"require_approval": True}),
]  # fmt: skip


@pytest.mark.parametrize(
    ("tool", "args", "metadata", "expected"), [c[1:] for c in SEED_CASES], ids=[c[0] for c in SEED_CASES]
)
def test_seed_policies_on_policy_input(
    engine: Any, tool: str, args: dict[str, Any], metadata: dict[str, Any], expected: dict[str, bool]
) -> None:
    assert verdicts(engine, policy_input(canonical(tool, args, metadata))) == expected


def test_raw_string_tier_would_mislead_the_policy(engine: Any) -> None:
    # why policy_input turns numeric strings into numbers: in Rego every string sorts above every number
    doc = policy_input(canonical("write_file", {"path": "/tmp/o"}, {"trust_tier": "2"}))
    doc["agent"]["trust_tier"] = "2"
    assert verdicts(engine, doc) == {"deny": True}


@pytest.fixture
def harness_log(tmp_path: Path) -> Iterator[Harness]:
    h = Harness(tmp_path)
    yield h
    h.close()


def _at(seconds: float) -> str:
    return f"2026-11-21T19:24:{17 + seconds:09.6f}+00:00"


def test_seed_policies_on_a_real_audit_log(engine: Any, harness_log: Harness) -> None:
    """Events through the real collector into its JSONL log, then through policy_inputs and regorus."""
    turn, agent = "0a1b2c3d4e5f", "planner"
    events: list[ev.AuditEvent] = [ev.TurnStartEvent(agent_id=agent, turn_id=turn, prompt_preview="Export")]
    calls = [
        ("run_sql", {"query": "SELECT email FROM customers.pii_emails"}, {}),
        ("http_request", {"method": "POST", "url": "https://paste.example.net/api"}, {}),
        ("write_file", {"path": "/tmp/out.csv", "content": "..."}, {"trust_tier": 3}),
        ("charge_card", {"amount": 500}, {"custom_type": "payment_processing", "amount": 500}),
    ]
    for tool, args, metadata in calls:
        events.append(
            ev.ToolPolicyDecisionEvent(agent_id=agent, turn_id=turn, tool_name=tool, action="allow")
        )
        events.append(
            ev.ToolCallAttemptEvent(
                agent_id=agent,
                turn_id=turn,
                tool_name=tool,
                arguments_preview=str(args)[:200],
                metadata=metadata,
            )
        )
        events.append(ev.ToolCallCompleteEvent(agent_id=agent, turn_id=turn, tool_name=tool, duration_ms=3.0))
    events.append(ev.TurnEndEvent(agent_id=agent, turn_id=turn, function_calls_count=len(calls)))
    for i, event in enumerate(events):
        event.timestamp = _at(i * 0.5)
        harness_log.emitter.emit(event)
    harness_log.records()  # flushes the log
    with harness_log.log_path.open(encoding="utf-8") as log:
        docs = list(policy_inputs(log, event_types={"tool_call_attempt"}))
    assert [(d["operation"]["tool_name"], d["operation"]["type"]) for d in docs] == [
        ("run_sql", "DATABASE_READ"),
        ("http_request", "EXTERNAL_API_CALL"),
        ("write_file", "FILE_WRITE"),
        ("charge_card", "AGENT_ACTION"),
    ]
    assert all(d["session"]["id"] == "sess-1" and d["agent"]["id"] == agent for d in docs)
    assert all(len(d["telemetry"]["trace_id"]) == 32 and len(d["telemetry"]["span_id"]) == 16 for d in docs)
    assert [verdicts(engine, d) for d in docs] == [
        {"allow": True},
        {"require_approval": True},
        {"deny": True},
        {"require_approval": True},
    ]

"""One call, one semantic type: every record of a tool call and its span agree on type, target, parameters.

The events that govern a call (loop check, policy decision, argument hook)
come before its attempt, whose arguments decide its type; their records are
held and written with the attempt, the refusal, or the call's end.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

from auditspan import AuditEmitter
from auditspan import attributes as attr
from auditspan import events as ev
from auditspan.cli import main
from auditspan.demo import run_demo_agent

from ...conftest import Harness, event_records, hex_span
from .test_collector import at, emit

pytestmark = pytest.mark.usefixtures("clean_environment")

SELECT = "{'query': 'SELECT email FROM customers.pii_emails'}"


def _by_span(records: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    grouped: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for record in records:
        grouped[record["telemetry"]["span_id"]].append(record)
    return grouped


def _file_records(path: Path) -> list[dict[str, Any]]:
    """The log as it is on disk now (no flush)."""
    return event_records(path.read_text(encoding="utf-8").splitlines())


def _governed_select(h: Harness, turn: str = "t1") -> None:
    emit(h, ev.TurnStartEvent(agent_id="a", turn_id=turn, prompt_preview="count"), 0)
    emit(
        h,
        ev.ToolLoopWarningEvent(
            agent_id="a", turn_id=turn, tool_name="run_sql", severity_level="ok", pattern="none"
        ),
        1.0,
    )
    emit(
        h,
        ev.ToolPolicyDecisionEvent(
            agent_id="a", turn_id=turn, tool_name="run_sql", action="allow", policy_source="default"
        ),
        1.1,
    )
    emit(
        h,
        ev.HookMutationEvent(
            agent_id="a", turn_id=turn, tool_name="run_sql", hook_name="h", mutated_field="arguments"
        ),
        1.2,
    )


def test_every_record_of_each_demo_call_has_its_spans_type_target_and_parameters(harness: Harness) -> None:
    run = run_demo_agent(lambda s: AuditEmitter(harness.collector, s), latency_scale=0, run_id="one")
    harness.collector.shutdown()
    tool_spans = {hex_span(s): s for s in harness.spans() if s.name.startswith("execute_tool")}
    assert len(tool_spans) == run.tool_calls == 17
    grouped = _by_span(harness.records())
    for span_id, span in tool_spans.items():
        records = grouped[span_id]
        assert records, span.name
        span_type = span.attributes[attr.OPERATION_TYPE]
        span_target = span.attributes.get(attr.OPERATION_TARGET)
        facts = {(r["type"], r["target"], json.dumps(r["parameters"], sort_keys=True)) for r in records}
        assert len(facts) == 1, (span.name, facts)
        assert next(iter(facts))[:2] == (span_type, span_target), span.name
    sql = [r for r in harness.records() if r.get("tool_name") == "run_sql"]
    assert {r["event_type"] for r in sql} >= {
        "tool_loop_warning",
        "tool_policy_decision",
        "tool_call_attempt",
    }
    assert {r["type"] for r in sql} == {"DATABASE_READ"}


def test_policy_input_hands_opa_the_attempts_type_and_risk(
    tmp_path: Path, harness: Harness, capsys: pytest.CaptureFixture[str]
) -> None:
    run_demo_agent(lambda s: AuditEmitter(harness.collector, s), latency_scale=0, run_id="opa")
    harness.collector.shutdown()
    capsys.readouterr()
    assert main(["policy-input", str(harness.log_path)]) == 0
    docs = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    sql = [d for d in docs if d["operation"]["tool_name"] == "run_sql"]
    assert {d["event"]["type"] for d in sql} >= {"tool_policy_decision", "tool_call_attempt"}
    assert {(d["operation"]["type"], d["operation"]["risk"]) for d in sql} == {
        ("DATABASE_READ", "Low-Medium")
    }


def test_held_records_are_on_disk_when_the_attempt_returns_under_fsync_always(make_harness: Any) -> None:
    from auditspan.audit_log import JsonLinesAuditLog

    h = make_harness()
    log = JsonLinesAuditLog(h.log_path, fsync="always")
    h.collector.audit_log.shutdown()
    h.collector.audit_log = log
    _governed_select(h)
    # Held until the attempt: only the turn start is written so far.
    assert [r["event_type"] for r in _file_records(h.log_path)] == ["turn_start"]
    emit(
        h,
        ev.ToolCallAttemptEvent(agent_id="a", turn_id="t1", tool_name="run_sql", arguments_preview=SELECT),
        1.3,
    )
    records = _file_records(h.log_path)  # read before any flush: fsync="always" wrote them in emit()
    assert [r["event_type"] for r in records] == [
        "turn_start",
        "tool_loop_warning",
        "tool_policy_decision",
        "hook_mutation",
        "tool_call_attempt",
    ]
    calls = records[1:]
    assert {(r["type"], r["target"]) for r in calls} == {("DATABASE_READ", "customers.pii_emails")}
    assert len({r["telemetry"]["span_id"] for r in calls}) == 1
    # Each keeps its own time, and the governance it had at its time (none before the decision).
    assert [r["timestamp"] for r in calls] == [at(1.0), at(1.1), at(1.2), at(1.3)]
    assert records[1]["governance"]["decision"] is None
    assert [r["governance"]["decision"] for r in records[2:]] == ["ALLOW", "ALLOW", "ALLOW"]


def test_force_flush_writes_held_records_and_the_call_keeps_their_type(harness: Harness) -> None:
    _governed_select(harness)
    assert harness.collector.force_flush(10_000)
    early = _file_records(harness.log_path)
    assert [r["event_type"] for r in early][1:] == [
        "tool_loop_warning",
        "tool_policy_decision",
        "hook_mutation",
    ]
    emit(
        harness,
        ev.ToolCallAttemptEvent(agent_id="a", turn_id="t1", tool_name="run_sql", arguments_preview=SELECT),
        1.3,
    )
    emit(harness, ev.ToolCallCompleteEvent(agent_id="a", turn_id="t1", tool_name="run_sql"), 1.4)
    harness.collector.shutdown()
    records = [r for r in harness.records() if r.get("tool_name") == "run_sql"]
    assert len(records) == 5  # none lost, none written twice
    assert len({(r["type"], r["target"]) for r in records}) == 1
    span = harness.span("execute_tool run_sql")
    assert span.attributes[attr.OPERATION_TYPE] == records[0]["type"]


def test_a_refused_call_writes_its_held_records_with_the_refusal(harness: Harness) -> None:
    emit(harness, ev.TurnStartEvent(agent_id="a", turn_id="t1"), 0)
    emit(
        harness,
        ev.ToolLoopWarningEvent(
            agent_id="a", turn_id="t1", tool_name="send_email", severity_level="ok", pattern="none"
        ),
        1,
    )
    assert len(_file_records_flushed_log(harness)) == 1
    emit(
        harness,
        ev.ToolPolicyDecisionEvent(
            agent_id="a", turn_id="t1", tool_name="send_email", action="deny", policy_source="p"
        ),
        2,
    )
    records = _file_records_flushed_log(harness)
    assert [r["event_type"] for r in records] == ["turn_start", "tool_loop_warning", "tool_policy_decision"]
    span = harness.span("execute_tool send_email")
    assert {r["telemetry"]["span_id"] for r in records[1:]} == {hex_span(span)}
    assert {r["type"] for r in records[1:]} == {span.attributes[attr.OPERATION_TYPE]}


def _file_records_flushed_log(h: Harness) -> list[dict[str, Any]]:
    """The records the log has written (its queue flushed, held records left held)."""
    assert h.collector.audit_log is not None
    assert h.collector.audit_log.force_flush(10_000)
    return _file_records(h.log_path)


def test_held_records_of_a_call_never_attempted_are_written_at_turn_end_and_shutdown(
    harness: Harness,
) -> None:
    _governed_select(harness, "t1")
    emit(harness, ev.TurnEndEvent(agent_id="a", turn_id="t1"), 2)
    assert [r["event_type"] for r in _file_records_flushed_log(harness)] == [
        "turn_start",
        "tool_loop_warning",
        "tool_policy_decision",
        "hook_mutation",
        "turn_end",
    ]
    _governed_select(harness, "t2")
    harness.collector.shutdown()
    records = harness.records()
    assert len(records) == 9
    span = next(s for s in harness.spans() if s.attributes.get(attr.TURN_ID) == "t2" and "run_sql" in s.name)
    assert span.attributes[attr.TOOL_OUTCOME] == attr.OUTCOME_NOT_ATTEMPTED
    assert {r["telemetry"]["span_id"] for r in records[-3:]} == {hex_span(span)}


def test_held_records_are_bounded_and_written_not_dropped(make_harness: Any) -> None:
    h = make_harness(max_held_records=5)
    emit(h, ev.TurnStartEvent(agent_id="a", turn_id="t1"), 0)
    for tool in ("a_tool", "b_tool", "c_tool"):  # two held each: 6 > 5 in all, the oldest call goes out
        emit(
            h,
            ev.ToolLoopWarningEvent(
                agent_id="a", turn_id="t1", tool_name=tool, severity_level="ok", pattern="none"
            ),
            1,
        )
        emit(
            h,
            ev.ToolPolicyDecisionEvent(
                agent_id="a", turn_id="t1", tool_name=tool, action="allow", policy_source="p"
            ),
            2,
        )
    assert [r["tool_name"] for r in _file_records_flushed_log(h)[1:]] == ["a_tool", "a_tool"]
    # A repeated event of one kind starts the next call: one call never holds more than one of each.
    for n in range(2):
        emit(
            h,
            ev.ToolPolicyDecisionEvent(
                agent_id="a", turn_id="t1", tool_name="c_tool", action="allow", policy_source="p"
            ),
            3 + n,
        )
        written = [r["tool_name"] for r in _file_records_flushed_log(h)[1:]]
        assert written == ["a_tool", "a_tool"] + ["b_tool", "b_tool"] * n  # 5 held, then 6: b goes out
    emit(h, ev.TurnEndEvent(agent_id="a", turn_id="t1"), 5)
    h.collector.shutdown()
    records = h.records()
    assert len(records) == 1 + 8 + 1
    assert len({r["event_id"] for r in records}) == len(records)
    assert records[-1]["event_type"] == "turn_end"


_CHILD = r"""
import sys
from opentelemetry.sdk.trace import TracerProvider
from auditspan.audit_log import JsonLinesAuditLog
from auditspan.collector import SpanCollector

log = JsonLinesAuditLog(sys.argv[1], fsync="always")
collector = SpanCollector(tracer_provider=TracerProvider(), audit_log=log)
base = {"agent_id": "a", "turn_id": "t1", "session_id": "s", "tool_name": "run_sql", "metadata": {}}
print("READY", flush=True)
for n in range(100_000):
    stamp = "2026-03-02T09:00:00+00:00"
    collector.emit({**base, "event_type": "tool_policy_decision", "event_id": f"evt_p{n}", "timestamp": stamp,
                    "action": "allow", "policy_source": "p"})
    collector.emit({**base, "event_type": "tool_call_attempt", "event_id": f"evt_a{n}", "timestamp": stamp,
                    "arguments_preview": "{'query': 'SELECT 1 FROM t'}"})
    # Acknowledged: the attempt's emit returned, so the held decision is on disk too.
    print(f"evt_p{n} evt_a{n}", flush=True)
"""


def test_sigkill_after_the_attempt_loses_no_held_record(tmp_path: Path) -> None:
    import signal
    import subprocess
    import sys

    log = tmp_path / "audit.jsonl"
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD, str(log)], stdout=subprocess.PIPE, text=True, bufsize=1
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "READY"
        acknowledged = [child.stdout.readline().split() for _ in range(200)]
        child.send_signal(signal.SIGKILL)
    finally:
        child.kill()
        child.wait(timeout=30)
    written = set()
    for line in log.read_text(encoding="utf-8").splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue  # at most a torn last line
        written.add(record["event_id"])
        assert record["type"] == "DATABASE_READ", record
    for ids in acknowledged:
        assert set(ids) <= written


class _ListLog:
    """An audit-log exporter that keeps what it is given (and still takes records after shutdown)."""

    def __init__(self) -> None:
        self.records: list[dict[str, Any]] = []

    def export(self, records: Any) -> None:
        self.records.extend(records)

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return True

    def shutdown(self) -> None:
        pass


def test_after_shutdown_a_governing_record_is_not_held(make_harness: Any) -> None:
    log = _ListLog()
    h = make_harness(audit_log=log)
    h.collector.shutdown()
    emit(
        h,
        ev.ToolPolicyDecisionEvent(
            agent_id="a", turn_id="t9", tool_name="run_sql", action="allow", policy_source="p"
        ),
        1,
    )
    # Nothing would write it later: it is passed on at once.
    assert [r["event_type"] for r in log.records][-1] == "tool_policy_decision"


_SIGNAL_CHILD = r"""
import sys, time
from auditspan import configure

handle = configure(audit_log=sys.argv[1], traces_exporter="none", environ={})
audit = handle.emitter("s")
turn = audit.emit_turn_start(agent_id="a", prompt="count")
audit.emit_tool_loop_warning("run_sql", "none", "ok", 0, agent_id="a", turn_id=turn)
audit.emit_tool_policy_decision("run_sql", agent_id="a", action="allow", source="p", turn_id=turn)
print("READY", flush=True)  # the two records are held: the attempt has not come
time.sleep(60)
print("NOT ENDED", flush=True)
"""


def test_sigterm_writes_the_held_records(tmp_path: Path) -> None:
    import os
    import signal
    import subprocess
    import sys

    log = tmp_path / "audit.jsonl"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "AUDITSPAN_"))}
    child = subprocess.Popen(
        [sys.executable, "-c", _SIGNAL_CHILD, str(log)], stdout=subprocess.PIPE, text=True, env=env
    )
    assert child.stdout is not None
    assert child.stdout.readline() == "READY\n"
    child.send_signal(signal.SIGTERM)
    out, _ = child.communicate(timeout=60)
    assert child.returncode == -signal.SIGTERM and "NOT ENDED" not in out
    records = _file_records(log)
    assert [r["event_type"] for r in records] == ["turn_start", "tool_loop_warning", "tool_policy_decision"]


def test_a_forked_child_does_not_write_the_parents_held_records(harness: Harness) -> None:
    import os

    _governed_select(harness)
    pid = os.fork()
    if pid == 0:  # the child flushes everything it has, then leaves
        try:
            harness.collector.force_flush(5_000)
        finally:
            os._exit(0)
    _, status = os.waitpid(pid, 0)
    assert status == 0
    emit(
        harness,
        ev.ToolCallAttemptEvent(agent_id="a", turn_id="t1", tool_name="run_sql", arguments_preview=SELECT),
        1.3,
    )
    harness.collector.shutdown()
    kinds = [r["event_type"] for r in harness.records()]
    assert kinds.count("tool_policy_decision") == kinds.count("tool_loop_warning") == 1

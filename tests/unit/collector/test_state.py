"""The turn and tool-call state machine (``auditspan.collector._state``) driven without spans.

The machine gets its fields from the real normaliser and classifies with the
real classifier; what it asks of spans goes to ``_SpanLog`` below, which
records each request and hands out plain objects, so every assertion is about
the machine's own decisions: which turn and call an event joins, what it
holds, what it ends, which ids its records carry.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from auditspan import attributes as attr
from auditspan import events as ev
from auditspan._ids import DeterministicIds
from auditspan.classification import Classifier
from auditspan.collector import CollectorStats
from auditspan.collector._classify import CallClassifier
from auditspan.collector._normalise import Normaliser
from auditspan.collector._state import Event, StateMachine
from auditspan.redaction import Redactor
from auditspan.rules import PII_EXFILTRATION_RULE, RuleEngine

SRC = Path(__file__).resolve().parents[3] / "src" / "auditspan"


@dataclass(eq=False)
class _Span:
    name: str
    parent: Any
    start_ns: int
    attributes: dict[str, Any]
    trace_id: int
    span_id: int
    retry_of: tuple[int, int] | None
    events: list[str] = field(default_factory=list)
    error: str | None = None
    end_ns: int | None = None

    def set_attributes(self, attributes: dict[str, Any]) -> None:
        self.attributes.update(attributes)

    def end(self, end_time: int) -> None:
        self.end_ns = end_time


class _SpanLog:
    """A span sink that keeps what it was asked, in order; its spans take the ids they are given
    and keep what is set on them."""

    max_length = 8_192
    ids_hold = True

    def __init__(self) -> None:
        self.spans: list[_Span] = []

    def parent(self) -> Any:
        return None

    def parent_trace_id(self, parent: Any) -> int:
        return 0

    def current(self) -> Any:
        return None

    def in_context(self, span: _Span) -> Any:
        return ("context of", span.name)

    def ids_of(self, span: _Span) -> tuple[int, int]:
        return span.trace_id, span.span_id

    def start(
        self,
        name: str,
        parent: Any,
        start_ns: int,
        attributes: dict[str, Any],
        trace_id: int,
        span_id: int,
        retry_of: tuple[int, int] | None = None,
    ) -> _Span:
        span = _Span(name, parent, start_ns, dict(attributes), trace_id, span_id, retry_of)
        self.spans.append(span)
        return span

    def add_event(self, span: _Span | None, fields: dict[str, Any], event_id: str | None, ts: int) -> None:
        if span is not None:
            span.events.append(fields["event_type"])

    def fail(self, span: _Span, attributes: dict[str, Any], error: str) -> None:
        span.attributes.update(attributes)
        span.error = error

    def named(self, name: str) -> list[_Span]:
        return [s for s in self.spans if s.name == name]


class _Machine:
    """The state machine with the collector's real normaliser, classifier and ids around it."""

    def __init__(self, **bounds: Any) -> None:
        self.stats = CollectorStats()
        self.errors: list[BaseException] = []
        redactor = Redactor()
        self.normaliser = Normaliser(redactor, self.stats)
        self.sink = _SpanLog()
        self.ids = DeterministicIds()
        calls = CallClassifier(Classifier(), redactor, self.errors.append)
        self.machine = StateMachine(self.sink, calls, self.ids, self.stats, **bounds)

    def route(self, event: ev.AuditEvent, seconds: float = 0) -> tuple[Event, list[dict[str, Any]]]:
        event.timestamp = f"2026-11-21T19:24:{10 + seconds:09.6f}+00:00"
        fields, ts, raw_args = self.normaliser.fields_of(event)
        self.machine.position += 1
        routed = Event(fields, self.ids.event_id(fields, self.machine.position), ts, raw_args)
        records = self.machine.route(routed)
        assert not self.errors
        return routed, records

    def released(self) -> list[dict[str, Any]]:
        out, self.machine.released = self.machine.released, []
        return [record for record, _ in out]


def test_the_state_machine_imports_no_opentelemetry() -> None:
    """``_state`` and every module of this package it imports (at run time) are plain Python."""
    seen: set[Path] = set()
    todo = [SRC / "collector" / "_state.py"]
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        for node in ast.parse(path.read_text()).body:  # top level: not the TYPE_CHECKING block
            if isinstance(node, ast.Import):
                assert not any(a.name.startswith("opentelemetry") for a in node.names), path
            elif isinstance(node, ast.ImportFrom):
                assert not (node.module or "").startswith("opentelemetry"), path
                if node.level:  # a module of this package: follow it
                    base = path.parents[node.level - 1]
                    target = base.joinpath(*(node.module or "").split("."))
                    if target.with_suffix(".py").exists():
                        todo.append(target.with_suffix(".py"))
    names = {p.name for p in seen}
    assert {"_state.py", "_attributes.py", "_records.py", "events.py", "governance.py"} <= names


def test_a_call_in_a_turn_gets_a_child_span_and_its_records_the_turns_trace() -> None:
    m = _Machine()
    _, (start,) = m.route(ev.TurnStartEvent(agent_id="planner", turn_id="t1", prompt_preview="find"), 0)
    _, (attempt,) = m.route(
        ev.ToolCallAttemptEvent(
            agent_id="planner", turn_id="t1", tool_name="read_file", arguments_preview="{}"
        ),
        1,
    )
    _, (complete,) = m.route(
        ev.ToolCallCompleteEvent(agent_id="planner", turn_id="t1", tool_name="read_file", duration_ms=5.0), 2
    )
    _, (end,) = m.route(ev.TurnEndEvent(agent_id="planner", turn_id="t1", function_calls_count=1), 3)
    (turn,) = m.sink.named("invoke_agent planner")
    (call,) = m.sink.named("execute_tool read_file")
    assert call.parent == ("context of", "invoke_agent planner")
    assert call.trace_id == turn.trace_id != 0
    assert start["telemetry"]["trace_id"] == f"{turn.trace_id:032x}"
    assert start["telemetry"]["span_id"] == f"{turn.span_id:016x}"
    assert attempt["telemetry"]["span_id"] == complete["telemetry"]["span_id"] == f"{call.span_id:016x}"
    assert complete["telemetry"]["duration_ms"] == 5.0
    assert call.attributes[attr.TOOL_OUTCOME] == attr.OUTCOME_SUCCESS
    assert call.end_ns is not None and turn.end_ns is not None and turn.end_ns >= call.end_ns
    assert turn.attributes[attr.TURN_FUNCTION_CALLS_COUNT] == 1
    assert end["event_type"] == "turn_end"
    assert m.machine.turns == {} and len(m.machine.unfinished) == 0
    assert (m.stats.turns_started, m.stats.turns_ended, m.stats.tool_spans) == (1, 1, 1)


def test_completions_go_to_the_call_with_their_call_id() -> None:
    m = _Machine()
    m.route(ev.TurnStartEvent(agent_id="a", turn_id="t1"), 0)
    for n in (1, 2):
        m.route(
            ev.ToolCallAttemptEvent(
                agent_id="a", turn_id="t1", tool_name="search", metadata={"tool_call_id": f"call-{n}"}
            ),
            n,
        )
    _, (second,) = m.route(
        ev.ToolCallCompleteEvent(
            agent_id="a", turn_id="t1", tool_name="search", metadata={"tool_call_id": "call-2"}
        ),
        3,
    )
    first_span, second_span = m.sink.named("execute_tool search")
    assert second["telemetry"]["span_id"] == f"{second_span.span_id:016x}"
    assert second_span.end_ns is not None and first_span.end_ns is None
    (turn,) = m.machine.turns.values()
    assert [c.call_id for calls in turn.open.values() for c in calls] == ["call-1"]


def test_a_policy_decision_is_held_until_the_attempt_and_takes_its_classification() -> None:
    m = _Machine()
    m.route(ev.TurnStartEvent(agent_id="a", turn_id="t1"), 0)
    policy, held = m.route(
        ev.ToolPolicyDecisionEvent(agent_id="a", turn_id="t1", tool_name="run_sql", action="allow"), 1
    )
    assert held == [] and policy.held
    assert m.machine.held_total == 1 and m.released() == []
    assert m.sink.named("execute_tool run_sql") == []  # no span before the attempt
    _, (attempt,) = m.route(
        ev.ToolCallAttemptEvent(
            agent_id="a",
            turn_id="t1",
            tool_name="run_sql",
            arguments_preview="{'query': 'DELETE FROM users'}",
        ),
        2,
    )
    (released,) = m.released()
    (span,) = m.sink.named("execute_tool run_sql")
    assert released["event_type"] == "tool_policy_decision"
    assert released["type"] == attempt["type"] == span.attributes[attr.OPERATION_TYPE] == "DATABASE_WRITE"
    assert released["target"] == attempt["target"] == "users"
    assert released["telemetry"]["span_id"] == attempt["telemetry"]["span_id"] == f"{span.span_id:016x}"
    assert released["governance"]["decision"] == attempt["governance"]["decision"] == "ALLOW"
    assert span.events == ["tool_policy_decision"]
    assert m.machine.held_total == 0


def test_a_denied_call_ends_at_once_and_its_later_failure_is_the_same_call() -> None:
    m = _Machine()
    m.route(ev.TurnStartEvent(agent_id="a", turn_id="t1"), 0)
    _, own = m.route(
        ev.ToolPolicyDecisionEvent(agent_id="a", turn_id="t1", tool_name="delete_db", action="deny"), 1
    )
    assert own == []  # held, then let go with the refusal: it comes out with the records let go
    (denial,) = m.released()
    (span,) = m.sink.named("execute_tool delete_db")
    assert span.attributes[attr.TOOL_OUTCOME] == attr.OUTCOME_DENIED and span.error == "denied"
    assert span.end_ns is not None
    _, (failure,) = m.route(ev.ToolCallFailureEvent(agent_id="a", turn_id="t1", tool_name="delete_db"), 2)
    assert failure["telemetry"]["span_id"] == denial["telemetry"]["span_id"] == f"{span.span_id:016x}"
    assert failure["governance"]["decision"] == "DENY"
    assert len(m.sink.named("execute_tool delete_db")) == 1


def test_a_retry_links_to_the_failed_attempt_and_counts_up() -> None:
    m = _Machine()
    m.route(ev.TurnStartEvent(agent_id="a", turn_id="t1"), 0)
    m.route(ev.ToolCallAttemptEvent(agent_id="a", turn_id="t1", tool_name="fetch"), 1)
    m.route(ev.ToolCallFailureEvent(agent_id="a", turn_id="t1", tool_name="fetch", error_type="Timeout"), 2)
    m.route(ev.ToolCallAttemptEvent(agent_id="a", turn_id="t1", tool_name="fetch"), 3)
    failed, retry = m.sink.named("execute_tool fetch")
    assert failed.error == "Timeout" and failed.attributes[attr.ERROR_TYPE] == "Timeout"
    assert retry.retry_of == (failed.trace_id, failed.span_id)
    assert retry.attributes[attr.TOOL_ATTEMPT] == 2


def test_the_oldest_turn_is_evicted_past_the_bound_and_its_open_call_ended() -> None:
    m = _Machine(max_open_turns=2)
    m.route(ev.TurnStartEvent(agent_id="a", turn_id="t1"), 0)
    m.route(ev.ToolCallAttemptEvent(agent_id="a", turn_id="t1", tool_name="slow"), 1)
    m.route(ev.TurnStartEvent(agent_id="a", turn_id="t2"), 2)
    m.route(ev.TurnStartEvent(agent_id="a", turn_id="t3"), 3)
    first = m.sink.spans[0]
    (call,) = m.sink.named("execute_tool slow")
    assert first.attributes[attr.TURN_INCOMPLETE] == "evicted" and first.error == "turn did not end (evicted)"
    assert call.attributes[attr.TOOL_OUTCOME] == attr.OUTCOME_INCOMPLETE and call.end_ns is not None
    assert [key[1] for key in m.machine.turns] == ["t2", "t3"]
    assert m.stats.turns_evicted == 1 and len(m.machine.unfinished) == 0


def test_idle_turns_end_as_stale() -> None:
    m = _Machine(stale_turn_after_s=60)
    m.route(ev.TurnStartEvent(agent_id="a", turn_id="t1"), 0)
    (turn,) = m.machine.turns.values()
    m.machine.end_stale_turns(turn.last_seen + 59)
    assert m.machine.turns
    m.machine.end_stale_turns(turn.last_seen + 60)
    assert not m.machine.turns and m.stats.turns_stale == 1
    assert m.sink.spans[0].attributes[attr.TURN_INCOMPLETE] == "stale"


def test_held_records_past_the_bound_are_let_go_oldest_first() -> None:
    m = _Machine(max_held_records=2)
    m.route(ev.TurnStartEvent(agent_id="a", turn_id="t1"), 0)
    for n, tool in enumerate(("one", "two", "three")):
        m.route(ev.ToolPolicyDecisionEvent(agent_id="a", turn_id="t1", tool_name=tool, action="allow"), n + 1)
    (let_go,) = m.released()
    assert let_go["tool_name"] == "one" and m.machine.held_total == 2
    assert [c.tool_name for c in m.machine.holding] == ["two", "three"]


def test_rule_matches_are_returned_with_the_attempts_record() -> None:
    m = _Machine(rules=RuleEngine([PII_EXFILTRATION_RULE]))
    m.route(ev.TurnStartEvent(agent_id="a", turn_id="t1"), 0)
    m.route(
        ev.ToolCallAttemptEvent(
            agent_id="a",
            turn_id="t1",
            tool_name="run_sql",
            arguments_preview="{'query': 'SELECT email FROM customers.pii_emails'}",
        ),
        1,
    )
    m.route(ev.ToolCallCompleteEvent(agent_id="a", turn_id="t1", tool_name="run_sql"), 2)
    _, records = m.route(
        ev.ToolCallAttemptEvent(
            agent_id="a",
            turn_id="t1",
            tool_name="http_post",
            arguments_preview="{'url': 'https://paste.example.net/up'}",
        ),
        30,
    )
    attempt, match = records
    assert attempt["event_type"] == "tool_call_attempt"
    assert match["event_type"] == "behavior_rule_match" and match["rule_name"] == "PII Exfiltration Pattern"
    assert match["match_event_id"] == attempt["event_id"]
    assert match["telemetry"]["span_id"] == attempt["telemetry"]["span_id"]
    (post,) = m.sink.named("execute_tool http_post")
    assert post.attributes[attr.RULE_ACTION] == "REQUIRE_APPROVAL"
    assert post.events == ["behavior_rule_match"]
    assert m.stats.rule_matches == 1


def test_events_without_a_turn_share_a_home_that_counts_against_the_bound() -> None:
    m = _Machine()
    m.route(ev.ToolCallAttemptEvent(agent_id="a", tool_name="ls"), 0)
    _, (done,) = m.route(ev.ToolCallCompleteEvent(agent_id="a", tool_name="ls"), 1)
    (call,) = m.sink.named("execute_tool ls")
    assert call.parent is None  # a root span: no turn, no current span
    assert done["telemetry"]["trace_id"] == f"{call.trace_id:032x}"
    (home,) = m.machine.turns.values()
    assert home.span is None and home.key == (None, None, "a")

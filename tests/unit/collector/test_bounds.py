"""Every structure the collector keeps stays within its documented bound, whatever the event stream.

Hostile streams of one shape each go through the fast path (this package's own
event classes, as ``AuditEmitter`` sends them) into a ``SpanCollector`` on the
API's no-op tracer -- so the spans themselves hold no memory and what is
measured is auditspan's own state -- with a sink that counts audit records:
each structure's size (``state_sizes()``) is checked while the stream runs,
every event must still yield its record, and every eviction must be counted
and reported once.

One shape runs a million events (calls with ``turn_id=None`` from distinct
sessions, never completed: the +1 GiB case of issue 13, at the default bounds);
the others run 100,000 events each against small bounds, which they overflow
many times over (a million of each would take minutes on a 2-core machine).
"""

from __future__ import annotations

import logging
import tracemalloc
from collections.abc import Callable, Sequence
from typing import Any

import pytest
from opentelemetry import trace

from auditspan import SpanCollector
from auditspan.classification import Classifier
from auditspan.collector import MAX_REMEMBERED_CALLS
from auditspan.events import (
    AuditEvent,
    GenericAuditEvent,
    ToolCallAttemptEvent,
    ToolCallFailureEvent,
    ToolPolicyDecisionEvent,
    TurnStartEvent,
)
from auditspan.redaction import CapturePolicy, Redactor
from auditspan.rules import PII_EXFILTRATION_RULE, RuleEngine

TS = "2026-11-21T19:24:17.134534+00:00"


class _CountingLog:
    """An audit-log exporter that counts the records it is given (the records are the evidence)."""

    def __init__(self) -> None:
        self.records = 0

    def export(self, records: Sequence[dict[str, Any]]) -> None:
        self.records += len(records)

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return True

    def shutdown(self) -> None:
        pass


class _OneType:
    """A classifier with one answer: classification has its own memo and test; here it is no cost."""

    def __init__(self) -> None:
        self.answer = Classifier(heuristics=False).classify("tool", "")

    def classify(self, tool_name: str, arguments_preview: str, metadata: Any = None) -> Any:
        return self.answer


def _collector(**options: Any) -> tuple[SpanCollector, _CountingLog]:
    log = _CountingLog()
    options.setdefault("rules", None)
    options.setdefault("classifier", _OneType())
    options.setdefault("redactor", Redactor(CapturePolicy.FULL))  # redaction has its own memo test
    collector = SpanCollector(trace.NoOpTracerProvider(), audit_log=log, **options)
    return collector, log


def _feed(
    collector: SpanCollector,
    count: int,
    event: AuditEvent,
    vary: Callable[[AuditEvent, int], None],
    check: Callable[[dict[str, int]], None],
    every: int = 25_000,
) -> None:
    """Emit ``event`` ``count`` times, ``vary(event, i)`` before each, checking the sizes as it goes.

    The collector copies an event's fields (``fields_view``), so one object can be sent again and again.
    """
    for i in range(count):
        vary(event, i)
        collector.emit(event)
        if i % every == every - 1:
            check(collector.state_sizes())
    check(collector.state_sizes())


def _bound_lines(caplog: pytest.LogCaptureFixture, what: str) -> int:
    return sum(1 for r in caplog.records if f"bound reached: {what}" in r.getMessage())


def test_a_million_calls_without_a_turn_from_distinct_sessions_stay_within_max_open_turns(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The worst shape of issue 13 (200,000 of them took +1 GiB): homes now count against max_open_turns."""
    collector, log = _collector()  # the default bounds: 10,000 turns, 100,000 unfinished calls
    event = ToolCallAttemptEvent(timestamp=TS, tool_name="lookup", agent_id="a", turn_id=None)
    n = 1_000_000
    peaks: dict[str, int] = {}

    def vary(ev: AuditEvent, i: int) -> None:
        ev.session_id = f"s{i}"

    def check(sizes: dict[str, int]) -> None:
        for key, value in sizes.items():
            peaks[key] = max(peaks.get(key, 0), value)
        assert sizes["turns"] <= 10_000
        assert sizes["latest"] <= sizes["turns"]
        assert sizes["unfinished_calls"] <= 100_000

    with caplog.at_level(logging.WARNING, logger="auditspan"):
        _feed(collector, n, event, vary, check, every=50_000)
    assert peaks["turns"] == 10_000 and peaks["home_turns"] == 10_000
    assert peaks["unfinished_calls"] == 10_000  # one per home: each is ended with its home
    assert collector.stats.home_turns_evicted == n - 10_000
    assert collector.stats.records == log.records == n  # every event still yields its record
    assert _bound_lines(caplog, "open turns") == 1  # one line for the whole episode
    collector.shutdown()
    assert collector.state_sizes()["turns"] == 0


def test_failures_in_one_turn_keep_a_bounded_memory_of_failed_tools() -> None:
    collector, log = _collector()
    collector.emit(TurnStartEvent(timestamp=TS, agent_id="a", turn_id="t1", session_id="s"))
    event = ToolCallFailureEvent(timestamp=TS, tool_name="x", error_type="E", agent_id="a", turn_id="t1")
    n = 100_000

    def vary(ev: AuditEvent, i: int) -> None:
        ev.tool_name = f"tool_{i}"  # type: ignore[attr-defined]

    def check(sizes: dict[str, int]) -> None:
        assert sizes["failed_remembered"] <= MAX_REMEMBERED_CALLS
        assert sizes["unfinished_calls"] == 0

    _feed(collector, n, event, vary, check)
    assert collector.stats.failures_forgotten == n - MAX_REMEMBERED_CALLS
    assert log.records == n + 1


def test_the_failed_tool_map_holds_no_span_and_stays_small_in_bytes() -> None:
    """What issue 13 measured in bytes (+480 MiB for 100,000 failures): now a bounded few MiB."""
    collector, _ = _collector()
    collector.emit(TurnStartEvent(timestamp=TS, agent_id="a", turn_id="t1", session_id="s"))
    event = ToolCallFailureEvent(timestamp=TS, tool_name="x", error_type="E", agent_id="a", turn_id="t1")
    for i in range(2_000):  # warm every memo first, so that what grows afterwards is the state
        event.tool_name = f"warm_{i}"
        collector.emit(event)
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for i in range(20_000):
            event.tool_name = f"t{i}"
            collector.emit(event)
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    # At most 10,000 remembered failures (key, ids, attempt), and memos that were full already.
    assert grown < 4 * 2**20, f"{grown / 2**20:.1f} MiB"


def test_denials_in_one_turn_keep_a_bounded_memory_of_refused_calls() -> None:
    collector, log = _collector()
    event = ToolPolicyDecisionEvent(timestamp=TS, tool_name="x", action="deny", agent_id="a", turn_id="t1")
    n = 100_000

    def vary(ev: AuditEvent, i: int) -> None:
        ev.tool_name = f"tool_{i}"  # type: ignore[attr-defined]

    def check(sizes: dict[str, int]) -> None:
        assert sizes["refused_remembered"] <= MAX_REMEMBERED_CALLS
        assert sizes["unfinished_calls"] == 0 and sizes["held_span_events"] == 0

    _feed(collector, n, event, vary, check)
    assert collector.stats.refusals_forgotten == n - MAX_REMEMBERED_CALLS
    assert log.records == n


def test_attempts_never_completed_in_one_turn_stay_within_max_calls_per_turn(
    caplog: pytest.LogCaptureFixture,
) -> None:
    collector, log = _collector(max_calls_per_turn=100)
    event = ToolCallAttemptEvent(timestamp=TS, tool_name="x", agent_id="a", turn_id="t1", session_id="s")
    n = 100_000

    def vary(ev: AuditEvent, i: int) -> None:
        ev.tool_name = f"tool_{i % 7}"  # type: ignore[attr-defined]

    def check(sizes: dict[str, int]) -> None:
        assert sizes["max_calls_in_a_turn"] <= 100
        assert sizes["calls_in_turns"] == sizes["unfinished_calls"] <= 100

    with caplog.at_level(logging.WARNING, logger="auditspan"):
        _feed(collector, n, event, vary, check)
    assert collector.stats.calls_evicted == n - 100
    assert log.records == n
    assert _bound_lines(caplog, "unfinished tool calls") == 1


def test_attempts_never_completed_across_turns_stay_within_max_open_calls() -> None:
    collector, log = _collector(max_calls_per_turn=1_000, max_open_calls=2_000)
    event = ToolCallAttemptEvent(timestamp=TS, tool_name="x", agent_id="a", turn_id="t", session_id="s")
    n = 100_000

    def vary(ev: AuditEvent, i: int) -> None:
        ev.turn_id = f"turn_{i % 500}"  # 500 synthetic turns, each far below its own bound

    def check(sizes: dict[str, int]) -> None:
        assert sizes["turns"] == 500
        assert sizes["unfinished_calls"] == sizes["calls_in_turns"] <= 2_000

    _feed(collector, n, event, vary, check)
    assert collector.stats.calls_evicted == n - 2_000
    assert log.records == n


def test_governing_events_never_attempted_hold_a_bounded_number_of_span_events() -> None:
    collector, log = _collector(max_calls_per_turn=64)
    event = ToolPolicyDecisionEvent(timestamp=TS, tool_name="x", action="allow", agent_id="a", turn_id="t1")
    n = 100_000

    def vary(ev: AuditEvent, i: int) -> None:
        ev.tool_name = f"tool_{i % 3}"  # type: ignore[attr-defined]

    def check(sizes: dict[str, int]) -> None:
        assert sizes["unfinished_calls"] <= 64
        assert sizes["held_span_events"] <= 64  # one policy decision per pending call
        assert sizes["held_records"] <= 64  # and its record, held for the attempt that never comes

    _feed(collector, n, event, vary, check)
    assert collector.force_flush()  # held records are acknowledged by a flush
    assert log.records == n


def test_distinct_event_types_on_an_open_call_are_not_all_remembered() -> None:
    collector, log = _collector()
    collector.emit(ToolCallAttemptEvent(timestamp=TS, tool_name="x", agent_id="a", turn_id="t1"))
    event = GenericAuditEvent(event_type="skill_used", timestamp=TS, agent_id="a", turn_id="t1")
    n = 100_000

    def vary(ev: AuditEvent, i: int) -> None:
        ev.event_type = f"custom_{i}"
        ev.extra["tool_name"] = "x"  # type: ignore[attr-defined]

    def check(sizes: dict[str, int]) -> None:
        assert sizes["max_seen_types"] <= 6 + 16

    _feed(collector, n, event, vary, check)
    assert log.records == n + 1


def test_turns_of_distinct_sessions_never_ended_stay_within_max_open_turns() -> None:
    collector, log = _collector(max_open_turns=500)
    event = TurnStartEvent(timestamp=TS, agent_id="a", turn_id="t")
    n = 100_000

    def vary(ev: AuditEvent, i: int) -> None:
        ev.session_id = f"s{i}"

    def check(sizes: dict[str, int]) -> None:
        assert sizes["turns"] <= 500 and sizes["latest"] <= sizes["turns"]

    _feed(collector, n, event, vary, check)
    assert collector.stats.turns_evicted == n - 500
    assert log.records == n


def test_home_turns_and_turns_share_one_bound() -> None:
    """Calls without a turn in alternation with real turns: the homes cannot crowd the bound out."""
    collector, log = _collector(max_open_turns=100)
    start = TurnStartEvent(timestamp=TS, agent_id="a", turn_id="t")
    lone = ToolCallAttemptEvent(timestamp=TS, tool_name="x", agent_id="b", turn_id=None)
    for i in range(20_000):
        start.session_id = lone.session_id = f"s{i}"
        collector.emit(start if i % 2 else lone)
    sizes = collector.state_sizes()
    assert sizes["turns"] == 100 and 0 < sizes["home_turns"] < 100
    assert collector.stats.turns_evicted + collector.stats.home_turns_evicted == 20_000 - 100
    assert log.records == 20_000


def test_rule_engine_sessions_triggers_and_ids_stay_bounded_and_evictions_are_counted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    engine = RuleEngine([PII_EXFILTRATION_RULE], max_sessions=1_000, max_triggers_per_session=64)
    record: dict[str, Any] = {"type": "DATABASE_READ", "target": "crm.pii_emails", "timestamp": TS}
    n = 100_000
    with caplog.at_level(logging.WARNING, logger="auditspan"):
        for i in range(n):  # distinct sessions, each with a pending trigger
            record.update(session_id=f"s{i}", event_id=f"evt_a{i}")
            engine.observe(record)
        assert engine.stats()["sessions"] == 1_000
        for i in range(n):  # one session, triggers that never expire (the same second)
            record.update(session_id="one", event_id=f"evt_b{i}")
            engine.observe(record)
    stats, evictions = engine.stats(), engine.evictions()
    assert stats["sessions"] <= 1_000 and stats["triggers"] <= 1_000 * 64 and stats["seen_ids"] <= 1_000 * 64
    assert evictions["sessions_evicted"] == n - 1_000 + 1  # the one session pushed out one more
    assert evictions["triggers_dropped"] == n - 64
    assert evictions["ids_forgotten"] == n - 64
    for what in ("sessions", "pending triggers per session", "event ids remembered per session"):
        assert _bound_lines(caplog, f"rule engine: {what}") == 1


def test_classifier_memo_stays_bounded_in_entries_and_in_size() -> None:
    classifier = Classifier(cache_size=512)
    for i in range(30_000):
        classifier.classify(f"tool_{i}", "")
    huge = "n" * 1_000_000
    for i in range(200):  # names far beyond 256 characters are classified, never memoised
        classifier.classify(huge + str(i), "")
    info = classifier.cache_info()
    assert info["size"] == 512 and info["evictions"] == 30_000 - 512


def test_redactor_memos_stay_bounded_in_entries_and_in_size() -> None:
    redactor = Redactor()
    for i in range(10_000):
        redactor.scrub(f"error number {i}")
        redactor.redact_value({f"key_{i}": "v"})
    for i in range(1_000):  # keys too long to memoise
        redactor.redact_value({"k" * 1_000 + str(i): "w"})
    assert len(redactor._scrub_memo) <= 4_096
    assert len(redactor._key_cache) <= 4_096
    assert max(map(len, redactor._key_cache)) <= 256

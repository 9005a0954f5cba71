"""The benchmark code paths on tiny sizes: they run, and every count they report is right.

No timing is asserted (machines are noisy); what is asserted is that each
benchmark did the work it claims -- spans exported, records written, lines on
disk -- and that the bare-SDK baseline makes the same spans as the collector.
"""

from __future__ import annotations

import io
import json
import random
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from benchmarks import endtoend, instructions, memory, micro
from benchmarks.baseline import BareSdkAgent, shapes
from benchmarks.suite import QUICK, run_suite, sustained
from benchmarks.timing import Sample, interleave
from benchmarks.workload import concurrent_turns, event_stream, events_per_turn, turn_events
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from auditspan import AuditEvent, SpanCollector

TINY = replace(
    QUICK,
    name="tiny",
    reps=1,
    per_event_turns=3,
    classification_calls=20,
    log_records=100,
    e2e_seconds=0,
    instruction_turns=0,
    memory_events=220,
    memory_open_turns=5,
    memory_warmup_turns=2,
    scaling_reps=1,
    calls_per_turn_sizes=(1, 3),
    calls_per_turn_events=40,
    open_turn_sizes=(1, 4),
    open_turn_calls=8,
)


def _finished(run: str, events: Sequence[AuditEvent]) -> InMemorySpanExporter:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    if run == "collector":
        collector = SpanCollector(tracer_provider=provider)
        for event in events:
            collector.emit(event)
        collector.shutdown()
    else:
        agent = BareSdkAgent(provider)
        for event in events:
            agent.handle(event)
    return exporter


def test_workload_turn_has_the_runtime_order_and_about_one_failure_in_ten() -> None:
    events = list(event_stream(200))
    assert len(events) == 200 * events_per_turn(4) == 200 * 22
    turn = turn_events(random.Random(1), 0)
    kinds = [e.event_type for e in turn]
    assert kinds[0] == "turn_start" and kinds[-1] == "turn_end"
    for call in range(4):
        first, *middle, last = kinds[1 + 5 * call : 6 + 5 * call]
        assert [first, *middle] == [
            "tool_loop_warning",
            "tool_policy_decision",
            "tool_call_attempt",
            "sandbox_decision",
        ]
        assert last in ("tool_call_complete", "tool_call_failure")
    assert len({e.tool_name for e in turn if e.event_type == "tool_call_attempt"}) == 4  # type: ignore[attr-defined]
    failures = sum(e.event_type == "tool_call_failure" for e in events)
    assert 50 <= failures <= 110  # about 10% of 800 calls


def test_baseline_makes_the_same_spans_attributes_and_events_as_the_collector() -> None:
    events = list(event_stream(12))
    ours = _finished("collector", events).get_finished_spans()
    bare = _finished("bare", events).get_finished_spans()
    assert len(ours) == len(bare) == 12 * 5
    assert shapes(ours) == shapes(bare)
    assert sum(s.status.status_code.name == "ERROR" for s in bare) == sum(
        e.event_type == "tool_call_failure" for e in events
    )


def test_interleave_rotates_and_keeps_every_sample() -> None:
    order: list[str] = []

    def case(name: str) -> Callable[[], Sample]:
        def run() -> Sample:
            order.append(name)
            return Sample(wall=2.0, cpu=1.0, ops=4)

        return run

    measured = interleave({"a": case("a"), "b": case("b")}, reps=2, warmup=False)
    assert order == ["a", "b", "b", "a"]
    assert measured.wall["a"] == [0.5, 0.5]
    assert measured.cpu["b"] == [0.25, 0.25]
    assert measured.ratio("a", "b") == 1.0


def test_per_event_runs_every_variant_and_loses_nothing(tmp_path: Path) -> None:
    checks = micro.Checks()
    result = micro.per_event(turns=3, reps=1, workdir=tmp_path, checks=checks)
    assert result["events"] == 66
    assert set(result["cases"]) == {
        "bare_sdk",
        "auditspan",
        "collector_only",
        "audit_log_only",
        "without_sdk_spans",
    }
    assert checks.problems == []
    # Warm-up and one rep of: bare (spans), collector+log (spans, records, errors, lines),
    # collector (spans, records, errors), log alone (records written, lines), collector+log on the
    # no-op tracer (no spans, records, errors, lines).
    assert checks.checked == 2 * (1 + 4 + 3 + 2 + 4)
    assert list(tmp_path.iterdir()) == []  # every audit file was counted and removed


def test_classification_and_canonical_log_count_what_they_did(tmp_path: Path) -> None:
    result = micro.classification(count=20, reps=1)
    assert result["calls"] == 20
    assert sum(result["types"].values()) == 20
    assert {"DATABASE_READ", "EXTERNAL_API_CALL"} & set(result["types"])
    checks = micro.Checks()
    log = micro.canonical_log(records_count=150, reps=1, workdir=tmp_path, checks=checks)
    assert log["records"] == 150
    assert set(log["agent_thread"]) == {"json_dumps_record", "encode_record", "export"}
    assert checks.problems == []
    assert checks.checked == 2 * (2 + 1 + 2)  # export runs, naive writer, audit-log throughput


def test_scaling_benchmarks_produce_every_span(tmp_path: Path) -> None:
    checks = micro.Checks()
    calls = micro.scaling_calls_per_turn((1, 3), events_target=40, reps=1, workdir=tmp_path, checks=checks)
    assert set(calls["cases"]) == {"auditspan@1", "bare_sdk@1", "auditspan@3", "bare_sdk@3"}
    turns = micro.scaling_open_turns((1, 4), calls=8, reps=1, workdir=tmp_path, checks=checks)
    assert set(turns["last_over_first"]) == {
        "auditspan_wall",
        "auditspan_cpu",
        "bare_sdk_wall",
        "bare_sdk_cpu",
    }
    assert checks.problems == []
    assert checks.checked > 0


def test_concurrent_turns_spread_calls_over_every_open_turn() -> None:
    starts, middle, ends = concurrent_turns(4, calls=10)
    assert len(starts) == len(ends) == 4
    assert len(middle) == 10 * 5
    assert {e.turn_id for e in middle} == {e.turn_id for e in starts}
    assert sum(e.function_calls_count for e in ends) == 10  # type: ignore[attr-defined]


@pytest.mark.parametrize("variant", ["auditspan", "bare_sdk"])
def test_memory_scenarios_count_events_spans_and_open_turns(tmp_path: Path, variant: str) -> None:
    stream = memory.run_scenario("stream", variant, 220, tmp_path, warmup_turns=2)
    assert stream["events"] == 220
    assert stream["spans_exported"] == stream["spans_total"] == 5 * 2 + 5 * 10
    opened = memory.run_scenario("open_turns", variant, 7, tmp_path, warmup_turns=2)
    assert opened["events"] == 7 * 6
    assert opened["open_turns"] == 7
    assert opened["spans_exported"] == opened["spans_total"] == 5 * 2 + 7 * 2
    if variant == "auditspan":
        assert stream["records"] == stream["events_total"] == 22 * 2 + 220
        assert opened["records"] == opened["events_total"]


def test_suite_writes_json_and_a_verdict_per_target(tmp_path: Path) -> None:
    out = io.StringIO()
    report = run_suite(TINY, json_path=tmp_path / "r.json", out=out)
    saved = json.loads((tmp_path / "r.json").read_text())
    assert saved["results"].keys() == report["results"].keys()
    assert "end_to_end" not in saved["results"]
    assert saved["checks"]["problems"] == []
    targets = {v["target"]: v["status"] for v in saved["targets"]}
    assert len(targets) == 8
    assert [status for name, status in targets.items() if "rotel" in name] == ["SKIP", "SKIP"]
    assert targets["every run produced every span and record it should (counts)"] == "PASS"
    assert set(targets.values()) <= {"PASS", "FAIL", "SKIP"}
    text = out.getvalue()
    assert "targets" in text and "per event (66 events of 3 turns, 1 reps)" in text
    assert saved["results"]["memory"]["stream:auditspan"]["events"] == 220


@pytest.mark.e2e
@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_end_to_end_into_rotel_delivers_every_span_and_record(tmp_path: Path, protocol: str) -> None:
    with endtoend.Rotel(tmp_path) as rotel:
        run = endtoend.measure(rotel, protocol, seconds=0.5, rate=0)
        paced = endtoend.measure(rotel, protocol, seconds=0.5, rate=2_000)
    for result in (run, paced):
        assert result["events"] == result["turns"] * 22 > 0
        assert result["spans_produced"] == result["turns"] * 5 + result["checkpoints"]  # and witnesses
        assert result["spans_exported"] == result["spans_produced"]
        assert result["spans_failed"] == result["spans_dropped"] == 0
        assert result["rotel_received"] == result["spans_produced"]
        assert result["records_written"] == result["records"] == result["events"]
    assert paced["events"] <= 2_000 * 0.5 + 22  # pacing held it to the rate (count, not time)


def _paced(rate: float, *, spans_lost: int = 0) -> dict[str, Any]:
    return {
        "events_per_s": rate,
        "events": 220,
        "records_written": 220,
        "spans_produced": 50,
        "rotel_received": 50 - spans_lost,
        "spans_dropped": spans_lost,
        "spans_failed": 0,
    }


def test_the_sustained_rate_is_the_median_run_and_every_run_must_deliver_everything() -> None:
    assert sustained([_paced(9_800), _paced(10_300), _paced(10_100)]) == (10_100, True)
    assert sustained([_paced(10_300), _paced(10_200, spans_lost=1), _paced(10_100)]) == (10_200, False)


@pytest.mark.e2e
def test_suite_end_to_end_section_into_rotel_gives_a_verdict_per_protocol(tmp_path: Path) -> None:
    out = io.StringIO()
    report = run_suite(replace(TINY, e2e_seconds=0.5, e2e_paced_reps=2), out=out)
    e2e = report["results"]["end_to_end"]
    assert sorted(e2e) == sorted(
        f"{protocol}:{label}"
        for protocol in ("grpc", "http/protobuf")
        for label in ("bare_sdk_unpaced", "auditspan_unpaced", "auditspan_paced#1", "auditspan_paced#2")
    )
    verdicts = [v for v in report["targets"] if "rotel" in v["target"]]
    assert [v["target"].split("(")[1].split(")")[0] for v in verdicts] == ["gRPC", "HTTP"]
    for verdict, protocol in zip(verdicts, ("grpc", "http/protobuf"), strict=True):
        runs = [e2e[f"{protocol}:auditspan_paced#{i}"] for i in (1, 2)]
        rate, complete = sustained(runs)
        assert complete and verdict["value"] == rate
        assert verdict["status"] == ("PASS" if rate >= 10_000 else "FAIL")
        assert f"median of {runs[0]['events_per_s']:,.0f}, {runs[1]['events_per_s']:,.0f}" in verdict["shown"]
    assert report["checks"]["problems"] == []
    assert out.getvalue().count("auditspan, paced at 10,200/s #") == 4


def test_instruction_counts_are_real_callgrind_totals_of_the_subject_alone() -> None:
    result = instructions.measure(1, subjects=("bare_sdk",))
    none, bare = result["runs"]["none"], result["runs"]["bare_sdk"]
    assert (none["events"], none["spans_exported"], none["records_written"]) == (0, 0, 0)
    assert (bare["events"], bare["spans_exported"], bare["records_written"]) == (22, 5, 0)
    # Python's start-up alone is hundreds of millions of instructions; 22 events add tens of thousands each.
    assert none["instructions"] > 100_000_000
    assert 10_000 < result["per_event"]["bare_sdk"] < 10_000_000
    assert result["ratio"] == {"bare_sdk": 1.0}


def test_a_callgrind_run_without_a_count_is_an_error() -> None:
    assert instructions.collected("==41== Events    : Ir\n==41== Collected : 1234567\n") == 1234567
    with pytest.raises(RuntimeError, match="callgrind reported no count"):
        instructions.collected("valgrind: command not found")

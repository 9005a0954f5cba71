"""Replay of audit logs: the shared line reader, trace shape and timing, stable ids, bad lines, memory."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan

from auditspan import attributes as attr
from auditspan.cli import main
from auditspan.events import GenericAuditEvent, ToolCallAttemptEvent, parse_event, timestamp_to_ns
from auditspan.otlp_file import read_spans
from auditspan.replay import LineError, LogLine, iter_log, replay_files

from ..conftest import event_records, event_spans

SEED = Path(__file__).parents[1] / "data" / "logs" / "seed-run.jsonl"
#: Only the settings a test sets itself: no OTLP endpoint, no audit-log override from the outside.
CLEAN_ENV: dict[str, str] = {}


pytestmark = pytest.mark.usefixtures("clean_environment")


# ------------------------------------------------------------------ helpers
Shape = tuple[str, str | None, str | None, int | None, int, int, bool]


def _span_facts(span: ReadableSpan | Mapping[str, Any]) -> dict[str, Any]:
    """The facts compared across paths, from an SDK span or an OTLP/JSON span dict."""
    if isinstance(span, Mapping):
        return {
            "name": span["name"],
            "id": span["spanId"],
            "trace": span["traceId"],
            "parent": span.get("parentSpanId") or None,
            "start": int(span["startTimeUnixNano"]),
            "end": int(span["endTimeUnixNano"]),
            "attrs": span["attributeMap"],
            "error": span.get("status", {}).get("code") == "STATUS_CODE_ERROR",
        }
    assert span.context is not None
    return {
        "name": span.name,
        "id": f"{span.context.span_id:016x}",
        "trace": f"{span.context.trace_id:032x}",
        "parent": f"{span.parent.span_id:016x}" if span.parent else None,
        "start": span.start_time,
        "end": span.end_time,
        "attrs": dict(span.attributes or {}),
        "error": span.status.status_code is trace.StatusCode.ERROR,
    }


def shape(spans: Iterable[ReadableSpan | Mapping[str, Any]]) -> list[Shape]:
    """Name, parent name, outcome, attempt, start, end, error of every span: the trace shape."""
    facts = [_span_facts(s) for s in spans]
    names = {f["id"]: f["name"] for f in facts}
    return sorted(
        (
            f["name"],
            names.get(f["parent"]) if f["parent"] else None,
            f["attrs"].get(attr.TOOL_OUTCOME),
            f["attrs"].get(attr.TOOL_ATTEMPT),
            f["start"],
            f["end"],
            f["error"],
        )
        for f in facts
    )


def ids(spans: Iterable[Mapping[str, Any]]) -> list[tuple[str, str, str | None, str]]:
    return sorted((s["traceId"], s["spanId"], s.get("parentSpanId") or None, s["name"]) for s in spans)


def seed_lines() -> list[dict[str, Any]]:
    return [json.loads(line) for line in SEED.read_text(encoding="utf-8").splitlines()]


def stamp_of(event_type: str, turn_id: str) -> int:
    line = next(d for d in seed_lines() if d["event_type"] == event_type and d["turn_id"] == turn_id)
    return timestamp_to_ns(line["timestamp"])


def replay_to(tmp: Path, *paths: Path, **options: Any) -> list[dict[str, Any]]:
    summary = replay_files(list(paths), output_dir=tmp, environ=CLEAN_ENV, **options)
    assert summary.lines_skipped == 0
    return event_spans(read_spans(tmp / "traces.jsonl"))


_ENVELOPE = '"agent_id": "a", "turn_id": "t1", "session_id": "s", "severity": "info", "metadata": {}'
#: Bad: 2 (JSON cut short), 3 (an array), 4 (a wrong field type), 7 (cut off, no newline); 5 is blank.
MALFORMED = "\n".join(
    [
        '{"event_type": "turn_start", "timestamp": "2026-03-02T09:00:00+00:00", '
        + _ENVELOPE
        + ', "prompt_preview": "hi"}',
        '{"event_type": "tool_call_attempt", "tool_name": "x"',
        "[1, 2, 3]",
        '{"event_type": "tool_call_complete", "timestamp": "2026-03-02T09:00:01+00:00", "turn_id": "t1", '
        '"tool_name": "x", "duration_ms": "fast"}',
        "",
        '{"event_type": "turn_end", "timestamp": "2026-03-02T09:00:02+00:00", ' + _ENVELOPE + ", "
        '"content_preview": "", "function_calls_count": 0}',
        '{"event_type": "turn_st',
    ]
)


@pytest.fixture
def malformed(tmp_path: Path) -> Path:
    path = tmp_path / "bad.jsonl"
    path.write_text(MALFORMED, encoding="utf-8")
    assert not MALFORMED.endswith("\n")  # the last line is cut off, as after a crash mid-write
    return path


# ---------------------------------------------------------------- iter_log
def test_iter_log_reads_the_seed_file_line_by_line() -> None:
    items = list(iter_log(SEED))
    assert [n for n, _ in items] == list(range(1, 67))
    lines = [item for _, item in items]
    assert all(isinstance(item, LogLine) for item in lines)
    first = lines[0]
    assert isinstance(first, LogLine) and first.data["event_type"] == "turn_start" and not first.is_canonical
    kinds = {type(item.event).__name__ for item in lines if isinstance(item, LogLine)}
    assert "GenericAuditEvent" in kinds  # skill_used is carried, not dropped
    skill = next(i for i in lines if isinstance(i, LogLine) and i.data["event_type"] == "skill_used")
    assert (
        isinstance(skill.event, GenericAuditEvent)
        and skill.event.extra["skill_name"] == "newsletter-formatter"
    )
    assert isinstance(lines[3], LogLine) and isinstance(lines[3].event, ToolCallAttemptEvent)


def test_seed_file_is_the_seed_serialisation() -> None:
    # Every line is byte for byte what the seed's to_json() writes for the parsed event.
    for line in SEED.read_text(encoding="utf-8").splitlines():
        event = parse_event(line)
        assert event.to_json() == line
    stamps = [d["timestamp"] for d in seed_lines()]
    assert any(s.endswith("+00:00") and "." in s for s in stamps)
    assert any(s.endswith("+00:00") and "." not in s for s in stamps)
    assert any(s.endswith("Z") for s in stamps)
    assert any(d["turn_id"] is None for d in seed_lines())


def test_iter_log_reports_each_malformed_line_with_its_number(malformed: Path) -> None:
    items = dict(iter_log(malformed))
    errors = {n: item for n, item in items.items() if isinstance(item, LineError)}
    assert sorted(errors) == [2, 3, 4, 7]
    assert sorted(n for n, item in items.items() if isinstance(item, LogLine)) == [1, 6]
    assert errors[2].message.startswith("not valid JSON")
    assert errors[3].message == "an audit event must be a JSON object, got array"
    assert errors[4].message.startswith("field 'duration_ms' must be int or float, got str")
    assert errors[7].incomplete and "incomplete last line" in errors[7].message
    assert not any(errors[n].incomplete for n in (2, 3, 4))
    assert str(errors[4]) == f"{malformed}:4: {errors[4].message}"


def test_a_last_line_without_newline_that_parses_is_fine(tmp_path: Path) -> None:
    path = tmp_path / "log.jsonl"
    path.write_text(SEED.read_text(encoding="utf-8").rstrip("\n"), encoding="utf-8")
    assert all(isinstance(item, LogLine) for _, item in iter_log(path))


def test_iter_log_reports_invalid_utf8(tmp_path: Path) -> None:
    path = tmp_path / "log.jsonl"
    path.write_bytes(b'{"event_type": "error", "error_message": "\xff\xfe"}\n')
    [(n, item)] = list(iter_log(path))
    assert n == 1 and isinstance(item, LineError) and "not valid JSON" in item.message


# ------------------------------------------------------------ trace shape
def test_replay_gives_the_same_trace_shape_as_the_live_collector(tmp_path: Path, harness: Any) -> None:
    for line in SEED.read_text(encoding="utf-8").splitlines():
        harness.collector.emit(parse_event(line))
    harness.collector.shutdown()
    live = shape(harness.spans())
    replayed = shape(replay_to(tmp_path, SEED))
    assert replayed == live
    names = [s[0] for s in replayed]
    assert names.count("invoke_agent support-agent") == 3
    assert names.count("invoke_agent ops-agent") == 1
    assert names.count("execute_tool fetch_rates") == 2
    assert "audit.error" in names  # the error with no turn open


def test_replayed_calls_have_the_expected_outcomes(tmp_path: Path) -> None:
    spans = replay_to(tmp_path, SEED)
    by_name: dict[str, list[dict[str, Any]]] = {}
    for span in spans:
        by_name.setdefault(span["name"], []).append(span)
    [denied] = by_name["execute_tool send_email"]
    assert denied["attributeMap"][attr.TOOL_OUTCOME] == "denied"
    assert denied["status"]["code"] == "STATUS_CODE_ERROR"
    failed, retried = sorted(by_name["execute_tool fetch_rates"], key=lambda s: int(s["startTimeUnixNano"]))
    assert failed["attributeMap"][attr.TOOL_OUTCOME] == "failure"
    assert failed["attributeMap"][attr.ERROR_TYPE] == "TimeoutError"
    assert retried["attributeMap"][attr.TOOL_ATTEMPT] == 2
    assert [link["spanId"] for link in retried.get("links", [])] == [failed["spanId"]]
    blocked = [
        s for s in by_name["execute_tool search_docs"] if s["attributeMap"][attr.TOOL_OUTCOME] == "blocked"
    ]
    assert len(blocked) == 1
    # The LLM call reported with turn_id=None belongs to the turn that was open.
    [llm] = by_name["execute_tool llm_complete"]
    turn2 = next(
        s
        for s in spans
        if s["attributeMap"].get(attr.TURN_ID) == "0f9e8d7c6b5a" and s["name"].startswith("invoke")
    )
    assert llm["parentSpanId"] == turn2["spanId"]
    # The unknown event is carried on its turn as a span event.
    turn1 = next(
        s
        for s in spans
        if s["attributeMap"].get(attr.TURN_ID) == "a1b2c3d4e5f6" and s["name"].startswith("invoke")
    )
    assert "audit.skill_used" in [e["name"] for e in turn1.get("events", [])]


def test_parallel_same_name_calls_replay_as_two_calls(tmp_path: Path) -> None:
    spans = [s for s in replay_to(tmp_path, SEED) if s["name"] == "execute_tool fetch_weather"]
    assert len(spans) == 2
    assert all(s["attributeMap"][attr.POLICY_DECISION] == "ALLOW" for s in spans)
    assert all(s["attributeMap"][attr.TOOL_OUTCOME] == "success" for s in spans)


def test_replay_keeps_the_events_own_timing(tmp_path: Path) -> None:
    spans = replay_to(tmp_path, SEED)
    turns = {s["attributeMap"].get(attr.TURN_ID): s for s in spans if s["name"].startswith("invoke_agent")}
    for turn_id in ("a1b2c3d4e5f6", "0f9e8d7c6b5a", "3c4d5e6f7a8b", "5e4d3c2b1a09"):
        assert int(turns[turn_id]["startTimeUnixNano"]) == stamp_of("turn_start", turn_id)
        assert int(turns[turn_id]["endTimeUnixNano"]) == stamp_of("turn_end", turn_id)
    # Turn 1 ends on a fraction-less timestamp, turn 2 runs on TypeScript "...Z" ones.
    assert int(turns["a1b2c3d4e5f6"]["endTimeUnixNano"]) == timestamp_to_ns("2026-03-02T09:15:06+00:00")
    assert int(turns["0f9e8d7c6b5a"]["startTimeUnixNano"]) == timestamp_to_ns("2026-03-02T09:15:10.250Z")
    failure = next(d for d in seed_lines() if d["event_type"] == "tool_call_failure")
    failed = next(s for s in spans if s["attributeMap"].get(attr.TOOL_OUTCOME) == "failure")
    assert int(failed["endTimeUnixNano"]) == timestamp_to_ns(failure["timestamp"])


# -------------------------------------------------------------- stable ids
def test_a_second_replay_gives_identical_ids(tmp_path: Path) -> None:
    first = replay_to(tmp_path / "one", SEED)
    second = replay_to(tmp_path / "two", SEED)
    assert ids(first) == ids(second)
    assert len({s["spanId"] for s in first}) == len(first) >= 18
    # Same output folder, with --append: the file holds every span twice, with the same ids.
    again = replay_to(tmp_path / "one", SEED, append=True)
    assert ids(again) == sorted(ids(first) * 2)


def test_another_id_namespace_gives_other_ids_and_the_same_trace(tmp_path: Path) -> None:
    default = replay_to(tmp_path / "a", SEED)
    other = replay_to(tmp_path / "b", SEED, id_namespace="second-copy")
    assert shape(other) == shape(default)
    assert not {s["spanId"] for s in other} & {s["spanId"] for s in default}
    assert ids(replay_to(tmp_path / "c", SEED, id_namespace="second-copy")) == ids(other)


def test_replaying_a_canonical_log_keeps_its_event_ids_and_trace(tmp_path: Path) -> None:
    seed_spans = replay_to(tmp_path / "a", SEED, audit_log=tmp_path / "a.jsonl")
    records = event_records((tmp_path / "a.jsonl").read_text(encoding="utf-8").splitlines())
    assert len(records) > 66  # the built-in PII rule matched the external calls after the PII read
    derived = [r for r in records if r["event_type"] == attr.EVENT_TYPE_RULE_MATCH]
    assert derived

    summary = replay_files(
        [tmp_path / "a.jsonl"], output_dir=tmp_path / "b", audit_log=tmp_path / "b.jsonl", environ={}
    )
    assert summary.derived_skipped == len(derived)
    assert summary.events_replayed == 66
    again = event_records((tmp_path / "b.jsonl").read_text(encoding="utf-8").splitlines())
    assert [r["event_id"] for r in again] == [r["event_id"] for r in records]
    assert ids(event_spans(read_spans(tmp_path / "b" / "traces.jsonl"))) == ids(seed_spans)
    assert [r["telemetry"] for r in again] == [r["telemetry"] for r in records]


def test_replay_refuses_to_append_to_its_own_input(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = tmp_path / "a.jsonl"
    log.write_bytes(SEED.read_bytes())
    status = main(["replay", str(log), "--audit-log", str(log), "--output-dir", str(tmp_path)])
    assert status == 2
    assert "is also an input file" in capsys.readouterr().err
    assert log.read_bytes() == SEED.read_bytes()


# ---------------------------------------------------------- the command
def test_replay_command_prints_a_summary(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status = main(["replay", str(SEED), "--output-dir", str(tmp_path), "--service-name", "old-agent"])
    out = capsys.readouterr().out
    assert status == 0
    assert "replayed 66 events from 1 file(s): 66 lines read, 0 skipped" in out
    spans = event_spans(read_spans(tmp_path / "traces.jsonl"))
    assert f"spans: {len(spans)} exported, 0 failed" in out
    assert str((tmp_path / "traces.jsonl").resolve()) in out
    assert {s["resource"]["service.name"] for s in spans} == {"old-agent"}
    assert not (tmp_path / "audit.jsonl").exists()  # no audit log unless asked for


def test_malformed_lines_are_reported_and_skipped(
    tmp_path: Path, malformed: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status = main(["replay", str(malformed), "--output-dir", str(tmp_path)])
    captured = capsys.readouterr()
    assert status == 1
    err_lines = captured.err.splitlines()
    assert [line.split(": ", 1)[0] for line in err_lines] == [f"{malformed}:{n}" for n in (2, 3, 4, 7)]
    assert "field 'duration_ms'" in err_lines[2]
    assert "incomplete last line" in err_lines[3]
    assert "Traceback" not in captured.err
    assert (
        "replayed 2 events from 1 file(s): 6 lines read, 4 skipped (incomplete last line: 1)" in captured.out
    )
    names = sorted(s["name"] for s in event_spans(read_spans(tmp_path / "traces.jsonl")))
    assert names == ["invoke_agent a"]


def test_strict_replays_nothing_when_a_line_is_bad(
    tmp_path: Path, malformed: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status = main(["replay", str(SEED), str(malformed), "--strict", "--output-dir", str(tmp_path)])
    captured = capsys.readouterr()
    assert status == 1
    assert len(captured.err.splitlines()) == 5  # the four bad lines and the verdict
    assert "--strict: 4 malformed line(s) in 2 file(s); nothing was replayed" in captured.err
    assert not (tmp_path / "traces.jsonl").exists()


def test_strict_replays_a_clean_log(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["replay", str(SEED), "--strict", "--output-dir", str(tmp_path)]) == 0
    spans = event_spans(read_spans(tmp_path / "traces.jsonl"))
    assert f"spans: {len(spans)} exported, 0 failed" in capsys.readouterr().out


def test_a_missing_file_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status = main(["replay", str(SEED), str(tmp_path / "nope.jsonl"), "--output-dir", str(tmp_path)])
    err = capsys.readouterr().err
    assert status == 2
    assert f"cannot read {tmp_path / 'nope.jsonl'}: No such file or directory" in err
    assert not (tmp_path / "traces.jsonl").exists()


def test_a_bad_setting_is_a_configuration_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "carrier-pigeon")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318")
    status = main(["replay", str(SEED), "--output-dir", str(tmp_path)])
    err = capsys.readouterr().err
    assert status == 2
    assert "configuration error: OTEL_EXPORTER_OTLP_PROTOCOL" in err
    assert "Traceback" not in err


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_spans_that_cannot_be_delivered_give_exit_3(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://127.0.0.1:{_closed_port()}")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "300")
    status = main(["replay", str(SEED), "--output-dir", str(tmp_path)])
    out = capsys.readouterr().out
    assert status == 3
    assert re.search(r"spans: 0 exported, (\d+) failed", out)
    assert int(re.search(r"spans: 0 exported, (\d+) failed", out).group(1)) >= 18  # type: ignore[union-attr]


# ------------------------------------------------------------------ memory
_MEASURE = """
import resource, sys
from auditspan.replay import replay_files
summary = replay_files([sys.argv[1]], output_dir=sys.argv[2])
assert summary.events_replayed == int(sys.argv[3]), summary
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def _write_log(path: Path, lines: int) -> None:
    """A seed-shaped log: turns of three allowed, sandboxed, completed calls; about 330 bytes a line."""
    base_ns = timestamp_to_ns("2026-01-01T00:00:00+00:00")
    written = 0
    turn = 0
    from datetime import datetime, timezone

    with path.open("w", encoding="utf-8") as f:
        while written < lines:
            turn += 1
            common = {
                "agent_id": "a",
                "turn_id": f"{turn:012x}",
                "session_id": f"s{turn % 50}",
                "metadata": {},
            }
            events: list[dict[str, Any]] = [{"event_type": "turn_start", "prompt_preview": "p" * 100}]
            for c in range(3):
                events += [
                    {
                        "event_type": "tool_loop_warning",
                        "tool_name": "run_sql",
                        "pattern": "none",
                        "severity_level": "ok",
                    },
                    {
                        "event_type": "tool_policy_decision",
                        "tool_name": "run_sql",
                        "action": "allow",
                        "policy_source": "d",
                    },
                    {
                        "event_type": "tool_call_attempt",
                        "tool_name": "run_sql",
                        "arguments_preview": f"SELECT a FROM t{c}",
                    },
                    {
                        "event_type": "sandbox_decision",
                        "tool_name": "run_sql",
                        "context": "host",
                        "backend_type": "local",
                    },
                    {
                        "event_type": "tool_call_complete",
                        "tool_name": "run_sql",
                        "duration_ms": 1.0,
                        "result_preview": "r" * 150,
                    },
                ]
            events.append({"event_type": "turn_end", "content_preview": "done", "function_calls_count": 3})
            for event in events[: lines - written]:
                stamp = datetime.fromtimestamp(
                    (base_ns + written * 1_000_000) / 1e9, timezone.utc
                ).isoformat()
                f.write(
                    json.dumps({"event_type": event.pop("event_type"), "timestamp": stamp, **common, **event})
                    + "\n"
                )
                written += 1


def _peak_rss_kb(log: Path, out: Path, events: int) -> int:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "AUDITSPAN_"))}
    # Spans are made but not exported, and no rules: the measure is the reading and the collector.
    env.update(OTEL_TRACES_EXPORTER="none", AUDITSPAN_RULES="none")
    done = subprocess.run(
        [sys.executable, "-c", _MEASURE, str(log), str(out), str(events)],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return int(done.stdout.strip())


def test_replay_streams_in_constant_memory(tmp_path: Path) -> None:
    small, big = tmp_path / "small.jsonl", tmp_path / "big.jsonl"
    _write_log(small, 2_000)
    _write_log(big, 200_000)
    assert big.stat().st_size > 45_000_000  # held in memory, the file alone would show
    small_kb = _peak_rss_kb(small, tmp_path / "o1", 2_000)
    big_kb = _peak_rss_kb(big, tmp_path / "o2", 200_000)
    growth_mb = (big_kb - small_kb) / 1024
    assert growth_mb < 16, f"peak RSS grew by {growth_mb:.1f} MB from 2k to 200k lines"

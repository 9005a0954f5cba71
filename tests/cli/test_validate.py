"""The small schema validator (agrees with jsonschema), record checks, and the validate command."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry import trace
from opentelemetry.util._once import Once

from auditspan.cli import main
from auditspan.records import ENVELOPE_KEYS, record_schema
from auditspan.replay import replay_files
from auditspan.validate import SchemaError, SchemaValidator, check_record, seed_schema, validate_files

SEED = Path(__file__).parents[1] / "data" / "logs" / "seed-run.jsonl"
EVENT_TYPES = [
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
    "skill_used",
]


pytestmark = pytest.mark.usefixtures("clean_environment")


def _canonical_log(directory: Path) -> Path:
    """The seed run's canonical records, written by a replay (every event type, rule matches too)."""
    log = directory / "canonical.jsonl"
    if not log.exists():
        replay_files([SEED], output_dir=directory, audit_log=log, environ={})
    return log


@pytest.fixture(scope="module")
def canonical_log(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    directory = tmp_path_factory.mktemp("canonical")
    with pytest.MonkeyPatch.context() as mp:  # module scope: the autouse fixture has not run yet
        mp.setattr(trace, "_TRACER_PROVIDER", None)
        mp.setattr(trace, "_TRACER_PROVIDER_SET_ONCE", Once())
        yield _canonical_log(directory)


def _records(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


# ------------------------------------------------------------ the validator
def test_the_record_schema_uses_only_supported_keywords() -> None:
    SchemaValidator(record_schema())  # raises SchemaError otherwise


@pytest.mark.parametrize(
    "schema",
    [
        {"type": "object", "additionalProperties": False},
        {"properties": {"a": {"format": "date-time"}}},
        {"allOf": [{"$ref": "#/x"}]},
        {"type": "decimal"},
        {"pattern": "("},
    ],
)
def test_unsupported_schemas_are_refused(schema: dict[str, Any]) -> None:
    with pytest.raises(SchemaError):
        SchemaValidator(schema)


def test_messages_name_the_field() -> None:
    v = SchemaValidator(record_schema())
    record = {"event_type": "tool_call_complete", "timestamp": "now", "metadata": [], "duration_ms": "1"}
    messages = {str(e) for e in v.iter_errors(record)}
    assert (
        "field 'timestamp': does not match "
        + repr(record_schema()["properties"]["timestamp"]["pattern"])
        + ": 'now'"
        in messages
    )
    assert "field 'metadata': must be object, got array" in messages
    assert "field 'duration_ms': must be number, got string '1'" in messages
    assert "field 'event_id': required property missing" in messages
    assert "field 'tool_name': required property missing" in messages  # from the tool_call_complete branch


def test_integers_booleans_and_const_follow_json_schema() -> None:
    v = SchemaValidator({"type": "integer"})
    assert v.is_valid(3) and v.is_valid(3.0) and not v.is_valid(3.5) and not v.is_valid(True)
    c = SchemaValidator({"const": 1})
    assert c.is_valid(1.0) and not c.is_valid(True)
    assert not SchemaValidator({"type": "number"}).is_valid(False)
    assert SchemaValidator({"type": ["string", "null"], "pattern": "^a"}).is_valid(None)


# JSON values for mutations: nulls, booleans, numbers (with integral floats), strings, small containers.
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**53), 2**53)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.sampled_from([0.0, 1.0, 3.0, -2.0])
    | st.text(max_size=12),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=6), children, max_size=3)
    ),
    max_leaves=6,
)
interesting_strings = st.one_of(
    st.from_regex(r"\A\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})?\Z"),
    st.from_regex(r"\A[0-9a-fA-F]{15,33}\Z"),
    st.from_regex(r"\Aevt_[0-9a-z_-]{0,8}\Z"),
    st.from_regex(r"\A[A-Za-z_]{1,12}\Z"),
    st.sampled_from(["", "DATABASE_READ", "database_read", "evt_", "evt_1", "Z"]),
)
values = json_values | interesting_strings
top_keys = st.sampled_from(
    [
        *sorted(record_schema()["properties"]),
        "tool_name",
        "arguments_preview",
        "duration_ms",
        "call_count",
        "function_calls_count",
        "prompt_preview",
        "content_preview",
        "status",
        "result_preview",
        "error_type",
        "error_message",
        "error_context",
        "action",
        "policy_source",
        "context",
        "reason",
        "backend_type",
        "pattern",
        "severity_level",
        "hook_name",
        "mutated_field",
        "extra",
    ]
)


@st.composite
def mutated_records(draw: st.DrawFn, corpus: list[dict[str, Any]]) -> Any:
    record = copy.deepcopy(draw(st.sampled_from(corpus)))
    for _ in range(draw(st.integers(0, 3))):
        action = draw(st.sampled_from(["delete", "set", "nested", "event_type", "items", "replace"]))
        if action == "delete" and record:
            record.pop(draw(st.sampled_from(sorted(record))), None)
        elif action == "set":
            record[draw(top_keys)] = draw(values)
        elif action == "nested":
            outer = draw(st.sampled_from(["governance", "telemetry"]))
            inner = record.get(outer)
            if isinstance(inner, dict):
                key = draw(
                    st.sampled_from(
                        [
                            "decision",
                            "policies_evaluated",
                            "trust_score_at_time",
                            "duration_ms",
                            "trace_id",
                            "span_id",
                        ]
                    )
                )
                if draw(st.booleans()):
                    inner[key] = draw(values)
                else:
                    inner.pop(key, None)
        elif action == "event_type":
            record["event_type"] = draw(st.sampled_from(EVENT_TYPES) | values)
        elif action == "items":
            record["governance"] = {
                "decision": None,
                "trust_score_at_time": draw(values),
                "policies_evaluated": draw(st.lists(values, max_size=3)),
            }
        elif action == "replace":
            return draw(json_values)
    return record


def _theirs(schema: dict[str, Any], instance: Any) -> list[tuple[tuple[Any, ...], str]]:
    errors = jsonschema.Draft202012Validator(schema).iter_errors(instance)
    return sorted(((tuple(e.absolute_path), str(e.validator)) for e in errors), key=repr)


def _ours(schema: dict[str, Any], instance: Any) -> list[tuple[tuple[Any, ...], str]]:
    return sorted(((e.path, e.keyword) for e in SchemaValidator(schema).iter_errors(instance)), key=repr)


def test_agrees_with_jsonschema_on_the_canonical_corpus(canonical_log: Path) -> None:
    corpus = _records(canonical_log)
    assert {r["event_type"] for r in corpus} >= set(EVENT_TYPES) - {"base"}
    for record in corpus:
        assert _theirs(record_schema(), record) == [] == _ours(record_schema(), record)
        assert _ours(seed_schema(), record) == []


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_agrees_with_jsonschema_on_mutated_records(canonical_log: Path, data: st.DataObject) -> None:
    corpus = _records(canonical_log)
    instance = data.draw(mutated_records(corpus))
    for schema in (record_schema(), seed_schema()):
        ours = _ours(schema, instance)
        assert ours == _theirs(schema, instance)
        assert SchemaValidator(schema).is_valid(instance) == (not ours)


@settings(max_examples=200, deadline=None)
@given(instance=json_values)
def test_agrees_with_jsonschema_on_any_json_value(instance: Any) -> None:
    assert _ours(record_schema(), instance) == _theirs(record_schema(), instance)


# ------------------------------------------------------------ check_record
def test_seed_events_and_canonical_records_are_valid(canonical_log: Path) -> None:
    for line in SEED.read_text(encoding="utf-8").splitlines():
        assert check_record(json.loads(line)) == []
    for record in _records(canonical_log):
        assert check_record(record) == [] == check_record(record, schema_only=True)


def test_schema_only_wants_the_envelope() -> None:
    seed_event = json.loads(SEED.read_text(encoding="utf-8").splitlines()[0])
    problems = check_record(seed_event, schema_only=True)
    assert problems == [f"field {key!r}: required property missing" for key in ENVELOPE_KEYS]


def test_parse_event_and_timestamp_checks_go_beyond_the_schema() -> None:
    base = json.loads(SEED.read_text(encoding="utf-8").splitlines()[1])  # a tool_loop_warning
    assert base["event_type"] == "tool_loop_warning"
    # 3.0 is a JSON Schema integer, but the seed's call_count is an int: parse_event says so.
    assert check_record({**base, "call_count": 3.0}) == ["field 'call_count': must be int, got float: 3.0"]
    assert check_record({**base, "timestamp": "2026-13-02T09:15:00+00:00"}) == [
        "field 'timestamp': not an ISO 8601 timestamp: '2026-13-02T09:15:00+00:00'"
    ]
    # One message per field, even when schema and parse_event both object.
    assert check_record({**base, "call_count": "3"}) == [
        "field 'call_count': must be integer, got string '3'"
    ]


# ------------------------------------------------------------------ command
def _bad_log(tmp_path: Path, canonical_log: Path) -> tuple[Path, set[int]]:
    good = _records(canonical_log)
    seed = [json.loads(line) for line in SEED.read_text(encoding="utf-8").splitlines()]
    lines: list[str] = []
    bad: set[int] = set()

    def add(value: Any, *, is_bad: bool, raw: str | None = None) -> None:
        lines.append(raw if raw is not None else json.dumps(value))
        if is_bad:
            bad.add(len(lines))

    add(good[0], is_bad=False)
    add(
        {k: v for k, v in good[1].items() if k != "event_id"} | {"telemetry": good[1]["telemetry"]},
        is_bad=True,
    )
    add({**good[2], "telemetry": {**good[2]["telemetry"], "trace_id": "ABC"}}, is_bad=True)
    add({**good[3], "governance": {**good[3]["governance"], "policies_evaluated": [1]}}, is_bad=True)
    add(seed[4], is_bad=False)
    add(
        {**seed[4], "duration_ms": "fast"}
        if seed[4]["event_type"] == "tool_call_complete"
        else {**seed[4], "severity": 3},
        is_bad=True,
    )
    add(None, is_bad=True, raw='{"event_type": "turn_start", ')
    add(None, is_bad=True, raw="[1, 2]")
    add({**seed[0], "timestamp": "yesterday"}, is_bad=True)
    add({**seed[0], "timestamp": "2026-02-30T10:00:00Z"}, is_bad=True)
    add(seed[1], is_bad=False)
    path = tmp_path / "mixed.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path, bad


def test_validate_finds_every_bad_line(
    tmp_path: Path, canonical_log: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path, bad = _bad_log(tmp_path, canonical_log)
    status = main(["validate", str(path)])
    out = capsys.readouterr().out.splitlines()
    assert status == 1
    reported = {int(line.split(":")[1]) for line in out[:-1]}
    assert reported == bad
    assert all(line.startswith(f"{path}:") for line in out[:-1])
    text = "\n".join(out)
    assert f"{path}:2: field 'event_id': required property missing" in text
    assert f"{path}:3: field 'telemetry.trace_id': does not match '^[0-9a-f]{{32}}$': 'ABC'" in text
    assert f"{path}:4: field 'governance.policies_evaluated.0': must be string, got integer 1" in text
    assert f"{path}:7: not valid JSON" in text
    assert f"{path}:8: an audit event must be a JSON object, got array" in text
    assert f"{path}:10: field 'timestamp': not an ISO 8601 timestamp" in text
    assert out[-1].startswith(
        f"11 line(s) in 1 file(s): 3 valid (1 canonical record(s), 2 seed event(s)), {len(bad)} invalid"
    )


def test_validate_summary_counts(tmp_path: Path, canonical_log: Path) -> None:
    path, bad = _bad_log(tmp_path, canonical_log)
    seen: list[str] = []
    summary = validate_files([path, SEED], on_problem=seen.append)
    assert summary.files == 2 and summary.lines == 11 + 66
    assert summary.invalid == len(bad) and summary.valid == 3 + 66
    assert {n for f, n in summary.invalid_lines} == bad
    assert summary.problems == len(seen) >= len(bad)


def test_validate_clean_logs(canonical_log: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(SEED), str(canonical_log)]) == 0
    out = capsys.readouterr().out
    assert "0 invalid (0 problem(s))" in out and "66 seed event(s)" in out


def test_validate_schema_only(canonical_log: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", "--schema-only", str(canonical_log)]) == 0
    assert main(["validate", "--schema-only", str(SEED)]) == 1
    out = capsys.readouterr().out
    assert f"{SEED}:1: field 'event_id': required property missing" in out
    assert "66 invalid" in out

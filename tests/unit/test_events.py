"""The event model matches the seed system field for field and round-trips through JSON."""

from __future__ import annotations

import dataclasses
import json
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from auditspan import events as ev

# Field order, defaults and severities as the seed document gives them.
SEED_FIELDS = {
    "turn_start": (ev.TurnStartEvent, ["prompt_preview"], "info"),
    "turn_end": (ev.TurnEndEvent, ["content_preview", "function_calls_count"], "info"),
    "tool_call_attempt": (ev.ToolCallAttemptEvent, ["tool_name", "arguments_preview"], "info"),
    "tool_call_complete": (
        ev.ToolCallCompleteEvent,
        ["tool_name", "status", "duration_ms", "result_preview"],
        "info",
    ),
    "tool_call_failure": (ev.ToolCallFailureEvent, ["tool_name", "error_type", "error_message"], "error"),
    "tool_policy_decision": (ev.ToolPolicyDecisionEvent, ["tool_name", "action", "policy_source"], "info"),
    "sandbox_decision": (ev.SandboxDecisionEvent, ["tool_name", "context", "reason", "backend_type"], "info"),
    "tool_loop_warning": (
        ev.ToolLoopWarningEvent,
        ["tool_name", "pattern", "severity_level", "call_count"],
        "warning",
    ),
    "tool_loop_block": (ev.ToolLoopBlockEvent, ["tool_name", "pattern", "call_count"], "error"),
    "hook_mutation": (ev.HookMutationEvent, ["hook_name", "tool_name", "mutated_field"], "info"),
    "error": (ev.ErrorEvent, ["error_type", "error_message", "error_context"], "error"),
}
BASE = ["event_type", "timestamp", "agent_id", "turn_id", "session_id", "severity", "metadata"]


@pytest.mark.parametrize("event_type", sorted(SEED_FIELDS))
def test_field_names_order_severity_and_tag(event_type: str) -> None:
    cls, own, severity = SEED_FIELDS[event_type]
    event = cls()
    assert list(event.to_dict()) == BASE + own
    assert event.event_type == event_type
    assert event.severity == severity
    # event_type is fixed: not an __init__ parameter
    assert "event_type" not in {f.name for f in dataclasses.fields(cls) if f.init}
    with pytest.raises(TypeError):
        cls(event_type="other")  # type: ignore[call-arg]


def test_eleven_typed_events_plus_base() -> None:
    assert len(SEED_FIELDS) == 11
    assert set(ev.EVENT_CLASSES) == set(SEED_FIELDS) | {"base"}


def test_defaults_match_seed() -> None:
    complete = ev.ToolCallCompleteEvent()
    assert (complete.status, complete.duration_ms, complete.result_preview) == ("success", 0.0, "")
    assert ev.TurnEndEvent().function_calls_count == 0
    assert ev.AuditEvent().metadata == {}
    assert ev.AuditEvent().metadata is not ev.AuditEvent().metadata


def test_to_json_is_json_dumps_of_asdict_with_default_str() -> None:
    event = ev.ToolCallAttemptEvent(
        tool_name="web_search",
        arguments_preview='{"query": "caf\u00e9"}',
        agent_id="agent-1",
        turn_id="abc123",
        metadata={"when": datetime(2026, 1, 2, tzinfo=timezone.utc)},
    )
    line = event.to_json()
    assert line == json.dumps(dataclasses.asdict(event), default=str)
    assert '"caf\\u00e9' in line  # ensure_ascii, as the seed writes
    assert ", " in line and '": ' in line
    assert json.loads(line)["metadata"]["when"] == "2026-01-02 00:00:00+00:00"


@pytest.mark.parametrize("event_type", sorted(SEED_FIELDS))
def test_round_trip_every_type(event_type: str) -> None:
    cls = SEED_FIELDS[event_type][0]
    event = cls(agent_id="a", turn_id="0123456789ab", session_id="s", metadata={"k": [1, 2]})
    back = ev.parse_event(event.to_json())
    assert type(back) is cls
    assert back == event


def test_from_dict_ignores_canonical_envelope() -> None:
    record = ev.ToolCallFailureEvent(tool_name="t", error_type="E").to_dict()
    record.update(event_id="evt_1", type="AGENT_ACTION", telemetry={"trace_id": None})
    back = ev.AuditEvent.from_dict(record)
    assert isinstance(back, ev.ToolCallFailureEvent)
    assert back.error_type == "E"


def test_unknown_event_type_keeps_every_field() -> None:
    line = json.dumps(
        {
            "event_type": "skill_used",
            "timestamp": "2026-11-21T19:24:17.134Z",
            "agent_id": "a",
            "turn_id": None,
            "session_id": "s",
            "severity": "info",
            "metadata": {"x": 1},
            "skill_name": "pdf",
            "version": 3,
        }
    )
    event = ev.parse_event(line)
    assert isinstance(event, ev.GenericAuditEvent)
    assert event.event_type == "skill_used"
    assert event.to_dict() == json.loads(line)
    assert list(event.to_dict())[-2:] == ["skill_name", "version"]


def test_wrong_field_type_names_the_field() -> None:
    with pytest.raises(ValueError, match="'duration_ms'"):
        ev.AuditEvent.from_dict({"event_type": "tool_call_complete", "duration_ms": "fast"})
    with pytest.raises(ValueError, match="'agent_id'"):
        ev.AuditEvent.from_dict({"event_type": "turn_start", "agent_id": 5})
    with pytest.raises(ValueError, match="not valid JSON"):
        ev.parse_event("{nope")
    with pytest.raises(ValueError, match="JSON object"):
        ev.parse_event("[1, 2]")


@pytest.mark.parametrize(
    ("text", "micros"),
    [
        ("2026-11-21T19:24:17.134534+00:00", 134534),  # Python seed
        ("2026-11-21T19:24:17+00:00", 0),  # Python seed when microseconds are 0
        ("2026-11-21T19:24:17.134Z", 134000),  # TypeScript port
        ("2026-11-21T20:24:17.134534+01:00", 134534),  # another offset
        ("2026-11-21T19:24:17.1345345Z", 134534),  # 7 digits, cut to microseconds
        ("2026-11-21T19:24:17", 0),  # no offset: UTC
    ],
)
def test_timestamp_forms(text: str, micros: int) -> None:
    parsed = ev.parse_timestamp(text)
    assert parsed == datetime(2026, 11, 21, 19, 24, 17, micros, tzinfo=timezone.utc)
    assert ev.timestamp_to_ns(text) == int(parsed.timestamp()) * 1_000_000_000 + micros * 1000


_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


@given(st.datetimes(datetime(1970, 1, 2), datetime(9999, 12, 30)), st.integers(0, 999_999))
def test_timestamps_of_a_second_already_seen_parse_as_the_first_did(moment: datetime, micros: int) -> None:
    """The seed's form is read from a remembered second after its first parse: the same nanoseconds."""
    first = moment.replace(tzinfo=timezone.utc)
    later = first.replace(microsecond=micros)  # same second, other fraction
    for when in (first, later, first):
        text = when.isoformat(timespec="microseconds")
        expected = ((when - _EPOCH) // timedelta(microseconds=1)) * 1_000
        assert ev.timestamp_to_ns(text) == expected == ev.timestamp_to_ns(text)
    # A fraction that is not six ASCII digits is never read from the remembered second.
    second = first.isoformat(timespec="seconds")[:19]
    for fraction in ("+12345", "\uff11" * 6):  # a sign; fullwidth digits (str.isdigit says yes)
        with pytest.raises(ValueError, match="not an ISO 8601 timestamp"):
            ev.timestamp_to_ns(f"{second}.{fraction}+00:00")


def test_bad_timestamp_names_value() -> None:
    with pytest.raises(ValueError, match="yesterday"):
        ev.parse_timestamp("yesterday")
    with pytest.raises(ValueError, match="got int"):
        ev.timestamp_to_ns(1_795_287_600)  # type: ignore[arg-type]


def test_default_timestamp_is_utc_isoformat() -> None:
    stamp = ev.TurnStartEvent().timestamp
    assert stamp.endswith("+00:00")
    assert abs(ev.parse_timestamp(stamp) - datetime.now(timezone.utc)).total_seconds() < 60

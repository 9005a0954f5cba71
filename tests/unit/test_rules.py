"""Behavioural sequence rules: the seed's PII rule on real sequences, loading, bounds and robustness."""

from __future__ import annotations

import itertools
import threading
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from auditspan.rules import (
    PII_EXFILTRATION_RULE,
    BehaviourRule,
    ConfigError,
    RuleEngine,
    RuleMatch,
    load_rules,
    parse_duration,
)

DATA = Path(__file__).parents[1] / "data" / "rules"
T0 = datetime(2026, 11, 21, 19, 24, 17, 134534, tzinfo=timezone.utc)
_ids = itertools.count()


def record(
    type_: str,
    seconds: float,
    target: str | None = None,
    *,
    session: str | None = "sess-1",
    agent: str | None = "agent-1",
    turn: str = "0a1b2c3d4e5f",
    event_id: str | None = None,
    ts: str | None = None,
) -> dict[str, Any]:
    """A canonical tool-call-attempt record, as the collector writes it."""
    n = next(_ids)
    return {
        "event_type": "tool_call_attempt",
        "timestamp": ts or (T0 + timedelta(seconds=seconds)).isoformat(),
        "agent_id": agent,
        "turn_id": turn,
        "session_id": session,
        "severity": "info",
        "metadata": {},
        "tool_name": "tool",
        "arguments_preview": "",
        "event_id": event_id or f"evt_{n:032x}",
        "type": type_,
        "target": target,
        "parameters": {},
        "governance": {"decision": "ALLOW", "policies_evaluated": ["default"], "trust_score_at_time": 87},
        "telemetry": {"duration_ms": None, "trace_id": f"{n:032x}", "span_id": f"{n:016x}"},
    }


PII = "customers.pii_emails"

# (name, [(type, seconds, target, overrides)], [(trigger index, follow-up index), ...])
SEQUENCES: list[tuple[str, list[tuple[Any, ...]], list[tuple[int, int]]]] = [
    ("read then email", [("DATABASE_READ", 0, PII), ("EMAIL_SEND", 10, "x.org")], [(0, 1)]),
    ("read then external call", [("DATABASE_READ", 0, PII), ("EXTERNAL_API_CALL", 59.9, "api.x")], [(0, 1)]),
    ("window end is inclusive", [("DATABASE_READ", 0, PII), ("WEBHOOK_SEND", 60, None)], [(0, 1)]),
    ("same instant", [("DATABASE_READ", 0, PII), ("WEBHOOK_SEND", 0, None)], [(0, 1)]),
    (
        "one trigger, several follow-ups",
        [("DATABASE_READ", 0, PII), ("EMAIL_SEND", 10, None), ("WEBHOOK_SEND", 20, None)],
        [(0, 1), (0, 2)],
    ),
    (
        "several triggers, one follow-up",
        [("DATABASE_READ", 0, PII), ("DATABASE_READ", 5, "hr.pii_salaries"), ("EMAIL_SEND", 30, None)],
        [(0, 2), (1, 2)],
    ),
    (
        "across turns of one session",
        [
            ("DATABASE_READ", 0, PII, {"turn": "aaaaaaaaaaaa"}),
            ("EMAIL_SEND", 30, None, {"turn": "bbbbbbbbbbbb"}),
        ],
        [(0, 1)],
    ),
    ("target glob ignores case", [("DATABASE_READ", 0, "CRM.PII_Phone"), ("EMAIL_SEND", 1, None)], [(0, 1)]),
    (
        "no session: grouped by agent",
        [("DATABASE_READ", 0, PII, {"session": None}), ("EMAIL_SEND", 1, None, {"session": None})],
        [(0, 1)],
    ),
    (
        "only the PII read triggers",
        [("DATABASE_READ", 0, PII), ("DATABASE_READ", 1, "sales.orders"), ("EMAIL_SEND", 50, None)],
        [(0, 2)],
    ),
    (
        "only the same session",
        [
            ("DATABASE_READ", 0, PII, {"session": "a"}),
            ("DATABASE_READ", 1, PII, {"session": "b"}),
            ("EMAIL_SEND", 2, None, {"session": "b"}),
        ],
        [(1, 2)],
    ),
    (
        "an expired trigger does not hide a fresh one",
        [("DATABASE_READ", 0, PII), ("DATABASE_READ", 100, PII), ("EMAIL_SEND", 120, None)],
        [(1, 2)],
    ),
    # negatives
    ("wrong target", [("DATABASE_READ", 0, "customers.orders"), ("EMAIL_SEND", 1, None)], []),
    ("no target", [("DATABASE_READ", 0, None), ("EMAIL_SEND", 1, None)], []),
    (
        "unqualified table does not fit *.pii_*",
        [("DATABASE_READ", 0, "pii_emails"), ("EMAIL_SEND", 1, None)],
        [],
    ),
    ("too late", [("DATABASE_READ", 0, PII), ("EMAIL_SEND", 60.001, None)], []),
    (
        "other session",
        [("DATABASE_READ", 0, PII, {"session": "a"}), ("EMAIL_SEND", 1, None, {"session": "b"})],
        [],
    ),
    (
        "no session, other agent",
        [
            ("DATABASE_READ", 0, PII, {"session": None, "agent": "a"}),
            ("EMAIL_SEND", 1, None, {"session": None, "agent": "b"}),
        ],
        [],
    ),
    (
        "a session and no session do not mix",
        [("DATABASE_READ", 0, PII, {"session": "s"}), ("EMAIL_SEND", 1, None, {"session": None})],
        [],
    ),
    (
        "other follow-up types",
        [
            ("DATABASE_READ", 0, PII),
            ("FILE_WRITE", 1, "/tmp/x"),
            ("DATABASE_READ", 2, PII),
            ("LLM_CALL", 3, "gpt"),
            ("AGENT_ACTION", 4, None),
        ],
        [],
    ),
    ("follow-up before trigger", [("EMAIL_SEND", 0, None), ("DATABASE_READ", 1, PII)], []),
    (
        "follow-up arrives later but is timed earlier",
        [("DATABASE_READ", 10, PII), ("EMAIL_SEND", 9.5, None)],
        [],
    ),
    ("a write is not a read", [("DATABASE_WRITE", 0, PII), ("EMAIL_SEND", 1, None)], []),
]


@pytest.mark.parametrize(("steps", "expected"), [s[1:] for s in SEQUENCES], ids=[s[0] for s in SEQUENCES])
def test_pii_rule_fires_on_exactly_the_right_sequences(
    steps: list[tuple[Any, ...]], expected: list[tuple[int, int]]
) -> None:
    engine = RuleEngine([PII_EXFILTRATION_RULE])
    records = []
    fired: list[tuple[int, int]] = []
    for i, (type_, seconds, target, *extra) in enumerate(steps):
        rec = record(type_, seconds, target, **(extra[0] if extra else {}))
        records.append(rec)
        for match in engine.observe(rec):
            assert match.event_id == rec["event_id"]
            trigger = next(j for j, r in enumerate(records) if r["event_id"] == match.trigger_event_id)
            fired.append((trigger, i))
    assert fired == expected


def test_match_carries_both_records_ids_and_times() -> None:
    engine = RuleEngine([PII_EXFILTRATION_RULE])
    read = record("DATABASE_READ", 0, PII)
    mail = record("EMAIL_SEND", 12.5, "partner.io")
    assert engine.observe(read) == []
    (match,) = engine.observe(mail)
    assert match == RuleMatch(
        rule="PII Exfiltration Pattern",
        action="REQUIRE_APPROVAL",
        session_id="sess-1",
        trigger_event_id=read["event_id"],
        trigger_span_id=read["telemetry"]["span_id"],
        trigger_timestamp=read["timestamp"],
        event_id=mail["event_id"],
        span_id=mail["telemetry"]["span_id"],
        timestamp=mail["timestamp"],
        trigger_type="DATABASE_READ",
        type="EMAIL_SEND",
        trigger_target=PII,
        target="partner.io",
        elapsed_s=12.5,
        trigger_tool_name=read["tool_name"],
        trigger_turn_id=read["turn_id"],
    )


def test_a_repeated_record_does_not_fire_again() -> None:
    engine = RuleEngine([PII_EXFILTRATION_RULE])
    read = record("DATABASE_READ", 0, PII)
    mail = record("EMAIL_SEND", 1, None)
    engine.observe(read)
    assert len(engine.observe(mail)) == 1
    assert engine.observe(mail) == []
    assert engine.observe(dict(read)) == []  # a replayed trigger is not remembered twice
    assert len(engine.observe(record("WEBHOOK_SEND", 2, None))) == 1


def test_timestamps_in_other_forms_are_compared_as_times() -> None:
    engine = RuleEngine([PII_EXFILTRATION_RULE])
    engine.observe(record("DATABASE_READ", 0, PII, ts="2026-11-21T19:24:17.134Z"))
    assert len(engine.observe(record("EMAIL_SEND", 0, None, ts="2026-11-21T20:25:18+01:01"))) == 1


def test_a_type_can_follow_itself_but_a_record_never_matches_itself() -> None:
    rule = BehaviourRule("burst", "EXTERNAL_API_CALL", None, ("EXTERNAL_API_CALL",), 1, "constrain")
    engine = RuleEngine([rule])
    assert engine.observe(record("EXTERNAL_API_CALL", 0)) == []
    assert [m.action for m in engine.observe(record("EXTERNAL_API_CALL", 0.5))] == ["CONSTRAIN"]


def test_several_rules_from_a_file() -> None:
    engine = RuleEngine(load_rules(DATA / "several.yaml"))
    engine.observe(record("DATABASE_READ", 0, PII))
    assert [(m.rule, m.action) for m in engine.observe(record("FILE_WRITE", 0.4, "/tmp/dump.csv"))] == [
        ("Bulk export to disk", "BLOCK")
    ]
    assert engine.observe(record("FILE_WRITE", 0.6, "/tmp/dump2.csv")) == []  # 500ms window passed
    assert [m.rule for m in engine.observe(record("EMAIL_SEND", 1, None))] == ["PII Exfiltration Pattern"]
    engine.observe(record("AUTH_REQUEST", 10, "login.example.com/oauth2/token"))
    assert [m.action for m in engine.observe(record("EXTERNAL_API_CALL", 250, "api.x"))] == ["CONSTRAIN"]


# --------------------------------------------------------------------------- memory bounds


def test_memory_bound_holds_with_100k_sessions() -> None:
    engine = RuleEngine([PII_EXFILTRATION_RULE], max_sessions=1_000, max_triggers_per_session=4)
    for i in range(100_000):
        engine.observe(record("DATABASE_READ", i * 0.001, PII, session=f"s{i}"))
        if i % 10_000 == 0:
            assert engine.stats()["sessions"] <= 1_000
    stats = engine.stats()
    assert stats["sessions"] <= 1_000
    assert stats["triggers"] <= 4 * 1_000
    assert stats["seen_ids"] <= 4 * 1_000
    # the most recent sessions are the ones kept
    assert len(engine.observe(record("EMAIL_SEND", 100, None, session="s99999"))) == 1
    assert engine.observe(record("EMAIL_SEND", 100, None, session="s0")) == []


def test_non_triggers_use_no_memory() -> None:
    engine = RuleEngine([PII_EXFILTRATION_RULE])
    for i in range(10_000):
        engine.observe(record("EMAIL_SEND", i, None, session=f"s{i}"))
        engine.observe(record("DATABASE_READ", i, "sales.orders", session=f"s{i}"))
        engine.observe(record("LLM_CALL", i, "gpt", session=f"s{i}"))
    assert engine.stats() == {"sessions": 0, "triggers": 0, "seen_ids": 0}


def test_triggers_per_session_are_bounded_oldest_first() -> None:
    engine = RuleEngine([PII_EXFILTRATION_RULE], max_triggers_per_session=3)
    reads = [record("DATABASE_READ", i, PII) for i in range(10)]
    for r in reads:
        engine.observe(r)
    assert engine.stats()["triggers"] == 3
    matches = engine.observe(record("EMAIL_SEND", 20, None))
    assert [m.trigger_event_id for m in matches] == [r["event_id"] for r in reads[-3:]]


def test_expired_triggers_are_pruned_and_idle_sessions_swept() -> None:
    engine = RuleEngine([PII_EXFILTRATION_RULE])
    engine.observe(record("DATABASE_READ", 0, PII))
    engine.observe(record("DATABASE_READ", 100, "sales.orders"))  # same session, past the window
    assert engine.stats()["triggers"] == 0
    for i in range(2_000):  # sessions whose trigger expired on their own clock are swept
        engine.observe(record("DATABASE_READ", 1_000 + i, PII, session=f"x{i}"))
        engine.observe(record("DATABASE_READ", 1_100 + i, "sales.orders", session=f"x{i}"))
    assert engine.stats()["sessions"] < 2_000


def test_a_session_behind_others_in_time_keeps_its_trigger() -> None:
    # Sessions run on their own clocks (threads, replayed logs): another session's later
    # timestamps must not expire this one's trigger.
    engine = RuleEngine([PII_EXFILTRATION_RULE], max_sessions=100)
    engine.observe(record("DATABASE_READ", 0, PII, session="slow"))
    for i in range(2_000):
        engine.observe(record("DATABASE_READ", 10_000 + i, "sales.orders", session=f"fast{i % 10}"))
    assert len(engine.observe(record("EMAIL_SEND", 30, None, session="slow"))) == 1


def test_least_recently_used_session_is_dropped() -> None:
    engine = RuleEngine([PII_EXFILTRATION_RULE], max_sessions=2)
    engine.observe(record("DATABASE_READ", 0, PII, session="s1"))
    engine.observe(record("DATABASE_READ", 0, PII, session="s2"))
    engine.observe(record("DATABASE_READ", 1, "other.table", session="s1"))  # s1 used again
    engine.observe(record("DATABASE_READ", 2, PII, session="s3"))  # drops s2
    assert engine.observe(record("EMAIL_SEND", 3, None, session="s2")) == []
    assert len(engine.observe(record("EMAIL_SEND", 3, None, session="s1"))) == 1
    assert len(engine.observe(record("EMAIL_SEND", 3, None, session="s3"))) == 1


def test_bounds_must_be_positive() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        RuleEngine([PII_EXFILTRATION_RULE], max_sessions=0)


# --------------------------------------------------------------------------- threads and robustness


def test_thread_safe() -> None:
    engine = RuleEngine([PII_EXFILTRATION_RULE], max_sessions=100)
    counts: list[int] = []
    lock = threading.Lock()

    def session(name: str) -> None:
        fired = 0
        for i in range(300):
            engine.observe(record("DATABASE_READ", i * 100, PII, session=name))
            fired += len(engine.observe(record("EMAIL_SEND", i * 100 + 1, None, session=name)))
        with lock:
            counts.append(fired)

    threads = [threading.Thread(target=session, args=(f"t{n}",)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert counts == [300] * 6


def test_unreadable_records_match_nothing() -> None:
    engine = RuleEngine([PII_EXFILTRATION_RULE])
    engine.observe(record("DATABASE_READ", 0, PII))
    bad = [
        {"type": "EMAIL_SEND", "timestamp": "yesterday", "session_id": "sess-1", "agent_id": "agent-1"},
        {"type": "EMAIL_SEND", "session_id": "sess-1", "agent_id": "agent-1"},
        {"timestamp": T0.isoformat(), "session_id": "sess-1"},
        {"type": "EMAIL_SEND", "timestamp": T0.isoformat(), "session_id": None, "agent_id": ["unhashable"]},
        "not a record",
        None,
    ]
    for rec in bad:
        assert engine.observe(rec) == []  # type: ignore[arg-type]
    assert len(engine.observe(record("EMAIL_SEND", 1, None))) == 1


_VALUES = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=30))


@given(
    st.dictionaries(
        st.sampled_from(["type", "target", "session_id", "timestamp", "event_id", "telemetry", "agent_id"]),
        st.one_of(
            _VALUES,
            st.sampled_from(["DATABASE_READ", "EMAIL_SEND", PII, T0.isoformat()]),
            st.dictionaries(st.text(max_size=5), _VALUES, max_size=3),
            st.lists(_VALUES, max_size=3),
        ),
    )
)
def test_observe_never_raises(rec: dict[str, Any]) -> None:
    engine = RuleEngine([PII_EXFILTRATION_RULE])
    assert isinstance(engine.observe(rec), list)
    assert isinstance(engine.observe(rec), list)


# --------------------------------------------------------------------------- loading


def test_the_seed_yaml_loads_to_the_built_in_rule() -> None:
    assert load_rules(DATA / "pii_exfiltration.yaml") == [PII_EXFILTRATION_RULE]
    assert load_rules(str(DATA / "pii_exfiltration.yaml")) == [PII_EXFILTRATION_RULE]
    text = (DATA / "pii_exfiltration.yaml").read_text(encoding="utf-8")
    assert load_rules(text) == [PII_EXFILTRATION_RULE]


def test_built_in_rule_is_the_seeds() -> None:
    rule = PII_EXFILTRATION_RULE
    assert (rule.name, rule.trigger_type, rule.trigger_target) == (
        "PII Exfiltration Pattern",
        "DATABASE_READ",
        "*.pii_*",
    )
    assert rule.followed_by == ("EXTERNAL_API_CALL", "WEBHOOK_SEND", "EMAIL_SEND")
    assert (rule.within_s, rule.action) == (60.0, "REQUIRE_APPROVAL")


def test_rules_list_with_and_without_wrappers() -> None:
    rules = load_rules(DATA / "several.yaml")
    assert [
        (r.name, r.trigger_type, r.trigger_target, r.followed_by, r.within_s, r.action) for r in rules
    ] == [
        (
            "PII Exfiltration Pattern",
            "DATABASE_READ",
            "*.pii_*",
            ("EXTERNAL_API_CALL", "WEBHOOK_SEND", "EMAIL_SEND"),
            60.0,
            "REQUIRE_APPROVAL",
        ),
        ("Bulk export to disk", "DATABASE_READ", None, ("FILE_WRITE",), 0.5, "BLOCK"),
        (
            "Token then outbound call",
            "AUTH_REQUEST",
            "login.example.com/*",
            ("EXTERNAL_API_CALL",),
            300.0,
            "CONSTRAIN",
        ),
    ]


def test_parsed_data_and_json_are_accepted() -> None:
    data = {
        "rule": {
            "name": "r",
            "trigger": {"type": "FILE_READ"},
            "condition": {"within": 2, "followed_by": [{"type": "EMAIL_SEND"}]},
            "action": "halt",
        }
    }
    (rule,) = load_rules(data)
    assert (rule.within_s, rule.action) == (2.0, "HALT")
    assert load_rules('[{"name": "r", "trigger": {"type": "FILE_READ"}, '
                      '"condition": {"within": "1h", "followed_by": ["EMAIL_SEND"]}, "action": "deny"}]') == [
        BehaviourRule("r", "FILE_READ", None, ("EMAIL_SEND",), 3600, "DENY")
    ]  # fmt: skip


def test_error_names_file_line_rule_and_field() -> None:
    with pytest.raises(ConfigError) as caught:
        load_rules(DATA / "bad_within.yaml")
    message = str(caught.value)
    assert message.startswith(
        f"{DATA / 'bad_within.yaml'}:14: rules[1].condition.within: invalid duration '60 sek'"
    )
    assert (caught.value.line, caught.value.path) == (14, "rules[1].condition.within")


SEED_TEXT = (DATA / "pii_exfiltration.yaml").read_text(encoding="utf-8")


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ("type: DATABASE_READ", "type: DATABASE_REED", r":6: rule\.trigger\.type: unknown operation type"),
        ("- type: WEBHOOK_SEND", "- type: WEBHOK", r":12: rule\.condition\.followed_by\[1\]\.type: unknown"),
        ("action: REQUIRE_APPROVAL", "action: ASK_NICELY", r":14: rule\.action: unknown action 'ASK_NICELY'"),
        ("within: 60s", "within: 0s", r":9: rule\.condition\.within: duration must be positive"),
        ("within: 60s", "within: 5 parsecs", r":9: rule\.condition\.within: invalid duration"),
        ("within: 60s", "within: -5s", r":9: rule\.condition\.within: invalid duration"),
        ("followed_by:", "folowed_by:", r":10: rule\.condition\.folowed_by: unknown field"),
        ('target: "*.pii_*"', "target: 7", r":7: rule\.trigger\.target: must be a glob string"),
        ('name: "PII Exfiltration Pattern"', "title: x", r":4: rule\.title: unknown field"),
        ("  action: REQUIRE_APPROVAL\n", "", r":3: rule: missing field 'action'"),
        (
            'trigger:\n    type: DATABASE_READ\n    target: "*.pii_*"',
            "trigger: DATABASE_READ",
            r":5: rule\.trigger: must be a",
        ),
    ],
)
def test_yaml_errors_name_the_field(old: str, new: str, expected: str) -> None:
    assert old in SEED_TEXT
    with pytest.raises(ConfigError, match=r"^<text>" + expected):
        load_rules(SEED_TEXT.replace(old, new))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("rules: {}\n", r"<text>:1: rules: must be a list of rules"),
        ("something: else\n", r"<text>:1: expected 'rule:', 'rules:' or a list of rules"),
        ("rule: {}\nrules: []\n", r"<text>:\d: (rules|rule): unknown top-level key"),
        ("- name: a\n  trigger: {type: LLM_CALL}\n  condition: {within: 1s, followed_by: []}\n"
         "  action: allow\n", r"<text>:3: \[0\]\.condition\.followed_by: must be a non-empty list"),
        ("rule:\n  name: [\n", r"<text>:\d+: invalid YAML"),
    ],
)  # fmt: skip
def test_document_shape_errors(text: str, expected: str) -> None:
    with pytest.raises(ConfigError, match=expected):
        load_rules(text)


def test_duplicate_rule_names_are_refused() -> None:
    one = SEED_TEXT.replace("rule:\n", "- rule:\n").replace("\n  ", "\n    ")
    with pytest.raises(ConfigError, match=r"<text>:\d+: \[1\]\.rule\.name: duplicate rule name"):
        load_rules(one + one)


@pytest.mark.parametrize(
    ("raw", "seconds"),
    [
        ("60s", 60.0),
        ("500ms", 0.5),
        ("5m", 300.0),
        ("1h", 3600.0),
        ("1d", 86400.0),
        ("1m30s", 90.0),
        ("1.5s", 1.5),
        (" 2 min ", 120.0),
        ("10", 10.0),
        (45, 45.0),
        (0.25, 0.25),
    ],
)
def test_parse_duration(raw: object, seconds: float) -> None:
    assert parse_duration(raw) == pytest.approx(seconds)


@pytest.mark.parametrize(
    "raw", ["", "s", "60 sec ago", "1 2s", "-1s", "0", 0, -3, True, None, "inf", float("inf")]
)
def test_parse_duration_rejects(raw: object) -> None:
    with pytest.raises(ValueError):
        parse_duration(raw)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"name": ""}, "name"),
        ({"trigger_type": ""}, "trigger.type"),
        ({"trigger_target": ""}, "trigger.target"),
        ({"followed_by": ()}, "condition.followed_by"),
        ({"within_s": 0}, "condition.within"),
        ({"within_s": float("nan")}, "condition.within"),
        ({"action": ""}, "action"),
    ],
)
def test_behaviour_rule_validates(kwargs: dict[str, Any], field: str) -> None:
    base: dict[str, Any] = {
        "name": "r",
        "trigger_type": "DATABASE_READ",
        "trigger_target": None,
        "followed_by": ("EMAIL_SEND",),
        "within_s": 1.0,
        "action": "allow",
    }
    with pytest.raises(ValueError, match=f"field '{field}'"):
        BehaviourRule(**{**base, **kwargs})


def test_behaviour_rule_normalises() -> None:
    rule = BehaviourRule("r", "database-read", "*.x", "email_send", 5, "stop")  # type: ignore[arg-type]
    assert (rule.trigger_type, rule.followed_by, rule.within_s, rule.action) == (
        "DATABASE_READ",
        ("EMAIL_SEND",),
        5.0,
        "HALT",
    )
    future = BehaviourRule("f", "vector_search", None, ("tool.invoke",), 1, "escalate")
    assert (future.trigger_type, future.followed_by, future.action) == (
        "VECTOR_SEARCH",
        ("TOOL_INVOKE",),
        "ESCALATE",
    )

"""The seed's operation types, categories and risk levels, and the parsing of type names."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from auditspan import semantic_types as stypes
from auditspan.semantic_types import (
    EVENT_TYPE_OPERATIONS,
    SEED_STATED_TYPE_COUNT,
    TURN_END_OPERATION,
    TURN_START_OPERATION,
    OperationType,
    category_of,
    describe,
    parse_operation_type,
    risk_of,
    risk_rank,
)

# The seed page's tables, row by row: (type, category heading, risk level).
SEED_ROWS = [
    ("LLM_CALL", "LLM", "Medium"),
    ("LLM_EMBEDDING", "LLM", "Low"),
    ("DATABASE_READ", "Data", "Low-Medium"),
    ("DATABASE_WRITE", "Data", "Medium-High"),
    ("FILE_READ", "Data", "Low-Medium"),
    ("FILE_WRITE", "Data", "Medium-High"),
    ("CACHE_READ", "Data", "Low"),
    ("CACHE_WRITE", "Data", "Low"),
    ("EXTERNAL_API_CALL", "External", "Medium-High"),
    ("WEBHOOK_SEND", "External", "Medium-High"),
    ("EMAIL_SEND", "External", "Medium"),
    ("MESSAGE_QUEUE_SEND", "Messaging", "Medium"),
    ("MESSAGE_QUEUE_RECEIVE", "Messaging", "Low"),
    ("AUTH_REQUEST", "Authentication", "Low"),
    ("AUTH_GRANT", "Authentication", "Low"),
    ("AUTH_DENY", "Authentication", "Low"),
    ("WORKFLOW_START", "Workflow", "Low"),
    ("WORKFLOW_COMPLETE", "Workflow", "Low"),
    ("ACTIVITY_START", "Workflow", "Low"),
    ("ACTIVITY_COMPLETE", "Workflow", "Low"),
    ("AGENT_GOAL_SET", "Agent", "Low"),
    ("AGENT_GOAL_UPDATE", "Agent", "Medium"),
    ("AGENT_DECISION", "Agent", "Medium"),
    ("AGENT_ACTION", "Agent", "Variable"),
]


@pytest.mark.parametrize(("name", "category", "risk"), SEED_ROWS)
def test_every_seed_row_is_a_member_with_its_category_and_risk(name: str, category: str, risk: str) -> None:
    member = OperationType[name]
    assert member.value == name
    assert category_of(member) == category
    assert risk_of(member) == risk
    assert category_of(name) == category
    assert risk_of(name.lower()) == risk


def test_members_are_exactly_the_seed_rows_in_seed_order() -> None:
    assert [t.value for t in OperationType] == [row[0] for row in SEED_ROWS]


def test_the_seed_prose_says_21_but_its_tables_list_24_rows() -> None:
    assert SEED_STATED_TYPE_COUNT == 21
    assert len(OperationType) == 24
    per_category: dict[str | None, int] = {}
    for t in OperationType:
        per_category[category_of(t)] = per_category.get(category_of(t), 0) + 1
    assert per_category == {
        "LLM": 2,
        "Data": 6,
        "External": 3,
        "Messaging": 2,
        "Authentication": 3,
        "Workflow": 4,
        "Agent": 4,
    }
    assert list(per_category) == list(stypes.CATEGORIES)


def _seed_004() -> Path | None:
    # The seed documents live in shared/ beside the repository (CI clones main with shared/ next to it).
    for root in Path(__file__).resolve().parents:
        found = sorted((root / "shared" / "seeds").glob("004_*.txt"))
        if found:
            return found[0]
    return None


def test_table_matches_the_seed_document_when_it_is_at_hand() -> None:
    seed = _seed_004()
    if seed is None:
        pytest.skip("shared/seeds/004_*.txt is not beside this checkout")
    text = seed.read_text(encoding="utf-8")
    names = "|".join(t.value for t in OperationType)
    rows = re.findall(rf"^({names})(.+?)(Low-Medium|Medium-High|Low|Medium|Variable)$", text, re.M)
    assert [(name, risk) for name, _desc, risk in rows] == [(n, r) for n, _c, r in SEED_ROWS]
    assert [desc for _n, desc, _r in rows] == [describe(t) for t in OperationType]
    assert "21 semantic event types" in text


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("DATABASE_READ", OperationType.DATABASE_READ),
        ("database_read", OperationType.DATABASE_READ),
        ("database-read", OperationType.DATABASE_READ),
        (" Database Read ", OperationType.DATABASE_READ),
        ("llm.call", OperationType.LLM_CALL),
        (OperationType.EMAIL_SEND, OperationType.EMAIL_SEND),
    ],
)
def test_parse_known_spellings(raw: object, expected: OperationType) -> None:
    assert parse_operation_type(raw) is expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("VECTOR_SEARCH", "VECTOR_SEARCH"),
        ("vector-search", "VECTOR_SEARCH"),
        ("Tool.Invocation", "TOOL_INVOCATION"),
        ("", ""),
        ("   ", ""),
        (42, "42"),
    ],
)
def test_unknown_types_come_back_normalised_not_lost(raw: object, expected: str) -> None:
    parsed = parse_operation_type(raw)
    assert parsed == expected
    assert not isinstance(parsed, OperationType)
    assert risk_of(parsed) is None
    assert category_of(parsed) is None


def test_hostile_str_does_not_raise() -> None:
    class Hostile:
        def __str__(self) -> str:
            raise RuntimeError("no")

    assert parse_operation_type(Hostile()) == ""
    assert risk_of(Hostile()) is None


@given(st.one_of(st.text(), st.integers(), st.none(), st.binary(), st.floats()))
def test_parse_never_raises_and_is_idempotent(value: object) -> None:
    parsed = parse_operation_type(value)
    assert isinstance(parsed, str)
    assert parse_operation_type(parsed) == parsed
    assert re.fullmatch(r"[0-9A-Z_]*", str(parsed))


def test_turn_mapping() -> None:
    assert TURN_START_OPERATION is OperationType.WORKFLOW_START
    assert TURN_END_OPERATION is OperationType.WORKFLOW_COMPLETE
    assert EVENT_TYPE_OPERATIONS == {
        "turn_start": OperationType.WORKFLOW_START,
        "turn_end": OperationType.WORKFLOW_COMPLETE,
        "agent_switch": OperationType.AGENT_DECISION,
    }


def test_members_read_and_serialise_as_their_names() -> None:
    t = OperationType.WEBHOOK_SEND
    assert str(t) == "WEBHOOK_SEND"
    assert f"{t}" == "WEBHOOK_SEND"
    assert t == "WEBHOOK_SEND"
    assert json.dumps({"type": t}) == '{"type": "WEBHOOK_SEND"}'


def test_risk_rank_orders_the_levels() -> None:
    ranks = [risk_rank(r) for r in ("Low", "Low-Medium", "Medium", "Medium-High")]
    assert ranks == [1, 2, 3, 4]
    assert risk_rank("Variable") is None
    assert risk_rank(None) is None

"""Decision spellings, their priority, refusals, and the record's governance envelope."""

from __future__ import annotations

import enum
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from auditspan.governance import (
    DECISION_PRIORITY,
    DECISIONS,
    decision_priority,
    governance_envelope,
    is_refusal,
    normalize_decision,
    strongest_decision,
    trust_score_of,
)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("allow", "ALLOW"),
        ("ALLOW", "ALLOW"),
        ("Allow", "ALLOW"),
        ("deny", "DENY"),
        ("Deny ", "DENY"),
        ("continue", "ALLOW"),
        ("stop", "HALT"),
        ("halt", "HALT"),
        ("block", "BLOCK"),
        ("constrain", "CONSTRAIN"),
        ("require_approval", "REQUIRE_APPROVAL"),
        ("require-approval", "REQUIRE_APPROVAL"),
        ("Require Approval", "REQUIRE_APPROVAL"),
        ("REQUIRE_APPROVAL", "REQUIRE_APPROVAL"),
        ("escalate", "ESCALATE"),
        (" quarantine-now ", "QUARANTINE-NOW"),
        ("", None),
        ("   ", None),
        (None, None),
        (True, "ALLOW"),
        (False, "DENY"),
    ],
)
def test_normalize_decision(raw: object, expected: str | None) -> None:
    assert normalize_decision(raw) == expected


def test_enum_decisions_are_read_by_value() -> None:
    class Verdict(enum.Enum):
        STOP = "stop"

    assert normalize_decision(Verdict.STOP) == "HALT"


def test_priority_order_is_the_vendors_with_deny_among_the_refusals() -> None:
    assert DECISIONS == ("HALT", "BLOCK", "DENY", "REQUIRE_APPROVAL", "CONSTRAIN", "ALLOW")
    assert DECISION_PRIORITY["HALT"] > DECISION_PRIORITY["BLOCK"] > DECISION_PRIORITY["REQUIRE_APPROVAL"]
    assert DECISION_PRIORITY["REQUIRE_APPROVAL"] > DECISION_PRIORITY["CONSTRAIN"] > DECISION_PRIORITY["ALLOW"]
    assert DECISION_PRIORITY["BLOCK"] > DECISION_PRIORITY["DENY"] > DECISION_PRIORITY["REQUIRE_APPROVAL"]
    assert decision_priority("stop") == DECISION_PRIORITY["HALT"]
    assert decision_priority("escalate") == 0
    assert decision_priority(None) == 0


@pytest.mark.parametrize(
    ("decisions", "expected"),
    [
        (("allow", "require_approval", "constrain"), "REQUIRE_APPROVAL"),
        (("deny", "block"), "BLOCK"),
        (("allow", "deny"), "DENY"),
        (("continue", "stop"), "HALT"),
        (("escalate", "allow"), "ALLOW"),
        (("escalate", "", None), "ESCALATE"),
        ((), None),
        ((None, ""), None),
    ],
)
def test_strongest_decision(decisions: tuple[object, ...], expected: str | None) -> None:
    assert strongest_decision(*decisions) == expected


@pytest.mark.parametrize(
    ("decision", "refused"),
    [
        ("deny", True),
        ("BLOCK", True),
        ("halt", True),
        ("stop", True),
        ("allow", False),
        ("continue", False),
        ("require_approval", False),
        ("constrain", False),
        ("escalate", False),
        (None, False),
    ],
)
def test_is_refusal(decision: object, refused: bool) -> None:
    assert is_refusal(decision) is refused


def test_envelope_as_the_seed_documents_it() -> None:
    envelope = governance_envelope(
        "allow", "default", {"policies_evaluated": ["customer-data"], "trust_score": 87}
    )
    assert envelope == {
        "decision": "ALLOW",
        "policies_evaluated": ["default", "customer-data"],
        "trust_score_at_time": 87,
    }


@pytest.mark.parametrize(
    ("action", "source", "metadata", "expected"),
    [
        (None, None, None, {"decision": None, "policies_evaluated": [], "trust_score_at_time": None}),
        (
            "deny",
            " operator_override ",
            {"policies_evaluated": "operator_override", "trust_score_at_time": 12.5},
            {"decision": "DENY", "policies_evaluated": ["operator_override"], "trust_score_at_time": 12.5},
        ),
        (
            "stop",
            "",
            {"policies_evaluated": ["a", 3, None, "", "b", "a"], "trust_score": True},
            {"decision": "HALT", "policies_evaluated": ["a", "b"], "trust_score_at_time": None},
        ),
        (
            "allow",
            "p",
            {"trust_score": "87", "trust_score_at_time": 50},
            {"decision": "ALLOW", "policies_evaluated": ["p"], "trust_score_at_time": 50},
        ),
        (
            "allow",
            "p",
            "not a mapping",
            {"decision": "ALLOW", "policies_evaluated": ["p"], "trust_score_at_time": None},
        ),
    ],
)
def test_envelope_cases(
    action: object, source: object, metadata: object, expected: dict[str, object]
) -> None:
    assert governance_envelope(action, source, metadata) == expected


def test_trust_score_rejects_non_finite_numbers() -> None:
    assert trust_score_of({"trust_score": math.nan}) is None
    assert trust_score_of({"trust_score": math.inf, "trust_score_at_time": 3}) == 3
    assert trust_score_of({"trust_score": 0}) == 0


_ANY = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)


@given(_ANY, _ANY, _ANY)
def test_never_raises(action: object, source: object, metadata: object) -> None:
    envelope = governance_envelope(action, source, metadata)
    assert set(envelope) == {"decision", "policies_evaluated", "trust_score_at_time"}
    decision = normalize_decision(action)
    assert decision is None or (isinstance(decision, str) and decision == decision.strip() and decision)
    assert isinstance(is_refusal(action), bool)

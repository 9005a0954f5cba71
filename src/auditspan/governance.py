"""Governance verdicts: one spelling for every decision, their order, and the record envelope.

Runtimes spell verdicts in many ways (the seed runtime writes ``allow`` /
``deny``; OpenBox writes ``allow``, ``constrain``, ``require_approval``,
``block``, ``halt`` and, in older releases, ``continue`` / ``stop``). Every one
of them is normalised to an upper-case canonical name::

    >>> normalize_decision("deny"), normalize_decision("continue"), normalize_decision("require-approval")
    ('DENY', 'ALLOW', 'REQUIRE_APPROVAL')
    >>> strongest_decision("ALLOW", "require_approval", "constrain")
    'REQUIRE_APPROVAL'
    >>> is_refusal("block")
    True

Priority (``DECISION_PRIORITY``), strongest first::

    HALT > BLOCK > DENY > REQUIRE_APPROVAL > CONSTRAIN > ALLOW

OpenBox's own order is ``halt > block > require_approval > constrain >
allow``; ``DENY`` (the seed runtime's and the OPA policies' word) is not in
it. A denied call does not run, exactly like a blocked one, so ``DENY`` ranks
with the refusals, above ``REQUIRE_APPROVAL`` (a refusal outranks a request to
ask) and just below ``BLOCK``, so that a tie between the two resolves to the
vendor's own word. ``HALT`` stays on top: it stops the whole agent, not only
the call. Unknown verdicts rank 0, below ``ALLOW``: they are recorded, never
allowed to override a known verdict.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from enum import Enum
from typing import Any, Final

__all__ = [
    "ALLOW",
    "BLOCK",
    "CONSTRAIN",
    "DECISIONS",
    "DECISION_PRIORITY",
    "DENY",
    "HALT",
    "REFUSALS",
    "REQUIRE_APPROVAL",
    "decision_priority",
    "governance_envelope",
    "is_refusal",
    "normalize_decision",
    "strongest_decision",
    "trust_score_of",
]

ALLOW: Final = "ALLOW"
CONSTRAIN: Final = "CONSTRAIN"
REQUIRE_APPROVAL: Final = "REQUIRE_APPROVAL"
DENY: Final = "DENY"
BLOCK: Final = "BLOCK"
HALT: Final = "HALT"

#: Canonical decision -> rank; higher wins. See the module docstring for where DENY sits.
DECISION_PRIORITY: Final[Mapping[str, int]] = {
    HALT: 60,
    BLOCK: 50,
    DENY: 40,
    REQUIRE_APPROVAL: 30,
    CONSTRAIN: 20,
    ALLOW: 10,
}
#: The canonical decisions, strongest first.
DECISIONS: Final = tuple(sorted(DECISION_PRIORITY, key=DECISION_PRIORITY.__getitem__, reverse=True))
#: Decisions after which the call does not run.
REFUSALS: Final = frozenset({DENY, BLOCK, HALT})

# Lower-case spelling (``-`` and spaces read as ``_``) -> canonical decision.
_ALIASES: Final[dict[str, str]] = {
    "allow": ALLOW,
    "allowed": ALLOW,
    "permit": ALLOW,
    "continue": ALLOW,  # OpenBox legacy
    "constrain": CONSTRAIN,
    "constrained": CONSTRAIN,
    "require_approval": REQUIRE_APPROVAL,
    "requires_approval": REQUIRE_APPROVAL,
    "approval_required": REQUIRE_APPROVAL,
    "needs_approval": REQUIRE_APPROVAL,
    "deny": DENY,
    "denied": DENY,
    "block": BLOCK,
    "blocked": BLOCK,
    "halt": HALT,
    "halted": HALT,
    "stop": HALT,  # OpenBox legacy
}


def normalize_decision(action: object) -> str | None:
    """The canonical spelling of a verdict, ``None`` when there is none. Never raises.

    Any case; ``-`` and spaces count as ``_`` (``require-approval``); legacy
    ``continue`` -> ``ALLOW`` and ``stop`` -> ``HALT``. An unknown non-empty
    string is kept, stripped and upper-cased (``"escalate"`` -> ``"ESCALATE"``).
    ``None`` and empty or blank strings give ``None``. A bool (an OPA ``allow``
    result) gives ``ALLOW`` / ``DENY``; an ``Enum`` is read by its value; any
    other object through ``str()``.

    Example::

        normalize_decision("Allow")    # 'ALLOW'
        normalize_decision("stop")     # 'HALT'
        normalize_decision("")         # None
    """
    try:
        if action is None:
            return None
        if isinstance(action, bool):
            return ALLOW if action else DENY
        if isinstance(action, Enum):
            action = action.value
        text = (action if isinstance(action, str) else str(action)).strip()
        if not text:
            return None
        if text in DECISION_PRIORITY:  # fast path: already canonical
            return text
        known = _ALIASES.get(text.lower().replace("-", "_").replace(" ", "_"))
        return known if known is not None else text.upper()
    except Exception:
        return None


def decision_priority(decision: object) -> int:
    """Rank of a verdict in ``DECISION_PRIORITY`` (any spelling); 0 for unknown or no verdict."""
    normalised = normalize_decision(decision)
    return DECISION_PRIORITY.get(normalised, 0) if normalised is not None else 0


def strongest_decision(*decisions: object) -> str | None:
    """The highest-priority verdict among ``decisions`` (normalised); ``None`` if none is given.

    Among equals (two unknown verdicts) the first wins.
    """
    best: str | None = None
    best_rank = -1
    for decision in decisions:
        normalised = normalize_decision(decision)
        if normalised is None:
            continue
        rank = DECISION_PRIORITY.get(normalised, 0)
        if rank > best_rank:
            best, best_rank = normalised, rank
    return best


def is_refusal(decision: object) -> bool:
    """True when the verdict means the call will not run: ``DENY``, ``BLOCK`` or ``HALT`` (any spelling)."""
    return normalize_decision(decision) in REFUSALS


def _number(value: object) -> int | float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def trust_score_of(metadata: object) -> int | float | None:
    """``metadata["trust_score"]``, else ``metadata["trust_score_at_time"]``: the first finite number.

    Booleans and non-numbers are not scores; ``None`` when neither key holds one.
    """
    if not isinstance(metadata, Mapping):
        return None
    try:
        for key in ("trust_score", "trust_score_at_time"):
            score = _number(metadata.get(key))
            if score is not None:
                return score
    except Exception:
        pass
    return None


def _policy_names(value: object) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, (list, tuple)):
        return [item for item in value if isinstance(item, str)]
    return []


def governance_envelope(action: object, policy_source: object, metadata: object) -> dict[str, Any]:
    """The record's ``governance`` object, as the seed documents it. Never raises.

    ``decision`` is ``normalize_decision(action)``; ``policies_evaluated`` is
    ``policy_source`` (when a non-blank string) followed by the names in
    ``metadata["policies_evaluated"]`` (a string or a list of strings),
    stripped, blanks dropped, duplicates removed in order; ``trust_score_at_time``
    comes from ``trust_score_of(metadata)``.

    Example::

        governance_envelope("allow", "default", {"policies_evaluated": ["customer-data"], "trust_score": 87})
        # {'decision': 'ALLOW', 'policies_evaluated': ['default', 'customer-data'], 'trust_score_at_time': 87}
    """
    policies: list[str] = []
    try:
        names = _policy_names(policy_source)
        if isinstance(metadata, Mapping):
            names += _policy_names(metadata.get("policies_evaluated"))
        for name in names:
            stripped = name.strip()
            if stripped and stripped not in policies:
                policies.append(stripped)
    except Exception:
        pass
    return {
        "decision": normalize_decision(action),
        "policies_evaluated": policies,
        "trust_score_at_time": trust_score_of(metadata),
    }

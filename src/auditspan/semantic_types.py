"""OpenBox semantic operation types: the type, its category and its risk level.

The source of truth is the vendor's "Event Types" page (seed 004). Every row of
its tables is a member of ``OperationType``, with the category heading it sits
under and the risk level it is given, spelled exactly as the page spells them::

    >>> OperationType.DATABASE_READ.value
    'DATABASE_READ'
    >>> category_of("DATABASE_READ"), risk_of(OperationType.DATABASE_READ)
    ('Data', 'Low-Medium')
    >>> parse_operation_type("database-read")
    <OperationType.DATABASE_READ: 'DATABASE_READ'>
    >>> parse_operation_type("vector_search")   # a type from a newer release: kept
    'VECTOR_SEARCH'

Discrepancy in the seed, recorded rather than papered over: the page's prose
says "21 semantic event types" (twice: in its introduction and in "Custom Event
Types"), but its seven tables list **24** rows -- LLM 2, Data 6, External 3,
Messaging 2, Authentication 3, Workflow 4, Agent 4 (``AGENT_ACTION`` is the
last Agent row). The vendor's newer documentation also speaks of 24 types. A
type listed in a table must never come back as "unknown", so all 24 rows are
members; ``SEED_STATED_TYPE_COUNT`` keeps the number the prose states, and
``len(OperationType)`` is the number of rows.

Types this module does not know (a newer vendor release, a typo in user data)
are never lost: ``parse_operation_type`` returns them as a normalised string
and ``risk_of`` / ``category_of`` answer ``None`` for them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum
from typing import Final

__all__ = [
    "CATEGORIES",
    "CATEGORY_AGENT",
    "CATEGORY_AUTHENTICATION",
    "CATEGORY_DATA",
    "CATEGORY_EXTERNAL",
    "CATEGORY_LLM",
    "CATEGORY_MESSAGING",
    "CATEGORY_WORKFLOW",
    "EVENT_TYPE_OPERATIONS",
    "RISK_LEVELS",
    "RISK_LOW",
    "RISK_LOW_MEDIUM",
    "RISK_MEDIUM",
    "RISK_MEDIUM_HIGH",
    "RISK_VARIABLE",
    "SEED_STATED_TYPE_COUNT",
    "TURN_END_OPERATION",
    "TURN_START_OPERATION",
    "OperationType",
    "TypeInfo",
    "category_of",
    "describe",
    "info_of",
    "parse_operation_type",
    "risk_of",
    "risk_rank",
]

#: The number of types the seed page's prose states ("21 semantic event types").
#: Its tables list ``len(OperationType)`` == 24 rows; see the module docstring.
SEED_STATED_TYPE_COUNT: Final = 21

# Categories: the seed's table headings without the word "Operations".
CATEGORY_LLM: Final = "LLM"
CATEGORY_DATA: Final = "Data"
CATEGORY_EXTERNAL: Final = "External"
CATEGORY_MESSAGING: Final = "Messaging"
CATEGORY_AUTHENTICATION: Final = "Authentication"
CATEGORY_WORKFLOW: Final = "Workflow"
CATEGORY_AGENT: Final = "Agent"
#: The seven categories, in the seed's order.
CATEGORIES: Final = (
    CATEGORY_LLM,
    CATEGORY_DATA,
    CATEGORY_EXTERNAL,
    CATEGORY_MESSAGING,
    CATEGORY_AUTHENTICATION,
    CATEGORY_WORKFLOW,
    CATEGORY_AGENT,
)

# Risk levels, spelled as the seed spells them.
RISK_LOW: Final = "Low"
RISK_LOW_MEDIUM: Final = "Low-Medium"
RISK_MEDIUM: Final = "Medium"
RISK_MEDIUM_HIGH: Final = "Medium-High"
#: ``AGENT_ACTION``'s level: it depends on what the action is.
RISK_VARIABLE: Final = "Variable"
#: Ordered risk levels -> rank (1 = lowest). ``Variable`` has no rank.
RISK_LEVELS: Final = {RISK_LOW: 1, RISK_LOW_MEDIUM: 2, RISK_MEDIUM: 3, RISK_MEDIUM_HIGH: 4}


class OperationType(str, Enum):
    """The seed's semantic operation types (all 24 table rows, in the seed's order).

    A ``str`` subclass: members compare equal to their names and serialise as
    them (``json.dumps``, ``orjson``); ``str()`` and f-strings give the name.
    """

    # LLM Operations
    LLM_CALL = "LLM_CALL"
    LLM_EMBEDDING = "LLM_EMBEDDING"
    # Data Operations
    DATABASE_READ = "DATABASE_READ"
    DATABASE_WRITE = "DATABASE_WRITE"
    FILE_READ = "FILE_READ"
    FILE_WRITE = "FILE_WRITE"
    CACHE_READ = "CACHE_READ"
    CACHE_WRITE = "CACHE_WRITE"
    # External Operations
    EXTERNAL_API_CALL = "EXTERNAL_API_CALL"
    WEBHOOK_SEND = "WEBHOOK_SEND"
    EMAIL_SEND = "EMAIL_SEND"
    # Messaging Operations
    MESSAGE_QUEUE_SEND = "MESSAGE_QUEUE_SEND"
    MESSAGE_QUEUE_RECEIVE = "MESSAGE_QUEUE_RECEIVE"
    # Authentication Operations
    AUTH_REQUEST = "AUTH_REQUEST"
    AUTH_GRANT = "AUTH_GRANT"
    AUTH_DENY = "AUTH_DENY"
    # Workflow Operations
    WORKFLOW_START = "WORKFLOW_START"
    WORKFLOW_COMPLETE = "WORKFLOW_COMPLETE"
    ACTIVITY_START = "ACTIVITY_START"
    ACTIVITY_COMPLETE = "ACTIVITY_COMPLETE"
    # Agent Operations
    AGENT_GOAL_SET = "AGENT_GOAL_SET"
    AGENT_GOAL_UPDATE = "AGENT_GOAL_UPDATE"
    AGENT_DECISION = "AGENT_DECISION"
    AGENT_ACTION = "AGENT_ACTION"

    def __str__(self) -> str:
        return self.value

    def __format__(self, format_spec: str) -> str:
        return self.value.__format__(format_spec)


@dataclass(frozen=True, slots=True)
class TypeInfo:
    """One row of the seed's tables: type, category, description and risk level."""

    type: OperationType
    category: str
    description: str
    risk: str


def _row(t: OperationType, category: str, description: str, risk: str) -> tuple[OperationType, TypeInfo]:
    return t, TypeInfo(t, category, description, risk)


_T = OperationType
#: Every type's row, as the seed gives it.
_INFO: Final[dict[OperationType, TypeInfo]] = dict(
    [
        _row(_T.LLM_CALL, CATEGORY_LLM, "Call to language model for completion/chat", RISK_MEDIUM),
        _row(_T.LLM_EMBEDDING, CATEGORY_LLM, "Generate embeddings from text", RISK_LOW),
        _row(_T.DATABASE_READ, CATEGORY_DATA, "Read from database", RISK_LOW_MEDIUM),
        _row(_T.DATABASE_WRITE, CATEGORY_DATA, "Write/update/delete database records", RISK_MEDIUM_HIGH),
        _row(_T.FILE_READ, CATEGORY_DATA, "Read from filesystem", RISK_LOW_MEDIUM),
        _row(_T.FILE_WRITE, CATEGORY_DATA, "Write to filesystem", RISK_MEDIUM_HIGH),
        _row(_T.CACHE_READ, CATEGORY_DATA, "Read from cache layer", RISK_LOW),
        _row(_T.CACHE_WRITE, CATEGORY_DATA, "Write to cache layer", RISK_LOW),
        _row(_T.EXTERNAL_API_CALL, CATEGORY_EXTERNAL, "Call to external API", RISK_MEDIUM_HIGH),
        _row(_T.WEBHOOK_SEND, CATEGORY_EXTERNAL, "Send webhook to external system", RISK_MEDIUM_HIGH),
        _row(_T.EMAIL_SEND, CATEGORY_EXTERNAL, "Send email", RISK_MEDIUM),
        _row(_T.MESSAGE_QUEUE_SEND, CATEGORY_MESSAGING, "Publish to message queue", RISK_MEDIUM),
        _row(_T.MESSAGE_QUEUE_RECEIVE, CATEGORY_MESSAGING, "Consume from message queue", RISK_LOW),
        _row(_T.AUTH_REQUEST, CATEGORY_AUTHENTICATION, "Request authentication/authorization", RISK_LOW),
        _row(_T.AUTH_GRANT, CATEGORY_AUTHENTICATION, "Authentication granted", RISK_LOW),
        _row(_T.AUTH_DENY, CATEGORY_AUTHENTICATION, "Authentication denied", RISK_LOW),
        _row(_T.WORKFLOW_START, CATEGORY_WORKFLOW, "Workflow execution begins", RISK_LOW),
        _row(_T.WORKFLOW_COMPLETE, CATEGORY_WORKFLOW, "Workflow execution ends", RISK_LOW),
        _row(_T.ACTIVITY_START, CATEGORY_WORKFLOW, "Activity execution begins", RISK_LOW),
        _row(_T.ACTIVITY_COMPLETE, CATEGORY_WORKFLOW, "Activity execution ends", RISK_LOW),
        _row(_T.AGENT_GOAL_SET, CATEGORY_AGENT, "Agent goal defined", RISK_LOW),
        _row(_T.AGENT_GOAL_UPDATE, CATEGORY_AGENT, "Agent goal modified", RISK_MEDIUM),
        _row(_T.AGENT_DECISION, CATEGORY_AGENT, "Agent makes autonomous decision", RISK_MEDIUM),
        _row(_T.AGENT_ACTION, CATEGORY_AGENT, "Agent takes action", RISK_VARIABLE),
    ]
)

#: ``turn_start`` is the start of a workflow execution (one user request) ...
TURN_START_OPERATION: Final = OperationType.WORKFLOW_START
#: ... and ``turn_end`` its completion.
TURN_END_OPERATION: Final = OperationType.WORKFLOW_COMPLETE
#: Audit ``event_type`` -> the operation type it always is (tool calls are classified instead).
#: Other events without a tool call are ``AGENT_ACTION`` (with ``custom_type`` = the event type).
EVENT_TYPE_OPERATIONS: Final[dict[str, OperationType]] = {
    "turn_start": TURN_START_OPERATION,
    "turn_end": TURN_END_OPERATION,
    "agent_switch": OperationType.AGENT_DECISION,  # a handoff: the agent decided who goes on
}

_BY_NAME: Final[dict[str, OperationType]] = {t.value: t for t in OperationType}
_SEPARATORS = re.compile(r"[^0-9A-Za-z]+")


def parse_operation_type(value: object) -> OperationType | str:
    """The ``OperationType`` named by ``value``, or the normalised string when unknown. Never raises.

    Normalisation: surrounding space removed, upper-cased, every run of other
    characters than letters and digits turned into one ``_`` (so
    ``"database-read"`` and ``" Database Read "`` are ``DATABASE_READ``). An
    unknown type comes back as that normalised string -- never dropped -- and an
    empty value as ``""``. Non-string values are read through ``str()``.

    Example::

        parse_operation_type("llm_call")         # OperationType.LLM_CALL
        parse_operation_type("Tool.Invocation")  # 'TOOL_INVOCATION'
    """
    if isinstance(value, OperationType):
        return value
    try:
        text = value if isinstance(value, str) else str(value.value if isinstance(value, Enum) else value)
        known = _BY_NAME.get(text)  # fast path: already canonical
        if known is not None:
            return known
        normalised = _SEPARATORS.sub("_", text.strip()).strip("_").upper()
        return _BY_NAME.get(normalised, normalised)
    except Exception:  # a hostile __str__; the type is lost but the caller is not
        return ""


def info_of(t: object) -> TypeInfo | None:
    """The seed's row for a type (member or name, any spelling), ``None`` for unknown types."""
    parsed = parse_operation_type(t)
    return _INFO[parsed] if isinstance(parsed, OperationType) else None


def risk_of(t: object) -> str | None:
    """The seed's risk level of a type (``"Low"`` ... ``"Medium-High"``, ``"Variable"``), else ``None``.

    Example::

        risk_of("DATABASE_WRITE")  # 'Medium-High'
    """
    info = info_of(t)
    return info.risk if info is not None else None


def category_of(t: object) -> str | None:
    """The seed's category of a type (``"LLM"``, ``"Data"``, ..., ``"Agent"``), else ``None``."""
    info = info_of(t)
    return info.category if info is not None else None


def describe(t: object) -> str | None:
    """The seed's one-line description of a type, else ``None``."""
    info = info_of(t)
    return info.description if info is not None else None


def risk_rank(risk: object) -> int | None:
    """Order of a risk level: 1 (``Low``) .. 4 (``Medium-High``); ``None`` for ``Variable`` or unknown."""
    return RISK_LEVELS.get(risk) if isinstance(risk, str) else None

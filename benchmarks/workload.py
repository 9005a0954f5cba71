"""The realistic audit event stream every benchmark feeds: turns of tool calls as the seed runtime emits them.

Per tool call, in the runtime's order: loop check (``tool_loop_warning`` with
``severity_level="ok"``, ``pattern="none"``), policy decision (``allow``),
attempt, sandbox decision, then completion -- or, for about one call in ten,
failure. A turn is ``turn_start``, its calls, ``turn_end``::

    rng = random.Random(7)
    events = turn_events(rng, turn_index=0, calls=4)
    assert len(events) == events_per_turn(4) == 22

Argument previews are Python reprs (as the runtime writes ``str(args)``) that
differ from call to call, so the classifier's memo cache does not hide its
cost. Timestamps are the seed's ``isoformat()`` strings, 1 ms apart.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from auditspan.emitter import PREVIEW_LIMIT
from auditspan.events import (
    AuditEvent,
    SandboxDecisionEvent,
    ToolCallAttemptEvent,
    ToolCallCompleteEvent,
    ToolCallFailureEvent,
    ToolLoopWarningEvent,
    ToolPolicyDecisionEvent,
    TurnEndEvent,
    TurnStartEvent,
)

__all__ = [
    "EVENTS_PER_CALL",
    "TOOLS",
    "Tool",
    "call_events",
    "concurrent_turns",
    "event_stream",
    "events_per_turn",
    "iso",
    "preview_pairs",
    "spans_per_turn",
    "turn_events",
]

#: Events one tool call emits (loop check, policy, attempt, sandbox, completion/failure).
EVENTS_PER_CALL = 5
#: 2026-11-21T19:00:00Z, where the generated timeline starts.
_EPOCH_NS = 1_795_287_600 * 1_000_000_000
_MS = 1_000_000


@dataclass(frozen=True)
class Tool:
    """A tool of the simulated agent: how its arguments and results look.

    ``args`` and ``result`` are format strings with ``{n}`` (a per-call number).
    """

    name: str
    args: str
    result: str
    error_type: str
    error_message: str


#: Eight tools of a typical coding/data agent (distinct names, so four calls of a turn never repeat one).
TOOLS: tuple[Tool, ...] = (
    Tool(
        "web_search",
        "{{'query': 'opentelemetry genai semantic conventions {n}', 'max_results': 5}}",
        "[{{'title': 'Semantic conventions for GenAI', 'url': 'https://opentelemetry.io/docs/{n}'}}]",
        "TimeoutError",
        "search backend did not answer within 10s",
    ),
    Tool(
        "run_sql",
        "{{'query': 'SELECT id, email, created_at FROM customers.accounts WHERE id = {n}'}}",
        "[(1, 'a@example.com', '2026-01-0{n}')]",
        "OperationalError",
        "database is locked",
    ),
    Tool(
        "read_file",
        "{{'path': '/srv/data/reports/q{n}.csv', 'mode': 'r'}}",
        "id,amount,currency\\n1,{n}.00,EUR\\n2,17.50,EUR",
        "FileNotFoundError",
        "[Errno 2] No such file or directory",
    ),
    Tool(
        "write_file",
        "{{'path': '/srv/out/summary_{n}.md', 'mode': 'w', 'content': '# Summary\\n- revenue up 4%'}}",
        "wrote 128 bytes",
        "PermissionError",
        "[Errno 13] Permission denied",
    ),
    Tool(
        "http_get",
        "{{'url': 'https://api.example.com/v1/orders/{n}?expand=items', 'timeout': 30}}",
        "{{'status': 200, 'body': '{{\"id\": {n}, \"items\": 3}}'}}",
        "ConnectionError",
        "connection reset by peer",
    ),
    Tool(
        "send_email",
        "{{'to': ['ops{n}@example.com'], 'subject': 'Nightly report', 'body': 'All jobs green.'}}",
        "queued message <{n}@mail.example.com>",
        "SMTPException",
        "relay access denied",
    ),
    Tool(
        "shell",
        "{{'command': 'git log --oneline -n {n}', 'cwd': '/srv/repo'}}",
        "a1b2c3d fix: retry on timeout\\ne4f5a6b feat: add exporter",
        "CalledProcessError",
        "command returned non-zero exit status 128",
    ),
    Tool(
        "calculator",
        "{{'expression': '({n} * 1.19) + 4.5'}}",
        "{n}.42",
        "ZeroDivisionError",
        "division by zero",
    ),
)


def iso(ns: int) -> str:
    """The seed's timestamp text for ``ns`` nanoseconds since the epoch (``isoformat()``, UTC)."""
    return datetime.fromtimestamp(ns / 1e9, timezone.utc).isoformat()


def events_per_turn(calls: int) -> int:
    """Events in a turn of ``calls`` tool calls: turn_start, 5 per call, turn_end."""
    return 2 + EVENTS_PER_CALL * calls


def spans_per_turn(calls: int) -> int:
    """Spans a turn of ``calls`` tool calls makes: the turn's and one per call."""
    return 1 + calls


def _cut(text: str) -> str:
    return text[:PREVIEW_LIMIT]


def call_events(
    rng: random.Random,
    tool: Tool,
    n: int,
    *,
    ts_ns: int,
    agent_id: str,
    turn_id: str,
    session_id: str,
    failure_rate: float,
) -> list[AuditEvent]:
    """The five events of one tool call, 1 ms apart from ``ts_ns`` on."""
    common: dict[str, Any] = {"agent_id": agent_id, "turn_id": turn_id, "session_id": session_id}
    events: list[AuditEvent] = [
        ToolLoopWarningEvent(
            timestamp=iso(ts_ns),
            tool_name=tool.name,
            pattern="none",
            severity_level="ok",
            call_count=1,
            **common,
        ),
        ToolPolicyDecisionEvent(
            timestamp=iso(ts_ns + _MS),
            tool_name=tool.name,
            action="allow",
            policy_source="policies/default.yaml",
            **common,
        ),
        ToolCallAttemptEvent(
            timestamp=iso(ts_ns + 2 * _MS),
            tool_name=tool.name,
            arguments_preview=_cut(tool.args.format(n=n)),
            **common,
        ),
        SandboxDecisionEvent(
            timestamp=iso(ts_ns + 3 * _MS),
            tool_name=tool.name,
            context="sandbox",
            reason="tool writes outside the workspace",
            backend_type="docker",
            **common,
        ),
    ]
    if rng.random() < failure_rate:
        events.append(
            ToolCallFailureEvent(
                timestamp=iso(ts_ns + 4 * _MS),
                tool_name=tool.name,
                error_type=tool.error_type,
                error_message=tool.error_message,
                **common,
            )
        )
    else:
        events.append(
            ToolCallCompleteEvent(
                timestamp=iso(ts_ns + 4 * _MS),
                tool_name=tool.name,
                status="success",
                duration_ms=round(rng.uniform(2.0, 900.0), 3),
                result_preview=_cut(tool.result.format(n=n)),
                **common,
            )
        )
    return events


def turn_events(
    rng: random.Random,
    turn_index: int,
    *,
    calls: int = 4,
    session_id: str = "sess-bench",
    agent_id: str = "planner",
    failure_rate: float = 0.1,
    with_end: bool = True,
    start_ns: int | None = None,
) -> list[AuditEvent]:
    """One turn: ``turn_start``, ``calls`` tool calls, ``turn_end`` (unless ``with_end`` is False).

    Up to eight calls use distinct tools; longer turns cycle through them (a
    call after a failure of the same tool is then a retry, as in real runs).
    Timestamps start at ``start_ns`` (default: a fixed timeline, one turn a second).
    """
    turn_id = f"{turn_index:012x}"
    start = _EPOCH_NS + turn_index * 1_000 * _MS if start_ns is None else start_ns
    tools = rng.sample(TOOLS, calls) if calls <= len(TOOLS) else [TOOLS[i % len(TOOLS)] for i in range(calls)]
    events: list[AuditEvent] = [
        TurnStartEvent(
            timestamp=iso(start),
            agent_id=agent_id,
            turn_id=turn_id,
            session_id=session_id,
            prompt_preview="Summarise last quarter's orders and email the report to ops",
        )
    ]
    for i, tool in enumerate(tools):
        events.extend(
            call_events(
                rng,
                tool,
                turn_index * calls + i,
                ts_ns=start + (1 + 5 * i) * _MS,
                agent_id=agent_id,
                turn_id=turn_id,
                session_id=session_id,
                failure_rate=failure_rate,
            )
        )
    if with_end:
        events.append(
            TurnEndEvent(
                timestamp=iso(start + (2 + 5 * calls) * _MS),
                agent_id=agent_id,
                turn_id=turn_id,
                session_id=session_id,
                content_preview="Sent the Q3 order summary to ops@example.com.",
                function_calls_count=calls,
            )
        )
    return events


def event_stream(
    turns: int, *, calls: int = 4, seed: int = 7, first_turn: int = 0, with_end: bool = True
) -> Iterator[AuditEvent]:
    """``turns`` consecutive turns, generated lazily (for streams too long to hold)."""
    rng = random.Random(seed)
    for index in range(first_turn, first_turn + turns):
        yield from turn_events(rng, index, calls=calls, with_end=with_end)


def preview_pairs(count: int, seed: int = 11) -> list[tuple[str, str]]:
    """``count`` (tool name, arguments preview) pairs as the classifier sees them, all different."""
    rng = random.Random(seed)
    return [(tool.name, _cut(tool.args.format(n=i))) for i, tool in enumerate(rng.choices(TOOLS, k=count))]


def concurrent_turns(
    open_turns: int, calls: int, *, seed: int = 7, failure_rate: float = 0.1
) -> tuple[list[AuditEvent], list[AuditEvent], list[AuditEvent]]:
    """``open_turns`` turns open at once and ``calls`` tool calls spread round-robin over them.

    Returns (the turn starts, the calls' events, the turn ends): a benchmark
    opens the turns, times the calls, then ends the turns.
    """
    rng = random.Random(seed)
    common: dict[str, Any] = {"agent_id": "planner", "session_id": "sess-bench"}
    starts: list[AuditEvent] = [
        TurnStartEvent(timestamp=iso(_EPOCH_NS + t * _MS), turn_id=f"{t:012x}", prompt_preview="go", **common)
        for t in range(open_turns)
    ]
    first_call = _EPOCH_NS + open_turns * _MS
    middle: list[AuditEvent] = []
    for j in range(calls):
        turn = j % open_turns
        middle.extend(
            call_events(
                rng,
                TOOLS[(j // open_turns) % len(TOOLS)],
                j,
                ts_ns=first_call + j * 5 * _MS,
                turn_id=f"{turn:012x}",
                failure_rate=failure_rate,
                **common,
            )
        )
    last = first_call + calls * 5 * _MS
    ends: list[AuditEvent] = [
        TurnEndEvent(
            timestamp=iso(last + t * _MS),
            turn_id=f"{t:012x}",
            content_preview="done",
            function_calls_count=calls // open_turns + (1 if t < calls % open_turns else 0),
            **common,
        )
        for t in range(open_turns)
    ]
    return starts, middle, ends

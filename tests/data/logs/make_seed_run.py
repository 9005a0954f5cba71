"""Regenerate ``seed-run.jsonl``: an audit log exactly as the seed system writes it.

Each line is ``json.dumps(dataclasses.asdict(event), default=str)`` of an
event object (``auditspan.events`` classes serialise as the seed's do), in the
order the seed runtime emits them per tool call. The run covers a denied
call, a failed call and its retry, two parallel calls of the same tool, a
loop warning and a loop block, argument and result hooks, sandbox decisions,
an error inside a turn, an unknown ``skill_used`` event, events with
``turn_id=None`` (inside a turn and with no turn open), two sessions, and
timestamps in the Python (``+00:00``, with and without fraction) and
TypeScript (``...123Z``) forms.

Run: ``python tests/data/logs/make_seed_run.py`` (writes next to this file).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from auditspan.events import (
    AuditEvent,
    ErrorEvent,
    HookMutationEvent,
    SandboxDecisionEvent,
    ToolCallAttemptEvent,
    ToolCallCompleteEvent,
    ToolCallFailureEvent,
    ToolLoopBlockEvent,
    ToolLoopWarningEvent,
    ToolPolicyDecisionEvent,
    TurnEndEvent,
    TurnStartEvent,
)

START = datetime(2026, 3, 2, 9, 15, 0, 250_000, tzinfo=timezone.utc)


@dataclass
class SkillUsedEvent(AuditEvent):
    """The successor system's ``skill_used`` event (unknown to auditspan: carried as is)."""

    event_type: str = field(default="skill_used", init=False)
    skill_name: str = ""
    skill_version: str = ""


class Clock:
    """Timestamps at given offsets from START, in the seed's or the TypeScript port's form."""

    def __init__(self, style: str) -> None:
        self.style = style

    def at(self, ms: float) -> str:
        moment = START + timedelta(milliseconds=ms)
        if self.style == "ts":
            return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
        return moment.isoformat()


def tool_call(
    events: list[AuditEvent],
    clock: Clock,
    t0: float,
    *,
    tool: str,
    args: str,
    result: str,
    duration: float,
    agent: str,
    turn: str | None,
    session: str,
    sandbox: str = "host",
) -> None:
    """One allowed, successful call in the seed's order: loop check, policy, attempt, sandbox, complete."""
    common: dict[str, Any] = {"agent_id": agent, "turn_id": turn, "session_id": session}
    events += [
        ToolLoopWarningEvent(
            timestamp=clock.at(t0), tool_name=tool, pattern="none", severity_level="ok", **common
        ),
        ToolPolicyDecisionEvent(
            timestamp=clock.at(t0 + 0.4),
            tool_name=tool,
            action="allow",
            policy_source="default_policy",
            **common,
        ),
        ToolCallAttemptEvent(timestamp=clock.at(t0 + 0.9), tool_name=tool, arguments_preview=args, **common),
        SandboxDecisionEvent(
            timestamp=clock.at(t0 + 1.3),
            tool_name=tool,
            context=sandbox,
            reason="trusted tool" if sandbox == "host" else "writes to disk",
            backend_type="local" if sandbox == "host" else "docker",
            **common,
        ),
        ToolCallCompleteEvent(
            timestamp=clock.at(t0 + 1.3 + duration),
            tool_name=tool,
            duration_ms=duration,
            result_preview=result,
            **common,
        ),
    ]


def build() -> list[AuditEvent]:
    """The whole run, in emission order."""
    events: list[AuditEvent] = []
    py, ts = Clock("py"), Clock("ts")
    s1, s2 = "sess-7f3a", "sess-9c1d"
    agent = "support-agent"

    # Turn 1 (Python timestamps): a PII read, a denied email, a failing call and its retry, a skill.
    t1 = "a1b2c3d4e5f6"
    c1: dict[str, Any] = {"agent_id": agent, "turn_id": t1, "session_id": s1}
    events.append(
        TurnStartEvent(
            timestamp=py.at(0),
            prompt_preview="Send the March newsletter to every customer on the PII list",
            **c1,
        )
    )
    tool_call(
        events,
        py,
        20,
        tool="run_sql",
        args="{'query': 'SELECT email FROM customers.pii_emails'}",
        result="[('ana@example.com',), ('li@example.com',)]",
        duration=41.7,
        agent=agent,
        turn=t1,
        session=s1,
    )
    events += [
        ToolLoopWarningEvent(
            timestamp=py.at(80), tool_name="send_email", pattern="none", severity_level="ok", **c1
        ),
        ToolPolicyDecisionEvent(
            timestamp=py.at(80.5),
            tool_name="send_email",
            action="deny",
            policy_source="pii_exfiltration_guard",
            **c1,
        ),
    ]
    rates_args = "{'url': 'https://api.exchangerate.example/v6/latest/EUR'}"
    events += [
        ToolLoopWarningEvent(
            timestamp=py.at(100), tool_name="fetch_rates", pattern="none", severity_level="ok", **c1
        ),
        ToolPolicyDecisionEvent(
            timestamp=py.at(100.4),
            tool_name="fetch_rates",
            action="allow",
            policy_source="default_policy",
            **c1,
        ),
        ToolCallAttemptEvent(
            timestamp=py.at(101), tool_name="fetch_rates", arguments_preview=rates_args, **c1
        ),
        SandboxDecisionEvent(
            timestamp=py.at(101.3),
            tool_name="fetch_rates",
            context="host",
            reason="trusted tool",
            backend_type="local",
            **c1,
        ),
        ToolCallFailureEvent(
            timestamp=py.at(5101.3),
            tool_name="fetch_rates",
            error_type="TimeoutError",
            error_message="upstream timed out after 5000 ms",
            **c1,
        ),
    ]
    tool_call(
        events,
        py,
        5200,
        tool="fetch_rates",
        args=rates_args,
        result="{'EUR': 1.0, 'USD': 1.08}",
        duration=88.0,
        agent=agent,
        turn=t1,
        session=s1,
    )
    events.append(
        SkillUsedEvent(timestamp=py.at(5400), skill_name="newsletter-formatter", skill_version="1.2.0", **c1)
    )
    # START is at .250 s: offset 5750 ms lands on a whole second, where isoformat() drops the fraction.
    events.append(
        TurnEndEvent(
            timestamp=py.at(5750),
            content_preview="The newsletter was not sent: policy denied it.",
            function_calls_count=4,
            **c1,
        )
    )

    # Turn 2 (TypeScript timestamps): two parallel calls of one tool, hooks, a call without turn id.
    t2 = "0f9e8d7c6b5a"
    c2: dict[str, Any] = {"agent_id": agent, "turn_id": t2, "session_id": s1}
    base = 10_000
    events.append(TurnStartEvent(timestamp=ts.at(base), prompt_preview="Weather in Lisbon and Porto?", **c2))
    for i in range(2):
        events += [
            ToolLoopWarningEvent(
                timestamp=ts.at(base + 10 + i),
                tool_name="fetch_weather",
                pattern="none",
                severity_level="ok",
                **c2,
            ),
            ToolPolicyDecisionEvent(
                timestamp=ts.at(base + 12 + i),
                tool_name="fetch_weather",
                action="allow",
                policy_source="default_policy",
                **c2,
            ),
        ]
    for i, city in enumerate(("Lisbon", "Porto")):
        events.append(
            ToolCallAttemptEvent(
                timestamp=ts.at(base + 20 + i),
                tool_name="fetch_weather",
                arguments_preview=f"{{'url': 'https://api.weather.example/v1/current?city={city}'}}",
                **c2,
            )
        )
    for i, (city, duration) in enumerate((("Lisbon", 130.0), ("Porto", 145.0))):
        events.append(
            ToolCallCompleteEvent(
                timestamp=ts.at(base + 20 + i + duration),
                tool_name="fetch_weather",
                duration_ms=duration,
                result_preview=f"{{'city': '{city}', 'temp_c': {17 + i}}}",
                **c2,
            )
        )
    # An LLM call reported without turn id: it belongs to the open turn of this session and agent.
    tool_call(
        events,
        ts,
        base + 300,
        tool="llm_complete",
        args="{'model': 'gpt-4o-mini', 'messages': [{'role': 'user', 'content': 'Summarise the weather'}]}",
        result="Sunny in Lisbon, clouds in Porto.",
        duration=420.0,
        agent=agent,
        turn=None,
        session=s1,
    )
    wf = base + 800
    write_args = "{'path': 'reports/weather.md', 'mode': 'w', 'content': 'Sunny in Lisbon'}"
    events += [
        ToolLoopWarningEvent(
            timestamp=ts.at(wf), tool_name="write_file", pattern="none", severity_level="ok", **c2
        ),
        ToolPolicyDecisionEvent(
            timestamp=ts.at(wf + 1),
            tool_name="write_file",
            action="allow",
            policy_source="default_policy",
            **c2,
        ),
        HookMutationEvent(
            timestamp=ts.at(wf + 2),
            hook_name="redact_pii",
            tool_name="write_file",
            mutated_field="arguments",
            **c2,
        ),
        ToolCallAttemptEvent(
            timestamp=ts.at(wf + 3), tool_name="write_file", arguments_preview=write_args, **c2
        ),
        SandboxDecisionEvent(
            timestamp=ts.at(wf + 4),
            tool_name="write_file",
            context="sandbox",
            reason="writes to disk",
            backend_type="docker",
            **c2,
        ),
        HookMutationEvent(
            timestamp=ts.at(wf + 30),
            hook_name="truncate_output",
            tool_name="write_file",
            mutated_field="result",
            **c2,
        ),
        ToolCallCompleteEvent(
            timestamp=ts.at(wf + 31),
            tool_name="write_file",
            duration_ms=27.0,
            result_preview="wrote 15 bytes",
            **c2,
        ),
        TurnEndEvent(
            timestamp=ts.at(wf + 60),
            content_preview="Sunny in Lisbon, clouds in Porto.",
            function_calls_count=4,
            **c2,
        ),
    ]
    # An error with no turn open: a span of its own.
    events.append(
        ErrorEvent(
            timestamp=ts.at(wf + 100),
            error_type="ConnectionResetError",
            error_message="client went away while streaming the reply",
            error_context="after turn end",
            agent_id=agent,
            turn_id=None,
            session_id=s1,
        )
    )

    # Turn 3 (Python timestamps): repeated searches, a loop warning, a loop block, an LLM error.
    t3 = "3c4d5e6f7a8b"
    c3: dict[str, Any] = {"agent_id": agent, "turn_id": t3, "session_id": s1}
    base = 20_000
    events.append(TurnStartEvent(timestamp=py.at(base), prompt_preview="Find the refund policy", **c3))
    search_args = "{'query': 'refund policy'}"
    for k in range(3):
        t0 = base + 10 + k * 50
        if k < 2:
            loop = ToolLoopWarningEvent(
                timestamp=py.at(t0), tool_name="search_docs", pattern="none", severity_level="ok", **c3
            )
        else:
            loop = ToolLoopWarningEvent(
                timestamp=py.at(t0),
                tool_name="search_docs",
                pattern="same_args_3x",
                severity_level="warning",
                call_count=3,
                **c3,
            )
        events += [
            loop,
            ToolPolicyDecisionEvent(
                timestamp=py.at(t0 + 1),
                tool_name="search_docs",
                action="allow",
                policy_source="default_policy",
                **c3,
            ),
            ToolCallAttemptEvent(
                timestamp=py.at(t0 + 2), tool_name="search_docs", arguments_preview=search_args, **c3
            ),
            ToolCallCompleteEvent(
                timestamp=py.at(t0 + 20),
                tool_name="search_docs",
                duration_ms=18.0,
                result_preview="0 results",
                **c3,
            ),
        ]
    events += [
        ToolLoopBlockEvent(
            timestamp=py.at(base + 200), tool_name="search_docs", pattern="same_args_4x", call_count=4, **c3
        ),
        ErrorEvent(
            timestamp=py.at(base + 250),
            error_type="RateLimitError",
            error_message="LLM provider returned 429",
            error_context="during response generation",
            **c3,
        ),
        TurnEndEvent(
            timestamp=py.at(base + 300), content_preview="I could not find it.", function_calls_count=4, **c3
        ),
    ]

    # A second session, another agent (Python timestamps).
    t4 = "5e4d3c2b1a09"
    c4: dict[str, Any] = {"agent_id": "ops-agent", "turn_id": t4, "session_id": s2}
    base = 30_000
    events.append(TurnStartEvent(timestamp=py.at(base), prompt_preview="Archive last month's logs", **c4))
    tool_call(
        events,
        py,
        base + 10,
        tool="run_shell",
        args="{'cmd': 'tar czf logs.tgz /var/log/app'}",
        result="",
        duration=950.0,
        agent="ops-agent",
        turn=t4,
        session=s2,
        sandbox="sandbox",
    )
    events.append(
        TurnEndEvent(timestamp=py.at(base + 1000), content_preview="Archived.", function_calls_count=1, **c4)
    )
    return events


def main() -> None:
    """Write seed-run.jsonl next to this script."""
    path = Path(__file__).with_name("seed-run.jsonl")
    with path.open("w", encoding="utf-8") as f:
        for event in build():
            f.write(json.dumps(dataclasses.asdict(event), default=str) + "\n")


if __name__ == "__main__":
    main()

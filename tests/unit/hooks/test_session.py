"""``auditspan.hooks._session.AuditSession``: all that a turn or a tool call needs from its ``Audit``.

The session is tested here on its own, without a ``Turn`` or a ``ToolCall``: events go out through
its emitter, failures never reach the agent, the callbacks' answers are read, and the ``Audit``'s
attributes are the session's (a change is seen by turns already open).
"""

from __future__ import annotations

import logging
import re
import sys
from typing import Any

import pytest

from auditspan import AuditEmitter
from auditspan.hooks import Audit
from auditspan.hooks._session import AuditSession

from ...fixtures.standin import STANDIN_PATH


class _FullDisk:
    """A collector whose every write fails, as on a full disk."""

    def emit(self, event: Any) -> None:
        raise OSError(28, "No space left on device")

    def flush(self) -> None:
        raise OSError(28, "No space left on device")


def _session(emitter: Any, **options: Any) -> AuditSession:
    settings: dict[str, Any] = {
        "session_id": None,
        "agent_id": None,
        "policy": None,
        "policy_source": None,
        "loop_check": None,
        "sandbox": None,
    }
    settings.update(options)
    return AuditSession(emitter, **settings)


def test_send_hands_the_event_to_the_emitter(harness: Any) -> None:
    session = _session(harness.emitter)
    session.send(
        session.emitter.emit_tool_call_attempt, "web_search", args="q", turn_id="t1", metadata={"k": "v"}
    )
    (record,) = harness.records()
    assert record["event_type"] == "tool_call_attempt" and record["tool_name"] == "web_search"
    assert record["arguments_preview"] == "q" and record["metadata"]["k"] == "v"
    assert record["session_id"] == "sess-1" and session.session_id == "sess-1"
    assert session.collector is harness.collector  # the SpanCollector, to make audit spans current


def test_send_never_raises_and_logs_the_first_failure_only(caplog: pytest.LogCaptureFixture) -> None:
    session = _session(AuditEmitter(_FullDisk(), session_id="s"))
    with caplog.at_level(logging.ERROR, logger="auditspan.hooks"):
        session.send(session.emitter.emit_error, error_type="E1")
        session.send(session.emitter.emit_error, error_type="E2")
        session.send(session.emitter.flush)
    failures = [r for r in caplog.records if r.name == "auditspan.hooks"]
    assert len(failures) == 1
    assert "emitting an audit event failed" in failures[0].getMessage()
    assert failures[0].exc_info is not None and isinstance(failures[0].exc_info[1], OSError)


def test_send_leaves_out_metadata_for_an_emitter_that_takes_none(
    harness: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.syspath_prepend(str(STANDIN_PATH))
    try:
        from calute.audit import AuditEmitter as SeedEmitter

        session = _session(SeedEmitter(collector=harness.collector, session_id="seed"))
        session.send(session.emitter.emit_tool_call_attempt, "t", args="a", metadata={"tool_call_id": "c1"})
        (record,) = harness.records()
        assert record["event_type"] == "tool_call_attempt" and "tool_call_id" not in record["metadata"]
    finally:
        for name in [n for n in sys.modules if n == "calute" or n.startswith("calute.")]:
            del sys.modules[name]


def test_start_turn_returns_the_emitters_id_else_the_given_one_else_a_new_one(harness: Any) -> None:
    session = _session(harness.emitter)
    made = session.start_turn("a", None, "hello", {"k": "v"})
    assert re.fullmatch(r"[0-9a-f]{12}", made)
    assert session.start_turn("a", "t-given", "", {}) == "t-given"
    first, second = harness.records()
    assert first["turn_id"] == made and first["prompt_preview"] == "hello" and first["metadata"]["k"] == "v"
    assert second["turn_id"] == "t-given"

    failing = _session(AuditEmitter(_FullDisk()))  # the emitter raises: still an id, and nothing raised
    assert failing.start_turn("a", "t-kept", "", {}) == "t-kept"
    assert re.fullmatch(r"[0-9a-f]{12}", failing.start_turn("a", None, "", {}))


def test_span_context_is_the_open_turns_span(harness: Any) -> None:
    session = _session(harness.emitter)
    turn_id = session.start_turn("a", None, "", {})
    found = session.span_context(turn_id, None)
    assert session.span_context("no-such-turn", None) is None
    session.send(session.emitter.emit_turn_end, agent_id="a", turn_id=turn_id)
    assert found is not None and found.span_id == harness.span("invoke_agent a").context.span_id
    assert _session(AuditEmitter(_FullDisk())).span_context(turn_id, None) is None  # no SpanCollector


@pytest.mark.parametrize(
    ("answer", "verdict"),
    [
        (True, ("allow", None)),
        (False, ("deny", None)),
        (None, (None, None)),
        ("require_approval", ("require_approval", None)),
        (("deny", "rules.yaml"), ("deny", "rules.yaml")),
        ((False, 7), ("deny", "7")),
        ((None, "rules.yaml"), (None, None)),
    ],
)
def test_policy_verdict_reads_every_answer(answer: Any, verdict: tuple[str | None, str | None]) -> None:
    asked: list[tuple[str, Any]] = []

    def policy(tool: str, args: Any) -> Any:
        asked.append((tool, args))
        return answer

    session = _session(AuditEmitter(_FullDisk()), policy=policy)
    assert session.policy_verdict("wire_money", {"amount": 5}) == verdict
    assert asked == [("wire_money", {"amount": 5})]


def test_the_users_callbacks_raise_into_the_agent() -> None:
    def loop_check(tool: str, args: Any) -> Any:
        raise LookupError("the agent's own bug")

    session = _session(AuditEmitter(_FullDisk()), loop_check=loop_check)
    assert session.ask(None, "t", {}) is None
    with pytest.raises(LookupError, match="own bug"):
        session.ask(session.loop_check, "t", {})


@pytest.mark.parametrize(
    ("policy_source", "policy", "expected"),
    [
        (None, None, ""),
        ("rules.yaml", None, "rules.yaml"),
        (None, lambda tool, args: True, "policy"),
        (
            None,
            test_the_users_callbacks_raise_into_the_agent,
            "test_the_users_callbacks_raise_into_the_agent",
        ),
    ],
)
def test_policy_source_defaults_to_the_policys_name(policy_source: Any, policy: Any, expected: str) -> None:
    session = _session(AuditEmitter(_FullDisk()), policy=policy, policy_source=policy_source)
    assert session.policy_source == expected


def test_the_audits_attributes_are_its_sessions_and_open_turns_see_a_change(harness: Any) -> None:
    audit = Audit(harness.collector, session_id="sess-s", agent_id="solo")
    with audit.turn(agent_id="a"):
        audit.policy = lambda tool, args: ("deny", "late rule") if tool.startswith("delete") else True
        audit.policy_source = "changed"
        with pytest.raises(PermissionError), audit.tool_call("delete_records"):
            pass
    audit.agent_id = "other"
    with audit.tool_call("outside") as call:
        call.result = "r"
    records = harness.records()
    denied, allowed = (r for r in records if r["event_type"] == "tool_policy_decision")
    assert denied["action"] == "deny" and denied["policy_source"] == "late rule"
    assert allowed["action"] == "allow" and allowed["policy_source"] == "changed"
    outside = [r for r in records if r.get("tool_name") == "outside"]
    assert {r["agent_id"] for r in outside} == {"other"}
    assert audit.policy_source == "changed" and audit.session_id == "sess-s"

"""No secret leaves auditspan, whichever field it is in and whichever output is read.

Every fake secret of ``tests/data/secrets/secrets.txt`` is put into every free-text field an
agent runtime fills -- prompt, reply, arguments, result, error message and context, policy
source, sandbox context and reason, loop pattern, metadata values (flat, nested, under a
sensitive key, as a key) and the fields of an event type auditspan does not know -- through
``auditspan.configure()`` with the default capture policy and ``events_as="both"``. Then every
output is read back: the audit log, the spans file and the log-records file (the embedded
default's OTLP/JSON lines), JSON strings inside them decoded too, and Python's own log
output. Neither a secret nor any 8-character piece of it may appear; look-alikes must
survive unchanged. With ``capture="full"`` the secrets do appear -- the check can fail.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import auditspan
from auditspan.emitter import PREVIEW_LIMIT

from .secret_corpus import Secret, load_lookalikes, load_secrets

SECRETS = load_secrets()
LOOKALIKES = load_lookalikes()
FILLER = "lorem ipsum dolor sit amet, consectetur adipiscing elit; " * 5


# --- the workload ------------------------------------------------------------------------------------


def emit_everywhere(
    handle: auditspan.AuditSpanHandle, n: int, text: str, secret: Secret, unknown_types: bool
) -> None:
    """One turn with ``text`` in every free-text field of every event type (and of an unknown one)."""
    audit = handle.emitter(session_id=f"sess-{n}")
    agent = "secret-agent"
    turn = audit.emit_turn_start(agent_id=agent, prompt=f"please {text}", metadata={"note": text})
    tool = "deploy"
    audit.emit_tool_loop_warning(
        tool, pattern=f"repeated: {text}", severity="warning", count=3, agent_id=agent, turn_id=turn
    )
    audit.emit_tool_policy_decision(
        tool, agent_id=agent, action="allow", source=f"policy {text}", turn_id=turn
    )
    audit.emit_hook_mutation(
        "scrubber",
        tool,
        agent_id=agent,
        field="arguments",
        turn_id=turn,
        metadata={"before": text, "nested": {"deeper": [text, {"x": text}]}},
    )
    audit.emit_tool_call_attempt(
        tool,
        args=f"{{'cmd': 'run', 'env': '{text}'}}",
        agent_id=agent,
        turn_id=turn,
        metadata={"tool_call_id": f"c{n}", "headers": {"X-Debug": text}},
    )
    audit.emit_sandbox_decision(
        tool,
        context=f"ctx {text}",
        reason=f"because {text}",
        backend_type="docker",
        agent_id=agent,
        turn_id=turn,
    )
    audit.emit_tool_call_complete(
        tool,
        duration_ms=5.0,
        result=f"ok: {text}",
        agent_id=agent,
        turn_id=turn,
        metadata={"tool_call_id": f"c{n}"},
    )
    audit.emit_tool_call_attempt("fetch", args=text, agent_id=agent, turn_id=turn)
    audit.emit_tool_call_failure(
        "fetch", error_type="HTTPError", error_msg=f"401 for {text}", agent_id=agent, turn_id=turn
    )
    audit.emit_tool_policy_decision(
        "rm", agent_id=agent, action="deny", source=f"deny.rego {text}", turn_id=turn
    )
    audit.emit_tool_loop_block("spin", pattern=f"loop {text}", count=9, agent_id=agent, turn_id=turn)
    audit.emit_error(
        error_type="LLMError",
        error_msg=f"upstream said {text}",
        context=f"while {text}",
        agent_id=agent,
        turn_id=turn,
        metadata={"api_key": secret.value, secret.in_context: "as a key", "list": [text, 1]},
    )
    if unknown_types:
        # An event type auditspan has no class for (the successor runtime's), straight to the collector.
        handle.collector.emit(
            {
                "event_type": "skill_used",
                "session_id": f"sess-{n}",
                "turn_id": turn,
                "agent_id": agent,
                "skill_name": "shell",
                "skill_args": text,
                "output": {"stdout": text},
                "metadata": {"m": text},
            }
        )
    # A preview cut at 200 characters in the middle of the secret.
    cut = FILLER[: PREVIEW_LIMIT - 10 - len(secret.in_context) // 2]
    audit.emit_tool_call_attempt("cut", args=f"{cut} {text}", agent_id=agent, turn_id=turn)
    audit.emit_tool_call_complete("cut", result=f"{cut} {text}", agent_id=agent, turn_id=turn)
    audit.emit_turn_end(agent_id=agent, turn_id=turn, content=f"done with {text}", fc_count=3)


# --- reading everything back ------------------------------------------------------------------------


def strings_in(value: Any) -> Iterator[str]:
    """Every string in a JSON value -- keys too -- and in JSON documents held in strings."""
    if isinstance(value, str):
        yield value
        if value[:1] in "{[":
            try:
                inner = json.loads(value)
            except ValueError:
                return
            yield from strings_in(inner)
    elif isinstance(value, dict):
        for key, item in value.items():
            yield str(key)
            yield from strings_in(item)
    elif isinstance(value, list):
        for item in value:
            yield from strings_in(item)


def everything_written(out: Path, log_text: str) -> str:
    """All the text auditspan wrote, raw and decoded, one big haystack."""
    parts = [log_text]
    for name in ("audit.jsonl", "traces.jsonl", "logs.jsonl"):
        raw = (out / name).read_text(encoding="utf-8")
        assert raw, f"{name} is empty"
        parts.append(raw)
        for line in raw.splitlines():
            parts.extend(strings_in(json.loads(line)))
    return "\n".join(parts)


# Each test starts as a fresh process would: no global TracerProvider yet.
pytestmark = pytest.mark.usefixtures("fresh_global_provider")


def run(
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    capture: str | None,
    texts: list[tuple[str, Secret]],
    unknown_types: bool = True,
) -> str:
    caplog.set_level(logging.DEBUG)
    handle = auditspan.configure(
        service_name="secrets-e2e",
        output_dir=tmp_path,
        events_as="both",
        capture=capture,
        environ={},
        set_global=False,
    )
    for n, (text, secret) in enumerate(texts):
        emit_everywhere(handle, n, text, secret, unknown_types)
    handle.shutdown()
    assert handle.span_stats.exported > 0 and handle.span_stats.failed == 0
    return everything_written(tmp_path, caplog.text)


# --- the tests ------------------------------------------------------------------------------------


def test_corpus_is_there() -> None:
    assert len(SECRETS) >= 50 and len(LOOKALIKES) >= 30
    assert {s.kind for s in SECRETS} >= {
        "openai_key",
        "aws_access_key_id",
        "private_key",
        "jwt",
        "kv",
        "url_password",
    }


def leaks_in(haystack: str) -> list[str]:
    """The secrets of which the haystack holds the whole or an 8-character piece."""
    grams = {haystack[i : i + 8] for i in range(len(haystack) - 7)}  # one pass, then set lookups
    leaks = []
    for secret in SECRETS:
        found = sorted(secret.pieces() & grams)
        if found:
            at = haystack.index(found[0])
            leaks.append(
                f"{secret.kind} {secret.value[:12]!r}...: {found[:3]} in ...{haystack[at - 60 : at + 20]!r}"
            )
    return leaks


def test_no_secret_reaches_any_output_under_the_default_policy(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    haystack = run(tmp_path, caplog, None, [(s.in_context, s) for s in SECRETS], unknown_types=False)
    leaks = leaks_in(haystack)
    assert not leaks, f"{len(leaks)} of {len(SECRETS)} secrets leaked:\n" + "\n".join(leaks[:15])
    records = [json.loads(line) for line in (tmp_path / "audit.jsonl").read_text().splitlines()]
    assert any("[REDACTED:" in r.get("prompt_preview", "") for r in records)


def test_no_secret_in_the_fields_of_an_unknown_event_type(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """``skill_used`` / ``agent_switch`` events of newer runtimes carry free text in fields of their own."""
    haystack = run(tmp_path, caplog, None, [(s.in_context, s) for s in SECRETS], unknown_types=True)
    leaks = leaks_in(haystack)
    assert not leaks, f"{len(leaks)} of {len(SECRETS)} secrets leaked:\n" + "\n".join(leaks[:15])


def test_lookalikes_survive_unchanged(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    dummy = Secret("none", "-")
    run(tmp_path, caplog, None, [(text, dummy) for text in LOOKALIKES])
    records = [json.loads(line) for line in (tmp_path / "audit.jsonl").read_text().splitlines()]
    by_session: dict[str, list[dict[str, Any]]] = {}
    for record in records:
        by_session.setdefault(record["session_id"], []).append(record)
    for n, text in enumerate(LOOKALIKES):
        session = by_session[f"sess-{n}"]
        errors = [r for r in session if r["event_type"] == "error"]
        assert errors[0]["error_message"] == f"upstream said {text}", text
        assert errors[0]["error_context"] == f"while {text}", text
        fetch = [r for r in session if r["event_type"] == "tool_call_attempt" and r["tool_name"] == "fetch"]
        assert fetch[0]["arguments_preview"] == text[:PREVIEW_LIMIT], text
        skill = [r for r in session if r["event_type"] == "skill_used"]
        assert skill[0]["skill_args"] == text, text


def test_with_capture_full_the_secrets_do_appear(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """The same check finds them when redaction is off for content: the test can fail."""
    haystack = run(tmp_path, caplog, "full", [(s.in_context, s) for s in SECRETS])
    missing = [s.kind for s in SECRETS if s.hidden not in haystack]
    assert missing == []

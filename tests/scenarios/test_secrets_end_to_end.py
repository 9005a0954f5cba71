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
from dataclasses import fields as dataclass_fields
from pathlib import Path
from typing import Any

import pytest

import auditspan
from auditspan.emitter import PREVIEW_LIMIT
from auditspan.events import EVENT_CLASSES, AuditEvent

from ..conftest import event_records
from ..secret_corpus import Secret, load_lookalikes, load_secrets

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
    records = event_records((tmp_path / "audit.jsonl").read_text().splitlines())
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
    records = event_records((tmp_path / "audit.jsonl").read_text().splitlines())
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


# --- issue 14: ids, names and tags; every field of every event type ---------------------------------

#: The order the event classes are emitted in (a whole call, then the events that refuse one).
EVENT_ORDER = (
    "turn_start",
    "tool_loop_warning",
    "tool_policy_decision",
    "hook_mutation",
    "tool_call_attempt",
    "sandbox_decision",
    "tool_call_complete",
    "tool_call_failure",
    "tool_loop_block",
    "error",
    "turn_end",
)


def every_field_event(event_type: str, n: int, text: str) -> AuditEvent:
    """An event of ``event_type`` whose every text field -- ids, names and tags too -- holds ``text``.

    The same field gets the same text in every event (``tool_name``, ``turn_id``, ...), so the
    collector must still match them after redaction.
    """
    cls = EVENT_CLASSES[event_type]
    values: dict[str, Any] = {}
    for f in dataclass_fields(cls):
        if not f.init or f.name == "timestamp":
            continue
        if f.name == "metadata":
            values[f.name] = {"note": text, text: "as a key", "nested": [text, {"deep": text}]}
        elif isinstance(f.default, str) or f.name in ("agent_id", "turn_id", "session_id"):
            values[f.name] = f"{f.name}-{n} {text}"
    return cls(**values)


def emit_every_field(handle: auditspan.AuditSpanHandle, n: int, text: str, secret: Secret) -> None:
    for event_type in EVENT_ORDER:
        handle.collector.emit(every_field_event(event_type, n, text))
    # An event type auditspan does not know, with the secret in its type and in a field's name.
    handle.collector.emit(
        {
            "event_type": f"custom {text}",
            "timestamp": "2026-11-21T19:24:17.500000+00:00",
            "session_id": f"session_id-{n} {text}",
            "turn_id": f"turn_id-{n} {text}",
            "agent_id": f"agent_id-{n} {text}",
            "action": f"action {text}",
            "status": f"status {text}",
            text: "a field named after the secret",
            "details": {"x": text},
            "duration_ms": text,  # the wrong type: coerced, and the original kept in metadata
        }
    )


def run_every_field(tmp_path: Path, caplog: pytest.LogCaptureFixture, capture: str | None) -> str:
    caplog.set_level(logging.DEBUG)
    handle = auditspan.configure(
        service_name="secrets-every-field",
        output_dir=tmp_path,
        events_as="both",
        capture=capture,
        environ={},
        set_global=False,
    )
    for n, secret in enumerate(SECRETS):
        emit_every_field(handle, n, secret.in_context, secret)
    handle.shutdown()
    assert handle.collector.stats.internal_errors == 0
    assert handle.span_stats.exported > 0 and handle.span_stats.failed == 0
    return everything_written(tmp_path, caplog.text)


def test_no_secret_in_any_field_of_any_event_type_ids_names_and_tags_included(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """tool_name (and the span name), agent/session/turn ids, error_type (error.type, the span status),
    status, action, severity, the tags, an unknown event's type and field names: all scrubbed."""
    haystack = run_every_field(tmp_path, caplog, None)
    leaks = leaks_in(haystack)
    assert not leaks, f"{len(leaks)} of {len(SECRETS)} secrets leaked:\n" + "\n".join(leaks[:15])
    spans = [json.loads(line) for line in (tmp_path / "traces.jsonl").read_text().splitlines()]
    names = {span["name"] for doc in spans for span in _spans_of(doc)}
    assert any(name.startswith("execute_tool tool_name-0 ") and "[REDACTED:" in name for name in names)


def test_with_capture_full_the_names_keep_their_secrets(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    haystack = run_every_field(tmp_path, caplog, "full")
    missing = [s.kind for s in SECRETS if s.hidden not in haystack]
    assert missing == []


def _spans_of(doc: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for resource in doc.get("resourceSpans", ()):
        for scope in resource.get("scopeSpans", ()):
            yield from scope.get("spans", ())


def _attrs(span: dict[str, Any]) -> dict[str, Any]:
    return {a["key"]: next(iter(a["value"].values())) for a in span.get("attributes", ())}


def test_a_name_redacts_to_the_same_text_everywhere_and_still_matches(tmp_path: Path) -> None:
    """Deterministic: the call's attempt and completion still meet on one span, the turn's events
    on one turn, the rule engine on one session; every output shows the same redacted names."""
    key = next(s for s in SECRETS if s.kind == "github_token").value
    tool, session, turn_id, agent = f"fetch.{key}", f"sess-{key}", f"turn-{key}", f"agent-{key}"
    handle = auditspan.configure(
        service_name="secrets-names", output_dir=tmp_path, events_as="both", environ={}, set_global=False
    )
    audit = handle.emitter(session_id=session)
    turn = audit.emit_turn_start(agent_id=agent, turn_id=turn_id, prompt="go")
    audit.emit_tool_policy_decision("run_sql", agent_id=agent, action="allow", source="p", turn_id=turn)
    audit.emit_tool_call_attempt(
        "run_sql", args="SELECT email FROM customers.pii_emails", agent_id=agent, turn_id=turn
    )
    audit.emit_tool_call_complete("run_sql", result="3 rows", agent_id=agent, turn_id=turn)
    audit.emit_tool_call_attempt(tool, args="GET https://api.example.com/v1/x", agent_id=agent, turn_id=turn)
    audit.emit_tool_call_failure(
        tool, error_type=f"Err.{key}", error_msg="boom", agent_id=agent, turn_id=turn
    )
    audit.emit_tool_call_attempt(tool, args="GET https://api.example.com/v1/x", agent_id=agent, turn_id=turn)
    audit.emit_tool_call_complete(tool, status=f"ok.{key}", result="fine", agent_id=agent, turn_id=turn)
    audit.emit_turn_end(agent_id=agent, turn_id=turn, content="done", fc_count=3)
    handle.shutdown()

    redacted = "[REDACTED:github_token]"
    records = event_records((tmp_path / "audit.jsonl").read_text().splitlines())
    assert {r["session_id"] for r in records} == {f"sess-{redacted}"}
    assert {r["turn_id"] for r in records} == {f"turn-{redacted}"}
    assert {r["agent_id"] for r in records} == {f"agent-{redacted}"}
    calls = [r for r in records if r.get("tool_name", "").startswith("fetch.")]
    assert {r["tool_name"] for r in calls} == {f"fetch.{redacted}"}
    failure = next(r for r in records if r["event_type"] == "tool_call_failure")
    assert failure["error_type"] == f"Err.{redacted}"
    complete = next(r for r in calls if r["event_type"] == "tool_call_complete")
    assert complete["status"] == f"ok.{redacted}"
    # The behavioural rule still saw one session: its record carries the redacted id.
    matches = [r for r in records if r["event_type"] == "behavior_rule_match"]
    assert len(matches) == 2  # the read, then each attempt of the call out
    assert {m["session_id"] for m in matches} == {f"sess-{redacted}"}
    # Policy input and the governance envelope read the same names.
    document = auditspan.policy_input(complete)
    assert document["session"]["id"] == f"sess-{redacted}" and key not in json.dumps(document)

    spans = [
        s
        for line in (tmp_path / "traces.jsonl").read_text().splitlines()
        for s in _spans_of(json.loads(line))
    ]
    (turn_span,) = [s for s in spans if s["name"].startswith("invoke_agent")]
    assert turn_span["name"] == f"invoke_agent agent-{redacted}"
    turn_attrs = _attrs(turn_span)
    assert turn_attrs["gen_ai.agent.id"] == f"agent-{redacted}"
    assert turn_attrs["gen_ai.conversation.id"] == f"sess-{redacted}"
    assert turn_attrs["auditspan.turn.id"] == f"turn-{redacted}"
    tool_spans = [s for s in spans if s["name"] == f"execute_tool fetch.{redacted}"]
    assert len(tool_spans) == 2  # the attempt and its retry, each completed on its own span
    by_attempt = {int(_attrs(s)["auditspan.tool.attempt"]): s for s in tool_spans}
    failed, retried = by_attempt[1], by_attempt[2]
    assert _attrs(failed)["error.type"] == f"Err.{redacted}"
    assert _attrs(failed)["auditspan.tool.outcome"] == "failure"
    assert failed["status"]["message"] == f"Err.{redacted}: boom"  # the span status names the type too
    assert _attrs(retried)["auditspan.tool.outcome"] == "success"
    assert _attrs(retried)["gen_ai.tool.name"] == f"fetch.{redacted}"
    assert _attrs(retried)["auditspan.tool.status"] == f"ok.{redacted}"
    logs = (tmp_path / "logs.jsonl").read_text()
    assert f"fetch.{redacted}" in logs and key[4:12] not in logs
    assert key[4:12] not in (tmp_path / "traces.jsonl").read_text() + (tmp_path / "audit.jsonl").read_text()


# --- issue 14: replay and the command line ------------------------------------------------------------


class _Recording:
    """Stands in for a handle: every event goes to the real collector and, as a seed log line, to a file."""

    def __init__(self, collector: Any, seed_log: Path) -> None:
        self.collector = self
        self._target = collector
        self._file = seed_log.open("w", encoding="utf-8")

    def emit(self, event: Any) -> None:
        data = event if isinstance(event, dict) else event.to_dict()
        self._file.write(json.dumps(data, ensure_ascii=False) + "\n")
        self._target.emit(event)

    def close(self) -> None:
        self._file.close()


def live_run_with_seed_log(tmp_path: Path) -> tuple[Path, Path]:
    """The every-field workload live (default policy) and the seed log of the same events."""
    live, seed_log = tmp_path / "live", tmp_path / "seed.jsonl"
    handle = auditspan.configure(
        service_name="secrets-live", output_dir=live, events_as="both", environ={}, set_global=False
    )
    recording = _Recording(handle.collector, seed_log)
    for n, secret in enumerate(SECRETS):
        emit_every_field(recording, n, secret.in_context, secret)  # type: ignore[arg-type]
    recording.close()
    handle.shutdown()
    return live, seed_log


def _event_fields(path: Path) -> list[dict[str, Any]]:
    """The records without what differs between a live run and a replay (ids, trace context)."""
    return [
        {k: v for k, v in record.items() if k not in ("event_id", "telemetry")}
        for record in event_records(path.read_text(encoding="utf-8").splitlines())
    ]


def cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    from auditspan.cli import main

    status = main(argv)
    captured = capsys.readouterr()
    return status, captured.out + "\n" + captured.err


@pytest.fixture
def no_endpoint(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "AUDITSPAN_CAPTURE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AUDITSPAN_AUDIT_LOG", "none")


@pytest.mark.usefixtures("no_endpoint")
def test_replay_of_a_seed_log_is_redacted_exactly_as_live_events_are(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    live, seed_log = live_run_with_seed_log(tmp_path)
    assert leaks_in(seed_log.read_text(encoding="utf-8"))  # the seed log holds every secret
    out = tmp_path / "replayed"
    status, printed = cli(
        [
            "replay",
            str(seed_log),
            "--output-dir",
            str(out),
            "--audit-log",
            str(out / "audit.jsonl"),
            "--no-progress",
        ],
        capsys,
    )
    assert status == 0, printed
    replayed, lived = _event_fields(out / "audit.jsonl"), _event_fields(live / "audit.jsonl")
    assert len(replayed) == len(lived) == len(SECRETS) * (len(EVENT_ORDER) + 1)
    for number, (mine, theirs) in enumerate(zip(replayed, lived, strict=True)):
        assert mine == theirs, f"record {number + 1} differs"
    haystack = "\n".join(
        [
            printed,
            (out / "traces.jsonl").read_text(encoding="utf-8"),
            (out / "audit.jsonl").read_text(encoding="utf-8"),
        ]
    )
    leaks = leaks_in(haystack)
    assert not leaks, f"{len(leaks)} of {len(SECRETS)} secrets leaked:\n" + "\n".join(leaks[:15])


def hostile_lines(tmp_path: Path) -> Path:
    """Lines whose errors would quote a secret: wrong types, bad timestamps, duplicate keys, seed events."""
    lines = []
    for secret in SECRETS:
        text = secret.in_context
        base = {
            "event_type": "tool_call_complete",
            "timestamp": "2026-11-21T19:24:17+00:00",
            "severity": "info",
        }
        lines.append(json.dumps({**base, "duration_ms": text}))
        lines.append(json.dumps({**base, "timestamp": text}))
        lines.append(json.dumps({**base, "agent_id": [text], "tool_name": {"x": text}}))
        lines.append(json.dumps({**base, "event_id": text, "governance": text, "telemetry": text}))
        lines.append("{" + f'"event_type": "x", {json.dumps(text)}: 1, {json.dumps(text)}: 2' + "}")
    path = tmp_path / "hostile.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.mark.usefixtures("no_endpoint")
def test_the_command_line_prints_no_secret(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """validate, show, replay and policy-input: what they print (stdout and stderr) is redacted,
    from a seed log, a canonical log written with capture=full, and lines whose errors quote values."""
    _, seed_log = live_run_with_seed_log(tmp_path)
    full = tmp_path / "full"
    handle = auditspan.configure(
        service_name="secrets-full", output_dir=full, capture="full", environ={}, set_global=False
    )
    for n, secret in enumerate(SECRETS):
        emit_everywhere(handle, n, secret.in_context, secret, unknown_types=True)
    handle.shutdown()
    canonical, hostile = full / "audit.jsonl", hostile_lines(tmp_path)
    assert leaks_in(hostile.read_text())  # the inputs hold the secrets

    printed = []
    for n, log in enumerate((seed_log, canonical, hostile)):
        for argv in (
            ["validate", str(log)],
            ["show", str(log), "--no-color"],
            ["policy-input", str(log)],
            # a folder each: replay adds to a traces file that holds spans only with --append
            ["replay", str(log), "--output-dir", str(tmp_path / f"out-{n}"), "--no-progress"],
        ):
            status, text = cli(argv, capsys)
            assert status in (0, 1), (argv, text[-2000:])
            assert text.strip(), argv
            printed.append(text)
    haystack = "\n".join(printed)
    assert "[REDACTED:" in haystack
    leaks = leaks_in(haystack)
    assert not leaks, f"{len(leaks)} of {len(SECRETS)} secrets leaked:\n" + "\n".join(leaks[:15])


@pytest.mark.usefixtures("no_endpoint")
def test_the_command_line_prints_secrets_with_capture_full(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The same check finds them when asked for: the test above can fail."""
    hostile = hostile_lines(tmp_path)
    _, text = cli(["validate", str(hostile), "--capture", "full"], capsys)
    # Messages quote values cut to 60-80 characters: a secret deep in a long URL is cut off anyway.
    long_contexts = {"azure_sas", "aws_presigned", "gcs_signed"}
    leaked = {line.split(" ", 1)[0] for line in leaks_in(text)}
    assert leaked >= {s.kind for s in SECRETS} - long_contexts


def test_span_context_finds_a_turn_whose_ids_hold_a_secret(tmp_path: Path) -> None:
    """Runtimes look turns up by the ids they emitted; the collector keeps them redacted."""
    key = next(s for s in SECRETS if s.kind == "openai_key").value
    handle = auditspan.configure(service_name="ids", output_dir=tmp_path, environ={}, set_global=False)
    audit = handle.emitter(session_id=f"sess {key}")
    turn = audit.emit_turn_start(agent_id="a", turn_id=f"turn {key}", prompt="go")
    audit.emit_tool_call_attempt("t", agent_id="a", turn_id=turn, metadata={"tool_call_id": f"call {key}"})
    turn_context = handle.collector.span_context(f"sess {key}", f"turn {key}")
    call_context = handle.collector.span_context(f"sess {key}", f"turn {key}", f"call {key}")
    handle.shutdown()
    assert turn_context is not None and call_context is not None
    assert call_context.span_id != turn_context.span_id


def test_a_redactor_of_ones_own_without_scrub_name_scrubs_names_with_scrub(tmp_path: Path) -> None:
    """``SpanCollector(redactor=...)`` takes any object with capture, scrub and redact_value."""
    from opentelemetry.sdk.trace import TracerProvider

    class Shouting:
        def capture(self, text: str) -> str:
            return text.upper()

        def scrub(self, text: str) -> str:
            return text.replace("hunter2", "[REDACTED:mine]")

        def redact_value(self, value: Any) -> Any:
            return value

    collector = auditspan.SpanCollector(
        tracer_provider=TracerProvider(), audit_log=tmp_path / "audit.jsonl", redactor=Shouting()
    )
    audit = auditspan.AuditEmitter(collector, session_id="sess hunter2")
    turn = audit.emit_turn_start(agent_id="a", prompt="hi")
    audit.emit_tool_call_attempt("tool hunter2", args="x", agent_id="a", turn_id=turn)
    audit.emit_tool_call_complete("tool hunter2", agent_id="a", turn_id=turn)
    collector.shutdown()
    assert collector.stats.internal_errors == 0
    text = (tmp_path / "audit.jsonl").read_text()
    assert "hunter2" not in text and "tool [REDACTED:mine]" in text and "sess [REDACTED:mine]" in text


@pytest.mark.usefixtures("no_endpoint")
def test_the_file_and_line_of_a_message_are_never_redacted(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Only the message is scrubbed: ``secrets.jsonl:1:`` looks like ``key: value`` to a scrubber."""
    log = tmp_path / "secrets.jsonl"
    log.write_text(
        '{"event_type": "tool_call_complete", "duration_ms": "password=hunter2x"}\n', encoding="utf-8"
    )
    for argv in (
        ["validate", str(log)],
        ["show", str(log)],
        ["policy-input", str(log)],
        ["replay", str(log), "--output-dir", str(tmp_path / "out"), "--no-progress"],
    ):
        _, text = cli(argv, capsys)
        assert f"{log}:1: " in text, (argv, text)
        assert "hunter2x" not in text and "password=[REDACTED:password]" in text, (argv, text)

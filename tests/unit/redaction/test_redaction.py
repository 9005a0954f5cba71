"""Tests for auditspan.redaction: secrets never survive, look-alikes do, and nothing raises.

The corpus lives in tests/data/secrets/: ``secrets.txt`` (fake credentials and
the kind each must be reported as) and ``lookalikes.txt`` (texts that must
pass unchanged). Every secret is embedded in the contexts previews really have
-- prose, JSON, Python repr, URL, key=value, escaped JSON, a 200-character cut
-- and the output must hold neither the secret nor any 8-character piece of it.
"""

from __future__ import annotations

import json
import re
import threading
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from auditspan.redaction import (
    DEFAULT_SENSITIVE_KEYS,
    REDACTION_ERROR_MARKER,
    CapturePolicy,
    Redactor,
    is_marker,
    marker,
)
from auditspan.redaction._detectors import ALL_FAMILIES as _ALL_FAMILIES

from ...secret_corpus import CONTEXT_KINDS, Secret, load_lookalikes, load_secrets

PREVIEW_LIMIT = 200
LEAD = "lorem ipsum dolor sit amet, consectetur adipiscing elit; "


SECRETS = load_secrets()
TOKENS = [s for s in SECRETS if s.kind not in CONTEXT_KINDS]
REDACTOR = Redactor()


def assert_hidden(secret: str, output: str) -> None:
    """Neither the secret nor any 8-character piece of it is in ``output``."""
    assert secret not in output
    for start in range(max(len(secret) - 7, 0)):
        piece = secret[start : start + 8]
        assert piece not in output, f"{piece!r} of the secret survived in {output!r}"


def check(text: str, secret: str, kind: str, redactor: Redactor = REDACTOR) -> str:
    out, count = redactor.redact_text_counted(text)
    assert_hidden(secret, out)
    assert marker(kind) in out, f"expected {marker(kind)} in {out!r}"
    assert count >= 1
    assert redactor.redact_text(out) == out, "redacting twice must change nothing"
    # the trigger pre-filter must never change the outcome
    assert redactor._redact_builtin(text) == redactor._redact_builtin(text, families=_ALL_FAMILIES)
    return out


def cut_preview(prefix: str, secret: str, visible: int, suffix: str = " and more") -> str:
    """A 200-character preview whose cut leaves exactly ``visible`` characters of ``secret``."""
    head = " " + prefix + secret[:visible]
    filler = (LEAD * 10)[: PREVIEW_LIMIT - len(head)]
    return (filler + " " + prefix + secret + suffix)[:PREVIEW_LIMIT]


def cut_points(secret: Secret, room: int = PREVIEW_LIMIT - 30) -> list[int]:
    lowest = secret.visible_prefix + 8
    candidates = {lowest, lowest + 5, (lowest + len(secret.value)) // 2, len(secret.value) - 1}
    return sorted(v for v in candidates if lowest <= v < min(len(secret.value), room))


def token_contexts(value: str, kind: str) -> dict[str, str]:
    contexts = {
        "plain": f"found {value} in the logs",
        "json": json.dumps({"note": value, "n": 1}),
        "repr": str({"value": value, "id": 3}),
        "key_value": f"value={value} next=1",
        "escaped_json": json.dumps(json.dumps({"v": value})),
        "multiline": f"line one\nERROR call failed with {value}\nline three",
        "sentence": f"The credential was {value}.",
        "args_tuple": str(("deploy", value, {"dry_run": True})),
        # after an escaped newline: "...\\nsk-..." in JSON and repr previews
        "json_newline": json.dumps({"log": f"first line\n{value}\nlast line"}),
        "repr_newline": str({"log": f"first line\n{value}"}),
    }
    if kind != "private_key":
        contexts["url"] = f"https://api.acme.test/v1/items?x={value}&page=2"
    return contexts


# --- the corpus ---------------------------------------------------------------


def test_corpus_is_loaded() -> None:
    kinds = {secret.kind for secret in SECRETS}
    assert kinds >= {
        "openai_key",
        "anthropic_key",
        "aws_access_key_id",
        "github_token",
        "slack_token",
        "google_api_key",
        "stripe_key",
        "jwt",
        "private_key",
        "email",
        "url_password",
        "bearer_token",
        "slack_webhook",
        "kv",
    }
    assert len(load_lookalikes()) >= 30


@pytest.mark.parametrize("secret", TOKENS, ids=lambda s: f"{s.kind}:{s.value[:14]}")
def test_token_is_redacted_in_every_context(secret: Secret) -> None:
    for name, text in token_contexts(secret.value, secret.kind).items():
        try:
            check(text, secret.value, secret.kind)
        except AssertionError as exc:
            raise AssertionError(f"context {name}: {exc}") from None


@pytest.mark.parametrize("secret", TOKENS, ids=lambda s: f"{s.kind}:{s.value[:14]}")
def test_token_under_a_sensitive_key_is_redacted_as_that_key(secret: Secret) -> None:
    # A PEM block after "key=" is left to the private_key detector, which takes it whole.
    bare_kind = "private_key" if secret.kind == "private_key" else "api_key"
    check(f"api_key={secret.value}", secret.value, bare_kind)
    check(json.dumps({"client_secret": secret.value}), secret.value, "client_secret")
    check(str({"Authorization": secret.value}), secret.value, "authorization")


@pytest.mark.parametrize("secret", TOKENS, ids=lambda s: f"{s.kind}:{s.value[:14]}")
def test_token_cut_by_the_preview_limit_is_redacted(secret: Secret) -> None:
    for visible in cut_points(secret):
        for prefix in ("run tool with ", "{'args': '", '{"headers": {"x": "'):
            text = cut_preview(prefix, secret.value, visible)
            assert len(text) == PREVIEW_LIMIT and text.endswith(secret.value[:visible])
            check(text, secret.value[:visible], secret.kind)
            check(text + "...", secret.value[:visible], secret.kind)


@pytest.mark.parametrize("secret", [s for s in SECRETS if s.kind == "url_password"], ids=lambda s: s.value)
def test_password_in_url_is_redacted_keeping_user_and_host(secret: Secret) -> None:
    pw = secret.value
    for text in (
        f"postgres://admin:{pw}@db.internal:5432/app",
        json.dumps({"dsn": f"mysql+pymysql://svc_user:{pw}@10.0.0.7/db", "pool": 5}),
        str({"url": f"https://deploy:{pw}@git.acme.test/org/repo.git"}),
        f"redis://:{pw}@cache.internal:6379/0",
    ):
        out = check(text, pw, "url_password")
        for kept in (
            "admin",
            "db.internal",
            "svc_user",
            "10.0.0.7",
            "deploy",
            "git.acme.test",
            "cache.internal",
        ):
            if kept in text:
                assert kept in out
    for visible in range(8, len(pw)):
        text = cut_preview("connect postgres://admin:", pw, visible)
        check(text, pw[:visible], "url_password")


@pytest.mark.parametrize(
    "secret", [s for s in SECRETS if s.kind == "bearer_token"], ids=lambda s: s.value[:10]
)
def test_bearer_token_is_redacted(secret: Secret) -> None:
    token = secret.value
    check(f"curl -H 'X-Forwarded: Bearer {token}' https://api.acme.test", token, "bearer_token")
    check(json.dumps({"hdr": f"Bearer {token}"}), token, "bearer_token")
    check(f"BEARER {token}", token, "bearer_token")
    out = check(f"Authorization: Bearer {token}", token, "authorization")
    assert out == "Authorization: Bearer [REDACTED:authorization]"
    out = check(str({"authorization": f"Bearer {token}"}), token, "authorization")
    for visible in (8, 12, len(token) - 1):
        check(cut_preview("GET /v1 Bearer ", token, visible), token[:visible], "bearer_token")


def test_slack_webhook_path_is_redacted() -> None:
    (secret,) = [s for s in SECRETS if s.kind == "slack_webhook"]
    url = f"https://hooks.slack.com/services/{secret.value}"
    out = check(json.dumps({"webhook": url}), secret.value, "slack_webhook")
    assert "hooks.slack.com/services/[REDACTED:slack_webhook]" in out


KV_SECRETS = [s for s in SECRETS if s.kind == "kv"]


def kv_kind(key: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", key).lower()).strip("_")


@pytest.mark.parametrize("secret", KV_SECRETS, ids=lambda s: s.key)
def test_value_under_a_sensitive_key_is_redacted_in_every_form(secret: Secret) -> None:
    key, value, kind = secret.key, secret.value, kv_kind(secret.key)
    forms = {
        "equals": f"{key}={value} other=1",
        "colon": f"{key}: {value}",
        "json": json.dumps({"user": "bob", key: value, "n": 1}),
        "repr": str({"user": "bob", key: value, "n": 1}),
        "kwargs": f"connect(host='db', {key}='{value}', port=5432)",
        "env": f'export {key}="{value}"',
        "header": f"GET / HTTP/1.1\r\n{key}: {value}\r\nHost: x",
        "query": f"https://api.acme.test/cb?{key}={value}&state=xyz",
        "flag": f"tool --{key} {value} --verbose",
        "flag_equals": f"tool --{key}={value}",
        "escaped_json": json.dumps(json.dumps({key: value})),
        "yaml": f"db:\n  {key}: {value}\n  host: db.internal",
        "bytes_repr": f"{{'{key}': b'{value}'}}",
        "json_newline": json.dumps({"script": f"set -e\n{key}={value}\nrun"}),
    }
    for name, text in forms.items():
        try:
            out = check(text, value, kind)
        except AssertionError as exc:
            raise AssertionError(f"form {name}: {exc}") from None
        assert key in out, f"form {name}: the key name must stay"
    for visible in (8, len(value) - 1):
        check(cut_preview(f"{{'{key}': '", value, visible), value[:visible], kind)
        check(cut_preview(f'{{"{key}": "', value, visible), value[:visible], kind)
        check(cut_preview(f"{key}=", value, visible), value[:visible], kind)


def test_colon_values_run_to_the_end_of_the_line() -> None:
    out = REDACTOR.redact_text("password: correct horse battery staple\nuser: bob")
    assert out == "password: [REDACTED:password]\nuser: bob"
    out = REDACTOR.redact_text("{password: hunter2xyz, user: bob}")
    assert out == "{password: [REDACTED:password], user: bob}"
    out = REDACTOR.redact_text("Cookie: session=abc123; theme=dark\nHost: x")
    assert out == "Cookie: [REDACTED:cookie]\nHost: x"


def test_structured_values_under_sensitive_keys_are_redacted_whole() -> None:
    out = REDACTOR.redact_text("{'auth': ('svc', 'pa55word'), 'timeout': 5}")
    assert out == "{'auth': [REDACTED:auth], 'timeout': 5}"
    out = REDACTOR.redact_text('{"credentials": {"user": "u", "password": "p4ss"}, "ok": true}')
    assert out == '{"credentials": [REDACTED:credentials], "ok": true}'


def test_private_key_cut_off_is_redacted_to_the_end() -> None:
    pem = next(s.value for s in SECRETS if s.kind == "private_key")
    text = str({"key_file": pem})[:PREVIEW_LIMIT]
    out = check(text, text[text.index("\\n") :], "private_key")
    assert out == "{'key_file': '[REDACTED:private_key]"


KEY = "sk-" + "Ab1" * 16
PEM = "-----BEGIN RSA PRIVATE KEY-----\nMIIEbody0123456789abcdefABCDEF\n-----END RSA PRIVATE KEY-----"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # found by the property tests: secrets glued together or into URLs
        (f"{PEM}{KEY}", "[REDACTED:private_key][REDACTED:openai_key]"),
        (
            f"https://{KEY}:x-oauth-basic@github.com/o/r",
            "https://[REDACTED:openai_key]:[REDACTED:url_password]@github.com/o/r",
        ),
        (f"jane@mail.acme.org{PEM}", "[REDACTED:email][REDACTED:private_key]"),
        (f"x@y.io.{KEY}", "[REDACTED:email].[REDACTED:openai_key]"),
        (
            "arn:aws:secretsmanager:eu-west-1:123456789012:secret:x",
            "arn:aws:secretsmanager:eu-west-1:123456789012:secret:x",
        ),
        ("https://example.com:8443/x", "https://example.com:8443/x"),
        ("[REDACTED:error]", "[REDACTED:error]"),
    ],
)
def test_glued_and_edge_cases(text: str, expected: str) -> None:
    assert REDACTOR.redact_text(text) == expected
    assert REDACTOR.redact_text(expected) == expected


@pytest.mark.parametrize("text", load_lookalikes())
def test_lookalike_survives_unchanged(text: str) -> None:
    for context in (text, json.dumps({"note": text, "n": 1}), str({"note": text, "n": 1})):
        out, count = REDACTOR.redact_text_counted(context)
        assert out == context
        assert count == 0


# --- behaviour and configuration ------------------------------------------------------


def test_markers_hold_no_part_of_the_value_and_are_recognisable() -> None:
    out = REDACTOR.redact_text("key sk-ant-api03-" + "Q" * 40 + "9 mail bob@mail.acme.test")
    assert out == "key [REDACTED:anthropic_key] mail [REDACTED:email]"
    assert is_marker("[REDACTED:email]") and not is_marker("[REDACTED:email] x")


def test_capture_policy_parse() -> None:
    assert CapturePolicy.parse("none") is CapturePolicy.NONE
    assert CapturePolicy.parse(" REDACTED ") is CapturePolicy.REDACTED
    assert CapturePolicy.parse("Full") is CapturePolicy.FULL
    assert CapturePolicy.parse(CapturePolicy.FULL) is CapturePolicy.FULL
    with pytest.raises(ValueError, match="'none', 'redacted', 'full'") as info:
        CapturePolicy.parse("partial")
    assert "partial" in str(info.value)


def test_capture_and_scrub_follow_the_policy() -> None:
    text = "call with password=hunter2xyz"
    redacted = "call with password=[REDACTED:password]"
    none, default, full = Redactor("none"), Redactor(), Redactor(CapturePolicy.FULL)
    assert none.capture(text) == "" and none.scrub(text) == redacted
    assert default.capture(text) == redacted and default.scrub(text) == redacted
    assert full.capture(text) == text and full.scrub(text) == text
    assert default.capture_counted(text) == (redacted, 1)
    assert none.capture_counted(text) == ("", 0)
    assert full.redact_text(text) == redacted  # explicit redaction ignores the policy


def test_redaction_count_totals_across_calls_and_threads() -> None:
    redactor = Redactor()
    text = "a=1 password=x1 token=y2 other=3"

    def work() -> None:
        for _ in range(200):
            assert redactor.redact_text_counted(text)[1] == 2

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert redactor.redaction_count == 4 * 200 * 2


def test_user_patterns_named_kinds_and_secret_groups() -> None:
    redactor = Redactor(
        patterns=[
            ("employee_id", r"EMP-\d{6}"),
            re.compile(r"acct-\d{4,}", re.IGNORECASE),
            r"customer=(?P<secret>\d+)",
        ]
    )
    out = redactor.redact_text("EMP-123456 ACCT-98765 customer=4242 api_key=zzz111")
    assert (
        out
        == "[REDACTED:employee_id] [REDACTED:custom] customer=[REDACTED:custom] api_key=[REDACTED:api_key]"
    )
    assert redactor.redact_text(out) == out


def test_user_pattern_never_cuts_into_a_builtin_marker() -> None:
    redactor = Redactor(patterns=[r"openai", r"\d{3}"])
    secret = "sk-" + "Ab1" * 16
    out = redactor.redact_text(f"key {secret} and 123")
    assert out == "key [REDACTED:openai_key] and [REDACTED:custom]"
    assert redactor.redact_text(out) == out


def test_bad_user_regex_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match=r"invalid redaction pattern '\(unclosed'"):
        Redactor(patterns=["(unclosed"])
    with pytest.raises(ValueError, match="invalid sensitive key pattern"):
        Redactor(sensitive_keys=["[oops"])
    with pytest.raises(ValueError, match="kind"):
        Redactor(patterns=[("Bad Kind!", r"x")])
    with pytest.raises(ValueError, match="must be a str"):
        Redactor(patterns=[42])  # type: ignore[list-item]


def test_allow_list_keeps_exact_values_and_whole_regex_matches() -> None:
    key = next(s.value for s in SECRETS if s.kind == "openai_key")
    redactor = Redactor(allow=[key, r"[a-z.]+@example\.com", "changeme", "not a (regex"])
    text = f"{key} bob@example.com eve@evil.acme.test password=changeme token=real1234 not a (regex"
    out = redactor.redact_text(text)
    assert out == (
        f"{key} bob@example.com [REDACTED:email] password=changeme token=[REDACTED:token] not a (regex"
    )
    # a regex must match the whole value, not a part of it
    assert Redactor(allow=["example"]).redact_text("bob@example.com") == "[REDACTED:email]"


def test_emails_can_be_kept() -> None:
    redactor = Redactor(redact_emails=False)
    assert redactor.redact_text("mail bob@mail.acme.test password=x1") == (
        "mail bob@mail.acme.test password=[REDACTED:password]"
    )


def test_custom_sensitive_keys_words_and_regexes() -> None:
    words = Redactor(sensitive_keys=(*DEFAULT_SENSITIVE_KEYS, "ssn"))
    assert (
        words.redact_text("SSN=123-45-6789 password=p1") == "SSN=[REDACTED:ssn] password=[REDACTED:password]"
    )
    regexes = Redactor(sensitive_keys=(*DEFAULT_SENSITIVE_KEYS, r"^x_.*_id$"))
    assert regexes.redact_text("{'x_user_id': 'u-1', 'y_id': 2, 'token': 'abc123'}") == (
        "{'x_user_id': '[REDACTED:x_user_id]', 'y_id': 2, 'token': '[REDACTED:token]'}"
    )
    assert regexes.redact_text("max_tokens=5 passes=1") == "max_tokens=5 passes=1"


def test_non_sensitive_keys_can_be_tuned() -> None:
    text = "password_min_length: 12"
    assert Redactor().redact_text(text) == text
    assert (
        Redactor(non_sensitive_keys=()).redact_text(text)
        == "password_min_length: [REDACTED:password_min_length]"
    )


def test_key_sensitivity_decisions() -> None:
    sensitive = [
        "password",
        "DB_PASSWORD",
        "apiKey",
        "X-Api-Key",
        "client_secret",
        "accessToken",
        "Authorization",
        "set-cookie",
        "aws_secret_access_key",
        "private_key",
        "auth",
        "credentials",
        "PGPASSWORD",
        "jwt",
    ]
    harmless = [
        "max_tokens",
        "token_count",
        "prompt_tokens",
        "tokens",
        "tokenizer",
        "token_type",
        "author",
        "key",
        "keys",
        "monkey",
        "secret_name",
        "api_key_id",
        "private_key_path",
        "PWD",
        "session_id",
        "passed",
    ]
    assert [k for k in sensitive if not REDACTOR.key_is_sensitive(k)] == []
    assert [k for k in harmless if REDACTOR.key_is_sensitive(k)] == []


def test_non_str_input_is_converted_not_raised() -> None:
    assert REDACTOR.redact_text(None) == "None"  # type: ignore[arg-type]
    assert REDACTOR.redact_text(b"password=abc123") == "password=[REDACTED:password]"  # type: ignore[arg-type]
    assert REDACTOR.capture(123) == "123"  # type: ignore[arg-type]


def test_internal_failure_fails_closed() -> None:
    redactor = Redactor()

    def broken(*_: Any) -> Any:
        raise RuntimeError("handler bug")

    redactor._handlers["openai_key"] = broken
    text = "key sk-" + "Ab1" * 16
    assert redactor.redact_text_counted(text) == (REDACTION_ERROR_MARKER, 1)
    assert redactor.redact_value({"note": text}) == {"note": REDACTION_ERROR_MARKER}


# --- redact_value ---------------------------------------------------------------------


def test_redact_value_walks_metadata() -> None:
    key = next(s.value for s in SECRETS if s.kind == "github_token")
    metadata = {
        "operation_type": "EXTERNAL_API_CALL",
        "api_key": "abc",
        "token": 12345,
        "password": None,
        "auth": True,
        "client_secret": "",
        "headers": {"Authorization": {"scheme": "Bearer", "token": "x"}, "Accept": "json"},
        "args": ("deploy", f"GITHUB_TOKEN={key}", [f"see {key}"]),
        "max_tokens": 512,
        f"weird {key}": 1,
        "nested": [{"private_key": ["a", "b"]}],
    }
    before = repr(metadata)
    out, count = REDACTOR.redact_value_counted(metadata)
    assert repr(metadata) == before, "the input must not be mutated"
    assert out == {
        "operation_type": "EXTERNAL_API_CALL",
        "api_key": "[REDACTED:api_key]",
        "token": "[REDACTED:token]",
        "password": None,
        "auth": True,
        "client_secret": "",
        "headers": {"Authorization": "[REDACTED:authorization]", "Accept": "json"},
        "args": ["deploy", "GITHUB_TOKEN=[REDACTED:github_token]", ["see [REDACTED:github_token]"]],
        "max_tokens": 512,
        "weird [REDACTED:github_token]": 1,
        "nested": [{"private_key": "[REDACTED:private_key]"}],
    }
    assert count == 7
    assert key not in orjson.dumps(out).decode()
    assert REDACTOR.redact_value(out) == out


def test_redact_value_handles_cycles_objects_and_colliding_keys() -> None:
    class Conn:
        def __str__(self) -> str:
            return "Conn(postgres://u:hunter2xyz@db/x)"

    loop: list[Any] = ["password=abc123"]
    loop.append(loop)
    key = "sk-" + "Zq9" * 16
    value = {"loop": loop, "conn": Conn(), key: 1, "sk-" + "Yp8" * 16: 2}
    out = REDACTOR.redact_value(value)
    assert out == {
        "loop": ["password=[REDACTED:password]", "<cycle>"],
        "conn": "Conn(postgres://u:[REDACTED:url_password]@db/x)",
        "[REDACTED:openai_key]": 1,
        "[REDACTED:openai_key]#2": 2,
    }
    orjson.dumps(out)


def test_redact_value_of_scalars() -> None:
    assert REDACTOR.redact_value("password=abc123") == "password=[REDACTED:password]"
    assert REDACTOR.redact_value(5) == 5
    assert REDACTOR.redact_value(None) is None
    assert REDACTOR.redact_value(float("nan")) == "NaN"


# --- Hypothesis ----------------------------------------------------------------------

FRAGMENTS = [
    *(s.value for s in SECRETS if s.kind != "kv"),
    *(s.key for s in KV_SECRETS),
    "password",
    "token",
    "api_key",
    "max_tokens",
    "Authorization",
    "Cookie",
    "auth",
    "key",
    "secret",
    "=",
    ":",
    ": ",
    "=>",
    ":=",
    "--",
    " ",
    "\n",
    "\t",
    ",",
    ";",
    "&",
    "?",
    "/",
    "\\",
    '\\"',
    "\\'",
    '"',
    "'",
    "{",
    "}",
    "[",
    "]",
    "(",
    ")",
    "b'",
    "...",
    "…",
    "@",
    "://",
    "postgres://u:",
    "@host",
    "Bearer ",
    "Basic ",
    "-----BEGIN RSA PRIVATE KEY-----",
    "-----END RSA PRIVATE KEY-----",
    "sk-",
    "sk-ant-",
    "sk-proj-",
    "ghp_",
    "xoxb-",
    "AKIA",
    "AIza",
    "eyJ",
    "whsec_",
    "sk_live_",
    "[REDACTED:",
    "[REDACTED:password]",
    "]",
    "hooks.slack.com/services/",
    "İ",
    "K",
    "\udc80",
    "true",
    "None",
    "abc123XYZ",
    "hunter2",
    "x@y.io",
    "git@github.com:o/r",
]
fragment_texts = st.lists(
    st.one_of(st.sampled_from(FRAGMENTS), st.text(alphabet="aZ09_-.=:'\" @", max_size=6)), max_size=30
).map("".join)
any_texts = st.text(st.one_of(st.characters(), st.characters(categories=["Cs"])), max_size=200)


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(st.one_of(fragment_texts, any_texts))
def test_redact_text_never_raises_and_is_idempotent(text: str) -> None:
    once, count = REDACTOR.redact_text_counted(text)
    assert once != REDACTION_ERROR_MARKER or once == text
    assert (count == 0) == (once == text)
    assert REDACTOR.redact_text(once) == once
    full = REDACTOR._redact_builtin(text, families=_ALL_FAMILIES)
    assert REDACTOR._redact_builtin(text) == full


@settings(max_examples=150, deadline=None)
@given(
    st.sampled_from(TOKENS),
    st.text(alphabet=" \n\t,;:=\"'()[]{}<>!?", max_size=4),
    st.text(alphabet=" \n\t,;\"')]}>!?", max_size=4),
    st.text(max_size=40),
)
def test_token_between_any_delimiters_is_hidden(secret: Secret, before: str, after: str, noise: str) -> None:
    out = REDACTOR.redact_text(noise + " " + before + secret.value + after + " " + noise)
    assert secret.value not in out


metadata_keys = st.one_of(
    st.sampled_from(["password", "token", "max_tokens", "Authorization", "note", "args", "api_key", "id"]),
    st.text(max_size=8),
    st.integers(),
    st.none(),
)
metadata_leaves = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(), fragment_texts, st.binary(max_size=8)
)
metadata_values = st.recursive(
    metadata_leaves,
    lambda children: st.one_of(
        st.lists(children, max_size=5),
        st.lists(children, max_size=5).map(tuple),
        st.dictionaries(metadata_keys, children, max_size=5),
    ),
    max_leaves=25,
)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(metadata_values)
def test_redact_value_never_raises_is_idempotent_and_encodable(value: Any) -> None:
    before = repr(value)
    once = REDACTOR.redact_value(value)
    assert repr(value) == before
    orjson.dumps(once)
    assert REDACTOR.redact_value(once) == once

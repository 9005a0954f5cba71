"""Secret redaction for captured content, error messages and metadata.

Audit records are evidence: a secret that leaks through one is copied into
every trace backend and log archive downstream. ``Redactor`` replaces each
secret it finds by a marker ``[REDACTED:<kind>]`` that holds no part of the
value, and decides per field what is captured at all (``CapturePolicy``)::

    >>> r = Redactor()
    >>> r.redact_text("curl -H 'Authorization: Bearer abc123def456' https://api")
    "curl -H 'Authorization: Bearer [REDACTED:authorization]' https://api"
    >>> r.redact_text("{'password': 'hunter2', 'max_tokens': 512}")
    "{'password': '[REDACTED:password]', 'max_tokens': 512}"
    >>> r.redact_text("postgres://app:s3cr3t@db.internal/prod")
    'postgres://app:[REDACTED:url_password]@db.internal/prod'

What is found (``kind`` in the marker):

* prefixed tokens: ``openai_key`` (``sk-``, ``sk-proj-``), ``anthropic_key``
  (``sk-ant-``), ``aws_access_key_id`` (``AKIA``/``ASIA``...), ``github_token``
  (``ghp_`` ``gho_`` ``ghu_`` ``ghs_`` ``ghr_`` ``github_pat_``),
  ``slack_token`` (``xox?-``, ``xapp-``), ``slack_webhook``, ``google_api_key``
  (``AIza``), ``stripe_key`` (``sk_live_``, ``rk_test_``, ``whsec_``), ``jwt``;
* ``bearer_token`` after ``Bearer``; ``url_password`` in
  ``scheme://user:password@host`` (user and host are kept);
* ``private_key``: a PEM ``-----BEGIN ... PRIVATE KEY-----`` block, up to its
  END line or, when the preview was cut, to the end of the text;
* the value after a *sensitive key* in ``key=value``, ``key: value``,
  ``"key": "value"``, ``'key': 'value'``, ``--key value`` forms; the kind is
  the key itself (``[REDACTED:client_secret]``); AWS secret access keys are
  caught this way (``aws_secret_access_key=...``);
* ``email`` addresses (``redact_emails=False`` keeps them);
* whatever the user's own ``patterns`` match.

Previews are cut at 200 characters, so the last secret of a text may be cut
short: a token prefix followed by fewer characters than a whole token is
still redacted when it ends the text (optionally followed by ``...``/``…``
and closing quotes or brackets).

What is *not* a secret here, by design (each is a complaint about scrubbers
that cannot be tuned): keys that count or describe secrets rather than hold
them (``max_tokens``, ``token_count``, ``prompt_tokens``, ``token_type``,
``secret_name``, ``api_key_id``, ``private_key_path`` -- see
``DEFAULT_NON_SENSITIVE_KEYS``); values ``true``/``false``/``null``/
``None``/empty under a sensitive key; ``sk-`` inside words (``task-sk-learn``),
``sk-`` followed by prose without digits or mixed case; commit SHAs, UUIDs,
URLs without a password; ``user@host:path`` (scp/git syntax) is not an email;
Stripe publishable keys (``pk_live_``) are public by design.

Tuning: ``patterns`` adds regexes (``(kind, regex)`` pairs name the kind; a
group named ``secret`` limits the replacement to that group), ``allow``
exempts values (a literal, or a regex that must match the *whole* secret),
``sensitive_keys`` / ``non_sensitive_keys`` replace the key-name rules.

Cost: one combined regex scans a text once (named alternatives, linear-time
by construction: every alternative starts at a boundary and is bounded);
Python code runs only on candidate matches.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable
from enum import Enum
from functools import lru_cache
from typing import Any, Callable, Final, Union

from auditspan._sanitize import KEEP, clean_str, json_safe

__all__ = [
    "DEFAULT_NON_SENSITIVE_KEYS",
    "DEFAULT_SENSITIVE_KEYS",
    "MARKER_PREFIX",
    "REDACTION_ERROR_MARKER",
    "CapturePolicy",
    "Redactor",
    "is_marker",
    "marker",
]

#: Every redaction marker starts with this.
MARKER_PREFIX: Final = "[REDACTED:"
#: What a text becomes when redaction itself failed (fail closed: nothing of it is kept).
REDACTION_ERROR_MARKER: Final = "[REDACTED:error]"

_MARKER_RE: Final = re.compile(r"\[REDACTED:[a-z0-9_.\-]{1,64}\]")
_KIND_OK_RE: Final = re.compile(r"[a-z0-9_.\-]{1,48}")


def marker(kind: str) -> str:
    """The marker that replaces a secret of ``kind``: ``[REDACTED:kind]``."""
    return f"{MARKER_PREFIX}{kind}]"


def is_marker(text: str) -> bool:
    """True when ``text`` is exactly one redaction marker."""
    return _MARKER_RE.fullmatch(text) is not None


def _kind_from_key(key: str) -> str:
    """A marker kind made from a key name: lower case, safe characters, at most 48 of them."""
    kind = _normalize_key(key)[:48].strip("_")
    return kind or "secret"


class CapturePolicy(str, Enum):
    """How much of a *content* field (prompt/content/arguments/result preview) is kept.

    ``NONE`` drops the content (an empty string is recorded), ``REDACTED`` (the
    default) keeps it with secrets replaced, ``FULL`` keeps it verbatim.
    Non-content strings (error messages, reasons) are redacted under ``NONE``
    and ``REDACTED`` and kept verbatim under ``FULL``.

    Example::

        >>> CapturePolicy.parse(" Redacted ")
        <CapturePolicy.REDACTED: 'redacted'>
    """

    NONE = "none"
    REDACTED = "redacted"
    FULL = "full"

    @classmethod
    def parse(cls, value: str) -> CapturePolicy:
        """The policy named ``value`` (case and surrounding space ignored).

        Raises ``ValueError`` naming the allowed values otherwise.
        """
        if isinstance(value, CapturePolicy):
            return value
        if isinstance(value, str):
            wanted = value.strip().lower()
            for member in cls:
                if member.value == wanted:
                    return member
        allowed = ", ".join(repr(member.value) for member in cls)
        raise ValueError(f"invalid capture policy {value!r}: expected one of {allowed}")


#: Key-name rules: a key is sensitive when one of these regexes is found in its
#: normalised form (camelCase split with ``_``, lower case, other separators
#: as ``_``: ``X-Api-Key`` -> ``x_api_key``, ``accessToken`` -> ``access_token``).
DEFAULT_SENSITIVE_KEYS: Final[tuple[str, ...]] = (
    r"pass_?(?:word|wd|phrase|code)",
    r"[a-z0-9]_?pwd",  # db_pwd; a bare PWD is the working directory
    r"secret",
    r"token(?!s|i[sz]e)",  # access_token, id_token; not tokens / tokenizer
    r"api_?key",
    r"(?:private|secret|access|signing|encryption|master|client|app|service|license|account|ssh|deploy"
    r"|session|auth)_?key",
    r"authori[sz]ation",
    r"(?:^|_)auth(?:_|$)",
    r"cookie",
    r"credential",
    r"(?:^|_)creds?(?:_|$)",
    r"(?:^|_)jwt(?:_|$)",
)

#: Keys that match ``DEFAULT_SENSITIVE_KEYS`` but name, count or describe a
#: secret instead of holding it (checked on the same normalised form).
DEFAULT_NON_SENSITIVE_KEYS: Final[tuple[str, ...]] = (
    r"^(?:max|min|num|n|total|count|avg|estimated)_",
    r"_(?:count|counts|num|number|limit|limits|len|length|size|budget|usage|used|remaining|estimate"
    r"|type|types|kind|name|names|id|ids|index|idx|arn|path|file|dir|url|uri|endpoint|ttl|expiry"
    r"|expires|expires_in|expires_at|expiration|created_at|updated_at|enabled|required|present"
    r"|provided|set|policy|version|rotation|prefix|field|param|format|source|location)$",
    r"^oldpwd$",
)

#: Literal words, one of which every default sensitive key contains (case-insensitively).
_DEFAULT_KEY_WORDS: Final = ("pass", "pwd", "secret", "token", "key", "auth", "cookie", "cred", "jwt")

_CAMEL_RE: Final = re.compile(r"([a-z0-9])([A-Z])")
_NON_ALNUM_RE: Final = re.compile(r"[^a-z0-9]+")


def _normalize_key(key: str) -> str:
    return _NON_ALNUM_RE.sub("_", _CAMEL_RE.sub(r"\1_\2", key).lower()).strip("_")


# --- the detector -------------------------------------------------------------
# Families of secrets, each a regex over the text lower-cased in ASCII (same
# indices as the original; case rules are checked on the original by the
# handler) that starts with a literal (so the regex engine skips cheaply to
# it), has bounded repetitions and uses boundaries as look-behinds *after* the
# literal, so a scan stays linear in the text length. Each family has trigger
# literals, at least one of which the lowered text must contain for the family
# to match at all: a text is scanned once, by one regex combining exactly the
# families whose triggers it contains (cached per set), and a text without any
# trigger costs a few substring tests. Validation a regex cannot express
# cheaply (lengths, "looks random", "ends the text") runs in Python, only for
# candidates.


class _Family(NamedTuple):
    name: str
    #: Every inner tuple needs one of its literals in the lowered text.
    gates: tuple[tuple[str, ...], ...]
    body: str


_SEPARATOR: Final = r"(?:\\{0,8}[\"'])?[ \t]{0,8}(?::=|=>|==?|:(?![/:]))[ \t]{0,8}"

_TOKEN_FAMILIES: Final[tuple[_Family, ...]] = (
    _Family(
        "pem",
        (("-----begin",),),
        r"-----begin[a-z0-9 ]{0,40}private key(?: block)?-----[\s\S]*?"
        r"(?:-----end[a-z0-9 ]{0,40}private key(?: block)?-----|\Z)",
    ),
    _Family("anthropic_key", (("sk-ant-",),), r"sk-ant-(?<![a-z0-9_\-]sk-ant-)[a-z0-9_\-]{1,512}"),
    _Family("openai_key", (("sk-",),), r"sk-(?<![a-z0-9_\-]sk-)[a-z0-9_\-]{1,512}"),
    _Family(
        "stripe_key",
        (("sk_live_", "sk_test_", "rk_live_", "rk_test_"),),
        r"[sr]k_(?:live|test)_(?<![a-z0-9_][sr]k_...._)[a-z0-9]{1,255}",
    ),
    _Family("stripe_webhook", (("whsec_",),), r"whsec_(?<![a-z0-9_]whsec_)[a-z0-9+/=]{1,255}"),
    _Family(
        "github_token",
        (("ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_"),),
        r"g(?:h[pousr]_(?<![a-z0-9_]gh._)[a-z0-9]{1,255}|ithub_pat_(?<![a-z0-9_]github_pat_)[a-z0-9_]{1,255})",
    ),
    _Family(
        "slack_token",
        (("xox", "xapp-"),),
        r"x(?:ox[abposre]|app)-(?<![a-z0-9_\-]....-)[a-z0-9\-]{1,255}",
    ),
    _Family(
        "slack_webhook",
        (("hooks.slack.com/services/",),),
        r"hooks\.slack\.com/services/(?P<hook_path>[a-z0-9_/\-]{1,255})",
    ),
    _Family("google_api_key", (("aiza",),), r"aiza(?<![a-z0-9_\-]aiza)[a-z0-9_\-]{1,64}"),
    _Family(
        "aws_access_key_id",
        (("akia", "asia", "abia", "acca"),),
        r"a(?:kia|sia|bia|cca)(?<![a-z0-9]a...)[a-z0-9]{1,32}",
    ),
    _Family(
        "jwt", (("eyj",),), r"eyj(?<![a-z0-9_\-]eyj)[a-z0-9_\-]{1,8192}(?:\.[a-z0-9_\-]{0,8192}){0,4}"
    ),
    _Family(
        "bearer",
        (("bearer",),),
        r"bearer(?<![a-z0-9_\-]bearer)[ \t]{1,8}(?P<bearer_tok>[a-z0-9._~+/\-]{1,4096}=*)",
    ),
    _Family(
        "url",
        (("://",),),
        r"://[^\s/?#@:\"'<>\\]{0,256}:(?P<url_pw>[^\s/?#\"'<>\\]{1,512})(?P<url_at>@|\Z)",
    ),
)

_EMAIL_FAMILY: Final = _Family(
    "email", (("@",),), r"@(?<=[a-z0-9._%+\-]@)[a-z0-9\-]{1,63}(?:\.[a-z0-9\-]{1,63}){0,8}"
)


def _pair_families(words: tuple[str, ...] | None) -> tuple[_Family, ...]:
    """``key=value`` / ``key: value`` pairs and ``--key value`` flags.

    With ``words`` (literals every sensitive key contains) a pair is found at
    the word and the handler looks back for the start of its key; without,
    every pair is a candidate (custom ``sensitive_keys`` that are not words).
    """
    if words is None:
        kv = _Family(
            "kv",
            ((":", "="),),
            r"(?<![a-z0-9_.\-])[a-z_][a-z0-9_.\-]{0,63}(?P<kv_sep>" + _SEPARATOR + ")",
        )
        flag = _Family("flag", (("--",),), r"--[a-z_][a-z0-9_.\-]{0,63}(?P<flag_sep>[ \t]{1,8})")
        return kv, flag
    alternation = "|".join(re.escape(word) for word in words)
    kv = _Family(
        "kv",
        (words, (":", "=")),
        rf"(?:{alternation})[a-z0-9_.\-]{{0,63}}(?P<kv_sep>{_SEPARATOR})",
    )
    flag = _Family(
        "flag",
        (("--",), words),
        rf"--(?=[a-z0-9_.\-]{{0,63}}?(?:{alternation}))[a-z0-9_.\-]{{1,64}}(?P<flag_sep>[ \t]{{1,8}})",
    )
    return kv, flag


@lru_cache(maxsize=512)
def _combined_regex(families: tuple[_Family, ...]) -> re.Pattern[str]:
    # The empty group closing each alternative names it (``match.lastgroup``)
    # without a group at its start, which would hide the leading literal.
    return re.compile("|".join(f"(?:{family.body})(?P<{family.name}>)" for family in families))


_ASCII_LOWER: Final = {code: code + 32 for code in range(ord("A"), ord("Z") + 1)}


def _ascii_lower(text: str) -> str:
    """``text`` lower-cased with every index unchanged."""
    lowered = text.lower()
    if len(lowered) != len(text):  # a character such as U+0130 lower-cases to two
        lowered = text.translate(_ASCII_LOWER)
    return lowered


_SCHEMES: Final = r"(?:(?i:bearer|basic|token|digest|bot|apikey|negotiate|ntlm)[ \t]{1,8})"
_QUOTED_VALUE: Final = (
    r"[bBrRuUfF]{0,2}(?P<bs>\\{0,8})(?P<q>[\"'])(?P<inner>[\s\S]*?)(?P<close>(?<!\\)(?P=bs)(?P=q)|\Z)"
)
_BARE_VALUE: Final = (
    r"(?P<bare>(?:[^\s\"'\\,;&)\]}<>{\[(]|\\(?![nrt\"'\\]))(?:[^\s\"'\\,;&)\]}<>]|\\(?![nrt\"'\\])){0,4095})"
)
_VALUE_RE: Final = re.compile(rf"{_QUOTED_VALUE}|(?P<open>[\[({{])|{_BARE_VALUE}")
_AUTH_VALUE_RE: Final = re.compile(rf"{_QUOTED_VALUE}|(?P<open>[\[({{])|(?P<scheme>{_SCHEMES})?{_BARE_VALUE}")
#: Rest of a bare cookie header value: ``a=1; b=2`` up to the end of the line.
_COOKIE_REST_RE: Final = re.compile(r"(?:[^\r\n\"'\\]|\\(?![nr\"'])){0,8192}")
#: A value that is already a marker (after an optional auth scheme): nothing left to redact.
_MARKER_VALUE_RE: Final = re.compile(rf"{_SCHEMES}?\[REDACTED:[a-z0-9_.\-]{{1,64}}\]")
_BRACKET_EVENT_RE: Final = re.compile(r"\\[\s\S]|[\[\](){}\"']")
_TAIL_RE: Final = re.compile(r"(?:\.\.\.|…)?[\"'`)\]}>]{0,8}\s*\Z")
_TRIVIAL_VALUES: Final = frozenset({"", "true", "false", "null", "none", "nil", "undefined"})
_EMAIL_SCP_RE: Final = re.compile(r":[^\s]")


def _looks_random(text: str) -> bool:
    """A digit, or both upper and lower case letters: what real tokens have and prose lacks."""
    if any(ch.isdigit() for ch in text):
        return True
    return any(ch.isupper() for ch in text) and any(ch.islower() for ch in text)


def _scan_brackets(text: str, start: int) -> int:
    """End of the bracketed value opening at ``start`` (quotes respected), or the end of the text."""
    depth = 0
    quote = ""
    for event in _BRACKET_EVENT_RE.finditer(text, start):
        token = event.group()
        if token[0] == "\\":
            continue
        if quote:
            if token == quote:
                quote = ""
        elif token in "\"'":
            quote = token
        elif token in "([{":
            depth += 1
        else:
            depth -= 1
            if depth <= 0:
                return event.end()
    return len(text)


PatternLike = Union[str, "re.Pattern[str]"]
UserPattern = Union[PatternLike, tuple[str, PatternLike]]

# A handler gets the match and the text and returns (start, replacement, resume):
# replacement None means "nothing redacted here, go on scanning at resume".
_Outcome = tuple[int, Union[str, None], int]


class Redactor:
    """Finds and replaces secrets; applies a ``CapturePolicy`` to content fields.

    Args:
        policy: the ``CapturePolicy`` (or its name) for ``capture`` / ``scrub``.
        patterns: extra regexes, each a ``str``, a compiled pattern, or a
            ``(kind, regex)`` pair (kind defaults to ``"custom"``); a group named
            ``secret`` limits the replacement to that group. A ``str`` that does
            not compile raises ``ValueError`` naming it. They run after the
            built-in detectors and must not match the marker syntax.
        allow: values never redacted: each a literal (exact match) or a regex
            that must match the whole secret value (``r".*@example\\.com"``).
        redact_emails: replace e-mail addresses by ``[REDACTED:email]``.
        sensitive_keys: key-name regexes (see ``DEFAULT_SENSITIVE_KEYS``) whose
            values are redacted in text and in ``redact_value``.
        non_sensitive_keys: key-name regexes that override ``sensitive_keys``.

    Instances are immutable after construction and safe to share across
    threads. ``redaction_count`` totals the redactions made.

    Example::

        >>> r = Redactor(patterns=[("employee_id", r"EMP-\\d{6}")], allow=["sk-test-placeholder"])
        >>> r.redact_text("EMP-123456 used sk-test-placeholder")
        '[REDACTED:employee_id] used sk-test-placeholder'
    """

    def __init__(
        self,
        policy: CapturePolicy | str = CapturePolicy.REDACTED,
        *,
        patterns: Iterable[UserPattern] = (),
        allow: Iterable[PatternLike] = (),
        redact_emails: bool = True,
        sensitive_keys: Iterable[PatternLike] = DEFAULT_SENSITIVE_KEYS,
        non_sensitive_keys: Iterable[PatternLike] = DEFAULT_NON_SENSITIVE_KEYS,
    ) -> None:
        self.policy: CapturePolicy = CapturePolicy.parse(policy)
        self.redact_emails = bool(redact_emails)
        self._user_patterns = tuple(_compile_user_pattern(item) for item in patterns)
        self._allow = tuple(_compile_allow(item) for item in allow)
        sensitive = tuple(sensitive_keys)
        self._sensitive = tuple(_compile_key_pattern(item, "sensitive key") for item in sensitive)
        self._non_sensitive = tuple(
            _compile_key_pattern(item, "non-sensitive key") for item in non_sensitive_keys
        )
        self._regex = _combined_regex(self.redact_emails, _key_words(sensitive))
        self._key_cache: dict[str, str | None] = {}
        self._count = 0
        self._count_lock = threading.Lock()
        self._handlers: dict[str, Callable[[re.Match[str], str], _Outcome]] = {
            "pem": self._on_pem,
            "anthropic_key": self._on_anthropic,
            "openai_key": self._on_openai,
            "stripe_key": self._on_stripe,
            "github_token": self._on_github,
            "slack_token": self._on_slack,
            "slack_webhook": self._on_slack_webhook,
            "google_api_key": self._on_google,
            "aws_access_key_id": self._on_aws,
            "jwt": self._on_jwt,
            "bearer": self._on_bearer,
            "url": self._on_url,
            "email": self._on_email,
            "kv": self._on_kv,
        }

    def __repr__(self) -> str:
        return (
            f"Redactor(policy={self.policy.value!r}, patterns={len(self._user_patterns)}, "
            f"allow={len(self._allow)}, redact_emails={self.redact_emails})"
        )

    # --- public API -------------------------------------------------------------
    @property
    def redaction_count(self) -> int:
        """How many secrets this instance has replaced so far, over all calls and threads."""
        return self._count

    def redact_text(self, text: str) -> str:
        """``text`` with every secret replaced by ``[REDACTED:<kind>]``. Never raises.

        Applies whatever the policy (the policy governs ``capture`` and
        ``scrub``). Idempotent: redacting the result again changes nothing. A
        non-``str`` argument is converted with ``clean_str`` first; if redaction
        fails the whole text becomes ``[REDACTED:error]``.
        """
        return self.redact_text_counted(text)[0]

    def redact_text_counted(self, text: str) -> tuple[str, int]:
        """``(redact_text(text), number of secrets replaced)``. Never raises."""
        try:
            if type(text) is not str:
                text = clean_str(text)
            result, count = self._redact(text)
        except Exception:
            result, count = REDACTION_ERROR_MARKER, 1
        if count:
            self._add(count)
        return result, count

    def key_is_sensitive(self, key: str) -> bool:
        """Whether values under the key name ``key`` are redacted whole."""
        return self._key_kind(key) is not None

    def redact_value(self, value: Any) -> Any:
        """A JSON-safe copy of ``value`` with secrets redacted. Never raises.

        Dicts, lists, tuples and sets are walked (``json_safe`` rules: tuples
        and sets become lists, cycles ``"<cycle>"``, depth capped); every
        string -- values and keys -- goes through ``redact_text``; the value
        under a sensitive key becomes ``[REDACTED:<key>]`` whole, whatever
        its type, except ``None``, booleans and ``""`` (they hold no secret).
        Objects are converted with ``str()`` and then redacted. The input is
        never mutated; on an internal error the result is ``[REDACTED:error]``.

        Example::

            >>> Redactor().redact_value({"user": "bob", "api_key": 12345, "note": ("ok",)})
            {'user': 'bob', 'api_key': '[REDACTED:api_key]', 'note': ['ok']}
        """
        return self.redact_value_counted(value)[0]

    def redact_value_counted(self, value: Any) -> tuple[Any, int]:
        """``(redact_value(value), number of secrets replaced)``. Never raises."""
        counter = [0]

        def on_str(text: str) -> str:
            result, count = self._redact(text)
            counter[0] += count
            return result

        def on_pair(key: str, item: Any) -> Any:
            kind = self._key_kind(key)
            if kind is None or item is None or item is True or item is False:
                return KEEP
            if type(item) is str and (not item or is_marker(item)):
                return KEEP
            counter[0] += 1
            return marker(kind)

        try:
            result = json_safe(value, str_hook=on_str, pair_hook=on_pair)
        except Exception:  # json_safe does not raise; belt and braces for the hooks
            result, counter[0] = REDACTION_ERROR_MARKER, 1
        if counter[0]:
            self._add(counter[0])
        return result, counter[0]

    def capture(self, text: str) -> str:
        """A content field under the policy: ``NONE`` -> ``""``, ``REDACTED`` -> redacted, ``FULL`` -> as is."""
        return self.capture_counted(text)[0]

    def capture_counted(self, text: str) -> tuple[str, int]:
        """``(capture(text), number of secrets replaced)``. Never raises."""
        if self.policy is CapturePolicy.NONE:
            return "", 0
        if self.policy is CapturePolicy.FULL:
            return (text if type(text) is str else clean_str(text)), 0
        return self.redact_text_counted(text)

    def scrub(self, text: str) -> str:
        """A non-content string (error message, reason): redacted unless the policy is ``FULL``."""
        return self.scrub_counted(text)[0]

    def scrub_counted(self, text: str) -> tuple[str, int]:
        """``(scrub(text), number of secrets replaced)``. Never raises."""
        if self.policy is CapturePolicy.FULL:
            return (text if type(text) is str else clean_str(text)), 0
        return self.redact_text_counted(text)

    # --- internals --------------------------------------------------------------
    def _add(self, count: int) -> None:
        with self._count_lock:
            self._count += count

    def _redact(self, text: str) -> tuple[str, int]:
        result, count = self._redact_builtin(text)
        for kind, pattern in self._user_patterns:
            result, extra = self._redact_user(result, kind, pattern)
            count += extra
        return result, count

    def _redact_builtin(self, text: str) -> tuple[str, int]:
        search = self._regex.search
        found = search(text)
        if found is None:
            return text, 0
        pieces: list[str] = []
        emitted = 0
        count = 0
        handlers = self._handlers
        while found is not None:
            start, replacement, resume = handlers[found.lastgroup or "kv"](found, text)
            if replacement is not None:
                pieces.append(text[emitted:start])
                pieces.append(replacement)
                emitted = resume
                count += 1
            found = search(text, resume)
        if not count:
            return text, 0
        pieces.append(text[emitted:])
        return "".join(pieces), count

    def _redact_user(self, text: str, kind: str, pattern: re.Pattern[str]) -> tuple[str, int]:
        spans = [m.span() for m in _MARKER_RE.finditer(text)] if MARKER_PREFIX in text else []
        pieces: list[str] = []
        emitted = 0
        count = 0
        for found in pattern.finditer(text):
            start, end = _secret_span(found)
            if start >= end or start < emitted:
                continue
            inside = False
            for m_start, m_end in spans:  # never cut into an existing marker: swallow it whole
                if m_start <= start and end <= m_end:
                    inside = True
                    break
                if m_start < end and start < m_end:
                    start, end = min(start, m_start), max(end, m_end)
            if inside or start < emitted or self._allowed(text[start:end]):
                continue
            pieces.append(text[emitted:start])
            pieces.append(marker(kind))
            emitted = end
            count += 1
        if not count:
            return text, 0
        pieces.append(text[emitted:])
        return "".join(pieces), count

    def _allowed(self, value: str) -> bool:
        for literal, regex in self._allow:
            if value == literal or (regex is not None and regex.fullmatch(value) is not None):
                return True
        return False

    def _key_kind(self, key: str) -> str | None:
        """The marker kind for values under ``key``, or None when the key is not sensitive."""
        cache = self._key_cache
        if key in cache:
            return cache[key]
        normalized = _normalize_key(key)
        sensitive = any(p.search(normalized) for p in self._sensitive) and not any(
            p.search(normalized) for p in self._non_sensitive
        )
        kind = _kind_from_key(key) if sensitive else None
        if len(cache) >= 4096:
            cache.clear()
        cache[key] = kind
        return kind

    def _token(self, found: re.Match[str], kind: str, ok: bool) -> _Outcome:
        start, end = found.span()
        if ok and not self._allowed(found.group()):
            return start, marker(kind), end
        return start, None, end

    # --- handlers, one per alternative --------------------------------------------
    def _on_pem(self, found: re.Match[str], text: str) -> _Outcome:
        return self._token(found, "private_key", True)

    def _on_anthropic(self, found: re.Match[str], text: str) -> _Outcome:
        body = found.group()[7:]
        ok = len(body) >= 20 or _ends_text(text, found.end())
        return self._token(found, "anthropic_key", ok)

    def _on_openai(self, found: re.Match[str], text: str) -> _Outcome:
        body = found.group()[3:]
        if body.startswith(("proj-", "svcacct-", "admin-")):
            ok = (len(body) >= 24 and _looks_random(body)) or _ends_text(text, found.end())
        elif len(body) >= 20:
            ok = _looks_random(body)
        else:
            ok = len(body) >= 8 and _looks_random(body) and _ends_text(text, found.end())
        return self._token(found, "openai_key", ok)

    def _on_stripe(self, found: re.Match[str], text: str) -> _Outcome:
        value = found.group()
        body = value.split("_", 2)[-1] if not value.startswith("whsec_") else value[6:]
        return self._token(found, "stripe_key", len(body) >= 16 or _ends_text(text, found.end()))

    def _on_github(self, found: re.Match[str], text: str) -> _Outcome:
        value = found.group()
        body = value[11:] if value.startswith("github_pat_") else value[4:]
        ok = len(body) >= 30 or (len(body) >= 4 and _ends_text(text, found.end()))
        return self._token(found, "github_token", ok)

    def _on_slack(self, found: re.Match[str], text: str) -> _Outcome:
        body = found.group().split("-", 1)[1]
        ok = (len(body) >= 10 and _looks_random(body)) or (len(body) >= 4 and _ends_text(text, found.end()))
        return self._token(found, "slack_token", ok)

    def _on_slack_webhook(self, found: re.Match[str], text: str) -> _Outcome:
        path_start = found.start("hook_path")
        if self._allowed(found.group("hook_path")):
            return found.start(), None, found.end()
        return found.start(), text[found.start() : path_start] + marker("slack_webhook"), found.end()

    def _on_google(self, found: re.Match[str], text: str) -> _Outcome:
        body = found.group()[4:]
        ok = len(body) >= 30 or (len(body) >= 6 and _ends_text(text, found.end()))
        return self._token(found, "google_api_key", ok)

    def _on_aws(self, found: re.Match[str], text: str) -> _Outcome:
        body = found.group()[4:]
        if len(body) == 16:
            following = text[found.end() : found.end() + 1]
            ok = not (following.isalnum() and following.isascii())
        else:
            ok = 4 <= len(body) < 16 and _looks_random(body) and _ends_text(text, found.end())
        return self._token(found, "aws_access_key_id", ok)

    def _on_jwt(self, found: re.Match[str], text: str) -> _Outcome:
        value = found.group()
        stripped = value.rstrip(".")  # a sentence's full stop is not part of the token
        segments = stripped.split(".")
        at_end = _ends_text(text, found.end())
        if len(segments) >= 3 and len(segments[1]) >= 2:
            ok = True
        else:
            ok = at_end and len(segments[0]) >= 8
        start = found.start()
        end = start + (len(stripped) if len(segments) >= 3 else len(value))
        if ok and not self._allowed(text[start:end]):
            return start, marker("jwt"), end
        return start, None, found.end()

    def _on_bearer(self, found: re.Match[str], text: str) -> _Outcome:
        token = found.group("bearer_tok")
        at_end = _ends_text(text, found.end())
        ok = _looks_random(token) and (len(token) >= 8 or (len(token) >= 4 and at_end))
        start = found.start()
        if ok and not self._allowed(token):
            return start, text[start : found.start("bearer_tok")] + marker("bearer_token"), found.end()
        return start, None, found.end()

    def _on_url(self, found: re.Match[str], text: str) -> _Outcome:
        password = found.group("url_pw")
        pw_start = found.start("url_pw")
        resume = found.end()
        if not found.group("url_at"):
            if "@" in password:  # cut after the host: the last '@' ends the password
                password = password.rsplit("@", 1)[0]
                resume = pw_start + len(password) + 1
            elif password.rstrip(".…").isdigit() or not password.rstrip(".…"):
                return found.start(), None, found.end()  # host:port, not user:password
        if is_marker(password) or self._allowed(password):
            return found.start(), None, resume
        suffix = "@" if resume > pw_start + len(password) else ""
        return found.start(), found.group("url_pre") + marker("url_password") + suffix, resume

    def _on_email(self, found: re.Match[str], text: str) -> _Outcome:
        value = found.group()
        lead = len(value) - len(value.lstrip("."))
        start = found.start() + lead
        value = value[lead:]
        local, _, domain = value.partition("@")
        if not local or _EMAIL_SCP_RE.match(text, found.end()) is not None:
            return found.start(), None, found.end()
        labels = domain.split(".")
        ok = (len(labels) >= 2 and len(labels[-1]) >= 2 and labels[-1].isalpha()) or (
            domain[:1].isalpha() and _ends_text(text, found.end())
        )
        if ok and not self._allowed(value):
            return start, marker("email"), found.end()
        return found.start(), None, found.end()

    def _on_kv(self, found: re.Match[str], text: str) -> _Outcome:
        key = found.group("kv_key")
        kind = self._key_kind(key)
        start, after_sep = found.start(), found.end()
        if kind is None:
            return start, None, after_sep
        already = _MARKER_VALUE_RE.match(text, after_sep)
        if already is not None:
            return start, None, already.end()
        normalized = _normalize_key(key)
        value = (_AUTH_VALUE_RE if "auth" in normalized else _VALUE_RE).match(text, after_sep)
        if value is None:
            return start, None, after_sep
        if value.group("q") is not None:
            inner = value.group("inner")
            if inner.lower() in _TRIVIAL_VALUES or is_marker(inner) or self._allowed(inner):
                return start, None, value.end()
            head = text[start : value.start("inner")]
            return start, head + marker(kind) + value.group("close"), value.end()
        if value.group("open") is not None:
            end = _scan_brackets(text, value.start())
            if self._allowed(text[value.start() : end]):
                return start, None, end
            return start, text[start:after_sep] + marker(kind), end
        bare = value.group("bare")
        if found.group("kv_dash") and not found.group("kv_sep").strip() and bare.startswith("-"):
            return start, None, after_sep  # "--token --verbose": the next flag, not a value
        end = value.end()
        if "cookie" in normalized:
            rest = _COOKIE_REST_RE.match(text, end)
            end = rest.end() if rest is not None else end
            bare = text[value.start("bare") : end]
        if bare.lower() in _TRIVIAL_VALUES or is_marker(bare) or self._allowed(bare):
            return start, None, end
        return start, text[start : value.start("bare")] + marker(kind), end


def _ends_text(text: str, end: int) -> bool:
    """True when only an ellipsis, closing quotes/brackets or space follow ``end``: a cut preview."""
    return end == len(text) or _TAIL_RE.match(text, end) is not None


def _secret_span(found: re.Match[str]) -> tuple[int, int]:
    if "secret" in found.re.groupindex and found.start("secret") >= 0:
        return found.span("secret")
    return found.span()


def _compile(item: PatternLike, what: str, flags: int = 0) -> re.Pattern[str]:
    if isinstance(item, re.Pattern):
        if not isinstance(item.pattern, str):
            raise ValueError(f"{what} pattern {item.pattern!r} must be a str pattern, not bytes")
        return item
    if not isinstance(item, str):
        raise ValueError(f"{what} pattern {item!r} must be a str or a compiled regex")
    try:
        return re.compile(item, flags)
    except re.error as exc:
        raise ValueError(f"invalid {what} pattern {item!r}: {exc}") from None


def _compile_user_pattern(item: UserPattern) -> tuple[str, re.Pattern[str]]:
    kind = "custom"
    if isinstance(item, tuple):
        if len(item) != 2 or not isinstance(item[0], str):
            raise ValueError(f"redaction pattern {item!r} must be a regex or a (kind, regex) pair")
        kind, item = item[0].strip().lower(), item[1]
        if _KIND_OK_RE.fullmatch(kind) is None:
            raise ValueError(f"redaction pattern kind {kind!r} must match [a-z0-9_.-]{{1,48}}")
    return kind, _compile(item, "redaction")


def _compile_allow(item: PatternLike) -> tuple[str | None, re.Pattern[str] | None]:
    if isinstance(item, re.Pattern):
        return None, _compile(item, "allow")
    if not isinstance(item, str):
        raise ValueError(f"allow entry {item!r} must be a str or a compiled regex")
    try:
        return item, re.compile(item)
    except re.error:
        return item, None  # not a regex: a literal only


def _compile_key_pattern(item: PatternLike, what: str) -> re.Pattern[str]:
    return _compile(item, what, re.IGNORECASE)


def _key_words(patterns: tuple[PatternLike, ...]) -> tuple[str, ...] | None:
    """Literal words one of which every sensitive key contains, or None when unknown.

    The combined regex uses them as a cheap pre-filter for ``key=value`` pairs;
    with None every pair is offered to ``_key_kind``.
    """
    words = set(_DEFAULT_KEY_WORDS)
    for item in patterns:
        source = item.pattern if isinstance(item, re.Pattern) else item
        if source in DEFAULT_SENSITIVE_KEYS:
            continue
        if not isinstance(source, str) or re.fullmatch(r"[A-Za-z0-9_]+", source) is None:
            return None
        words.add(max(source.lower().split("_"), key=len))
    return tuple(sorted(words))

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
* signed-URL signatures (Azure SAS ``sig=``, ``X-Amz-Signature=``,
  ``X-Goog-Signature=``) and the short keys ``pass``, ``pw``, ``pwd``: as
  sensitive keys, so only the value goes and the rest of the URL stays;
* ``command_password``: ``mysql -pSECRET`` (glued to the option: ``-p db`` names
  a database, ``-P`` is a port) and ``sshpass -p SECRET`` (``--password=...``
  is a sensitive key); ``$VARIABLE`` values name a secret and are kept;
* ``telegram_bot_token``: ``/bot<id>:<token>`` in a URL path;
* prose: ``my password is: X``, ``the api key is X`` (kind: the noun); without
  a colon the value must look random (a digit or mixed case, six characters or
  more), so "the token is required" stays;
* ``email`` addresses (``redact_emails=False`` keeps them);
* whatever the user's own ``patterns`` match.

``scrub_name`` redacts ids and names (tool, agent, session, turn, error type)
deterministically and memoised, so that they still match after redaction.

Previews are cut at 200 characters, so the last secret of a text may be cut
short: a token prefix followed by fewer characters than a whole token is
still redacted when it ends the text (optionally followed by ``...``/``…``
and closing quotes or brackets).

How far a value reaches: a quoted value to its closing quote (or the end of
a cut text); a bracketed one (``'auth': ('user', 'pw')``) to its closing
bracket; an unquoted value after ``=`` or ``--key`` to the next white space,
``&``, ``,`` or ``;``; an unquoted value after ``:`` (YAML, HTTP headers) to
the end of the line or the next ``, key:`` pair.

What is *not* a secret here, by design (each is a complaint about scrubbers
that cannot be tuned): keys that count or describe secrets rather than hold
them (``max_tokens``, ``token_count``, ``prompt_tokens``, ``token_type``,
``secret_name``, ``api_key_id``, ``private_key_path`` -- see
``DEFAULT_NON_SENSITIVE_KEYS``; a bare ``key``, ``author``, ``passed``, the
shell's upper-case ``PWD`` and ``OLDPWD``);
values ``true``/``false``/``null``/``None``/empty under a sensitive key;
``a:secret:b`` identifier paths (ARNs); ``sk-`` inside words
(``task-sk-learn``) or followed by prose without digits or mixed case;
commit SHAs, UUIDs, URLs without a password, ``host:port``; ``user@host:path``
(scp/git syntax) is not an email; Stripe publishable keys (``pk_live_``) are
public by design. Secrets glued to the word before them (``xsk-...``) are not
recognised.

Tuning: ``patterns`` adds regexes (``(kind, regex)`` pairs name the kind; a
group named ``secret`` limits the replacement to that group), ``allow``
exempts values (a literal, or a regex that must match the *whole* secret),
``sensitive_keys`` / ``non_sensitive_keys`` replace the key-name rules (the
latter veto only the built-in ones).

Cost: a text is scanned once by one precompiled regex that combines (as
named alternatives) exactly the families of secrets whose trigger literals
the text contains; a text with none costs a few substring tests. Every
alternative is linear-time by construction, and Python code runs only on
candidate matches. A text with secrets is scanned again until nothing
changes (usually twice), which makes redaction idempotent. On this project's
2-core machines a typical 200-character preview costs about 1-4 us without a
secret and 20-30 us with two or three.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from enum import Enum
from functools import lru_cache
from typing import Any, Final

from auditspan._sanitize import KEEP, clean_str, json_safe

from ._fork import fork_safe_lock

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
    r"(?:^|_)pass(?:_|$)",  # pass=, db_pass; not passed, passes, bypass
    r"pwd",  # pwd=, db_pwd; the shell's PWD and OLDPWD (upper case) are the working directory
    r"(?:^|_)pw(?:_|$)",
    r"(?:^|_)sig(?:nature)?$",  # signed URLs: Azure SAS sig=, X-Amz-Signature=, X-Goog-Signature=
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
    r"secrets_?manager",  # the AWS service name in ARNs and CLI calls
)

#: Literal words, one of which every default sensitive key contains (case-insensitively).
_DEFAULT_KEY_WORDS: Final = ("pass", "pw", "secret", "token", "key", "auth", "cookie", "cred", "jwt", "sig")
#: Upper-case keys that hold the shell's working directories, not passwords.
_SHELL_DIRECTORY_KEYS: Final = frozenset({"PWD", "OLDPWD"})
#: The same as regexes over a lower-cased raw key, as tight as ``DEFAULT_SENSITIVE_KEYS``
#: allows, so that ``max_tokens``, ``author``, ``passed`` or a bare ``key`` never reach Python.
_DEFAULT_KEY_REGEXES: Final = (
    r"pass",
    r"pw",
    r"sig",
    r"secret",
    r"token(?!s|i[sz]e)",
    r"key(?:(?<=[a-z0-9]key)|(?<=[a-z0-9][_.\-]key))",
    r"auth(?!or(?!i[sz]))",
    r"cookie",
    r"cred",
    r"jwt",
)

_CAMEL_RE: Final = re.compile(r"([a-z0-9])([A-Z])")
_NON_ALNUM_RE: Final = re.compile(r"[^a-z0-9]+")


def _normalize_key(key: str) -> str:
    return _NON_ALNUM_RE.sub("_", _CAMEL_RE.sub(r"\1_\2", key).lower()).strip("_")


# --- the detector -------------------------------------------------------------
# Families of secrets, each a regex over the text lower-cased in ASCII (same
# indices as the original; case rules are checked on the original by the
# handler) that starts with a literal (so the regex engine skips cheaply to
# it), has bounded repetitions, and checks boundaries by look-behinds *after*
# the literal, so a scan stays linear in the text length.
#
# A family can only match when the text holds its trigger literals
# (``_trigger_mask``: a few substring tests, ~0.1 us each), so a text is
# scanned once by one regex that combines exactly the families it triggers
# (compiled once per combination), and a text that triggers none costs only
# the tests. Validation a regex cannot express cheaply (lengths, "looks
# random", "ends the text", case) runs in Python, only for candidates.

_SEPARATOR: Final = r"(?:\\{0,8}[\"'])?[ \t]{0,8}(?::=|=>|==?|:(?![/:]))[ \t]{0,8}"


def _boundary(word_chars: str, literal: str) -> str:
    """Look-behind, placed after ``literal``: the character before it is no word character.

    An escape such as ``\\n`` counts as a boundary: in JSON and Python-repr
    previews a token often follows an escaped newline (``"a\\nsk-..."``).
    """
    return rf"(?:(?<!{word_chars}{literal})|(?<=\\[nrtbf]{literal}))"


#: (name, regex over the lowered text), in match-priority order; bit i of a
#: trigger mask stands for family i.
_TOKEN_FAMILIES: Final[tuple[tuple[str, str], ...]] = (
    (
        "pem",
        r"-----begin[a-z0-9 ]{0,40}private key(?: block)?-----[\s\S]*?"
        r"(?:-----end[a-z0-9 ]{0,40}private key(?: block)?-----|\Z)",
    ),
    ("anthropic_key", r"sk-ant-" + _boundary(r"[a-z0-9_\-]", "sk-ant-") + r"[a-z0-9_\-]{1,512}"),
    ("openai_key", r"sk-" + _boundary(r"[a-z0-9_\-]", "sk-") + r"[a-z0-9_\-]{1,512}"),
    ("stripe_key", r"[sr]k_(?:live|test)_" + _boundary("[a-z0-9_]", "[sr]k_...._") + "[a-z0-9]{1,255}"),
    ("stripe_webhook", r"whsec_" + _boundary("[a-z0-9_]", "whsec_") + "[a-z0-9+/=]{1,255}"),
    (
        "github_token",
        r"g(?:h[pousr]_" + _boundary("[a-z0-9_]", "gh._") + r"[a-z0-9]{1,255}"
        r"|ithub_pat_" + _boundary("[a-z0-9_]", "github_pat_") + r"[a-z0-9_]{1,255})",
    ),
    ("slack_token", r"x(?:ox[abposre]|app)-" + _boundary(r"[a-z0-9_\-]", "....-") + r"[a-z0-9\-]{1,255}"),
    ("slack_webhook", r"hooks\.slack\.com/services/(?P<hook_path>[a-z0-9_/\-]{1,255})"),
    ("google_api_key", r"aiza" + _boundary(r"[a-z0-9_\-]", "aiza") + r"[a-z0-9_\-]{1,64}"),
    ("aws_access_key_id", r"a(?:kia|sia|bia|cca)" + _boundary("[a-z0-9]", "a...") + "[a-z0-9]{1,32}"),
    ("jwt", r"eyj" + _boundary(r"[a-z0-9_\-]", "eyj") + r"[a-z0-9_\-]{1,8192}(?:\.[a-z0-9_\-]{0,8192}){0,4}"),
    (
        "bearer",
        r"bearer"
        + _boundary(r"[a-z0-9_\-]", "bearer")
        + r"[ \t]{1,8}(?P<bearer_tok>[a-z0-9._~+/\-]{1,4096}=*)",
    ),
    ("url", r"://[^\s/?#@:\"'<>\\\[\]]{0,256}:(?P<url_pw>[^\s/?#\"'<>\\\[\]]{1,512})(?P<url_at>@|\Z)"),
    ("email", r"@(?<=[a-z0-9._%+\-]@)[a-z0-9\-]{1,63}(?:\.[a-z0-9\-]{1,63}){0,8}"),
    # A password on a command line: the handler reads the rest of the command (``mysql -pSECRET``,
    # ``sshpass -p SECRET``) case-sensitively, where ``-P`` is a port or a prompt.
    ("command_password", r"(?:mysql|mariadb|sshpass)"),
    # Telegram's bot API puts the bot's token in the URL path: /bot<id>:<token>/method.
    ("telegram_bot_token", r"/bot(?P<bot_token>[0-9]{5,16}:[a-z0-9_\-]{1,64})(?![a-z0-9_\-])"),
    # Prose: "my password is: X", "the api key is X".
    (
        "prose",
        r"(?:pass(?:word|phrase|code)|api[ \t]?key|(?:secret|access|private)[ \t]key"
        r"|(?:auth|access|refresh|api|session)[ \t]?token|token|secret|credentials?)"
        r"(?P<prose_verb>[ \t]{1,4}(?:is|was)(?![a-z]))(?P<prose_colon>[ \t]{0,4}:)?"
        r"[ \t]{1,8}(?P<prose_quote>[\"'`])?(?P<prose_value>[^\s\"'`]{1,512})",
    ),
)
_FAMILY_NAMES: Final = (*(name for name, _ in _TOKEN_FAMILIES), "kv", "flag")
(
    _PEM,
    _ANTHROPIC,
    _OPENAI,
    _STRIPE,
    _WHSEC,
    _GITHUB,
    _SLACK,
    _SLACK_HOOK,
    _GOOGLE,
    _AWS,
    _JWT,
    _BEARER,
    _URL,
    _EMAIL,
    _COMMAND,
    _TELEGRAM,
    _PROSE,
    _KV,
    _FLAG,
) = (1 << index for index in range(len(_FAMILY_NAMES)))
#: Every family: the mask of a scan that skips the trigger tests.
_ALL_FAMILIES: Final = (1 << len(_FAMILY_NAMES)) - 1


def _pair_bodies(words: tuple[str, ...] | None) -> tuple[str, str]:
    """Regexes for ``key=value`` / ``key: value`` pairs and ``--key value`` flags.

    With ``words`` (literals every sensitive key contains) a pair is found at
    the word and the handler looks back for the start of its key; without,
    every pair is a candidate (custom ``sensitive_keys`` that are not words).
    """
    if words is None:
        kv = r"(?<![a-z0-9_.\-])[a-z_][a-z0-9_.\-]{0,63}(?P<kv_sep>" + _SEPARATOR + ")"
        return kv, r"--[a-z_][a-z0-9_.\-]{0,63}(?P<flag_sep>[ \t]{1,8})"
    extra = tuple(re.escape(word) for word in words if word not in _DEFAULT_KEY_WORDS)
    alternation = "|".join(_DEFAULT_KEY_REGEXES + extra)
    kv = rf"(?:{alternation})[a-z0-9_.\-]{{0,63}}(?P<kv_sep>{_SEPARATOR})"
    flag = rf"--(?=[a-z0-9_.\-]{{0,63}}?(?:{alternation}))[a-z0-9_.\-]{{1,64}}(?P<flag_sep>[ \t]{{1,8}})"
    return kv, flag


@lru_cache(maxsize=1024)
def _combined_regex(mask: int, words: tuple[str, ...] | None) -> re.Pattern[str]:
    bodies = tuple(body for _, body in _TOKEN_FAMILIES) + _pair_bodies(words)
    # The empty group closing each alternative names it (``match.lastgroup``)
    # without a group at its start, which would hide the leading literal.
    return re.compile(
        "|".join(
            f"(?:{body})(?P<{name}>)"
            for index, (name, body) in enumerate(zip(_FAMILY_NAMES, bodies, strict=True))
            if mask >> index & 1
        )
    )


def _trigger_mask(text: str, lowered: str, words: tuple[str, ...] | None) -> int:
    """The families whose trigger literals ``text`` holds (a superset of those that can match).

    Case-sensitive prefixes (``AKIA``, ``AIza``, ``eyJ``) are tested on the
    original text: their handlers reject other casings anyway.
    """
    mask = 0
    if "-" in lowered:
        if "sk-" in lowered:
            mask |= _OPENAI | (_ANTHROPIC if "sk-ant-" in lowered else 0)
        if "-----begin" in lowered:
            mask |= _PEM
        if "xox" in lowered or "xapp-" in lowered:
            mask |= _SLACK
        if "--" in lowered:
            mask |= _FLAG
        if " -p" in lowered and ("mysql" in lowered or "mariadb" in lowered or "sshpass" in lowered):
            mask |= _COMMAND
    if "_" in lowered:
        if "k_live_" in lowered or "k_test_" in lowered:
            mask |= _STRIPE
        if "whsec_" in lowered:
            mask |= _WHSEC
        if "gh" in lowered or "github_pat_" in lowered:
            mask |= _GITHUB
    if "IA" in text or "ACCA" in text:
        mask |= _AWS
    if "AIza" in text:
        mask |= _GOOGLE
    if "eyJ" in text:
        mask |= _JWT
    if "bearer" in lowered:
        mask |= _BEARER
    if "@" in lowered:
        mask |= _EMAIL
    if "hooks.slack.com" in lowered:
        mask |= _SLACK_HOOK
    # A test costs every text a scan (about 700 instructions for 100 characters): each family of
    # issue 14 is tested only inside a cheaper test its secret cannot do without.
    if " is" in lowered or " was" in lowered:
        mask |= _PROSE
    if ":" in lowered:
        if "://" in lowered:
            mask |= _URL
        if "/bot" in lowered:  # /bot<id>:<token>, in a URL or a path without its scheme (a target)
            mask |= _TELEGRAM
        mask |= _KV
    elif "=" in lowered:
        mask |= _KV
    if mask & (_KV | _FLAG | _PROSE) and words is not None:
        for word in words:  # every sensitive key and every noun of prose holds one of them
            if word in lowered:
                break
        else:
            mask &= ~(_KV | _FLAG | _PROSE)
    return mask


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
#: Rest of a bare ``key: value`` value (or cookie header) up to the end of the line; it
#: also ends at a quote or bracket closing an enclosing string / structure, and at a
#: comma that starts the next ``key: value`` pair.
_LINE_REST_RE: Final = re.compile(
    r"(?:[^\r\n\"'\\)\]},]|\\(?![nr\"'])"
    r"|,(?![ \t]*[\"']?[A-Za-z_][A-Za-z0-9_.\-]{0,63}[\"']?[ \t]*[:=])){0,8192}"
)
#: A value that is already a marker (after an optional auth scheme): nothing left to redact.
_MARKER_VALUE_RE: Final = re.compile(rf"{_SCHEMES}?\[REDACTED:[a-z0-9_.\-]{{1,64}}\]")
_BRACKET_EVENT_RE: Final = re.compile(r"\\[\s\S]|[\[\](){}\"']")
_TAIL_RE: Final = re.compile(r"(?:\.\.\.|…)?[\"'`)\]}>]{0,8}\s*\Z")
_TRIVIAL_VALUES: Final = frozenset({"", "true", "false", "null", "none", "nil", "undefined"})
#: Where a command ends (``_on_command`` looks for its password option before it).
_COMMAND_END_RE: Final = re.compile(r"[\r\n;|&]")
#: ``-pSECRET`` (mysql's password, glued to the option; ``-p SECRET`` names a database, ``-P`` a port).
_MYSQL_OPTION_RE: Final = re.compile(
    r"(?<=[ \t])-p(?P<value>\"[^\"\r\n]{1,256}\"|'[^'\r\n]{1,256}'|[^\s\"'\\]{1,256})"
)
#: ``sshpass -p SECRET`` or ``-pSECRET`` (``-P`` is the prompt to wait for).
_SSHPASS_OPTION_RE: Final = re.compile(
    r"(?<=[ \t])-p[ \t]{0,8}(?P<value>\"[^\"\r\n]{1,256}\"|'[^'\r\n]{1,256}'|[^\s\"'\\-][^\s\"'\\]{0,255})"
)
#: ``user@host:path`` (scp, git) follows an address-like ``user@host``: not an e-mail.
_EMAIL_SCP_RE: Final = re.compile(r":(?!//)[^\s]")


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


PatternLike = str | re.Pattern[str]
UserPattern = PatternLike | tuple[str, PatternLike]

# A handler gets the match, the original text and the floor (where this
# search began: nothing before it may be replaced) and returns
# (start, replacement, resume): the replacement covers text[start:resume];
# None means "nothing redacted here, scan on from resume".
_Outcome = tuple[int, str | None, int]
_Handler = Callable[[re.Match[str], str, int], _Outcome]

#: Redaction passes at most (see ``Redactor._redact``); real texts need one or two.
_MAX_PASSES: Final = 8
_KEY_CHARS: Final = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-")
_EMAIL_LOCAL_CHARS: Final = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._%+-")
_AWS_PREFIXES: Final = ("AKIA", "ASIA", "ABIA", "ACCA")
_AWS_BODY_RE: Final = re.compile(r"[A-Z0-9]+")


def _run_start(text: str, end: int, floor: int, chars: frozenset[str], limit: int) -> int:
    """Start of the run of ``chars`` ending at ``end``, at most ``limit`` long, not before ``floor``.

    The letter of an escape (``\\n`` in a JSON or repr preview) is not part of the run.
    """
    start = end
    stop = end - limit
    if stop < floor:
        stop = floor
    while start > stop and text[start - 1] in chars:
        start -= 1
    if start < end and start > floor and text[start - 1] == "\\" and text[start] in "nrtbf":
        start += 1
    return start


#: ``scrub`` remembers the results of strings up to this long, at most this many of them.
_SCRUB_MEMO_LENGTH: Final = 256
_SCRUB_MEMO_SIZE: Final = 4096
_FULL: Final = CapturePolicy.FULL
#: ``scrub_name`` remembers this many names per generation (two generations: at most twice this).
_NAME_MEMO_SIZE: Final = 8192


class Redactor:
    """Finds and replaces secrets; applies a ``CapturePolicy`` to content fields.

    Args:
        policy: the ``CapturePolicy`` (or its name) for ``capture`` / ``scrub``.
        patterns: extra regexes, each a ``str``, a compiled pattern, or a
            ``(kind, regex)`` pair (kind defaults to ``"custom"``); a group named
            ``secret`` limits the replacement to that group. A ``str`` that does
            not compile raises ``ValueError`` naming it. They run after the
            built-in detectors, one pass each, and must not match the marker
            syntax.
        allow: values never redacted: each a literal (exact match) or a regex
            that must match the whole secret value (``r".*@example\\.com"``).
        redact_emails: replace e-mail addresses by ``[REDACTED:email]``.
        sensitive_keys: key-name regexes (see ``DEFAULT_SENSITIVE_KEYS``) whose
            values are redacted in text and in ``redact_value``. Patterns that
            are plain words (``"ssn"``) keep the fast path; other custom
            patterns make every ``key: value`` pair in a text a candidate.
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
        compiled = [(item, _compile_key_pattern(item, "sensitive key")) for item in sensitive]
        # non_sensitive_keys veto only the built-in rules: a key rule of your own always wins.
        self._sensitive = tuple(p for item, p in compiled if p.pattern in DEFAULT_SENSITIVE_KEYS)
        self._custom_sensitive = tuple(p for item, p in compiled if p.pattern not in DEFAULT_SENSITIVE_KEYS)
        self._non_sensitive = tuple(
            _compile_key_pattern(item, "non-sensitive key") for item in non_sensitive_keys
        )
        self._words = _key_words(sensitive)
        #: Families this instance never scans for (emails when not redacted).
        self._disabled = 0 if self.redact_emails else _EMAIL
        self._regexes: dict[int, re.Pattern[str]] = {}
        self._key_cache: dict[str, str | None] = {}
        self._scrub_memo: dict[str, tuple[str, int]] = {}
        # Two generations: a name still in use survives the turn-over of the other.
        self._names: dict[str, tuple[str, int]] = {}
        self._old_names: dict[str, tuple[str, int]] = {}
        self._count = 0
        self._count_lock = fork_safe_lock()
        self._handlers: dict[str, _Handler] = {
            "pem": self._on_pem,
            "anthropic_key": self._on_anthropic,
            "openai_key": self._on_openai,
            "stripe_key": self._on_stripe,
            "stripe_webhook": self._on_stripe,
            "github_token": self._on_github,
            "slack_token": self._on_slack,
            "slack_webhook": self._on_slack_webhook,
            "google_api_key": self._on_google,
            "aws_access_key_id": self._on_aws,
            "jwt": self._on_jwt,
            "bearer": self._on_bearer,
            "url": self._on_url,
            "email": self._on_email,
            "command_password": self._on_command,
            "telegram_bot_token": self._on_telegram,
            "prose": self._on_prose,
            "kv": self._on_kv,
            "flag": self._on_flag,
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
        fails the whole text becomes ``[REDACTED:error]`` (fail closed).
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
        never mutated.

        Example::

            >>> Redactor().redact_value({"user": "bob", "api_key": 12345, "note": ("ok",)})
            {'user': 'bob', 'api_key': '[REDACTED:api_key]', 'note': ['ok']}
        """
        return self.redact_value_counted(value)[0]

    def redact_value_counted(self, value: Any) -> tuple[Any, int]:
        """``(redact_value(value), number of secrets replaced)``. Never raises."""
        counter = [0]

        def on_str(text: str) -> str:
            try:
                result, count = self._redact(text)
            except Exception:  # fail closed, for this string only
                result, count = REDACTION_ERROR_MARKER, 1
            counter[0] += count
            return result

        def on_pair(key: str, item: Any) -> Any:
            try:
                kind = self._key_kind(key)
            except Exception:
                counter[0] += 1
                return REDACTION_ERROR_MARKER
            if kind is None or item is None or item is True or item is False:
                return KEEP
            if type(item) is str and (not item or is_marker(item)):
                return KEEP
            counter[0] += 1
            return marker(kind)

        try:
            result = json_safe(value, str_hook=on_str, pair_hook=on_pair)
        except Exception:  # json_safe does not raise; belt and braces
            result, counter[0] = REDACTION_ERROR_MARKER, 1
        if counter[0]:
            self._add(counter[0])
        return result, counter[0]

    def capture(self, text: str) -> str:
        """A content field under the policy.

        ``NONE`` -> ``""``, ``REDACTED`` -> ``redact_text(text)``, ``FULL`` -> ``text`` as is.
        """
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
        if type(text) is not str or len(text) > _SCRUB_MEMO_LENGTH:
            return self.redact_text_counted(text)
        # The strings scrubbed are mostly few and repeated (policy files, sandbox reasons,
        # error messages): remember their results (the count is still added per call).
        memo = self._scrub_memo
        found = memo.get(text)
        if found is not None:
            if found[1]:
                self._add(found[1])
            return found
        found = self.redact_text_counted(text)
        if found[0] != REDACTION_ERROR_MARKER:
            if len(memo) >= _SCRUB_MEMO_SIZE:
                memo.clear()  # many distinct strings: start over rather than grow or track age
            memo[text] = found
        return found

    def scrub_name(self, name: str) -> str:
        """An id, name or tag (tool name, agent, session, turn, error type, status): ``scrub``, memoised.

        Deterministic: the same name always gives the same text, so tool names,
        sessions and turns still match after redaction (two names that differ
        only inside a secret of the same kind become one). The results of the
        last 8,192 to 16,384 distinct names of up to 256 characters are
        remembered (two generations: when the newer one is full it becomes the
        older one), so the names an agent repeats cost a dictionary lookup.
        Never raises; fails closed (``[REDACTED:error]``, not remembered).

        Example::

            >>> Redactor().scrub_name("deploy sk-proj-abcDEF1234567890abcDEF12XYZ")
            'deploy [REDACTED:openai_key]'
        """
        found = self._names.get(name)
        if found is None:
            found = self._old_names.get(name)
            if found is None:
                if (
                    type(name) is not str
                    or len(name) > _SCRUB_MEMO_LENGTH
                    or self.policy is CapturePolicy.FULL
                ):
                    return self.scrub(name)  # verbatim under FULL; long names are not remembered
                found = self._redact_name(name)
                if found[0] is REDACTION_ERROR_MARKER:  # a failure (out of stack?) is not remembered
                    self._add(1)
                    return REDACTION_ERROR_MARKER
            names = self._names
            if len(names) >= _NAME_MEMO_SIZE:
                self._old_names = names
                names = self._names = {}
            names[name] = found
        if found[1]:
            self._add(found[1])
        return found[0]

    def _redact_name(self, name: str) -> tuple[str, int]:
        try:
            return self._redact(name)
        except Exception:
            return REDACTION_ERROR_MARKER, 1

    # --- scanning ---------------------------------------------------------------
    def _add(self, count: int) -> None:
        with self._count_lock:
            self._count += count

    def _redact(self, text: str) -> tuple[str, int]:
        # To a fixed point, so that redacting the result again changes nothing: a
        # replacement changes what its neighbours' boundary checks and validators see
        # (a key glued to a PEM block, "-----END ... KEY-----sk-...", passes its check
        # only against the marker). Each pass that changes something turns at least
        # one character that is not a marker into a marker, so this ends; a text
        # without secrets takes one pass, one with secrets usually two.
        total = 0
        for _ in range(_MAX_PASSES):
            text, count = self._redact_builtin(text)
            for kind, pattern in self._user_patterns:
                text, extra = self._redact_user(text, kind, pattern)
                count += extra
            if not count:
                break
            total += count
        return text, total

    def _redact_builtin(self, text: str, families: int | None = None) -> tuple[str, int]:
        """One scan for ``families`` (default: those the text triggers): ``(result, replacements)``."""
        lowered = _ascii_lower(text)
        if families is None:
            families = _trigger_mask(text, lowered, self._words)
        families &= ~self._disabled
        if not families:
            return text, 0
        regex = self._regexes.get(families)
        if regex is None:
            regex = self._regexes[families] = _combined_regex(families, self._words)
        search = regex.search
        handlers = self._handlers
        pieces: list[str] = []
        emitted = 0
        count = 0
        floor = 0
        found = search(lowered)
        while found is not None:
            start, replacement, resume = handlers[found.lastgroup or ""](found, text, floor)
            if replacement is not None:
                pieces.append(text[emitted:start])
                pieces.append(replacement)
                emitted = resume
                # one, or more when the replacement redacted inside what it keeps (a URL's user)
                count += max(1, replacement.count(MARKER_PREFIX) - text.count(MARKER_PREFIX, start, resume))
            floor = max(resume, found.start() + 1)
            found = search(lowered, floor)
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
        # A key that held a secret arrives redacted: its markers say nothing about the key.
        name = _MARKER_RE.sub(" ", key) if MARKER_PREFIX in key else key
        normalized = _normalize_key(name)
        sensitive = any(p.search(normalized) for p in self._custom_sensitive) or (
            any(p.search(normalized) for p in self._sensitive)
            and not any(p.search(normalized) for p in self._non_sensitive)
            and name.lstrip("$-") not in _SHELL_DIRECTORY_KEYS
        )
        kind = _kind_from_key(name) if sensitive else None
        if len(key) <= _SCRUB_MEMO_LENGTH:  # bounded in count and in size: 4,096 keys of <= 256 chars
            if len(cache) >= 4096:
                cache.clear()
            cache[key] = kind
        return kind

    def _token(self, found: re.Match[str], text: str, kind: str, ok: bool) -> _Outcome:
        start, end = found.span()
        if not ok:
            return start, None, start + 1  # rejected: what it spans is scanned again
        if self._allowed(text[start:end]):
            return start, None, end
        return start, marker(kind), end

    # --- handlers, one per family -------------------------------------------------
    def _on_pem(self, found: re.Match[str], text: str, floor: int) -> _Outcome:
        return self._token(found, text, "private_key", True)

    def _on_anthropic(self, found: re.Match[str], text: str, floor: int) -> _Outcome:
        body = text[found.start() + 7 : found.end()]
        ok = len(body) >= 20 or _ends_text(text, found.end())
        return self._token(found, text, "anthropic_key", ok)

    def _on_openai(self, found: re.Match[str], text: str, floor: int) -> _Outcome:
        body = text[found.start() + 3 : found.end()]
        at_end = _ends_text(text, found.end())
        if body.lower().startswith(("proj-", "svcacct-", "admin-")):
            ok = (len(body) >= 24 and _looks_random(body)) or at_end
        elif len(body) >= 20:
            ok = _looks_random(body)
        else:
            ok = len(body) >= 8 and _looks_random(body) and at_end
        return self._token(found, text, "openai_key", ok)

    def _on_stripe(self, found: re.Match[str], text: str, floor: int) -> _Outcome:
        value = text[found.start() : found.end()]
        body = value[6:] if value.lower().startswith("whsec_") else value[8:]
        ok = len(body) >= 16 or _ends_text(text, found.end())
        return self._token(found, text, "stripe_key", ok)

    def _on_github(self, found: re.Match[str], text: str, floor: int) -> _Outcome:
        value = text[found.start() : found.end()]
        body = value[11:] if value.lower().startswith("github_pat_") else value[4:]
        ok = len(body) >= 30 or (len(body) >= 4 and _ends_text(text, found.end()))
        return self._token(found, text, "github_token", ok)

    def _on_slack(self, found: re.Match[str], text: str, floor: int) -> _Outcome:
        body = text[found.start() : found.end()].split("-", 1)[1]
        ok = (len(body) >= 10 and _looks_random(body)) or (len(body) >= 4 and _ends_text(text, found.end()))
        return self._token(found, text, "slack_token", ok)

    def _on_slack_webhook(self, found: re.Match[str], text: str, floor: int) -> _Outcome:
        start, end = found.span("hook_path")
        if self._allowed(text[start:end]):
            return start, None, end
        return start, marker("slack_webhook"), end

    def _on_google(self, found: re.Match[str], text: str, floor: int) -> _Outcome:
        value = text[found.start() : found.end()]
        body = value[4:]
        ok = value.startswith("AIza") and (
            len(body) >= 30 or (len(body) >= 6 and _ends_text(text, found.end()))
        )
        return self._token(found, text, "google_api_key", ok)

    def _on_aws(self, found: re.Match[str], text: str, floor: int) -> _Outcome:
        value = text[found.start() : found.end()]
        body = value[4:]
        if not value.startswith(_AWS_PREFIXES) or _AWS_BODY_RE.fullmatch(body) is None:
            ok = False
        elif len(body) == 16:
            ok = True  # the regex took every following letter and digit: exactly 16
        else:
            ok = 4 <= len(body) < 16 and _ends_text(text, found.end())
        return self._token(found, text, "aws_access_key_id", ok)

    def _on_jwt(self, found: re.Match[str], text: str, floor: int) -> _Outcome:
        start = found.start()
        value = text[start : found.end()]
        stripped = value.rstrip(".")  # a sentence's full stop is not part of the token
        segments = stripped.split(".")
        if not value.startswith("eyJ"):
            ok = False
        elif len(segments) >= 3 and len(segments[1]) >= 2:
            ok = True
        else:
            ok = len(segments[0]) >= 8 and _ends_text(text, found.end())
        end = start + (len(stripped) if len(segments) >= 3 else len(value))
        if not ok:
            return start, None, start + 1
        if self._allowed(text[start:end]):
            return start, None, end
        return start, marker("jwt"), end

    def _on_bearer(self, found: re.Match[str], text: str, floor: int) -> _Outcome:
        start, end = found.span("bearer_tok")
        token = text[start:end]
        ok = _looks_random(token) and (len(token) >= 8 or (len(token) >= 4 and _ends_text(text, end)))
        if not ok:
            return start, None, found.start() + 1
        if self._allowed(token):
            return start, None, end
        return start, marker("bearer_token"), end

    def _on_url(self, found: re.Match[str], text: str, floor: int) -> _Outcome:
        start, end = found.span("url_pw")
        password = text[start:end]
        if not found.group("url_at"):
            if "@" in password:  # cut after the host: the last '@' ends the password
                password = password.rsplit("@", 1)[0]
                end = start + len(password)
            elif not password.rstrip(".…") or password.rstrip(".…").isdigit():
                return start, None, found.start() + 1  # host:port, not user:password
        if not password or is_marker(password) or self._allowed(password):
            return start, None, found.start() + 1  # the user part is scanned on its own
        # The user part is kept, but it can be a token itself (https://ghp_...:x@github.com).
        user_start = found.start() + 3
        user = text[user_start : start - 1]
        if user:
            user = self._redact_builtin(user)[0]
        return user_start, f"{user}:{marker('url_password')}", end

    def _on_email(self, found: re.Match[str], text: str, floor: int) -> _Outcome:
        at = found.start()
        # Not cut at RFC 5321's 64 characters: a longer run is all redacted, so that
        # no tail of it is left to pass as a shorter address on the next pass.
        local_start = _run_start(text, at, floor, _EMAIL_LOCAL_CHARS, 1024)
        while local_start < at and text[local_start] == ".":
            local_start += 1
        if local_start >= at or _EMAIL_SCP_RE.match(text, found.end()) is not None:
            return at, None, at + 1
        # The domain ends at its last alphabetic top-level label: what the regex took
        # beyond it (".sk-...", "-----BEGIN ...") belongs to whatever is glued on.
        domain = text[at + 1 : found.end()]
        glued = domain.find("-----")
        domain = (domain if glued < 0 else domain[:glued]).rstrip("-.")
        labels = domain.split(".")
        tld = max(
            (i for i in range(1, len(labels)) if len(labels[i]) >= 2 and labels[i].isalpha()), default=0
        )
        if tld:
            domain = ".".join(labels[: tld + 1])
        end = at + 1 + len(domain)
        if not (tld or (domain[:1].isalpha() and _ends_text(text, end))):
            return at, None, at + 1
        if self._allowed(text[local_start:end]):
            return at, None, end
        return local_start, marker("email"), end

    def _on_command(self, found: re.Match[str], text: str, floor: int) -> _Outcome:
        end = found.end()
        if found.start() > 0 and (text[found.start() - 1].isalnum() or text[found.start() - 1] == "_"):
            return end, None, end  # inside a word: not the command
        # The command runs to the end of its line or the next ; | & (at most 1,024 characters).
        stop = _COMMAND_END_RE.search(text, end, min(len(text), end + 1024))
        limit = stop.start() if stop is not None else min(len(text), end + 1024)
        option = (_SSHPASS_OPTION_RE if text[found.start()] in "sS" else _MYSQL_OPTION_RE).search(
            text, end, limit
        )
        if option is None:
            return end, None, end
        start, value_end = option.span("value")
        value = text[start:value_end]
        if value.startswith(MARKER_PREFIX):
            return end, None, end  # done already: what lies between is scanned as usual
        if value.startswith("$") or self._allowed(value):  # $MYSQL_PWD names a secret, it is not one
            return start, None, value_end
        return start, marker("command_password"), value_end

    def _on_telegram(self, found: re.Match[str], text: str, floor: int) -> _Outcome:
        start, end = found.span("bot_token")
        token = text[start:end].split(":", 1)[1]
        # Whole tokens are 35 characters; a shorter one only where a preview was cut.
        ok = (len(token) >= 30 and _looks_random(token)) or _ends_text(text, end)
        if not ok or self._allowed(text[start:end]):
            return start, None, end
        return start, marker("telegram_bot_token"), end

    def _on_prose(self, found: re.Match[str], text: str, floor: int) -> _Outcome:
        noun_start = found.start()
        if noun_start > 0 and text[noun_start - 1].isalnum():
            return noun_start, None, noun_start + 1  # inside a word ("autotoken is")
        start, end = found.span("prose_value")
        quote = found.group("prose_quote")
        value = text[start:end]
        if quote is None:
            value = value.rstrip(".,;:!?)]}>")  # the sentence goes on after the value
            end = start + len(value)
        colon = found.group("prose_colon") is not None
        # Without a colon the value must look like a secret: "the token is required" is prose.
        ok = bool(value) and (
            quote is not None or colon or (len(value) >= 6 and _looks_random(value) and not value.isdigit())
        )
        if (
            not ok
            or value.lower() in _TRIVIAL_VALUES
            or value.startswith(MARKER_PREFIX)
            or self._allowed(value)
        ):
            return start, None, found.start("prose_value")
        if self._redact_builtin(value)[1]:
            return start, None, start  # a token of a known family: found there, with its own kind
        return start, marker(_kind_from_key(text[noun_start : found.start("prose_verb")])), end

    def _on_kv(self, found: re.Match[str], text: str, floor: int) -> _Outcome:
        key_start = _run_start(text, found.start(), floor, _KEY_CHARS, 64)
        key = text[key_start : found.start("kv_sep")]
        separator = found.group("kv_sep")
        if separator == ":" and text[key_start - 1 : key_start] == ":":
            return found.start(), None, found.end()  # a:b:c is an identifier path (ARN, URN), not a pair
        # "key: value" (YAML, HTTP headers, prose) runs to the end of the line;
        # "key=value" (env, query strings, CLI) ends at white space.
        to_line_end = ":" in separator and "=" not in separator
        return self._pair(text, key, found.end(), flag=False, to_line_end=to_line_end)

    def _on_flag(self, found: re.Match[str], text: str, floor: int) -> _Outcome:
        key = text[found.start() : found.start("flag_sep")]
        return self._pair(text, key, found.end(), flag=True, to_line_end=False)

    def _pair(self, text: str, key: str, after_sep: int, *, flag: bool, to_line_end: bool) -> _Outcome:
        """Redact the value that starts at ``after_sep`` when ``key`` is sensitive."""
        kind = self._key_kind(key)
        if kind is None:
            return after_sep, None, after_sep
        already = _MARKER_VALUE_RE.match(text, after_sep)
        if already is not None:
            return after_sep, None, already.end()
        lowered_key = key.lower()
        value = (_AUTH_VALUE_RE if "auth" in lowered_key else _VALUE_RE).match(text, after_sep)
        if value is None:
            return after_sep, None, after_sep
        if value.group("q") is not None:
            start, end = value.span("inner")
            inner = text[start:end]
            if inner.lower() in _TRIVIAL_VALUES or is_marker(inner) or self._allowed(inner):
                return after_sep, None, value.end()
            return start, marker(kind), end
        if value.group("open") is not None:
            end = _scan_brackets(text, after_sep)
            if self._allowed(text[after_sep:end]):
                return after_sep, None, end
            return after_sep, marker(kind), end
        start, end = value.span("bare")
        if text.startswith("-----BEGIN", start):
            return after_sep, None, start  # a PEM block: the private_key family takes all of it
        if flag and text.startswith("-", start):
            return after_sep, None, after_sep  # "--token --verbose": the next flag, not a value
        if (to_line_end or "cookie" in lowered_key) and text[start:end].lower() not in _TRIVIAL_VALUES:
            rest = _LINE_REST_RE.match(text, end)
            if rest is not None:
                end = start + len(text[start : rest.end()].rstrip())
        bare = text[start:end]
        if bare.lower() in _TRIVIAL_VALUES or self._allowed(bare):
            return after_sep, None, end
        return start, marker(kind), end


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

"""The detector table: every family of secrets as one row (trigger, pattern, validator).

A row says when a text can hold the family (``trigger``: literals the text
must contain), where a candidate is (``pattern``: a regex over the text
lower-cased in ASCII, which keeps every index), and whether the candidate is a
secret and what it covers (``validate``: Python, run on candidates only).

Each pattern starts with a literal, so the regex engine skips cheaply to it,
has bounded repetitions, and checks boundaries by look-behinds *after* the
literal, so a scan stays linear in the text length. Validation a regex cannot
express cheaply (lengths, "looks random", "ends the text", case) is left to the
validator, which reads the original text.

A scan (``Redactor._redact_builtin``) tests the triggers (``trigger_mask``: a
few substring tests), then runs the one regex that combines exactly the
families triggered (``combined_regex``: compiled once per combination) and
hands each match to the validator of the family that matched
(``match.lastgroup``). A text that triggers nothing costs only the tests.

A validator gets the scanner (for the allow list, the key rules and nested
scans), the match, the original text and the floor (where this search began:
nothing before it may be replaced), and returns ``(start, replacement,
resume)``: the replacement covers ``text[start:resume]``; None means "nothing
redacted here, scan on from ``resume``".
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import lru_cache
from typing import Any, Final, NamedTuple, Protocol

from ._keys import DEFAULT_KEY_REGEXES, DEFAULT_KEY_WORDS, kind_from_key
from ._policy import MARKER_PREFIX, is_marker, marker

__all__ = [
    "ALL_FAMILIES",
    "EMAIL",
    "FAMILIES",
    "Family",
    "Outcome",
    "Scanner",
    "Trigger",
    "Validator",
    "ascii_lower",
    "combined_regex",
    "trigger_mask",
]

Outcome = tuple[int, str | None, int]


class Scanner(Protocol):
    """What a validator may ask of the ``Redactor`` that scans."""

    def _allowed(self, value: str) -> bool:
        """Whether ``value`` is exempt (the ``allow`` list)."""

    def _key_kind(self, key: str) -> str | None:
        """The marker kind for values under ``key``, None when the key is not sensitive."""

    def _redact_builtin(self, text: str, families: int | None = None) -> tuple[str, int]:
        """One scan of ``text`` by the built-in families: ``(result, replacements)``."""


Validator = Callable[[Scanner, "re.Match[str]", str, int], Outcome]


class Trigger(NamedTuple):
    """Literals a text must contain for a family to be able to match (a cheap superset test).

    ``any_of``: one of them, searched in the lower-cased text, or in the original
    one when ``original`` (case-sensitive prefixes: ``AKIA``, ``eyJ``; their
    validators reject other casings anyway); ``also``: and this one too ("" for none).
    """

    any_of: tuple[str, ...]
    also: str = ""
    original: bool = False


class Family(NamedTuple):
    """One row of the table: a family of secrets.

    ``name`` is the regex group that tells which family matched; ``pattern`` is
    None for the two key-value families, whose patterns are built from the key
    words of the ``Redactor`` (``pair_patterns``); ``keyed``: the family needs a
    sensitive key word (or a noun of prose) in the text.
    """

    name: str
    trigger: Trigger
    pattern: str | None
    validate: Validator
    keyed: bool = False


_SEPARATOR: Final = r"(?:\\{0,8}[\"'])?[ \t]{0,8}(?::=|=>|==?|:(?![/:]))[ \t]{0,8}"


def _boundary(word_chars: str, literal: str) -> str:
    """Look-behind, placed after ``literal``: the character before it is no word character.

    An escape such as ``\\n`` counts as a boundary: in JSON and Python-repr
    previews a token often follows an escaped newline (``"a\\nsk-..."``).
    """
    return rf"(?:(?<!{word_chars}{literal})|(?<=\\[nrtbf]{literal}))"


# --- what validators share -----------------------------------------------------------
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
#: Where a command ends (``_command`` looks for its password option before it).
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


#: Characters of a key (``_kv`` looks back from its sensitive word for the key's start).
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


def _ends_text(text: str, end: int) -> bool:
    """True when only an ellipsis, closing quotes/brackets or space follow ``end``: a cut preview."""
    return end == len(text) or _TAIL_RE.match(text, end) is not None


# --- validators, one per family ---------------------------------------------------
def _token(scan: Scanner, found: re.Match[str], text: str, kind: str, ok: bool) -> Outcome:
    """The whole match as a secret of ``kind`` when ``ok`` (and not allowed); else scan on after its start."""
    start, end = found.span()
    if not ok:
        return start, None, start + 1  # rejected: what it spans is scanned again
    if scan._allowed(text[start:end]):
        return start, None, end
    return start, marker(kind), end


def _pem(scan: Scanner, found: re.Match[str], text: str, floor: int) -> Outcome:
    return _token(scan, found, text, "private_key", True)


def _anthropic(scan: Scanner, found: re.Match[str], text: str, floor: int) -> Outcome:
    body = text[found.start() + 7 : found.end()]
    ok = len(body) >= 20 or _ends_text(text, found.end())
    return _token(scan, found, text, "anthropic_key", ok)


def _openai(scan: Scanner, found: re.Match[str], text: str, floor: int) -> Outcome:
    body = text[found.start() + 3 : found.end()]
    at_end = _ends_text(text, found.end())
    if body.lower().startswith(("proj-", "svcacct-", "admin-")):
        ok = (len(body) >= 24 and _looks_random(body)) or at_end
    elif len(body) >= 20:
        ok = _looks_random(body)
    else:
        ok = len(body) >= 8 and _looks_random(body) and at_end
    return _token(scan, found, text, "openai_key", ok)


def _stripe(scan: Scanner, found: re.Match[str], text: str, floor: int) -> Outcome:
    value = text[found.start() : found.end()]
    body = value[6:] if value.lower().startswith("whsec_") else value[8:]
    ok = len(body) >= 16 or _ends_text(text, found.end())
    return _token(scan, found, text, "stripe_key", ok)


def _github(scan: Scanner, found: re.Match[str], text: str, floor: int) -> Outcome:
    value = text[found.start() : found.end()]
    body = value[11:] if value.lower().startswith("github_pat_") else value[4:]
    ok = len(body) >= 30 or (len(body) >= 4 and _ends_text(text, found.end()))
    return _token(scan, found, text, "github_token", ok)


def _slack(scan: Scanner, found: re.Match[str], text: str, floor: int) -> Outcome:
    body = text[found.start() : found.end()].split("-", 1)[1]
    ok = (len(body) >= 10 and _looks_random(body)) or (len(body) >= 4 and _ends_text(text, found.end()))
    return _token(scan, found, text, "slack_token", ok)


def _slack_webhook(scan: Scanner, found: re.Match[str], text: str, floor: int) -> Outcome:
    start, end = found.span("hook_path")
    if scan._allowed(text[start:end]):
        return start, None, end
    return start, marker("slack_webhook"), end


def _google(scan: Scanner, found: re.Match[str], text: str, floor: int) -> Outcome:
    value = text[found.start() : found.end()]
    body = value[4:]
    ok = value.startswith("AIza") and (len(body) >= 30 or (len(body) >= 6 and _ends_text(text, found.end())))
    return _token(scan, found, text, "google_api_key", ok)


def _aws(scan: Scanner, found: re.Match[str], text: str, floor: int) -> Outcome:
    value = text[found.start() : found.end()]
    body = value[4:]
    if not value.startswith(_AWS_PREFIXES) or _AWS_BODY_RE.fullmatch(body) is None:
        ok = False
    elif len(body) == 16:
        ok = True  # the regex took every following letter and digit: exactly 16
    else:
        ok = 4 <= len(body) < 16 and _ends_text(text, found.end())
    return _token(scan, found, text, "aws_access_key_id", ok)


def _jwt(scan: Scanner, found: re.Match[str], text: str, floor: int) -> Outcome:
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
    if scan._allowed(text[start:end]):
        return start, None, end
    return start, marker("jwt"), end


def _bearer(scan: Scanner, found: re.Match[str], text: str, floor: int) -> Outcome:
    start, end = found.span("bearer_tok")
    token = text[start:end]
    ok = _looks_random(token) and (len(token) >= 8 or (len(token) >= 4 and _ends_text(text, end)))
    if not ok:
        return start, None, found.start() + 1
    if scan._allowed(token):
        return start, None, end
    return start, marker("bearer_token"), end


def _url(scan: Scanner, found: re.Match[str], text: str, floor: int) -> Outcome:
    start, end = found.span("url_pw")
    password = text[start:end]
    if not found.group("url_at"):
        if "@" in password:  # cut after the host: the last '@' ends the password
            password = password.rsplit("@", 1)[0]
            end = start + len(password)
        elif not password.rstrip(".…") or password.rstrip(".…").isdigit():
            return start, None, found.start() + 1  # host:port, not user:password
    if not password or is_marker(password) or scan._allowed(password):
        return start, None, found.start() + 1  # the user part is scanned on its own
    # The user part is kept, but it can be a token itself (https://ghp_...:x@github.com).
    user_start = found.start() + 3
    user = text[user_start : start - 1]
    if user:
        user = scan._redact_builtin(user)[0]
    return user_start, f"{user}:{marker('url_password')}", end


def _email(scan: Scanner, found: re.Match[str], text: str, floor: int) -> Outcome:
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
    tld = max((i for i in range(1, len(labels)) if len(labels[i]) >= 2 and labels[i].isalpha()), default=0)
    if tld:
        domain = ".".join(labels[: tld + 1])
    end = at + 1 + len(domain)
    if not (tld or (domain[:1].isalpha() and _ends_text(text, end))):
        return at, None, at + 1
    if scan._allowed(text[local_start:end]):
        return at, None, end
    return local_start, marker("email"), end


def _command(scan: Scanner, found: re.Match[str], text: str, floor: int) -> Outcome:
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
    if value.startswith("$") or scan._allowed(value):  # $MYSQL_PWD names a secret, it is not one
        return start, None, value_end
    return start, marker("command_password"), value_end


def _telegram(scan: Scanner, found: re.Match[str], text: str, floor: int) -> Outcome:
    start, end = found.span("bot_token")
    token = text[start:end].split(":", 1)[1]
    # Whole tokens are 35 characters; a shorter one only where a preview was cut.
    ok = (len(token) >= 30 and _looks_random(token)) or _ends_text(text, end)
    if not ok or scan._allowed(text[start:end]):
        return start, None, end
    return start, marker("telegram_bot_token"), end


def _prose(scan: Scanner, found: re.Match[str], text: str, floor: int) -> Outcome:
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
    if not ok or value.lower() in _TRIVIAL_VALUES or value.startswith(MARKER_PREFIX) or scan._allowed(value):
        return start, None, found.start("prose_value")
    if scan._redact_builtin(value)[1]:
        return start, None, start  # a token of a known family: found there, with its own kind
    return start, marker(kind_from_key(text[noun_start : found.start("prose_verb")])), end


def _kv(scan: Scanner, found: re.Match[str], text: str, floor: int) -> Outcome:
    key_start = _run_start(text, found.start(), floor, _KEY_CHARS, 64)
    key = text[key_start : found.start("kv_sep")]
    separator = found.group("kv_sep")
    if separator == ":" and text[key_start - 1 : key_start] == ":":
        return found.start(), None, found.end()  # a:b:c is an identifier path (ARN, URN), not a pair
    # "key: value" (YAML, HTTP headers, prose) runs to the end of the line;
    # "key=value" (env, query strings, CLI) ends at white space.
    to_line_end = ":" in separator and "=" not in separator
    return _pair(scan, text, key, found.end(), flag=False, to_line_end=to_line_end)


def _flag(scan: Scanner, found: re.Match[str], text: str, floor: int) -> Outcome:
    key = text[found.start() : found.start("flag_sep")]
    return _pair(scan, text, key, found.end(), flag=True, to_line_end=False)


def _pair(scan: Scanner, text: str, key: str, after_sep: int, *, flag: bool, to_line_end: bool) -> Outcome:
    """Redact the value that starts at ``after_sep`` when ``key`` is sensitive."""
    kind = scan._key_kind(key)
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
        if inner.lower() in _TRIVIAL_VALUES or is_marker(inner) or scan._allowed(inner):
            return after_sep, None, value.end()
        return start, marker(kind), end
    if value.group("open") is not None:
        end = _scan_brackets(text, after_sep)
        if scan._allowed(text[after_sep:end]):
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
    if bare.lower() in _TRIVIAL_VALUES or scan._allowed(bare):
        return after_sep, None, end
    return start, marker(kind), end


# --- the table -----------------------------------------------------------------------
#: Every family, in match-priority order (the first alternative that matches at a
#: position wins); bit i of a trigger mask stands for family i.
FAMILIES: Final[tuple[Family, ...]] = (
    Family(
        "pem",
        Trigger(("-----begin",)),
        r"-----begin[a-z0-9 ]{0,40}private key(?: block)?-----[\s\S]*?"
        r"(?:-----end[a-z0-9 ]{0,40}private key(?: block)?-----|\Z)",
        _pem,
    ),
    Family(
        "anthropic_key",
        Trigger(("sk-ant-",)),
        r"sk-ant-" + _boundary(r"[a-z0-9_\-]", "sk-ant-") + r"[a-z0-9_\-]{1,512}",
        _anthropic,
    ),
    Family(
        "openai_key",
        Trigger(("sk-",)),
        r"sk-" + _boundary(r"[a-z0-9_\-]", "sk-") + r"[a-z0-9_\-]{1,512}",
        _openai,
    ),
    Family(
        "stripe_key",
        Trigger(("k_live_", "k_test_")),
        r"[sr]k_(?:live|test)_" + _boundary("[a-z0-9_]", "[sr]k_...._") + "[a-z0-9]{1,255}",
        _stripe,
    ),
    Family(
        "stripe_webhook",
        Trigger(("whsec_",)),
        r"whsec_" + _boundary("[a-z0-9_]", "whsec_") + "[a-z0-9+/=]{1,255}",
        _stripe,
    ),
    Family(
        "github_token",
        Trigger(("gh", "github_pat_"), also="_"),
        r"g(?:h[pousr]_" + _boundary("[a-z0-9_]", "gh._") + r"[a-z0-9]{1,255}"
        r"|ithub_pat_" + _boundary("[a-z0-9_]", "github_pat_") + r"[a-z0-9_]{1,255})",
        _github,
    ),
    Family(
        "slack_token",
        Trigger(("xox", "xapp-"), also="-"),
        r"x(?:ox[abposre]|app)-" + _boundary(r"[a-z0-9_\-]", "....-") + r"[a-z0-9\-]{1,255}",
        _slack,
    ),
    Family(
        "slack_webhook",
        Trigger(("hooks.slack.com",)),
        r"hooks\.slack\.com/services/(?P<hook_path>[a-z0-9_/\-]{1,255})",
        _slack_webhook,
    ),
    Family(
        "google_api_key",
        Trigger(("AIza",), original=True),
        r"aiza" + _boundary(r"[a-z0-9_\-]", "aiza") + r"[a-z0-9_\-]{1,64}",
        _google,
    ),
    Family(
        "aws_access_key_id",
        Trigger(("IA", "ACCA"), original=True),
        r"a(?:kia|sia|bia|cca)" + _boundary("[a-z0-9]", "a...") + "[a-z0-9]{1,32}",
        _aws,
    ),
    Family(
        "jwt",
        Trigger(("eyJ",), original=True),
        r"eyj" + _boundary(r"[a-z0-9_\-]", "eyj") + r"[a-z0-9_\-]{1,8192}(?:\.[a-z0-9_\-]{0,8192}){0,4}",
        _jwt,
    ),
    Family(
        "bearer",
        Trigger(("bearer",)),
        r"bearer"
        + _boundary(r"[a-z0-9_\-]", "bearer")
        + r"[ \t]{1,8}(?P<bearer_tok>[a-z0-9._~+/\-]{1,4096}=*)",
        _bearer,
    ),
    Family(
        "url",
        Trigger(("://",)),
        r"://[^\s/?#@:\"'<>\\\[\]]{0,256}:(?P<url_pw>[^\s/?#\"'<>\\\[\]]{1,512})(?P<url_at>@|\Z)",
        _url,
    ),
    Family(
        "email", Trigger(("@",)), r"@(?<=[a-z0-9._%+\-]@)[a-z0-9\-]{1,63}(?:\.[a-z0-9\-]{1,63}){0,8}", _email
    ),
    # A password on a command line: the validator reads the rest of the command (``mysql -pSECRET``,
    # ``sshpass -p SECRET``) case-sensitively, where ``-P`` is a port or a prompt.
    Family(
        "command_password",
        Trigger(("mysql", "mariadb", "sshpass"), also=" -p"),
        r"(?:mysql|mariadb|sshpass)",
        _command,
    ),
    # Telegram's bot API puts the bot's token in the URL path: /bot<id>:<token>/method (in a URL,
    # or a path without its scheme).
    Family(
        "telegram_bot_token",
        Trigger(("/bot",), also=":"),
        r"/bot(?P<bot_token>[0-9]{5,16}:[a-z0-9_\-]{1,64})(?![a-z0-9_\-])",
        _telegram,
    ),
    # Prose: "my password is: X", "the api key is X".
    Family(
        "prose",
        Trigger((" is", " was")),
        r"(?:pass(?:word|phrase|code)|api[ \t]?key|(?:secret|access|private)[ \t]key"
        r"|(?:auth|access|refresh|api|session)[ \t]?token|token|secret|credentials?)"
        r"(?P<prose_verb>[ \t]{1,4}(?:is|was)(?![a-z]))(?P<prose_colon>[ \t]{0,4}:)?"
        r"[ \t]{1,8}(?P<prose_quote>[\"'`])?(?P<prose_value>[^\s\"'`]{1,512})",
        _prose,
        keyed=True,
    ),
    # key=value, key: value, "key": "value" (the pattern is built from the key words).
    Family("kv", Trigger((":", "=")), None, _kv, keyed=True),
    # --key value.
    Family("flag", Trigger(("--",)), None, _flag, keyed=True),
)

FAMILY_NAMES: Final = tuple(family.name for family in FAMILIES)
#: Every family: the mask of a scan that skips the trigger tests.
ALL_FAMILIES: Final = (1 << len(FAMILIES)) - 1
#: The e-mail family (a ``Redactor`` with ``redact_emails=False`` never scans for it).
EMAIL: Final = 1 << FAMILY_NAMES.index("email")
#: The families that need a sensitive key word (or a noun of prose) in the text.
_KEYED: Final = sum(1 << index for index, family in enumerate(FAMILIES) if family.keyed)
#: A fresh copy of this is each ``Redactor``'s validator per family name (``match.lastgroup``).
VALIDATORS: Final[dict[str, Validator]] = {family.name: family.validate for family in FAMILIES}


def pair_patterns(words: tuple[str, ...] | None) -> tuple[str, str]:
    """Regexes for ``key=value`` / ``key: value`` pairs and ``--key value`` flags.

    With ``words`` (literals every sensitive key contains) a pair is found at
    the word and the validator looks back for the start of its key; without,
    every pair is a candidate (custom ``sensitive_keys`` that are not words).
    """
    if words is None:
        kv = r"(?<![a-z0-9_.\-])[a-z_][a-z0-9_.\-]{0,63}(?P<kv_sep>" + _SEPARATOR + ")"
        return kv, r"--[a-z_][a-z0-9_.\-]{0,63}(?P<flag_sep>[ \t]{1,8})"
    extra = tuple(re.escape(word) for word in words if word not in DEFAULT_KEY_WORDS)
    alternation = "|".join(DEFAULT_KEY_REGEXES + extra)
    kv = rf"(?:{alternation})[a-z0-9_.\-]{{0,63}}(?P<kv_sep>{_SEPARATOR})"
    flag = rf"--(?=[a-z0-9_.\-]{{0,63}}?(?:{alternation}))[a-z0-9_.\-]{{1,64}}(?P<flag_sep>[ \t]{{1,8}})"
    return kv, flag


@lru_cache(maxsize=1024)
def combined_regex(mask: int, words: tuple[str, ...] | None) -> re.Pattern[str]:
    """One regex of the families in ``mask``, each a named alternative, in table order."""
    pairs = dict(zip(("kv", "flag"), pair_patterns(words), strict=True))
    bodies = [family.pattern or pairs[family.name] for family in FAMILIES]
    # The empty group closing each alternative names it (``match.lastgroup``)
    # without a group at its start, which would hide the leading literal.
    return re.compile(
        "|".join(
            f"(?:{body})(?P<{name}>)"
            for index, (name, body) in enumerate(zip(FAMILY_NAMES, bodies, strict=True))
            if mask >> index & 1
        )
    )


#: Literals that many triggers contain: a family whose literals all hold one (or whose ``also`` does)
#: is tested only inside one test of it, so a text without it costs one test, not several.
_GUARDS: Final = ("-", "_", ":")


def _trigger_source() -> str:
    """The source of ``trigger_mask``: the table's triggers as straight-line substring tests.

    Generated, not written: the table stays the one definition of every trigger,
    and straight-line tests cost a text a fraction of what a loop over the rows
    would (a loop's bookkeeping is about 16,000 instructions a text, more than the
    tests themselves).
    """
    groups: dict[str, list[str]] = {guard: [] for guard in ("", *_GUARDS)}
    for index, family in enumerate(FAMILIES):
        any_of, also, original = family.trigger
        # Case-sensitive literals are tested on the text itself, with no guard.
        guard = "" if original else next((g for g in _GUARDS if g in also or all(g in x for x in any_of)), "")
        haystack = "text" if original else "lowered"
        test = " or ".join(f"{literal!r} in {haystack}" for literal in any_of)
        if also and also != guard:
            test = f"({test}) and {also!r} in lowered"
        groups[guard].append(f"if {test}:\n    mask |= {1 << index}  # {family.name}")
    lines = ["def trigger_mask(text, lowered, words):", "    mask = 0"]
    for guard, tests in groups.items():
        indent = "    "
        if guard and tests:
            lines.append(f"    if {guard!r} in lowered:")
            indent = "        "
        lines.extend(indent + line for test in tests for line in test.split("\n"))
    lines += [
        f"    if mask & {_KEYED} and words is not None:",
        "        for word in words:",
        "            if word in lowered:",
        "                break",
        "        else:",
        f"            mask &= ~{_KEYED}",
        "    return mask",
    ]
    return "\n".join(lines) + "\n"


def _compile_trigger_mask() -> Callable[[str, str, tuple[str, ...] | None], int]:
    namespace: dict[str, Any] = {}
    exec(compile(_trigger_source(), "<auditspan.redaction trigger_mask>", "exec"), namespace)
    function: Callable[[str, str, tuple[str, ...] | None], int] = namespace["trigger_mask"]
    function.__doc__ = """The families whose triggers ``text`` holds (a superset of those that can match).

    ``lowered`` is ``ascii_lower(text)``; ``words`` the key words of the scanner (None:
    every pair is a candidate, and the keyed families need no word). Generated from
    ``FAMILIES`` (``_trigger_source``).
    """
    return function


trigger_mask: Final = _compile_trigger_mask()


_ASCII_LOWER: Final = {code: code + 32 for code in range(ord("A"), ord("Z") + 1)}


def ascii_lower(text: str) -> str:
    """``text`` lower-cased with every index unchanged."""
    lowered = text.lower()
    if len(lowered) != len(text):  # a character such as U+0130 lower-cases to two
        lowered = text.translate(_ASCII_LOWER)
    return lowered

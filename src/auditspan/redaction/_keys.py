"""Which key names hold secrets: the values under them are redacted whole.

A key is sensitive when one of the sensitive-key regexes is found in its
normalised form (camelCase split with ``_``, lower case, other separators as
``_``: ``X-Api-Key`` -> ``x_api_key``, ``accessToken`` -> ``access_token``) and
no non-sensitive-key regex vetoes it (the vetoes apply to the built-in rules
only: a rule of the user's own always wins).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Final

from ._patterns import PatternLike, compile_pattern
from ._policy import MARKER_PREFIX, MARKER_RE

__all__ = [
    "DEFAULT_KEY_REGEXES",
    "DEFAULT_KEY_WORDS",
    "DEFAULT_NON_SENSITIVE_KEYS",
    "DEFAULT_SENSITIVE_KEYS",
    "KeyRules",
    "kind_from_key",
]

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
DEFAULT_KEY_WORDS: Final = ("pass", "pw", "secret", "token", "key", "auth", "cookie", "cred", "jwt", "sig")
#: Upper-case keys that hold the shell's working directories, not passwords.
_SHELL_DIRECTORY_KEYS: Final = frozenset({"PWD", "OLDPWD"})
#: The same as regexes over a lower-cased raw key, as tight as ``DEFAULT_SENSITIVE_KEYS``
#: allows, so that ``max_tokens``, ``author``, ``passed`` or a bare ``key`` never reach Python.
DEFAULT_KEY_REGEXES: Final = (
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

#: ``KeyRules.kind`` remembers this many keys of up to ``_KEY_MEMO_LENGTH`` characters.
_KEY_MEMO_SIZE: Final = 4096
_KEY_MEMO_LENGTH: Final = 256


def normalize_key(key: str) -> str:
    """``key`` as the rules see it: ``X-Api-Key`` -> ``x_api_key``, ``accessToken`` -> ``access_token``."""
    return _NON_ALNUM_RE.sub("_", _CAMEL_RE.sub(r"\1_\2", key).lower()).strip("_")


def kind_from_key(key: str) -> str:
    """A marker kind made from a key name: lower case, safe characters, at most 48 of them."""
    kind = normalize_key(key)[:48].strip("_")
    return kind or "secret"


class KeyRules:
    """The key-name rules of one ``Redactor``, compiled, with a bounded memo of their answers.

    ``kind(key)`` is the marker kind for values under ``key``, or None when the key is
    not sensitive. Its memo holds at most 4,096 keys of up to 256 characters (it is
    cleared when full); longer keys are not remembered. ``words`` are literals one of
    which every sensitive key contains (None when a custom rule is not a plain word):
    the scanner's cheap pre-filter for ``key=value`` pairs.
    """

    __slots__ = ("_custom", "_non_sensitive", "_sensitive", "cache", "words")

    def __init__(
        self, sensitive_keys: Iterable[PatternLike], non_sensitive_keys: Iterable[PatternLike]
    ) -> None:
        sensitive = tuple(sensitive_keys)
        compiled = [compile_pattern(item, "sensitive key", re.IGNORECASE) for item in sensitive]
        # non_sensitive_keys veto only the built-in rules: a key rule of your own always wins.
        self._sensitive = tuple(p for p in compiled if p.pattern in DEFAULT_SENSITIVE_KEYS)
        self._custom = tuple(p for p in compiled if p.pattern not in DEFAULT_SENSITIVE_KEYS)
        self._non_sensitive = tuple(
            compile_pattern(item, "non-sensitive key", re.IGNORECASE) for item in non_sensitive_keys
        )
        self.words = _key_words(sensitive)
        self.cache: dict[str, str | None] = {}

    def kind(self, key: str) -> str | None:
        """The marker kind for values under ``key``, or None when the key is not sensitive."""
        cache = self.cache
        if key in cache:
            return cache[key]
        # A key that held a secret arrives redacted: its markers say nothing about the key.
        name = MARKER_RE.sub(" ", key) if MARKER_PREFIX in key else key
        normalized = normalize_key(name)
        sensitive = any(p.search(normalized) for p in self._custom) or (
            any(p.search(normalized) for p in self._sensitive)
            and not any(p.search(normalized) for p in self._non_sensitive)
            and name.lstrip("$-") not in _SHELL_DIRECTORY_KEYS
        )
        kind = kind_from_key(name) if sensitive else None
        if len(key) <= _KEY_MEMO_LENGTH:  # bounded in count and in size: 4,096 keys of <= 256 chars
            if len(cache) >= _KEY_MEMO_SIZE:
                cache.clear()
            cache[key] = kind
        return kind


def _key_words(patterns: tuple[PatternLike, ...]) -> tuple[str, ...] | None:
    """Literal words one of which every sensitive key contains, or None when unknown.

    The combined regex uses them as a cheap pre-filter for ``key=value`` pairs;
    with None every pair is offered to ``_key_kind``.
    """
    words = set(DEFAULT_KEY_WORDS)
    for item in patterns:
        source = item.pattern if isinstance(item, re.Pattern) else item
        if source in DEFAULT_SENSITIVE_KEYS:
            continue
        if not isinstance(source, str) or re.fullmatch(r"[A-Za-z0-9_]+", source) is None:
            return None
        words.add(max(source.lower().split("_"), key=len))
    return tuple(sorted(words))

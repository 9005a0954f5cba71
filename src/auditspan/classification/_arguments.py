"""The argument lexer: a tool call's name and arguments preview, read once into words and values.

An arguments preview is whatever the runtime sent -- a Python ``str(args)``
repr, JSON, a tuple repr or a raw string -- usually cut to 200 characters, so
a value may end without its closing quote. It is never parsed as Python or
JSON (neither would accept a cut-off preview); one regular expression reads
its ``'key': value`` pairs, string literals and lists, tolerating the cut.

``_Ctx`` holds the result for one classification: the tool name's lower-case
words (``sendEmail`` -> send, email), the key/value pairs, every string value
in order, and -- computed only when a rule or heuristic asks -- the SQL
statement and the URLs among the values. Work is bounded whatever an emitter
sends: only the first 8 KiB of a preview and 256 characters of a name are read.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Final

from ._sql import _parse_sql, _Sql
from ._urls import _METHOD_URL_RE, _URL_RE
from ._words import _PROSE_KEYS, _URL_KEYS, _VERB_KEYS

_WORD_RE = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z0-9]+|[A-Z0-9]+")
#: A quoted literal, possibly cut short: ``'`` or ``"``, then runs of plain characters and escapes.
#: Written as the unrolled loop ``q[^q\\]*(?:\\.[^q\\]*)*`` rather than ``q(?:[^q\\]|\\.)*``: the
#: same matches, but the regex engine takes a whole run at once instead of one character per branch
#: (half the cost of reading an arguments preview).
_STRING_LITERAL = r"""'[^'\\]*(?:\\.[^'\\]*)*(?:'|\Z)|"[^"\\]*(?:\\.[^"\\]*)*(?:"|\Z)"""
_KV_RE = re.compile(
    r"""(?P<q>['"])(?P<key>[A-Za-z_][\w.\-]{0,63})(?P=q)\s*:\s*"""
    rf"""(?:(?P<str>{_STRING_LITERAL})"""
    r"""|\[(?P<list>[^\[\]{}]*)(?:\]|\Z)|(?P<bare>[-+\w.]+))?""",
    re.S,
)
_STR_RE = re.compile(_STRING_LITERAL, re.S)
_ESCAPE_RE = re.compile(r"\\(.)", re.S)
_ESCAPES: Final = {"n": "\n", "t": "\t", "r": "\r"}


def _unquote(literal: str) -> str:
    quote = literal[0]
    body = literal[1:-1] if len(literal) > 1 and literal.endswith(quote) else literal[1:]
    if "\\" in body:
        body = _ESCAPE_RE.sub(lambda m: _ESCAPES.get(m.group(1), m.group(1)), body)
    return body


#: Only this much of a preview / tool name is read (the heuristics need the start of it).
_MAX_ANALYSED: Final = 8192
_MAX_NAME: Final = 256


#: Tool name -> (its lower-case words, the words joined): an agent has few tools, each called often.
_NAME_WORDS: dict[str, tuple[frozenset[str], str]] = {}
_MAX_NAME_WORDS: Final = 4096


def _name_words(name: str) -> tuple[frozenset[str], str]:
    found = _NAME_WORDS.get(name)
    if found is None:
        words = [w.lower() for w in _WORD_RE.findall(name)]
        found = (frozenset(words), "".join(words))
        if len(_NAME_WORDS) >= _MAX_NAME_WORDS:
            _NAME_WORDS.clear()  # a stream of generated names: start over rather than grow
        _NAME_WORDS[name] = found
    return found


class _Ctx:
    """A tool call read once: name words, key/value pairs, string values; expensive parts lazily."""

    __slots__ = ("_sql", "_sql_done", "_urls", "compact", "kv", "name", "preview", "values", "words")

    def __init__(self, name: str, preview: str) -> None:
        # Bounded work per call whatever an emitter sends (the seed runtime cuts previews to 200).
        name, preview = name[:_MAX_NAME], preview[:_MAX_ANALYSED]
        self.name = name
        self.preview = preview
        self.words, self.compact = _name_words(name)
        kv: dict[str, str | tuple[str, ...] | None] = {}
        values: list[tuple[str, str]] = []  # (key or "", value), in order
        for m in _KV_RE.finditer(preview):
            _quote, key, literal, items, bare = m.groups()  # one call, not one per group
            key = key.lower()
            val: str | tuple[str, ...] | None = bare
            if literal is not None:
                val = _unquote(literal)
                values.append((key, val))
            elif items is not None:
                val = tuple(_unquote(s) for s in _STR_RE.findall(items))
                values.extend((key, item) for item in val)
            kv.setdefault(key, val)
        if not kv:
            # Positional arguments, a tuple repr, or a raw string preview.
            literals = _STR_RE.findall(preview)
            if literals:
                values = [("", _unquote(s)) for s in literals]
            elif preview.strip():
                values = [("", preview)]
        self.kv = kv
        self.values = values
        self._sql: _Sql | None = None
        self._sql_done = False
        self._urls: list[tuple[str, str]] | None = None

    def get(self, keys: Iterable[str]) -> str | None:
        """The first non-empty string value under one of ``keys`` (a list's first item)."""
        for key in keys:
            val = self.kv.get(key)
            if isinstance(val, tuple):
                val = val[0] if val else None
            if val:
                return val
        return None

    def verb_words(self) -> frozenset[str]:
        """Name words plus the words of an ``operation`` / ``action`` / ``command`` argument."""
        return self.words | self.arg_verbs()

    def arg_verbs(self) -> frozenset[str]:
        """The words of an ``operation`` / ``action`` / ``command`` argument (its first 40 characters)."""
        extra = self.get(_VERB_KEYS)
        return frozenset(w.lower() for w in _WORD_RE.findall(extra[:40])) if extra else frozenset()

    def direction(self, writes: frozenset[str], reads: frozenset[str]) -> tuple[bool | None, str | None]:
        """(True = write / False = read / None = unseen, verb): the argument's verb first, then the name's."""
        for words in (self.arg_verbs(), self.words):
            hit = words & writes
            if hit:
                return True, min(hit)
            hit = words & reads
            if hit:
                return False, min(hit)
        return None, None

    def sql(self, lenient: bool) -> _Sql | None:
        """The first SQL statement that starts a value (lenient: any case, prose keys too)."""
        if self._sql_done:
            return self._sql
        found = None
        for key, val in self.values:
            if not lenient and key in _PROSE_KEYS:
                continue
            found = _parse_sql(val, lenient)
            if found is not None:
                break
        if found is not None or lenient:
            self._sql, self._sql_done = found, True
        return found

    def remember_sql(self, found: _Sql) -> None:
        """Keep a statement found elsewhere (quoted in a shell command) as the call's SQL."""
        self._sql, self._sql_done = found, True

    def urls(self, everywhere: bool = False) -> list[tuple[str, str]]:
        """``(key, value)`` pairs whose value is or (under a URL key, or ``everywhere``) holds a URL."""
        if self._urls is None:
            out = []
            for key, val in self.values:
                if "://" not in val:
                    continue
                stripped = val.strip()
                if (
                    key in _URL_KEYS
                    or _URL_RE.match(stripped) is not None
                    or _METHOD_URL_RE.match(stripped) is not None
                    or (key not in _PROSE_KEYS and _URL_RE.search(val) is not None)
                ):
                    out.append((key, val))
            self._urls = out
        if everywhere and not self._urls:
            return [(key, val) for key, val in self.values if _URL_RE.search(val) is not None]
        return self._urls

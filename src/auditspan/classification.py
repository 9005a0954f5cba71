"""Classify a tool call into a semantic operation type, with its target and parameters.

``Classifier.classify(tool_name, arguments_preview, metadata)`` answers, in
this order, and never raises:

1. **explicit** -- ``metadata["operation_type"]`` (with ``metadata["custom_type"]``
   for ``AGENT_ACTION``). A ``custom_type`` without an ``operation_type`` means
   ``AGENT_ACTION``, as the seed's custom-event example writes it.
2. **rule** -- the first user ``ClassificationRule`` whose tool-name glob (and
   optional argument regex) matches.
3. **heuristic** -- built-in reading of the tool name and the argument preview,
   "as a person would": a SQL statement, a URL, a recipient list, an ``open``
   mode, a queue or cache verb, an LLM or embedding call, a login.
4. **fallback** -- ``AGENT_ACTION`` with ``custom_type`` = the tool name.

::

    >>> c = Classifier().classify("run_sql", "{'query': 'SELECT email FROM customers.pii_emails'}")
    >>> c.type, c.target, c.source
    ('DATABASE_READ', 'customers.pii_emails', 'heuristic')
    >>> dict(c.parameters)
    {'operation': 'select', 'table': 'customers.pii_emails'}
    >>> Classifier().classify("select_best_answer", "{'answers': ['a', 'b']}").type
    'AGENT_ACTION'

How the heuristics read a call (the previews are Python ``str(args)`` reprs
or JSON, cut to 200 characters, so a value may end without its quote):

* The tool name is split into lower-case words (``sendEmail`` -> send, email;
  ``mcp__github__create_issue`` -> mcp, github, create, issue). Names decide
  first, in this order: embeddings, webhook, email sending, auth, message
  queue, cache, workflow/goal/decision, database, upload/download, file, LLM,
  HTTP/web/SaaS, shell/code.
* Then the arguments alone: a SQL statement, a URL under a URL-ish key or as a
  whole value, recipients with a subject, ``model`` with ``messages``, a path
  with an ``open`` mode.
* A SQL statement must *start* a value and have SQL structure (``SELECT ..
  FROM t``, ``INSERT INTO t``, ``UPDATE t SET``, ``DELETE FROM t`` ...; a table
  named ``the`` / ``list`` / ... is prose). For tools whose name is not about
  databases the verb must also be upper case and prose keys (``prompt``,
  ``text``, ``message`` ...) are not read, so "Select the best answer" or a
  prompt that talks about deleting rows is not a database write.
* Tools that work on text *about* an operation (``format_sql``,
  ``parse_url``, ``validate_email``, ``count_tokens`` ...) are not that
  operation: they fall back to ``AGENT_ACTION``.
* When the direction (read or write) cannot be seen -- ``run_sql`` with an
  empty preview -- the riskier type of the pair is chosen (``DATABASE_WRITE``,
  ``FILE_WRITE``, ``MESSAGE_QUEUE_SEND``, ``CACHE_WRITE``) and
  ``parameters["operation"]`` says ``"unknown"``.
* Targets: SQL table (schema-qualified as written, quotes removed), URL
  ``host/path`` (no scheme, user-info, query or fragment, so no secrets),
  file path, queue/topic name, cache key, the first email recipient's domain,
  the LLM model; for a named service with no URL in sight, its name
  (``github``) or the ``bucket/key`` it uploads to.

Only the first 8 KiB of a preview (256 characters of a name) are read, so a
call costs the same bounded time whatever an emitter sends. Results are
memoised by ``(tool_name, arguments_preview)`` in a bounded cache (for calls
whose metadata declares a type, the key also holds that type, custom type and
target: the metadata decides, the rest of it does not matter). A
``Classification`` is shared between calls: it is frozen and its
``parameters`` is a read-only mapping; ``to_record_fields()`` gives plain
dicts for serialisation.

Rules come from code or from a YAML / JSON file (``Classifier.from_file``)::

    rules:
      - tool: "crm_*"             # glob on the tool name, case-insensitive
        type: EXTERNAL_API_CALL
        target: crm.example.com   # optional: fixed target
      - tool: "charge_card"
        type: AGENT_ACTION
        custom_type: payment_processing
      - tool: "run_sql"
        arguments: "(?i)\\\\bpii_"   # optional: regex searched in the preview
        type: DATABASE_READ
"""

from __future__ import annotations

import json
import os
import re
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from fnmatch import translate
from types import MappingProxyType
from typing import Any, Final

from auditspan.semantic_types import OperationType, category_of, parse_operation_type, risk_of

from ._fork import fork_safe_lock

__all__ = [
    "SOURCE_EXPLICIT",
    "SOURCE_FALLBACK",
    "SOURCE_HEURISTIC",
    "SOURCE_RULE",
    "Classification",
    "ClassificationRule",
    "Classifier",
    "ConfigDocument",
    "ConfigError",
    "load_classification_rules",
    "read_config",
    "rules_from_data",
]

SOURCE_EXPLICIT: Final = "explicit"
SOURCE_RULE: Final = "rule"
SOURCE_HEURISTIC: Final = "heuristic"
SOURCE_FALLBACK: Final = "fallback"

_T = OperationType


def _words(text: str) -> tuple[str, ...]:
    """A word list written as one string (easier to read and extend than a list literal)."""
    return tuple(text.split())


_EMPTY: Final[Mapping[str, Any]] = MappingProxyType({})


# --------------------------------------------------------------------------- result


@dataclass(frozen=True, slots=True)
class Classification:
    """What a tool call is: semantic type, custom type, target, parameters, risk, category, source.

    ``type`` is the plain type name (``"DATABASE_READ"``; an unknown explicit
    type is kept as given, normalised). ``custom_type`` is set for
    ``AGENT_ACTION`` only, and is then also ``parameters["custom_type"]``.
    ``risk`` / ``category`` are the seed's, ``None`` for unknown types.
    ``source`` is ``"explicit"``, ``"rule"``, ``"heuristic"`` or ``"fallback"``.
    ``parameters`` is read-only: results are shared between calls.
    """

    type: str
    custom_type: str | None
    target: str | None
    parameters: Mapping[str, Any]
    risk: str | None
    category: str | None
    source: str

    def to_record_fields(self) -> dict[str, Any]:
        """``{"type", "target", "parameters"}`` for a canonical record, as fresh plain (JSON-ready) values."""
        return {"type": self.type, "target": self.target, "parameters": _plain(self.parameters)}


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    return value


_AGENT_ACTION: Final = _T.AGENT_ACTION.value  # (an enum's ``.value`` is a Python-level property)


def _make(
    type_: OperationType | str, custom: str | None, target: str | None, params: dict[str, Any], source: str
) -> Classification:
    name, risk, category = _type_info(type_)
    if name == _AGENT_ACTION:
        params["custom_type"] = custom
    else:
        custom = None
    return Classification(
        type=name,
        custom_type=custom,
        target=target,
        parameters=MappingProxyType(params) if params else _EMPTY,
        risk=risk,
        category=category,
        source=source,
    )


#: Operation type -> (name, risk, category); looked up once per type, not per call.
_TYPE_INFO: dict[OperationType | str, tuple[str, str | None, str | None]] = {}


def _type_info(type_: OperationType | str) -> tuple[str, str | None, str | None]:
    found = _TYPE_INFO.get(type_)
    if found is None:
        name = type_.value if isinstance(type_, OperationType) else type_
        found = (name, risk_of(type_), category_of(type_))
        if len(_TYPE_INFO) < 1024:  # explicit types are free text: bound what they can add
            _TYPE_INFO[type_] = found
    return found


def _safe_text(value: object) -> str:
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    try:
        return str(value)
    except Exception:
        return "<unprintable>"


def _fallback(tool_name: object) -> Classification:
    return _make(_T.AGENT_ACTION, _safe_text(tool_name), None, {}, SOURCE_FALLBACK)


# --------------------------------------------------------------------------- reading the arguments

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


#: Keys whose values are prose: never read for SQL or URLs unless the tool is about them.
_PROSE_KEYS: Final = frozenset(
    _words(
        "prompt text message messages content question instruction instructions description body summary "
        "title note notes comment comments answer answers reply system user assistant goal task thought"
    )
)
_URL_KEYS: Final = frozenset(
    _words(
        "url uri urls endpoint href link webhook webhook_url hook_url base_url target_url api_url "
        "callback_url request_url page_url website"
    )
)
_SQL_KEYS: Final = frozenset(_words("sql statement stmt sql_query query_sql raw_sql"))
_PATH_KEYS: Final = _words(
    "path file_path filepath file filename file_name fname target_file target_path dest destination "
    "dst output_path input_path src source dir directory folder"
)
_TABLE_KEYS: Final = ("table", "table_name", "collection", "collection_name")
_TOPIC_KEYS: Final = _words("topic topic_name queue queue_name queue_url stream stream_name exchange channel")
_CACHE_KEY_KEYS: Final = ("key", "cache_key", "keys", "name")
_RECIPIENT_KEYS: Final = ("to", "recipient", "recipients", "to_email", "to_address", "email", "cc", "bcc")
_MODEL_KEYS: Final = ("model", "model_name", "model_id", "deployment")
_VERB_KEYS: Final = ("operation", "op", "action", "command", "cmd", "method")
_HTTP_METHODS: Final = frozenset(_words("GET POST PUT PATCH DELETE HEAD OPTIONS"))


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


# --------------------------------------------------------------------------- SQL


class _LazyRe:
    """A regular expression compiled on first use: the SQL patterns would cost ~20 ms at import."""

    __slots__ = ("_compiled", "_flags", "_pattern")

    def __init__(self, pattern: str, flags: int = 0) -> None:
        self._pattern = pattern
        self._flags = flags
        self._compiled: re.Pattern[str] | None = None

    @property
    def compiled(self) -> re.Pattern[str]:
        """The compiled pattern (compiling it the first time; a race only compiles twice)."""
        compiled = self._compiled
        if compiled is None:
            compiled = self._compiled = re.compile(self._pattern, self._flags)
        return compiled

    def match(self, text: str, pos: int = 0) -> re.Match[str] | None:
        """``re.Pattern.match``."""
        return self.compiled.match(text, pos)

    def search(self, text: str, pos: int = 0) -> re.Match[str] | None:
        """``re.Pattern.search``."""
        return self.compiled.search(text, pos)

    def finditer(self, text: str) -> Iterator[re.Match[str]]:
        """``re.Pattern.finditer``."""
        return self.compiled.finditer(text)

    def findall(self, text: str) -> list[Any]:
        """``re.Pattern.findall``."""
        return self.compiled.findall(text)


_IDENT = r'(?:`[^`\n]+`|"[^"\n]+"|\[[^\]\n]+\]|[A-Za-z_][\w$]*)'
_QNAME = rf"{_IDENT}(?:\s*\.\s*{_IDENT}){{0,2}}"
_SQL_LEAD = re.compile(r"\s*(?:(?:--[^\n]*(?:\n|\Z)|/\*.*?\*/)\s*)*\(?\s*([A-Za-z]+)\b", re.S)
_STOPWORDS: Final = frozenset(
    _words(
        "the a an this that these those my your our their his her its it them me us all any some each "
        "every of for to in on at by with about from into and or list following above below here there "
        "what which who whom one ones"
    )
)
_I = re.I | re.S
_TABLE_REF = _LazyRe(rf"\b(?:FROM|JOIN)\s+(?:ONLY\s+|LATERAL\s+)?({_QNAME})(?!\s*\()", _I)
_OBJECT_KINDS = (
    r"(TABLE|VIEW|INDEX|SCHEMA|DATABASE|SEQUENCE|FUNCTION|PROCEDURE|TRIGGER|TYPE|EXTENSION|ROLE|USER|"
    r"STAGE|WAREHOUSE|COLLECTION)"
)
_SQL_PATTERNS: Final[dict[str, _LazyRe]] = {
    "INSERT": _LazyRe(rf"\s*(?:OR\s+\w+\s+|IGNORE\s+|OVERWRITE\s+)?(?:(?:INTO|TABLE)\s+)+({_QNAME})", _I),
    "REPLACE": _LazyRe(rf"\s*INTO\s+({_QNAME})", _I),
    "UPSERT": _LazyRe(rf"\s*INTO\s+({_QNAME})", _I),
    "UPDATE": _LazyRe(rf"\s*(?:ONLY\s+)?({_QNAME})(?:\s+(?:AS\s+)?{_IDENT})?\s+SET\b", _I),
    "DELETE": _LazyRe(
        rf"\s*(?:(?:LOW_PRIORITY|QUICK|IGNORE)\s+)*(?:{_QNAME}\s+)?FROM\s+(?:ONLY\s+)?({_QNAME})", _I
    ),
    "MERGE": _LazyRe(rf"\s*INTO\s+({_QNAME})", _I),
    "CREATE": _LazyRe(
        r"\s*(?:OR\s+REPLACE\s+)?(?:(?:GLOBAL|LOCAL|TEMP|TEMPORARY|UNLOGGED|EXTERNAL|MATERIALIZED|UNIQUE|"
        rf"TRANSIENT|VOLATILE)\s+)*{_OBJECT_KINDS}\s+(?:CONCURRENTLY\s+)?(?:IF\s+NOT\s+EXISTS\s+)?({_QNAME})",
        _I,
    ),
    "DROP": _LazyRe(
        rf"\s*(?:MATERIALIZED\s+)?{_OBJECT_KINDS}\s+(?:CONCURRENTLY\s+)?(?:IF\s+EXISTS\s+)?({_QNAME})", _I
    ),
    "ALTER": _LazyRe(
        rf"\s*(?:MATERIALIZED\s+)?{_OBJECT_KINDS}\s+(?:IF\s+EXISTS\s+)?(?:ONLY\s+)?({_QNAME})", _I
    ),
    "TRUNCATE": _LazyRe(rf"\s*(?:TABLE\s+)?(?:ONLY\s+)?({_QNAME})", _I),
    "GRANT": _LazyRe(rf".*?\bON\s+(?:TABLE\s+)?({_QNAME})\s+(?:TO|FROM)\b", _I),
    "REVOKE": _LazyRe(rf".*?\bON\s+(?:TABLE\s+)?({_QNAME})\s+(?:TO|FROM)\b", _I),
    "DESCRIBE": _LazyRe(rf"\s*(?:TABLE\s+)?({_QNAME})\s*;?\s*\Z", _I),
    "DESC": _LazyRe(rf"\s*(?:TABLE\s+)?({_QNAME})\s*;?\s*\Z", _I),
}
_INDEX_ON = _LazyRe(rf"\bON\s+(?:ONLY\s+)?({_QNAME})", _I)
_CTE_START = _LazyRe(
    rf"\s*(?:RECURSIVE\s+)?{_IDENT}\s*(?:\([^)]*\))?\s+AS\s*(?:NOT\s+)?(?:MATERIALIZED\s+)?\(", _I
)
_CTE_NAME = _LazyRe(
    rf"(?:\A|,)\s*(?:RECURSIVE\s+)?({_IDENT})\s*(?:\([^)]*\))?\s+AS\s*(?:NOT\s+)?(?:MATERIALIZED\s+)?\(", _I
)
_WRITE_ANYWHERE = _LazyRe(
    rf"\b(?:(INSERT)\s+INTO\s+({_QNAME})|(DELETE)\s+FROM\s+({_QNAME})|(MERGE)\s+INTO\s+({_QNAME})"
    rf"|(UPDATE)\s+({_QNAME})\s+SET\b)",
    _I,
)
_SHOW_OBJECTS: Final = frozenset(
    _words(
        "tables databases schemas columns fields index indexes keys create grants variables status "
        "processlist full views functions triggers users roles warehouses search_path session"
    )
)
_SHOW_TARGET = _LazyRe(rf"\b(?:FROM|IN|TABLE)\s+({_QNAME})", _I)
_EXPLAIN_OPTS = _LazyRe(r"\s*(?:(ANALY[SZ]E)\b|VERBOSE\b|\([^)]*\))", _I)
_TXN_VERBS: Final = frozenset({"BEGIN", "START", "SET", "USE", "COMMIT"})


@dataclass(frozen=True, slots=True)
class _Sql:
    operation: str  # lower-case verb: "select", "insert", ...
    write: bool
    table: str | None
    tables: tuple[str, ...] = ()


def _clean_name(raw: str) -> str | None:
    """``"customers" . "pii_emails"`` -> ``customers.pii_emails``; ``None`` for prose words."""
    parts = [p.strip() for p in re.split(r"\s*\.\s*", raw)]
    if len(parts) == 1 and parts[0].lower() in _STOPWORDS:
        return None
    return ".".join(p[1:-1] if p[:1] in '`"[' and len(p) > 1 else p for p in parts)


def _table_refs(text: str, skip: frozenset[str] = frozenset()) -> list[str] | None:
    """Tables after FROM / JOIN, in order; ``None`` if the first one is a prose word."""
    tables: list[str] = []
    for m in _TABLE_REF.finditer(text):
        name = _clean_name(m.group(1))
        if name is None:
            if not tables:
                return None
            continue
        if name.lower() not in skip and name not in tables:
            tables.append(name)
    return tables


def _sql_result(op: str, write: bool, tables: list[str]) -> _Sql:
    return _Sql(op, write, tables[0] if tables else None, tuple(tables))


def _parse_statement(stmt: str, lenient: bool) -> _Sql | None:
    m = _SQL_LEAD.match(stmt)
    if m is None:
        return None
    word = m.group(1)
    verb = word.upper()
    if not lenient and not word.isupper():
        return None
    rest = stmt[m.end() :]
    if verb == "SELECT":
        tables = _table_refs(rest)
        if tables is None or (not tables and not lenient):
            return None
        return _sql_result("select", False, tables)
    if verb == "WITH":
        if _CTE_START.match(rest) is None:
            return None
        ctes = frozenset(_clean_name(n) or n for n in _CTE_NAME.findall(rest))
        ctes = frozenset(n.lower() for n in ctes)
        w = _WRITE_ANYWHERE.search(rest)
        if w is not None:
            groups = [g for g in w.groups() if g is not None]
            name = _clean_name(groups[1])
            return _sql_result(groups[0].lower(), True, [name] if name else [])
        return _sql_result("select", False, _table_refs(rest, ctes) or [])
    if verb == "SHOW":
        nxt = rest.split(None, 1)
        if not lenient and (not nxt or nxt[0].lower() not in _SHOW_OBJECTS):
            return None
        t = _SHOW_TARGET.search(rest)
        name = _clean_name(t.group(1)) if t is not None else None
        return _sql_result("show", False, [name] if name else [])
    if verb == "EXPLAIN":
        analyze = False
        while True:
            o = _EXPLAIN_OPTS.match(rest)
            if o is None or o.end() == 0:
                break
            analyze = analyze or o.group(1) is not None
            rest = rest[o.end() :]
        inner = _parse_statement(rest, lenient)
        if inner is None:
            return None
        return _Sql("explain", analyze and inner.write, inner.table, inner.tables)
    pattern = _SQL_PATTERNS.get(verb)
    if pattern is None:
        return None
    p = pattern.match(rest)
    if p is None:
        return None
    raw = p.group(p.lastindex or 1)
    name = _clean_name(raw)
    if name is None:
        return None
    if verb == "CREATE" and p.group(1).upper() == "INDEX":
        on = _INDEX_ON.search(rest, p.end())
        name = (_clean_name(on.group(1)) if on is not None else None) or name
    if verb in ("DESCRIBE", "DESC"):
        return _sql_result("describe", False, [name])
    return _sql_result(verb.lower(), True, [name])


def _parse_sql(text: str, lenient: bool) -> _Sql | None:
    """Read the statement(s) a value starts with; several ``;``-separated ones: any write wins."""
    if ";" not in text:
        return _parse_statement(text, lenient)
    parts = text.split(";", 8)[:8]
    found: list[_Sql] = []
    for i, part in enumerate(parts):
        info = _parse_statement(part, lenient)
        if info is None and i == 0:
            lead = _SQL_LEAD.match(part)
            # A leading BEGIN; / SET ...; is fine, prose is not.
            if lead is None or lead.group(1).upper() not in _TXN_VERBS:
                return None
        if info is not None:
            found.append(info)
    for info in found:
        if info.write:
            return info
    return found[0] if found else None


# --------------------------------------------------------------------------- URLs

_URL_RE = re.compile(r"https?://([^/\s?#'\"<>\\]+)([^\s?#'\"<>\\]*)", re.I)
_METHOD_URL_RE = re.compile(r"(GET|POST|PUT|PATCH|DELETE|HEAD|OPTIONS)\s+https?://", re.I)
_CURL_METHOD = re.compile(r"(?:-X\s*|--request[\s=]+)([A-Za-z]+)")
_CURL_DATA = re.compile(r"\s(?:-d|--data(?:-raw|-binary|-urlencode)?|-F|--form|--json|-T|--upload-file)\b")
_CODE_METHOD = re.compile(
    r"\b(?:requests|httpx|session|client|axios)\.(get|post|put|patch|delete|head)\s*\(", re.I
)
_SHELL_HTTP = re.compile(
    r"\b(?:curl|wget|http|https|httpie|Invoke-WebRequest|iwr|requests|httpx|urllib|fetch)\b"
)


def _split_url(text: str) -> tuple[str, str] | None:
    m = _URL_RE.search(text)
    if m is None:
        return None
    host = m.group(1).rsplit("@", 1)[-1].lower()  # never keep user:password@
    path = m.group(2).rstrip("/.,;:)")
    return (host, path) if host else None


def _url_target(ctx: _Ctx, everywhere: bool = False) -> tuple[str, str, str] | None:
    """``(target, host, the text holding it)`` for the call's first URL."""
    for _key, val in ctx.urls(everywhere):
        parts = _split_url(val)
        if parts is not None:
            host, path = parts
            return host + path, host, val
    return None


def _is_webhook_url(target: str) -> bool:
    host, _, path = target.partition("/")
    path = "/" + path.lower()
    return host.startswith("hooks.") or "webhook" in host or "/webhook" in path or "/hooks/" in path


def _http_method(ctx: _Ctx, text: str | None) -> str | None:
    val = ctx.get(("method", "http_method", "verb"))
    if val and val.upper() in _HTTP_METHODS:
        return val.upper()
    if text:
        m = _METHOD_URL_RE.match(text.strip())
        if m is not None:
            return m.group(1).upper()
        c = _CURL_METHOD.search(text)
        if c is not None and c.group(1).upper() in _HTTP_METHODS:
            return c.group(1).upper()
        c2 = _CODE_METHOD.search(text)
        if c2 is not None:
            return c2.group(1).upper()
        if "curl" in text and _CURL_DATA.search(text) is not None:
            return "POST"
    for word in ("post", "put", "patch", "delete", "get", "head"):
        if word in ctx.words:
            return word.upper()
    if ctx.words & _GET_LIKE:
        return "GET"
    return None


#: Named services: the target of a call to them when the arguments show no URL.
_SERVICES: Final = frozenset(
    _words(
        "slack github gitlab jira stripe twilio salesforce hubspot notion zendesk discord telegram s3 gcs "
        "dropbox gdrive confluence linear asana trello shopify paypal"
    )
)
_GET_LIKE: Final = frozenset(_words("fetch download browse scrape crawl"))


# --------------------------------------------------------------------------- deriving target / parameters


def _derive(t: OperationType | str, ctx: _Ctx) -> tuple[str | None, dict[str, Any]]:
    """Target and parameters of a call already known to be of type ``t``."""
    if t in (_T.DATABASE_READ, _T.DATABASE_WRITE):
        return _derive_db(t, ctx)
    if t in (_T.EXTERNAL_API_CALL, _T.WEBHOOK_SEND, _T.AUTH_REQUEST):
        found = _url_target(ctx, everywhere=True)
        params: dict[str, Any] = {}
        method = _http_method(ctx, found[2] if found else None)
        if method is not None and t is not _T.AUTH_REQUEST:
            params["method"] = method
        if found is not None:
            params["host"] = found[1]
            return found[0], params
        service = min(ctx.words & _SERVICES, default=None)
        if service is not None:
            params["service"] = service
        bucket = ctx.get(("bucket", "bucket_name"))
        if bucket:
            key = ctx.get(("key", "object_key", "object_name"))
            return (f"{bucket}/{key}" if key else bucket), params
        return service, params
    if t is _T.EMAIL_SEND:
        return _derive_email(ctx)
    if t in (_T.FILE_READ, _T.FILE_WRITE):
        return _derive_file(t, ctx)
    if t in (_T.MESSAGE_QUEUE_SEND, _T.MESSAGE_QUEUE_RECEIVE):
        return _derive_queue(t, ctx)
    if t in (_T.CACHE_READ, _T.CACHE_WRITE):
        return _derive_cache(t, ctx)
    if t in (_T.LLM_CALL, _T.LLM_EMBEDDING):
        model = ctx.get(_MODEL_KEYS)
        return model, ({"model": model} if model else {})
    return None, {}


_DB_READ_WORDS: Final = frozenset(
    _words("select query read get fetch find search list count lookup describe show scan aggregate explain")
)
_DB_WRITE_WORDS: Final = frozenset(
    _words(
        "insert update delete upsert write create drop alter truncate save store put remove modify merge "
        "migrate seed import replace"
    )
)


def _db_operation(t: OperationType | str, ctx: _Ctx) -> str:
    write, verb = ctx.direction(_DB_WRITE_WORDS, _DB_READ_WORDS)
    if verb is None or write != (t is _T.DATABASE_WRITE):
        return "unknown"
    return verb


def _derive_db(t: OperationType | str, ctx: _Ctx) -> tuple[str | None, dict[str, Any]]:
    sql = ctx.sql(lenient=True)
    if sql is not None:
        params: dict[str, Any] = {"operation": sql.operation}
        if sql.table:
            params["table"] = sql.table
        if len(sql.tables) > 1:
            params["tables"] = sql.tables
        return sql.table, params
    table = ctx.get(_TABLE_KEYS)
    params = {"operation": _db_operation(t, ctx)}
    if table:
        params["table"] = table
    return table, params


def _recipients(ctx: _Ctx) -> list[str]:
    found: list[str] = []
    for key in _RECIPIENT_KEYS:
        val = ctx.kv.get(key)
        items = val if isinstance(val, tuple) else (val,) if isinstance(val, str) else ()
        for item in items:
            for addr in re.split(r"[,;\s]+", item):
                if "@" in addr:
                    found.append(addr.strip("<>\"' "))
    return found


def _derive_email(ctx: _Ctx) -> tuple[str | None, dict[str, Any]]:
    recipients = _recipients(ctx)
    domains: list[str] = []
    for addr in recipients:
        domain = addr.rsplit("@", 1)[-1].lower().rstrip(">.")
        if domain and domain not in domains:
            domains.append(domain)
    if not recipients:
        return None, {}
    return (domains[0] if domains else None), {
        "recipient_count": len(recipients),
        "recipient_domains": tuple(domains),
    }


_FILE_WRITE_WORDS: Final = frozenset(
    _words(
        "write save append create delete remove rm unlink move mv rename copy cp mkdir rmdir touch edit "
        "patch modify update put truncate overwrite replace insert chmod chown store dump str_replace "
        "undo"
    )
)
_FILE_READ_WORDS: Final = frozenset(
    _words(
        "read load open get list ls cat view stat exists find glob search grep head tail show fetch scan "
        "walk inspect tree"
    )
)

#: Either direction: a file verb of any kind (computed once, not per call).
_FILE_WORDS_ANY: Final = _FILE_READ_WORDS | _FILE_WRITE_WORDS


def _open_mode(ctx: _Ctx) -> str | None:
    mode = ctx.kv.get("mode")
    return mode if isinstance(mode, str) and 0 < len(mode) <= 4 and set(mode) <= set("rwaxbt+U") else None


def _file_direction(ctx: _Ctx) -> tuple[OperationType | None, str | None]:
    """(FILE_READ / FILE_WRITE / None, operation word)."""
    mode = _open_mode(ctx)
    if mode is not None:
        return (_T.FILE_WRITE if any(c in mode for c in "wax+") else _T.FILE_READ), "open"
    write, verb = ctx.direction(_FILE_WRITE_WORDS, _FILE_READ_WORDS)
    if write is None:
        return None, None
    return (_T.FILE_WRITE if write else _T.FILE_READ), verb


def _derive_file(t: OperationType | str, ctx: _Ctx) -> tuple[str | None, dict[str, Any]]:
    path = ctx.get(_PATH_KEYS)
    if path is None and not ctx.kv:
        path = next((v for _k, v in ctx.values if "/" in v or "." in v), None)
    _direction, op = _file_direction(ctx)
    params: dict[str, Any] = {"operation": op or ("write" if t is _T.FILE_WRITE else "read")}
    mode = _open_mode(ctx)
    if mode is not None:
        params["mode"] = mode
    if path:
        params["path"] = path
    return path, params


_QUEUE_SYSTEMS: Final = frozenset(
    _words(
        "kafka sqs sns rabbit rabbitmq amqp pubsub nats kinesis mq zeromq zmq eventbridge eventhub "
        "eventhubs servicebus pulsar mqtt jms activemq redpanda"
    )
)


def _derive_queue(t: OperationType | str, ctx: _Ctx) -> tuple[str | None, dict[str, Any]]:
    dest = ctx.get(_TOPIC_KEYS)
    if dest and "://" in dest:
        dest = dest.rstrip("/").rsplit("/", 1)[-1] or dest  # an SQS queue URL: its queue name
    params: dict[str, Any] = {"operation": "publish" if t is _T.MESSAGE_QUEUE_SEND else "consume"}
    system = sorted(ctx.words & _QUEUE_SYSTEMS)
    if system:
        params["system"] = system[0]
    if dest:
        params["destination"] = dest
    return dest, params


_CACHE_WRITE_WORDS: Final = frozenset(
    _words(
        "set put write store save delete del remove invalidate evict expire clear flush incr decr hset "
        "setex add update purge mset lpush rpush sadd append"
    )
)
_CACHE_READ_WORDS: Final = frozenset(
    _words(
        "get read fetch load lookup exists has hget mget keys scan ttl peek retrieve lrange smembers stats "
        "info status size"
    )
)
_CACHE_SYSTEMS: Final = ("redis", "memcached", "memcache", "valkey", "keydb")


def _cache_direction(ctx: _Ctx) -> tuple[OperationType, str]:
    write, verb = ctx.direction(_CACHE_WRITE_WORDS, _CACHE_READ_WORDS)
    if write is None or verb is None:
        return _T.CACHE_WRITE, "unknown"  # direction unseen: the riskier one
    return (_T.CACHE_WRITE if write else _T.CACHE_READ), verb


def _derive_cache(t: OperationType | str, ctx: _Ctx) -> tuple[str | None, dict[str, Any]]:
    key = ctx.get(_CACHE_KEY_KEYS)
    command = ctx.get(("command", "cmd"))
    if key is None and command:
        parts = command.split()
        key = parts[1] if len(parts) > 1 else None
    _direction, op = _cache_direction(ctx)
    params: dict[str, Any] = {"operation": op}
    system = next((s for s in _CACHE_SYSTEMS if s in ctx.words), None)
    if system is not None:
        params["system"] = system
    if key:
        params["key"] = key
    return key, params


# --------------------------------------------------------------------------- the heuristics


_EMBED_WORDS: Final = frozenset(_words("embed embeds embedding embeddings vectorize vectorise"))
_EMAIL_WORDS: Final = frozenset(_words("email emails mail smtp sendmail gmail mailgun sendgrid postmark"))
_EMAIL_SEND_WORDS: Final = frozenset(_words("send compose reply forward deliver smtp sendmail notify"))
_EMAIL_NOT_SEND: Final = frozenset(
    _words(
        "read get list search fetch check find open download parse validate verify lookup extract format "
        "draft delete archive"
    )
)
_AUTH_WORDS: Final = frozenset(
    _words(
        "auth authenticate authentication authorize authorise authorization oauth oauth2 login logon "
        "signin sso saml mfa otp 2fa credential credentials authz"
    )
)
_TOKEN_VERBS: Final = frozenset(_words("get request refresh fetch obtain issue exchange mint new create"))
_PERMISSION_WORDS: Final = frozenset({"permission", "permissions", "acl"})
_QUEUE_NOUNS: Final = frozenset({"queue", "queues"}) | _QUEUE_SYSTEMS
_QUEUE_KEYS: Final = ("topic", "queue", "queue_url", "exchange")
_QUEUE_SEND: Final = frozenset(_words("publish produce enqueue send push emit dispatch"))
_QUEUE_RECV: Final = frozenset(_words("consume dequeue receive poll pull subscribe"))
_EVENT_NOUNS: Final = frozenset({"message", "messages", "event", "events"})
_CACHE_WORDS: Final = frozenset({"cache", "cached", "caching", *_CACHE_SYSTEMS})
_DB_WORDS: Final = frozenset(
    _words(
        "sql db database databases postgres postgresql psql mysql mariadb sqlite sqlite3 mssql tsql "
        "oracle snowflake bigquery redshift duckdb clickhouse athena trino presto cassandra cql dynamodb "
        "mongo mongodb supabase warehouse"
    )
)
_TRANSFER_WORDS: Final = frozenset({"upload", "download"})
_FILE_WORDS: Final = frozenset(_words("file files filesystem fs directory directories dir folder folders"))
_FILE_TOOLS: Final = frozenset(_words("ls cat mkdir rmdir touch glob open readfile writefile editor"))
_LLM_WORDS: Final = frozenset(
    _words(
        "llm llms chat chatgpt completion completions gpt openai anthropic claude gemini ollama mistral "
        "llama bedrock"
    )
)
#: Verbs of tools that work on text *about* an operation (format_sql, parse_url) rather than doing it.
_TEXT_TOOL_WORDS: Final = frozenset(
    _words(
        "format lint validate parse prettify beautify generate translate explain highlight tokenize "
        "escape sanitize encode decode normalize"
    )
)
_CHAT_APPS: Final = frozenset(_words("slack teams discord telegram whatsapp"))
_HTTP_WORDS: Final = frozenset(
    _words(
        "http https curl wget api rest graphql url urls web website webpage browse browser scrape scraper "
        "crawl crawler google bing serpapi tavily duckduckgo wikipedia internet online slack github "
        "gitlab jira stripe twilio salesforce hubspot notion zendesk discord telegram"
    )
)
_SHELL_WORDS: Final = frozenset(
    _words(
        "shell bash sh zsh terminal command cmd exec subprocess powershell console python code repl "
        "script jupyter notebook"
    )
)


def _heuristic(ctx: _Ctx) -> OperationType | None:
    w = ctx.words
    c = ctx.compact
    if w & _EMBED_WORDS or "embedding" in c:
        return _T.LLM_EMBEDDING
    if w & _TEXT_TOOL_WORDS and not w & _LLM_WORDS:
        return None  # format_sql, parse_url, validate_email: about text, not an operation on it
    if "webhook" in c or "webhook_url" in ctx.kv:
        return _T.WEBHOOK_SEND
    emailish = bool(w & _EMAIL_WORDS) or "email" in c
    reading_mail = bool(w & _EMAIL_NOT_SEND) and not w & _EMAIL_SEND_WORDS  # validate_email, list_emails
    if emailish and not reading_mail and (w & _EMAIL_SEND_WORDS or _recipients(ctx)):
        return _T.EMAIL_SEND
    if w & _AUTH_WORDS or ("token" in w and w & _TOKEN_VERBS and not w & {"count", "usage", "limit"}):
        return _T.AUTH_REQUEST
    if w & {"sign", "log"} and w & {"in", "on"}:
        return _T.AUTH_REQUEST
    if w & _PERMISSION_WORDS and w & {"check", "verify", "request", "has"}:
        return _T.AUTH_REQUEST
    found = _queue(ctx)
    if found is not None:
        return found
    if w & _CACHE_WORDS or "cache" in c:
        return _cache_direction(ctx)[0]
    agent_type = _agent_or_workflow(w)
    if agent_type is not None:
        return agent_type
    found = _database(ctx)
    if found is not None:
        return found
    if w & _TRANSFER_WORDS:
        return _T.EXTERNAL_API_CALL
    found = _file(ctx)
    if found is not None:
        return found
    if (w & _LLM_WORDS and not w & _CHAT_APPS) or ("ask" in w and w & {"llm", "model", "ai", "gpt"}):
        return _T.LLM_CALL
    if w & _HTTP_WORDS or ("search" in w and w & {"web", "internet", "online", "news"}):
        url = _url_target(ctx)
        if url is not None and _is_webhook_url(url[0]):
            return _T.WEBHOOK_SEND
        return _T.EXTERNAL_API_CALL
    if w & _SHELL_WORDS:
        return _shell(ctx)
    return _from_arguments(ctx)


def _queue(ctx: _Ctx) -> OperationType | None:
    w = ctx.words
    if "enqueue" in w:
        return _T.MESSAGE_QUEUE_SEND
    if "dequeue" in w:
        return _T.MESSAGE_QUEUE_RECEIVE
    queueish = bool(w & _QUEUE_NOUNS) or not ctx.kv.keys().isdisjoint(_QUEUE_KEYS)
    if w & {"publish", "produce", "consume"}:
        queueish = queueish or bool(w & _EVENT_NOUNS)
    if not queueish:
        return None
    reads = _QUEUE_RECV | {"get", "read", "fetch"} if w & _QUEUE_NOUNS else _QUEUE_RECV
    send, _verb = ctx.direction(_QUEUE_SEND, reads)
    if send is None and not w & _QUEUE_NOUNS:
        return None
    return _T.MESSAGE_QUEUE_RECEIVE if send is False else _T.MESSAGE_QUEUE_SEND


def _agent_or_workflow(w: frozenset[str]) -> OperationType | None:
    if "workflow" in w or "activity" in w:
        start = bool(w & {"start", "run", "trigger", "launch", "begin", "kick"})
        end = bool(w & {"complete", "finish", "end", "done"})
        if start != end:
            if "workflow" in w:
                return _T.WORKFLOW_START if start else _T.WORKFLOW_COMPLETE
            return _T.ACTIVITY_START if start else _T.ACTIVITY_COMPLETE
    if "goal" in w or "goals" in w:
        if w & {"update", "modify", "change", "revise", "edit", "adjust"}:
            return _T.AGENT_GOAL_UPDATE
        if w & {"set", "define", "create", "add", "new"}:
            return _T.AGENT_GOAL_SET
    if w & {"decide", "decision"}:
        return _T.AGENT_DECISION
    return None


def _database(ctx: _Ctx) -> OperationType | None:
    w = ctx.words
    db_named = bool(w & _DB_WORDS) or "sql" in ctx.compact
    if not db_named and not ctx.kv.keys().isdisjoint(("table", "table_name")):
        # insert_record(table=...): a database call when the name says what it does to the table.
        db_named = ctx.direction(_DB_WRITE_WORDS, _DB_READ_WORDS)[0] is not None
    if not db_named and not (w & {"query", "queries"} or not ctx.kv.keys().isdisjoint(_SQL_KEYS)):
        return None
    sql = ctx.sql(lenient=True)
    if sql is not None:
        return _T.DATABASE_WRITE if sql.write else _T.DATABASE_READ
    if not db_named:
        return None  # "query" alone (query_llm, search_query) is not a database
    write, _verb = ctx.direction(_DB_WRITE_WORDS, _DB_READ_WORDS)
    return _T.DATABASE_READ if write is False else _T.DATABASE_WRITE  # unseen: the riskier one


def _file(ctx: _Ctx) -> OperationType | None:
    w = ctx.words
    has_path = not ctx.kv.keys().isdisjoint(_PATH_KEYS)
    file_named = bool(w & _FILE_WORDS) or ctx.compact in _FILE_TOOLS or bool(w & {"editor"} and has_path)
    if not file_named and not (has_path and (w & _FILE_WORDS_ANY or "mode" in ctx.kv)):
        return None
    if not file_named and ctx.urls():
        return None  # fetch_page(url=..., path=...) is a web call
    direction, _op = _file_direction(ctx)
    return direction or _T.FILE_WRITE  # direction unseen: the riskier one


def _shell(ctx: _Ctx) -> OperationType | None:
    command = ctx.get(("command", "cmd", "script", "code", "input", "source")) or (
        ctx.values[0][1] if ctx.values else ""
    )
    if _SHELL_HTTP.search(command) and _URL_RE.search(command):
        url = _split_url(command)
        target = url[0] + url[1] if url else None
        if target is not None and _is_webhook_url(target):
            return _T.WEBHOOK_SEND
        return _T.EXTERNAL_API_CALL
    sql = _find_sql_in(command)
    if sql is not None:
        ctx._sql, ctx._sql_done = sql, True
        return _T.DATABASE_WRITE if sql.write else _T.DATABASE_READ
    return None


_SQL_INSIDE = _LazyRe(
    r"""(?:(?<=["'])|(?<=-c\s)|(?<=execute\()|(?<=query\())\s*(?=(?:SELECT|WITH|INSERT|UPDATE|DELETE|MERGE|"""
    r"""CREATE|DROP|ALTER|TRUNCATE)\b)"""
)


def _find_sql_in(command: str) -> _Sql | None:
    """An upper-case SQL statement quoted inside a shell or code command (``psql -c "DELETE ..."``)."""
    for m in _SQL_INSIDE.finditer(command):
        found = _parse_sql(command[m.end() :].split('"', 1)[0].split("'", 1)[0], lenient=False)
        if found is not None:
            return found
    return None


def _from_arguments(ctx: _Ctx) -> OperationType | None:
    """No name matched: what do the arguments alone show?"""
    sql = ctx.sql(lenient=False)
    if sql is not None:
        return _T.DATABASE_WRITE if sql.write else _T.DATABASE_READ
    url = _url_target(ctx)
    if url is not None:
        return _T.WEBHOOK_SEND if _is_webhook_url(url[0]) else _T.EXTERNAL_API_CALL
    kv = ctx.kv
    if _recipients(ctx) and ("subject" in kv or "body" in kv):
        return _T.EMAIL_SEND
    if not kv.keys().isdisjoint(_MODEL_KEYS) and ("messages" in kv or "prompt" in kv):
        return _T.LLM_CALL
    if _open_mode(ctx) is not None and not kv.keys().isdisjoint(_PATH_KEYS):
        return _file_direction(ctx)[0]
    return None


# --------------------------------------------------------------------------- rules


@dataclass(frozen=True, slots=True)
class ClassificationRule:
    """A user rule: tool-name glob (and optional argument regex) -> operation type.

    ``tool`` is an ``fnmatch`` glob matched case-insensitively against the whole
    tool name; ``arguments`` (optional) a regular expression searched in the
    argument preview. ``type`` must be one of the seed's types (any spelling).
    ``custom_type`` (for ``AGENT_ACTION``; defaults to the tool name) and a fixed
    ``target`` are optional; without a target the heuristics derive one for the
    rule's type. Raises ``ValueError`` naming the field when a field is invalid.

    Example::

        ClassificationRule("charge_*", "AGENT_ACTION", custom_type="payment_processing")
    """

    tool: str
    type: str
    custom_type: str | None = None
    target: str | None = None
    arguments: str | None = None
    _tool_re: re.Pattern[str] = field(init=False, repr=False, compare=False)
    _args_re: re.Pattern[str] | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.tool, str) or not self.tool.strip():
            raise _FieldError("tool", f"must be a non-empty glob string, got {self.tool!r}")
        parsed = parse_operation_type(self.type)
        if not isinstance(parsed, OperationType):
            known = ", ".join(t.value for t in OperationType)
            raise _FieldError("type", f"unknown operation type {self.type!r} (known: {known})")
        object.__setattr__(self, "type", parsed.value)
        for name in ("custom_type", "target"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, str) or not value.strip()):
                raise _FieldError(name, f"must be a non-empty string, got {value!r}")
        if self.custom_type is not None and parsed is not _T.AGENT_ACTION:
            raise _FieldError("custom_type", f"only applies to AGENT_ACTION, not {parsed.value}")
        object.__setattr__(self, "_tool_re", re.compile(translate(self.tool.strip()), re.I))
        args_re = None
        if self.arguments is not None:
            if not isinstance(self.arguments, str):
                raise _FieldError("arguments", f"must be a regular expression string, got {self.arguments!r}")
            try:
                args_re = re.compile(self.arguments)
            except re.error as exc:
                raise _FieldError("arguments", f"invalid regular expression: {exc}") from None
        object.__setattr__(self, "_args_re", args_re)

    def matches(self, tool_name: str, arguments_preview: str = "") -> bool:
        """True when the glob matches the tool name and the regex (if any) the preview."""
        if self._tool_re.match(tool_name) is None:
            return False
        return self._args_re is None or self._args_re.search(arguments_preview) is not None


# --------------------------------------------------------------------------- the classifier

_MAX_CACHED_PREVIEW: Final = 2048


class Classifier:
    """Classify tool calls: explicit metadata, then rules, then heuristics, then fallback.

    ``classify`` never raises and is deterministic. It memoises results by
    ``(tool_name, arguments_preview)`` -- plus the explicit type, custom type
    and target when the metadata declares a type -- in a cache of at most
    ``cache_size`` entries (the oldest entry goes first; 0 turns caching off), for
    tool names and targets of up to 256 characters and previews of up to 2,048. Safe to call
    from several threads. ``heuristics=False`` leaves only explicit types,
    rules and the fallback.

    Example::

        classifier = Classifier([ClassificationRule("crm_*", "EXTERNAL_API_CALL", target="crm")])
        classifier.classify("crm_lookup", "{'id': 7}").target   # 'crm'
    """

    def __init__(
        self, rules: Iterable[ClassificationRule] = (), *, heuristics: bool = True, cache_size: int = 4096
    ) -> None:
        self._rules = tuple(rules)
        self._heuristics = heuristics
        self._cache_size = max(0, int(cache_size))
        self._cache: OrderedDict[tuple[str | None, ...], Classification] = OrderedDict()
        self._evictions = 0
        self._lock = fork_safe_lock()

    @property
    def rules(self) -> tuple[ClassificationRule, ...]:
        """The user rules, in matching order."""
        return self._rules

    @classmethod
    def from_file(cls, path: str | os.PathLike[str], **kwargs: Any) -> Classifier:
        """A classifier with the rules of a YAML or JSON file (see ``load_classification_rules``)."""
        return cls(load_classification_rules(path), **kwargs)

    def classify(
        self, tool_name: str, arguments_preview: str = "", metadata: Mapping[str, Any] | None = None
    ) -> Classification:
        """Classify one call. Never raises; any input of any type gives a ``Classification``."""
        try:
            if isinstance(metadata, Mapping) and metadata:
                explicit = self._explicit(tool_name, arguments_preview, metadata)
                if explicit is not None:
                    return explicit
            if type(tool_name) is str and type(arguments_preview) is str:
                key = (tool_name, arguments_preview)
                hit = self._cache.get(key)
                if hit is not None:
                    return hit
                result = self._classify(tool_name, arguments_preview)
                if (
                    self._cache_size
                    and len(arguments_preview) <= _MAX_CACHED_PREVIEW
                    and len(tool_name) <= _MAX_NAME
                ):
                    self._remember(key, result)
                return result
            return self._classify(_safe_text(tool_name), _safe_text(arguments_preview))
        except Exception:
            return _fallback(tool_name)

    def cache_info(self) -> dict[str, int]:
        """``{"size": entries now, "max_size": the bound, "evictions": entries dropped for room}``.

        An eviction changes no result, only the cost of classifying that call
        again: counted here, not logged.
        """
        return {"size": len(self._cache), "max_size": self._cache_size, "evictions": self._evictions}

    def clear_cache(self) -> None:
        """Forget every memoised result."""
        with self._lock:
            self._cache.clear()

    def _remember(self, key: tuple[str | None, ...], result: Classification) -> None:
        with self._lock:
            if len(self._cache) >= self._cache_size:
                # Drop the oldest entry (FIFO keeps the hit path lock-free). Not a plain dict's
                # first key: with its front popped again and again, finding it costs a scan.
                self._cache.popitem(last=False)
                self._evictions += 1
            self._cache[key] = result

    def _explicit(
        self, tool_name: object, preview: object, metadata: Mapping[str, Any]
    ) -> Classification | None:
        raw_type = metadata.get("operation_type")
        raw_custom = metadata.get("custom_type")
        custom = raw_custom.strip() if isinstance(raw_custom, str) and raw_custom.strip() else None
        parsed = parse_operation_type(raw_type) if raw_type is not None else ""
        if not parsed:
            if custom is None:
                return None
            parsed = _T.AGENT_ACTION  # the seed's custom-event convention
        raw_target = metadata.get("target")
        fixed_target = raw_target.strip() if isinstance(raw_target, str) and raw_target.strip() else None
        key: tuple[str | None, ...] | None = None
        if (
            type(tool_name) is str
            and type(preview) is str
            and len(preview) <= _MAX_CACHED_PREVIEW
            and len(tool_name) <= _MAX_NAME
            and len(fixed_target or "") <= _MAX_NAME
        ):
            # Everything the result depends on; 6-tuples never collide with the 2-tuple keys.
            key = ("explicit", tool_name, preview, str(parsed), custom, fixed_target)
            hit = self._cache.get(key)
            if hit is not None:
                return hit
        name = _safe_text(tool_name)
        target, params = _derive(parsed, _Ctx(name, _safe_text(preview)))
        result = _make(parsed, custom or name, fixed_target or target, params, SOURCE_EXPLICIT)
        if key is not None and self._cache_size:
            self._remember(key, result)
        return result

    def _classify(self, tool_name: str, preview: str) -> Classification:
        ctx = _Ctx(tool_name, preview)
        for rule in self._rules:
            if rule.matches(tool_name, preview):
                t = parse_operation_type(rule.type)
                target, params = _derive(t, ctx)
                if rule.target is not None:
                    target = rule.target
                return _make(t, rule.custom_type or tool_name, target, params, SOURCE_RULE)
        if self._heuristics:
            found = _heuristic(ctx)
            if found is not None:
                target, params = _derive(found, ctx)
                return _make(found, tool_name, target, params, SOURCE_HEURISTIC)
        return _make(_T.AGENT_ACTION, tool_name, None, {}, SOURCE_FALLBACK)


# --------------------------------------------------------------------------- configuration files


class _FieldError(ValueError):
    """A field of one rule is invalid; the loader adds the file, rule and line."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"field {field!r}: {message}")
        self.field = field
        self.message = message


class ConfigError(ValueError):
    """A rules file (or text) is invalid. The message names the file, the line, the rule and the field.

    Attributes ``source`` (file name or ``"<text>"``), ``line`` (1-based, when
    known), ``path`` (e.g. ``"rules[2].condition.within"``) and ``reason``.
    """

    def __init__(self, source: str, reason: str, *, path: str | None = None, line: int | None = None) -> None:
        where = source if line is None else f"{source}:{line}"
        super().__init__(f"{where}: {path}: {reason}" if path else f"{where}: {reason}")
        self.source = source
        self.reason = reason
        self.path = path
        self.line = line


@dataclass(frozen=True)
class ConfigDocument:
    """A parsed YAML/JSON document with the line of each key and list item (YAML only)."""

    data: Any
    source: str
    lines: Mapping[tuple[str | int, ...], int]

    def line_of(self, path: tuple[str | int, ...]) -> int | None:
        """The 1-based line of ``path`` (or of its nearest known parent)."""
        while True:
            line = self.lines.get(path)
            if line is not None or not path:
                return line
            path = path[:-1]

    def error(self, path: tuple[str | int, ...], reason: str) -> ConfigError:
        """A ``ConfigError`` for the element at ``path``."""
        return ConfigError(
            self.source, reason, path=_format_path(path) if path else None, line=self.line_of(path)
        )


def _format_path(path: tuple[str | int, ...]) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out


def read_config(source: str | os.PathLike[str]) -> ConfigDocument:
    """Parse a YAML or JSON rules document: a file path, or the text itself.

    A ``str`` is the document itself when it has a newline, a ``": "`` or
    starts with ``{`` / ``[`` (one-line YAML or JSON) and names no existing
    file; otherwise it is a path. ``.json`` files are read as JSON; other files
    and text as YAML (needs PyYAML, imported only here), falling back to JSON
    for text that starts with ``{`` or ``[`` when PyYAML is missing. Raises
    ``ConfigError`` (with the file and line) when it cannot be read or parsed.
    """
    looks_like_text = isinstance(source, str) and (
        "\n" in source or ": " in source or source.lstrip().startswith(("{", "["))
    )
    if isinstance(source, str) and looks_like_text and ("\n" in source or not os.path.exists(source)):
        text, name, as_json = source, "<text>", False
    else:
        name = os.fspath(source)
        try:
            with open(name, encoding="utf-8") as handle:
                text = handle.read()
        except FileNotFoundError:
            raise ConfigError(name, "no such file") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(name, f"cannot read: {exc}") from None
        as_json = name.lower().endswith(".json")
    if as_json:
        return _parse_json(text, name)
    try:
        return _parse_yaml(text, name)
    except ImportError:
        if text.lstrip().startswith(("{", "[")):
            return _parse_json(text, name)
        raise ConfigError(
            name, "reading YAML needs PyYAML: pip install 'auditspan[yaml]' (or write the rules as JSON)"
        ) from None


def _parse_json(text: str, name: str) -> ConfigDocument:
    try:
        return ConfigDocument(json.loads(text), name, {})
    except json.JSONDecodeError as exc:
        raise ConfigError(name, f"invalid JSON: {exc.msg} (column {exc.colno})", line=exc.lineno) from None


def _parse_yaml(text: str, name: str) -> ConfigDocument:
    import yaml  # lazily: only rule files need it

    lines: dict[tuple[str | int, ...], int] = {}
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(name, f"invalid YAML: {problem}", line=mark.line + 1 if mark else None) from None
    finally:
        loader.dispose()
    if node is not None:
        lines[()] = node.start_mark.line + 1
        _node_lines(node, (), lines, 0)
    return ConfigDocument(data, name, lines)


def _node_lines(
    node: Any, path: tuple[str | int, ...], out: dict[tuple[str | int, ...], int], depth: int
) -> None:
    import yaml

    if depth > 16:
        return
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            if isinstance(key_node, yaml.ScalarNode):
                child = (*path, str(key_node.value))
                out[child] = key_node.start_mark.line + 1
                _node_lines(value_node, child, out, depth + 1)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            child = (*path, i)
            out[child] = item.start_mark.line + 1
            _node_lines(item, child, out, depth + 1)


_RULE_FIELDS: Final = ("tool", "type", "custom_type", "target", "arguments")


def rules_from_data(doc: ConfigDocument) -> list[ClassificationRule]:
    """Classification rules from a parsed document: ``{"rules": [...]}`` or a bare list."""
    data = doc.data
    base: tuple[str | int, ...] = ()
    if isinstance(data, Mapping):
        unknown = sorted(str(k) for k in data if k != "rules")
        if unknown:
            raise doc.error((unknown[0],), "unknown top-level key (expected 'rules')")
        data, base = data.get("rules"), ("rules",)
    if not isinstance(data, list):
        raise doc.error(base, "expected a list of rules")
    rules: list[ClassificationRule] = []
    for i, item in enumerate(data):
        path = (*base, i)
        if not isinstance(item, Mapping):
            raise doc.error(path, f"a rule must be a mapping, got {type(item).__name__}")
        for key in item:
            if key not in _RULE_FIELDS:
                raise doc.error((*path, str(key)), f"unknown field (allowed: {', '.join(_RULE_FIELDS)})")
        for required in ("tool", "type"):
            if required not in item:
                raise doc.error(path, f"missing field {required!r}")
        try:
            rules.append(ClassificationRule(**{k: item[k] for k in _RULE_FIELDS if k in item}))
        except _FieldError as exc:
            raise doc.error((*path, exc.field), exc.message) from None
    return rules


def load_classification_rules(source: str | os.PathLike[str]) -> list[ClassificationRule]:
    """Classification rules from a YAML/JSON file or text.

    Raises ``ConfigError`` naming the file, the line, the rule and the field.
    """
    return rules_from_data(read_config(source))

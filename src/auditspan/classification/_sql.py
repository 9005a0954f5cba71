"""Read the SQL statement an argument starts with: its verb, whether it writes, and its tables.

The classifier needs three facts from a SQL string -- the operation
(``select``, ``insert`` ...), whether it writes, and the table it works on --
not a parse tree. So this is a small recogniser, not a parser: a pattern per
statement verb, tolerant of comments, quoting (```a`.b``, ``"a"."b"``,
``[a].[b]``), CTEs, ``EXPLAIN`` and ``;``-separated batches (any write in a
batch wins). A statement must *start* a value and have SQL structure; a table
named ``the`` or ``list`` is prose, not SQL.

The patterns are large: they compile on first use (``_LazyRe``), so importing
auditspan does not pay about 20 ms for SQL that a runtime may never send.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Final

from ._words import _word_list


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
    _word_list(
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
    _word_list(
        "tables databases schemas columns fields index indexes keys create grants variables status "
        "processlist full views functions triggers users roles warehouses search_path session"
    )
)
_SHOW_TARGET = _LazyRe(rf"\b(?:FROM|IN|TABLE)\s+({_QNAME})", _I)
_EXPLAIN_OPTS = _LazyRe(r"\s*(?:(ANALY[SZ]E)\b|VERBOSE\b|\([^)]*\))", _I)
_TXN_VERBS: Final = frozenset({"BEGIN", "START", "SET", "USE", "COMMIT"})


@dataclass(frozen=True, slots=True)
class _Sql:
    """What a statement does: its verb, whether it writes, its first table and every table it names."""

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

"""The derivers: once a call's type is known, its target and parameters.

A type alone says little to an auditor; "``DATABASE_READ`` of
``customers.pii_emails``" is what a rule matches on. Each family of types has
its deriver: the SQL table (or ``table`` argument) for a database, ``host/path``
and the HTTP method for a web call, the first recipient's domain and the
recipient count for an e-mail, the path and ``open`` mode for a file, the topic
for a queue, the key for a cache, the model for an LLM. They run for every
source of a type (explicit metadata, a user rule, the heuristics), so a rule
that only names a type still gets a target.

Where the direction of an operation cannot be seen (``run_sql`` with an empty
preview), ``parameters["operation"]`` says ``"unknown"`` and the directions
here choose the riskier type of the pair; the heuristics (``_heuristics``)
use the same direction functions, so both agree.
"""

from __future__ import annotations

import re
from typing import Any

from auditspan.semantic_types import OperationType

from ._arguments import _Ctx
from ._urls import _first_url, _method_in_text
from ._words import (
    _CACHE_KEY_KEYS,
    _CACHE_READ_WORDS,
    _CACHE_SYSTEMS,
    _CACHE_WRITE_WORDS,
    _DB_READ_WORDS,
    _DB_WRITE_WORDS,
    _FILE_READ_WORDS,
    _FILE_WRITE_WORDS,
    _GET_LIKE,
    _HTTP_METHODS,
    _MODEL_KEYS,
    _PATH_KEYS,
    _QUEUE_SYSTEMS,
    _RECIPIENT_KEYS,
    _SERVICES,
    _TABLE_KEYS,
    _TOPIC_KEYS,
)

_T = OperationType


def _derive(t: OperationType | str, ctx: _Ctx) -> tuple[str | None, dict[str, Any]]:
    """Target and parameters of a call already known to be of type ``t``."""
    if t in (_T.DATABASE_READ, _T.DATABASE_WRITE):
        return _derive_db(t, ctx)
    if t in (_T.EXTERNAL_API_CALL, _T.WEBHOOK_SEND, _T.AUTH_REQUEST):
        found = _first_url(ctx.urls(everywhere=True))
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


def _http_method(ctx: _Ctx, text: str | None) -> str | None:
    """The call's HTTP method: a ``method`` argument, the text holding the URL, then the tool name."""
    val = ctx.get(("method", "http_method", "verb"))
    if val and val.upper() in _HTTP_METHODS:
        return val.upper()
    if text:
        found = _method_in_text(text)
        if found is not None:
            return found
    for word in ("post", "put", "patch", "delete", "get", "head"):
        if word in ctx.words:
            return word.upper()
    if ctx.words & _GET_LIKE:
        return "GET"
    return None


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

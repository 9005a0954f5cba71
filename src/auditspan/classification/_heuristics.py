"""The heuristics: the type of a tool call that neither its metadata nor a user rule names.

They read a call as a person would. The tool name decides first, in a fixed
order -- embeddings, webhook, e-mail sending, auth, message queue, cache,
workflow/goal/decision, database, upload/download, file, LLM, HTTP/web/SaaS,
shell/code -- because a name such as ``send_email_via_api`` holds several
clues and the more specific one must win. Only when the name says nothing do
the arguments alone decide (a SQL statement, a URL, recipients with a
subject, ``model`` with ``messages``, a path with an ``open`` mode).

Tools that work on text *about* an operation (``format_sql``, ``parse_url``,
``validate_email``) are not that operation: ``_heuristic`` returns ``None``
and the classifier falls back to ``AGENT_ACTION``. Where a direction cannot be
seen, the riskier type of the pair is chosen (see ``_derivers``).
"""

from __future__ import annotations

from auditspan.semantic_types import OperationType

from ._arguments import _Ctx
from ._derivers import _cache_direction, _file_direction, _open_mode, _recipients
from ._sql import _find_sql_in
from ._urls import _SHELL_HTTP, _URL_RE, _first_url, _is_webhook_url, _split_url
from ._words import (
    _AUTH_WORDS,
    _CACHE_WORDS,
    _CHAT_APPS,
    _DB_READ_WORDS,
    _DB_WORDS,
    _DB_WRITE_WORDS,
    _EMAIL_NOT_SEND,
    _EMAIL_SEND_WORDS,
    _EMAIL_WORDS,
    _EMBED_WORDS,
    _EVENT_NOUNS,
    _FILE_TOOLS,
    _FILE_WORDS,
    _FILE_WORDS_ANY,
    _HTTP_WORDS,
    _LLM_WORDS,
    _MODEL_KEYS,
    _PATH_KEYS,
    _PERMISSION_WORDS,
    _QUEUE_KEYS,
    _QUEUE_NOUNS,
    _QUEUE_RECV,
    _QUEUE_SEND,
    _SHELL_WORDS,
    _SQL_KEYS,
    _TEXT_TOOL_WORDS,
    _TOKEN_VERBS,
    _TRANSFER_WORDS,
)

_T = OperationType


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
        url = _first_url(ctx.urls())
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
        ctx.remember_sql(sql)
        return _T.DATABASE_WRITE if sql.write else _T.DATABASE_READ
    return None


def _from_arguments(ctx: _Ctx) -> OperationType | None:
    """No name matched: what do the arguments alone show?"""
    sql = ctx.sql(lenient=False)
    if sql is not None:
        return _T.DATABASE_WRITE if sql.write else _T.DATABASE_READ
    url = _first_url(ctx.urls())
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

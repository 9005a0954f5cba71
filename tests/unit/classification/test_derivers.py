"""Targets and parameters (``_derivers``) and the heuristics (``_heuristics``), without the classifier."""

from __future__ import annotations

from typing import Any

import pytest

from auditspan.classification._arguments import _Ctx
from auditspan.classification._derivers import _derive
from auditspan.classification._heuristics import _heuristic
from auditspan.semantic_types import OperationType as T


@pytest.mark.parametrize(
    ("type_", "tool", "args", "expected"),
    [
        (
            T.EMAIL_SEND,
            "notify",
            {"to": "Ann <ann@Corp.example>, bob@corp.example", "subject": "s"},
            ("corp.example", {"recipient_count": 2, "recipient_domains": ("corp.example",)}),
        ),
        (T.DATABASE_WRITE, "run_sql", {}, (None, {"operation": "unknown"})),
        (T.EXTERNAL_API_CALL, "upload_s3", {"bucket": "b1", "key": "k/2"}, ("b1/k/2", {"service": "s3"})),
        (
            T.FILE_WRITE,
            "fs",
            {"path": "/tmp/a", "mode": "a"},
            ("/tmp/a", {"operation": "open", "mode": "a", "path": "/tmp/a"}),
        ),
        (
            T.MESSAGE_QUEUE_SEND,
            "sqs_send",
            {"queue_url": "https://sqs.example/123/orders"},
            ("orders", {"operation": "publish", "system": "sqs", "destination": "orders"}),
        ),
        (
            T.CACHE_READ,
            "redis",
            {"command": "GET session:1"},
            ("session:1", {"operation": "get", "system": "redis", "key": "session:1"}),
        ),
        (T.LLM_CALL, "chat", {"model": "gpt-x"}, ("gpt-x", {"model": "gpt-x"})),
        (
            T.EXTERNAL_API_CALL,
            "http_post",
            {"url": "https://user:pw@api.example/v1?k=secret"},
            ("api.example/v1", {"method": "POST", "host": "api.example"}),
        ),
        (T.AGENT_DECISION, "decide", {"x": 1}, (None, {})),
    ],
)
def test_a_known_type_gets_its_target_and_parameters(
    type_: T, tool: str, args: dict[str, Any], expected: tuple[str | None, dict[str, Any]]
) -> None:
    assert _derive(type_, _Ctx(tool, str(args) if args else "")) == expected


@pytest.mark.parametrize(
    ("tool", "args", "expected"),
    [
        ("format_sql", {"sql": "DELETE FROM t"}, None),  # about SQL text, not a database write
        ("do_it", {"q": "DELETE FROM t"}, T.DATABASE_WRITE),
        ("bash", {"command": "curl -X POST https://hooks.slack.com/x"}, T.WEBHOOK_SEND),
        ("thing", {"model": "m", "messages": []}, T.LLM_CALL),
        ("thing", {"prompt": "DELETE FROM users please"}, None),  # prose is not read
        ("run_sql", {}, T.DATABASE_WRITE),  # direction unseen: the riskier one
    ],
)
def test_the_heuristics_read_a_call_as_a_person_would(
    tool: str, args: dict[str, Any], expected: T | None
) -> None:
    assert _heuristic(_Ctx(tool, str(args) if args else "")) is expected

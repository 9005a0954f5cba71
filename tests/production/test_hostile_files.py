"""Hostile files on the command line (issue 13, item 10): every bad line is reported by its number
and the rest of the file is read; memory stays bounded whatever the lines hold.

* a line of 100,000 nested arrays (Python's JSON decoder raises ``RecursionError`` on it);
* a line longer than ``--max-line-bytes`` (read in pieces that are not kept);
* duplicate keys (``event_type`` given twice: which copy wins depends on the reader);
* ``show`` on a large log streams: its peak memory, measured in a subprocess, does not grow
  with the file.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import tracemalloc
from pathlib import Path

import pytest

from auditspan.cli import main
from auditspan.replay import LineError, LogLine, iter_log

pytestmark = pytest.mark.usefixtures("fresh_global_provider")

STAMP = "2026-11-21T19:24:17.134534+00:00"


def event(event_type: str, n: int, **fields: object) -> str:
    base = {
        "event_type": event_type,
        "timestamp": STAMP,
        "agent_id": "a",
        "turn_id": f"t{n}",
        "session_id": "s",
        "severity": "info",
        "metadata": {},
    }
    return json.dumps({**base, **fields})


def good_turn(n: int) -> list[str]:
    return [
        event("turn_start", n, prompt_preview="hi"),
        event("tool_call_attempt", n, tool_name="run_sql", arguments_preview="SELECT 1"),
        event(
            "tool_call_complete",
            n,
            tool_name="run_sql",
            status="success",
            duration_ms=3.0,
            result_preview="1",
        ),
        event("turn_end", n, content_preview="done", function_calls_count=1),
    ]


def write_log(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def run_cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    status = main(argv)
    captured = capsys.readouterr()
    return status, captured.out, captured.err


COMMANDS = {
    "replay": lambda log, tmp: ["replay", str(log), "--output-dir", str(tmp / "out"), "--no-progress"],
    "show": lambda log, tmp: ["show", str(log), "--no-color"],
    "validate": lambda log, tmp: ["validate", str(log)],
    "policy-input": lambda log, tmp: ["policy-input", str(log)],
}


# --- nesting ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_deeply_nested_line_is_reported_and_the_rest_is_read(
    command: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    nested = "[" * 100_000 + "]" * 100_000
    log = write_log(tmp_path / "nested.jsonl", [*good_turn(1)[:2], nested, *good_turn(1)[2:]])
    status, out, err = run_cli(COMMANDS[command](log, tmp_path), capsys)
    assert status == 1, (out, err)
    assert f"{log}:3: arrays and objects nested more than 512 deep" in out + err
    assert "Traceback" not in err and "RecursionError" not in out + err
    if command == "replay":
        assert "replayed 4 events" in out
    elif command == "show":
        assert "run_sql" in out and "success" in out  # the lines after it were read
    elif command == "validate":
        assert "5 line(s) in 1 file(s): 4 valid" in out


def test_nesting_within_the_limit_is_accepted(tmp_path: Path) -> None:
    deep: object = "leaf"
    for _ in range(400):
        deep = [deep]
    log = write_log(tmp_path / "deep.jsonl", [event("skill_used", 1, metadata={"x": deep})])
    (line,) = [item for _, item in iter_log(log)]
    assert isinstance(line, LogLine)


# --- long lines ---------------------------------------------------------------------------------------


def test_a_line_longer_than_the_limit_is_reported_skipped_and_never_held(tmp_path: Path) -> None:
    huge = event("tool_call_attempt", 1, tool_name="t", arguments_preview="x" * 20_000_000)
    log = write_log(tmp_path / "huge.jsonl", [good_turn(1)[0], huge, *good_turn(1)[1:]])
    tracemalloc.start()
    try:
        items = [item for _, item in iter_log(log, max_line_bytes=1_000_000)]
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    errors = [item for item in items if isinstance(item, LineError)]
    assert [(e.line_no, e.message.split(":")[0]) for e in errors] == [(2, "line too long")]
    assert f"{len(huge) + 1:,} bytes, more than the limit of 1,000,000" in errors[0].message
    assert [item.line_no for item in items if isinstance(item, LogLine)] == [1, 3, 4, 5]
    # The 20 MB line was read in pieces of at most 1 MiB, none of them kept.
    assert peak < 6_000_000, peak


def test_max_line_bytes_option_on_every_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    long_line = event("tool_call_attempt", 1, tool_name="t", arguments_preview="y" * 5_000)
    log = write_log(tmp_path / "long.jsonl", [*good_turn(1)[:1], long_line, *good_turn(1)[1:]])
    for command, argv in COMMANDS.items():
        status, out, err = run_cli([*argv(log, tmp_path), "--max-line-bytes", "4096"], capsys)
        assert status == 1, command
        assert f"{log}:2: line too long" in out + err, command
        # Raised, the same line is fine.
        status, out, err = run_cli([*argv(log, tmp_path), "--max-line-bytes", "8192"], capsys)
        assert "line too long" not in out + err, command


def test_a_line_exactly_at_the_limit_is_accepted(tmp_path: Path) -> None:
    line = event("skill_used", 1)
    log = write_log(tmp_path / "exact.jsonl", [line, line])
    items = [item for _, item in iter_log(log, max_line_bytes=len(line))]
    assert all(isinstance(item, LogLine) for item in items) and len(items) == 2
    items = [item for _, item in iter_log(log, max_line_bytes=len(line) - 1)]
    assert all(isinstance(item, LineError) for item in items) and len(items) == 2


# --- duplicate keys -----------------------------------------------------------------------------------


def test_validate_flags_duplicate_keys_naming_line_and_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    overwritten = (
        '{"event_type": "tool_call_attempt", "timestamp": "' + STAMP + '", "tool_name": "rm", '
        '"event_type": "turn_end"}'
    )
    nested = '{"event_type": "skill_used", "timestamp": "' + STAMP + '", "metadata": {"a": 1, "a": 2}}'
    log = write_log(tmp_path / "dup.jsonl", [good_turn(1)[0], overwritten, nested])
    status, out, _ = run_cli(["validate", str(log)], capsys)
    assert status == 1
    assert f"{log}:2: duplicate key 'event_type'" in out
    assert f"{log}:3: duplicate key 'a'" in out
    assert "3 line(s) in 1 file(s): 1 valid" in out


@pytest.mark.parametrize("command", ["replay", "show", "policy-input"])
def test_an_overwritten_event_type_is_never_taken_silently(
    command: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The last copy would make a denied call's attempt look like a turn's end: the line is refused."""
    lines = good_turn(1)
    lines[1] = lines[1][:-1] + ', "event_type": "turn_end"}'
    log = write_log(tmp_path / "dup.jsonl", lines)
    status, out, err = run_cli(COMMANDS[command](log, tmp_path), capsys)
    assert status == 1
    assert f"{log}:2: duplicate key 'event_type'" in err
    if command == "replay":
        assert "replayed 3 events from 1 file(s): 4 lines read, 1 skipped" in out


# --- show streams -------------------------------------------------------------------------------------

_SHOW_MEMORY = textwrap.dedent(
    """
    import io, json, resource, subprocess, sys

    path, role = sys.argv[1:]
    if role == "child":
        from auditspan.cli import main

        sink = io.StringIO()
        sys.stdout = sink  # the tree itself is not what is measured
        status = main(["show", path, "--no-color"])
        sys.stdout = sys.__stdout__
        text = sink.getvalue()
        print(json.dumps({"status": status, "calls": text.count("run_sql"), "turns": text.count("turn t")}))
    else:
        # Linux carries a process's peak RSS across fork and exec: measured from a small parent,
        # the child's peak is its own (not the test runner's, which forked it).
        done = subprocess.run([sys.executable, "-c", __doc__, path, "child"], capture_output=True, text=True)
        result = json.loads(done.stdout.strip().splitlines()[-1]) if done.returncode == 0 else {}
        result["maxrss_kib"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        result["stderr"] = done.stderr[-2000:]
        print(json.dumps(result))
    """
)
_SHOW_MEMORY = f"__doc__ = {_SHOW_MEMORY!r}\n{_SHOW_MEMORY}"


@pytest.mark.parametrize(
    "lines", [200_000, pytest.param(1_000_000, marks=pytest.mark.e2e, id="a-million-lines")]
)
def test_show_streams_in_bounded_memory(lines: int, tmp_path: Path) -> None:
    """Today's show held every span of the file: about 2.4 KB a line (480 MB for 200,000 lines)."""
    log = tmp_path / "big.jsonl"
    turns = lines // 4
    with log.open("w", encoding="utf-8") as f:
        for n in range(turns):
            session = f"s{n % 97}"
            for line in good_turn(n):
                f.write(line.replace('"session_id": "s"', f'"session_id": "{session}"') + "\n")
    done = subprocess.run(
        [sys.executable, "-c", _SHOW_MEMORY, str(log), "parent"],
        capture_output=True,
        text=True,
        timeout=1_800,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result.get("status") == 0, result
    assert result["calls"] == turns and result["turns"] == turns  # everything shown
    # Generous: an interpreter with auditspan and the SDK loaded takes about 40 MiB.
    assert result["maxrss_kib"] < 200 * 1024, result

"""The ``auditspan`` command line: help, exit codes, policy-input, and real subprocesses."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from auditspan import __version__
from auditspan.cli import main
from auditspan.replay import replay_files

from ..conftest import event_records

SEED = Path(__file__).parents[1] / "data" / "logs" / "seed-run.jsonl"
CONSOLE_SCRIPT = Path(sys.executable).parent / "auditspan"
COMMANDS = ["demo", "replay", "show", "validate", "policy-input"]


pytestmark = pytest.mark.usefixtures("clean_environment")


def _clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "AUDITSPAN_"))}


# ------------------------------------------------------------------- help
def test_top_level_help_documents_commands_and_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for command in COMMANDS:
        assert command in out
    for line in (
        "0    success",
        "1    data errors",
        "2    usage or configuration error",
        "3    export failure",
    ):
        assert line in out
    assert "OTEL_EXPORTER_OTLP_ENDPOINT" in out


@pytest.mark.parametrize(
    ("command", "options"),
    [
        ("demo", ["--output-dir", "--turns", "--no-tree"]),
        ("replay", ["--strict", "--service-name", "--audit-log"]),
        ("show", ["--session", "--turn", "--tool", "--type", "--severity", "--no-color"]),
        ("validate", ["--schema-only"]),
        ("policy-input", ["--event-type"]),
    ],
)
def test_every_command_has_help(command: str, options: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main([command, "--help"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: auditspan {command}")
    for option in options:
        assert option in out
    assert "exit status:" in out


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"auditspan {__version__}"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ([], "usage: auditspan"),
        (["frobnicate"], "invalid choice: 'frobnicate'"),
        (["replay"], "the following arguments are required: FILE"),
        (["show", str(SEED), "--bogus"], "unrecognized arguments: --bogus"),
        (["demo", "--turns", "many"], "expected a whole number, got 'many'"),
        (["show", str(SEED), "--color", "--no-color"], "not allowed with argument"),
    ],
)
def test_usage_errors_exit_2(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


@pytest.mark.parametrize("command", ["replay", "show", "validate", "policy-input"])
def test_unreadable_files_exit_2(command: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([command, str(tmp_path / "missing.jsonl")]) == 2
    assert (
        f"auditspan {command}: cannot read {tmp_path / 'missing.jsonl'}: No such file"
        in capsys.readouterr().err
    )
    assert main([command, str(tmp_path)]) == 2  # a directory
    assert "Is a directory" in capsys.readouterr().err


def test_binary_garbage_is_reported_not_a_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    garbage = tmp_path / "garbage.bin"
    garbage.write_bytes(bytes(range(256)) * 4 + b"\n\x00\x01{\n")
    for command in (["show"], ["validate"], ["policy-input"], ["replay", "--output-dir", str(tmp_path)]):
        status = main([*command, str(garbage)])
        captured = capsys.readouterr()
        report = captured.out if command == ["validate"] else captured.err  # validate's report is its output
        assert status == 1, command
        assert f"{garbage}:1: not valid JSON" in report and "Traceback" not in captured.err


# ----------------------------------------------------------- policy-input
def test_policy_input_prints_one_document_per_record(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = tmp_path / "canonical.jsonl"
    replay_files([SEED], output_dir=tmp_path, audit_log=log, environ={})
    lines = log.read_text(encoding="utf-8").splitlines()
    records = event_records(lines)
    assert len(records) < len(lines)  # a chained log (the default): its checkpoints get no document
    assert main(["policy-input", str(log)]) == 0
    captured = capsys.readouterr()
    docs = [json.loads(line) for line in captured.out.splitlines()]
    assert len(docs) == len(records) and captured.err == ""
    for doc, record in zip(docs, records, strict=True):
        assert doc["operation"]["type"] == record["type"]
        assert doc["event"]["id"] == record["event_id"]
    read = next(d for d in docs if d["operation"]["type"] == "DATABASE_READ")
    assert read["operation"]["target"] == "customers.pii_emails"

    assert (
        main(["policy-input", str(log), "--event-type", "tool_call_attempt", "--event-type", "turn_start"])
        == 0
    )
    kinds = {json.loads(line)["event"]["type"] for line in capsys.readouterr().out.splitlines()}
    assert kinds == {"tool_call_attempt", "turn_start"}


def test_policy_input_warns_about_seed_events(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["policy-input", str(SEED)]) == 0
    captured = capsys.readouterr()
    assert len(captured.out.splitlines()) == 66
    assert f"{SEED}:1: a seed event, not a canonical record" in captured.err
    assert len(captured.err.splitlines()) == 1


# ------------------------------------------------------------ subprocesses
def test_console_script_runs(tmp_path: Path) -> None:
    assert CONSOLE_SCRIPT.exists(), "the package is not installed in this virtualenv"
    done = subprocess.run(
        [str(CONSOLE_SCRIPT), "replay", str(SEED), "--output-dir", str(tmp_path)],
        env=_clean_env(),
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "replayed 66 events" in done.stdout
    assert done.stderr == ""  # stderr is not a terminal: no progress bar
    assert (tmp_path / "traces.jsonl").stat().st_size > 0


def test_console_script_exit_status_for_invalid_lines(tmp_path: Path) -> None:
    log = tmp_path / "log.jsonl"
    log.write_text('{"event_type": "turn_start", "timestamp": 5}\n', encoding="utf-8")
    done = subprocess.run(
        [str(CONSOLE_SCRIPT), "validate", str(log)],
        env=_clean_env(),
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 1
    assert f"{log}:1: field 'timestamp': must be string, got integer 5" in done.stdout


def test_python_dash_m_works_like_the_console_script() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "auditspan", "validate", str(SEED)],
        env=_clean_env(),
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "66 valid" in done.stdout


def test_a_closed_pipe_is_not_an_error() -> None:
    # auditspan show log | head -1: the reader goes away early.
    process = subprocess.Popen(
        [sys.executable, "-m", "auditspan", "policy-input", str(SEED)],
        env=_clean_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert process.stdout is not None and process.stderr is not None
    process.stdout.readline()
    process.stdout.close()
    err = process.stderr.read().decode()
    assert process.wait(timeout=60) == 0
    assert "Traceback" not in err and "BrokenPipe" not in err

"""Durability: a writer killed with SIGKILL at random points keeps every record it reported.

The child (``tests/fixtures/crash_writer.py``) writes through
``JsonLinesAuditLog(path, fsync="always")`` and prints each record's id only after
``export()`` (or ``SpanCollector.emit()``) returned. The parent kills it at a random point
(seeded, several rounds on the same file), then checks:

* every id the child reported is in the file (at most one record more: the one written but
  not yet reported when the kill came);
* the file has at most one incomplete line, and only at its end;
* the next writer opening the file appends cleanly after a torn last line (a crash in the
  middle of a write, simulated by cutting the last record), and ``replay.iter_log`` and
  ``validate.validate_files`` report that torn line by its line number.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
from pathlib import Path
from typing import IO

import pytest

from auditspan.replay import LineError, LogLine, iter_log
from auditspan.validate import validate_files

WRITER = Path(__file__).parents[1] / "fixtures" / "crash_writer.py"
SEED = 20261121


def start_writer(
    path: Path, round_no: int, via: str, pad: int, limit: int = 100_000
) -> subprocess.Popen[bytes]:
    command = [sys.executable, str(WRITER), str(path), "--round", str(round_no), "--via", via]
    child = subprocess.Popen(
        [*command, "--pad", str(pad), "--limit", str(limit)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert child.stdout is not None
    first = child.stdout.readline()
    if first != b"READY\n":
        child.kill()
        _, err = child.communicate(timeout=30)
        pytest.fail(f"crash_writer did not start: {first!r} {err.decode(errors='replace')[-2000:]}")
    return child


def read_reported(stdout: IO[bytes], count: int) -> list[str]:
    ids: list[str] = []
    for _ in range(count):
        line = stdout.readline()
        assert line.endswith(b"\n"), f"writer stopped early after {len(ids)} records: {line!r}"
        ids.append(line.decode().strip())
    return ids


def kill_after(child: subprocess.Popen[bytes], reported: int) -> list[str]:
    """Read ``reported`` ids, SIGKILL the child at once, and return every id it got out."""
    assert child.stdout is not None
    ids = read_reported(child.stdout, reported)
    os.kill(child.pid, signal.SIGKILL)
    rest, _ = child.communicate(timeout=30)
    assert child.returncode == -signal.SIGKILL
    complete = rest.split(b"\n")[:-1]  # a half-printed last id was not reported
    return ids + [line.decode() for line in complete]


def file_lines(path: Path) -> list[bytes]:
    return path.read_bytes().splitlines(keepends=True)


def record_ids(lines: list[bytes]) -> tuple[list[str], list[int]]:
    """Ids of the whole records, and the (1-based) numbers of lines that are not records."""
    ids: list[str] = []
    bad: list[int] = []
    for number, line in enumerate(lines, 1):
        try:
            ids.append(json.loads(line)["event_id"])
        except (ValueError, KeyError, TypeError):
            bad.append(number)
    return ids, bad


@pytest.mark.parametrize("via", ["log", "collector"])
def test_sigkill_at_random_points_loses_no_reported_record(tmp_path: Path, via: str) -> None:
    path = tmp_path / "audit.jsonl"
    rng = random.Random(f"{SEED}-{via}")
    reported_all: set[str] = set()
    torn_lines: list[int] = []  # line numbers of torn records, as they stay in the file
    for round_no in range(6):
        # Big records make a kill mid-write more likely; small ones make many kill points.
        pad = rng.choice([100, 20_000, 1_000_000])
        child = start_writer(path, round_no, via, pad)
        reported = kill_after(child, rng.randint(1, 25))
        reported_all.update(reported)

        lines = file_lines(path)
        ids, bad = record_ids(lines)
        # Every reported id is in the file; nothing is there twice.
        assert set(reported) <= set(ids), sorted(set(reported) - set(ids))[:5]
        assert len(ids) == len(set(ids))
        this_round = [i for i in ids if i.startswith(f"evt_r{round_no}n")]
        assert len(this_round) - len(reported) in (0, 1)  # at most the one record in flight
        # At most one incomplete line, and only as the very last line.
        incomplete = [n for n, line in enumerate(lines, 1) if not line.endswith(b"\n")]
        assert incomplete in ([], [len(lines)])
        assert set(bad) - set(incomplete) == set(torn_lines)
        if incomplete:
            torn_lines.append(len(lines))  # a natural tear: the next writer must cope with it

        if round_no in (1, 3) and not incomplete:
            # A crash in the middle of a write (power loss, a kill between two pages of a big
            # write) leaves a prefix of the last record: cut the last line in two.
            data = path.read_bytes()
            last_start = data.rstrip(b"\n").rfind(b"\n") + 1
            cut = last_start + max(1, (len(data) - last_start) // 2)
            path.write_bytes(data[:cut])
            cut_id = json.loads(data[last_start:])["event_id"]
            reported_all.discard(cut_id)  # that record is gone: this is what the crash destroyed
            torn_lines.append(len(file_lines(path)))

    # One more writer appends cleanly after everything, and exits normally.
    child = start_writer(path, 99, via, 10, limit=3)
    out, _ = child.communicate(timeout=60)
    assert child.returncode == 0
    final = out.decode().split()
    lines = file_lines(path)
    ids, bad = record_ids(lines)
    assert len(final) == 3 and reported_all | set(final) <= set(ids)
    assert len(ids) == len(set(ids))
    assert bad == torn_lines  # each torn line is alone on its line, where the crash left it
    assert lines[-1].endswith(b"\n")
    assert ids[-3:] == final  # appended after the torn lines, in order

    # The log reader reports each torn line by its number and reads every record.
    errors = [item for _, item in iter_log(path) if isinstance(item, LineError)]
    good = [item for _, item in iter_log(path) if isinstance(item, LogLine)]
    assert [e.line_no for e in errors] == torn_lines
    assert all(f"{path}:{e.line_no}:" in str(e) for e in errors)
    assert {item.data["event_id"] for item in good} == set(ids)
    # So does `auditspan validate`: every other line is a valid canonical record.
    problems: list[str] = []
    summary = validate_files([path], on_problem=problems.append)
    assert [line for _, line in summary.invalid_lines] == torn_lines
    assert [p.split(":")[1] for p in problems] == [str(n) for n in torn_lines]
    assert summary.valid == summary.canonical == len(ids)


def test_torn_last_line_is_reported_as_incomplete_by_the_reader(tmp_path: Path) -> None:
    """Before any new writer opens the file, the reader calls the cut line incomplete."""
    path = tmp_path / "audit.jsonl"
    child = start_writer(path, 0, "log", 100)
    reported = kill_after(child, 5)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 40])  # cut into the last record
    items = [item for _, item in iter_log(path)]
    errors = [item for item in items if isinstance(item, LineError)]
    assert len(errors) == 1 and errors[0].incomplete
    assert errors[0].line_no == len(file_lines(path))
    assert "incomplete last line" in errors[0].message
    kept = {item.data["event_id"] for item in items if isinstance(item, LogLine)}
    # The cut destroyed the last record (reported or the one in flight), nothing else.
    assert len(set(reported) - kept) <= 1
    assert len(kept - set(reported)) == 0

"""The canonical audit log writer: exporter contract, no loss, bounded queue, fsync, rotation."""

from __future__ import annotations

import io
import json
import os
import stat
import threading
from pathlib import Path

import pytest

from auditspan.audit_log import AuditLogExportResult, JsonLinesAuditLog, open_audit_log
from auditspan.records import build_record, encode_record

from ...conftest import event_records


def rec(i: int) -> dict[str, object]:
    return build_record(
        {"event_type": "base", "n": i, "text": "caf\u00e9 \u2713"},
        event_id=f"evt_{i}",
        operation_type="AGENT_ACTION",
    )


def read(path: Path) -> list[dict[str, object]]:
    """The event records (the chain's checkpoints skipped, its ``chain`` key dropped)."""
    return event_records(path.read_text("utf-8").splitlines())


def test_encoding_is_compact_utf8_one_line() -> None:
    line = encode_record(rec(1))
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    assert b"caf\xc3\xa9" in line  # UTF-8, not \u escapes
    assert b", " not in line and b'": ' not in line


def test_file_gets_every_record_once_in_order(tmp_path: Path) -> None:
    log = JsonLinesAuditLog(tmp_path / "sub" / "audit.jsonl")
    for i in range(1000):
        assert log.export([rec(i)]) is AuditLogExportResult.SUCCESS
    assert log.force_flush(10_000)
    assert [r["n"] for r in read(tmp_path / "sub" / "audit.jsonl")] == list(range(1000))
    assert stat.S_IMODE(os.stat(tmp_path / "sub" / "audit.jsonl").st_mode) == 0o600
    log.shutdown()
    assert log.stats.records_written == 1000 and log.stats.records_failed == 0
    assert log.export([rec(0)]) is AuditLogExportResult.FAILURE  # after shutdown: a result, not an exception


def test_many_threads_no_loss_no_torn_lines(tmp_path: Path) -> None:
    log = JsonLinesAuditLog(tmp_path / "audit.jsonl", max_queue=64, max_block_s=0.01)

    def work(t: int) -> None:
        for i in range(2000):
            log.export([rec(t * 100_000 + i)])

    threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    log.shutdown()
    numbers = [r["n"] for r in read(tmp_path / "audit.jsonl")]
    assert sorted(numbers) == sorted(t * 100_000 + i for t in range(8) for i in range(2000))
    assert log.stats.records_written == 16_000
    assert log.stats.blocked_exports > 0  # the small queue pushed back


def test_text_and_binary_streams(tmp_path: Path) -> None:
    text = io.StringIO()
    log = JsonLinesAuditLog(text)
    log.export([rec(1)])
    log.shutdown()
    assert [r["n"] for r in event_records(text.getvalue().splitlines())] == [1]
    binary = io.BytesIO()
    log = open_audit_log(binary)
    assert log is not None
    log.export([rec(2)])
    log.force_flush()
    assert [r["n"] for r in event_records(binary.getvalue().splitlines())] == [2]


def test_fsync_always_writes_before_export_returns(tmp_path: Path) -> None:
    log = JsonLinesAuditLog(tmp_path / "audit.jsonl", fsync="always")
    log.export([rec(7)])
    assert read(tmp_path / "audit.jsonl")[0]["n"] == 7  # no flush needed
    log.shutdown()


def test_rotation_keeps_retained_files(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    size = len(encode_record(rec(0)))
    # Unchained: the bound below counts records of the unchained size.
    log = JsonLinesAuditLog(path, rotate_bytes=size * 10, retain=2, batch_size=1, fsync="always", chain=False)
    for i in range(45):
        log.export([rec(i)])
    log.shutdown()
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ["audit.jsonl", "audit.jsonl.1", "audit.jsonl.2"]
    kept = read(tmp_path / "audit.jsonl.2") + read(tmp_path / "audit.jsonl.1") + read(path)
    numbers = [r["n"] for r in kept]
    assert numbers == list(range(45 - len(numbers), 45))  # the newest records, contiguous, in order
    assert len(numbers) >= 25  # three files of ~9-10 records each
    assert all(stat.S_IMODE(os.stat(tmp_path / f).st_mode) == 0o600 for f in files)


def test_torn_last_line_stays_alone(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    path.write_bytes(encode_record(rec(1)) + b'{"event_type": "tur')
    log = JsonLinesAuditLog(path)
    log.export([rec(2)])
    log.shutdown()
    lines = path.read_text().splitlines()
    assert lines[1] == '{"event_type": "tur'
    assert json.loads(lines[2])["n"] == 2


def test_bad_settings_are_named(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="fsync"):
        JsonLinesAuditLog(tmp_path / "a", fsync="sometimes")
    with pytest.raises(ValueError, match="max_queue"):
        JsonLinesAuditLog(tmp_path / "a", max_queue=0)
    (tmp_path / "file").write_text("")
    with pytest.raises(ValueError, match="audit_log: cannot open"):
        open_audit_log(tmp_path / "file" / "audit.jsonl")


def test_unencodable_values_still_make_a_valid_line() -> None:
    cyclic: dict[str, object] = {}
    cyclic["self"] = cyclic
    record = build_record(
        {"event_type": "base", "metadata": {"bad": "\udcff", "big": 2**80, "cyc": cyclic}},
        event_id="evt_x",
        operation_type="AGENT_ACTION",
    )
    line = encode_record(record)
    decoded = json.loads(line)
    assert decoded["event_id"] == "evt_x"
    assert decoded["metadata"]["big"] in (2**80, str(2**80))

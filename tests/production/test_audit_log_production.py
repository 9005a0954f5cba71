"""The audit log in production (issue 13, items 1-6): forks, several processes, signals, failing
fsync, failed rotations, hostile paths. Each condition runs as it happens in production -- in
child processes where it must -- and counts every record.

* Fork: a child forked while the writer holds its I/O lock, ``os.fork`` children, a
  ``multiprocessing`` pool with the fork context: every record of parent and children in the
  log exactly once, children exit promptly, their spans exported.
* Four processes, one path, rotation on: 80,000 records across the rotated files exactly once,
  no torn line, no file beyond ``rotate_bytes``.
* SIGTERM, SIGINT, SIGHUP with and without the application's own handler: every record on
  disk, the application's handler ran, the exit status is the expected one; a signal in the
  middle of a write on the main thread does not deadlock.
* fsync failing once (EIO) or always (EINVAL): no line twice, one report; a pipe, a FIFO,
  ``/dev/stdout`` and ``/dev/null`` as targets.
* A rotation whose reopen fails never touches the descriptor number another file gets.
* Paths: symlinks refused unless asked for, wide modes tightened, a FIFO without a reader and
  a file as the parent folder refused with errors that say so.

Figures are printed (``pytest -s``) for the README's reliability section.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import signal
import stat
import subprocess
import sys
import textwrap
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from auditspan import configure
from auditspan.audit_log import AuditLogExportResult, JsonLinesAuditLog
from auditspan.configuration import ConfigurationError
from auditspan.records import build_record

from ..conftest import event_lines, is_checkpoint_line

CHILD_TIMEOUT_S = 120  # generous: a loaded 2-core machine; a hang is what it catches

PRELUDE = """
import json, os, signal, sys, threading, time
from auditspan import configure

def turns(emitter, who, count):
    for n in range(count):
        emitter.emit_turn_start(agent_id="a", turn_id=f"{who}-{n}", metadata={"who": who, "n": n})
        emitter.emit_turn_end(agent_id="a", turn_id=f"{who}-{n}", metadata={"who": who, "n": n})
"""


def run_child(code: str, *args: str, timeout: float = CHILD_TIMEOUT_S) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", PRELUDE + textwrap.dedent(code), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "AUDITSPAN_"))},
    )


def audit_lines(*paths: Path) -> list[bytes]:
    lines: list[bytes] = []
    for path in paths:
        lines.extend(path.read_bytes().splitlines(keepends=True))
    return lines


def turn_records(lines: list[bytes]) -> Counter[tuple[str, int, str]]:
    """(who, n, event_type) of every turn record; every line must be a whole JSON record."""
    seen: Counter[tuple[str, int, str]] = Counter()
    for number, line in enumerate(lines, 1):
        assert line.endswith(b"\n"), f"line {number} is torn: {line[:100]!r}"
        record = json.loads(line)
        meta = record.get("metadata") or {}
        if "who" in meta:
            seen[(meta["who"], meta["n"], record["event_type"])] += 1
    return seen


def expected_turns(**counts: int) -> Counter[tuple[str, int, str]]:
    return Counter(
        {
            (who, n, kind): 1
            for who, count in counts.items()
            for n in range(count)
            for kind in ("turn_start", "turn_end")
        }
    )


def child_report(result: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    assert result.returncode == 0, (
        f"exit {result.returncode}\n{result.stdout[-2000:]}\n{result.stderr[-4000:]}"
    )
    report: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return report


# --- 1. fork ------------------------------------------------------------------------------------

WAIT_CHILD = """
def wait_child(pid, limit=30.0):
    started = time.monotonic()
    while time.monotonic() - started < limit:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status), time.monotonic() - started
        time.sleep(0.01)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    return "hung", time.monotonic() - started
"""


def test_fork_while_the_writer_holds_its_io_lock(tmp_path: Path) -> None:
    """The fork comes while a write holds the writer's I/O lock (held from a thread, as a slow
    write would). The child has fresh locks and its own writer: it writes its records, exits at
    once, and the parent's records queued before the fork are written once, by the parent."""
    code = WAIT_CHILD + textwrap.dedent(
        """
    path, out = sys.argv[1], sys.argv[2]
    handle = configure(audit_log=path, output_dir=out, traces_exporter="auditspan_file")
    emitter = handle.emitter("s")
    log = handle.collector.audit_log
    turns(emitter, "before", 200)
    held = threading.Event()

    def hold_io_lock():
        with log._io_lock:  # a write in progress
            held.set()
            time.sleep(0.5)

    holder = threading.Thread(target=hold_io_lock)
    holder.start()
    held.wait()
    pid = os.fork()
    if pid == 0:
        turns(emitter, "child", 200)
        sys.exit(0)  # as a gunicorn worker does: atexit shuts the handle down
    holder.join()
    turns(emitter, "after", 200)
    status, seconds = wait_child(pid)
    handle.shutdown()
    print(json.dumps({"status": status, "child_exit_s": seconds}))
    """
    )
    path = tmp_path / "audit.jsonl"
    report = child_report(run_child(code, str(path), str(tmp_path / "out")))
    assert report["status"] == 0, report
    assert report["child_exit_s"] < 10, report
    assert turn_records(audit_lines(path)) == expected_turns(before=200, child=200, after=200)
    ids = [json.loads(line)["event_id"] for line in event_lines(audit_lines(path))]
    assert len(ids) == len(set(ids))  # the child's event ids are its own
    # The child's spans went out through its own (re-initialised) batch processor.
    from auditspan.otlp_file import read_spans

    turn_ids = Counter(
        s["attributeMap"].get("auditspan.turn.id", "") for s in read_spans(tmp_path / "out" / "traces.jsonl")
    )
    assert all(turn_ids[f"child-{n}"] == 1 for n in range(200)), turn_ids.most_common(3)
    print(
        f"\n[fork] child forked during a held write: exit status 0 in {report['child_exit_s']:.2f} s; "
        "1,200 records once"
    )


def test_os_fork_children_write_every_record_exactly_once(tmp_path: Path) -> None:
    code = WAIT_CHILD + textwrap.dedent(
        """
    path = sys.argv[1]
    handle = configure(audit_log=path, traces_exporter="none")
    emitter = handle.emitter("s")
    turns(emitter, "parent", 300)  # still queued, in part, when the children are forked
    pids = []
    for c in range(3):
        pid = os.fork()
        if pid == 0:
            turns(emitter, f"child{c}", 300)
            sys.exit(0)
        pids.append(pid)
    turns(emitter, "parent-after", 300)
    results = [wait_child(pid) for pid in pids]
    handle.shutdown()
    print(json.dumps({"results": results}))
    """
    )
    path = tmp_path / "audit.jsonl"
    report = child_report(run_child(code, str(path)))
    assert [status for status, _ in report["results"]] == [0, 0, 0], report
    assert max(seconds for _, seconds in report["results"]) < 10, report
    expected = expected_turns(parent=300, child0=300, child1=300, child2=300, **{"parent-after": 300})
    assert turn_records(audit_lines(path)) == expected
    slowest = max(seconds for _, seconds in report["results"])
    print(
        f"\n[fork] 3 os.fork children + parent: {sum(expected.values())} records, each once; "
        f"exits <= {slowest:.2f} s"
    )


def test_multiprocessing_pool_with_fork_writes_every_record_exactly_once(tmp_path: Path) -> None:
    code = """
    import multiprocessing
    path = sys.argv[1]
    handle = configure(audit_log=path, traces_exporter="none")
    emitter = handle.emitter("s")
    turns(emitter, "parent", 200)

    def task(k):
        turns(emitter, f"task{k}", 100)
        return os.getpid()

    ctx = multiprocessing.get_context("fork")
    started = time.monotonic()
    pool = ctx.Pool(3)
    pids = pool.map(task, range(12), chunksize=1)
    pool.close()
    pool.join()  # workers leave through os._exit: no atexit
    with ctx.Pool(2) as pool2:  # and leaving the block terminates the workers (SIGTERM)
        pids += pool2.map(task, range(12, 20), chunksize=1)
    seconds = time.monotonic() - started
    handle.shutdown()
    print(json.dumps({"workers": len(set(pids)), "seconds": seconds}))
    """
    path = tmp_path / "audit.jsonl"
    report = child_report(run_child(code, str(path)))
    assert report["workers"] > 1
    assert report["seconds"] < 30, report
    expected = expected_turns(parent=200, **{f"task{k}": 100 for k in range(20)})
    assert turn_records(audit_lines(path)) == expected
    print(
        f"\n[fork] Pool(fork), {report['workers']} workers, 20 tasks: "
        f"{sum(expected.values())} records, each once"
    )


def test_locks_other_threads_hold_at_the_fork_are_free_in_the_child(tmp_path: Path) -> None:
    """Another thread is inside an emit (holding the emitter's, the collector's, the redactor's,
    the rule engine's and the classifier's locks) when the fork comes: the child emits anyway."""
    code = WAIT_CHILD + textwrap.dedent(
        """
    path = sys.argv[1]
    handle = configure(audit_log=path, traces_exporter="none")
    emitter = handle.emitter("s")
    collector = handle.collector
    locks = [emitter._lock, collector._lock, collector.redactor._count_lock, collector.rules._lock,
             collector.classifier._lock]
    held, release = threading.Event(), threading.Event()

    def busy_emit():
        for lock in locks:
            lock.acquire()
        held.set()
        release.wait()
        for lock in reversed(locks):
            lock.release()

    thread = threading.Thread(target=busy_emit)
    thread.start()
    held.wait()
    pid = os.fork()
    if pid == 0:
        turns(emitter, "child", 100)
        sys.exit(0)
    status, seconds = wait_child(pid)
    release.set()
    thread.join()
    turns(emitter, "parent", 100)
    handle.shutdown()
    print(json.dumps({"status": status, "seconds": seconds}))
    """
    )
    path = tmp_path / "audit.jsonl"
    report = child_report(run_child(code, str(path)))
    assert report["status"] == 0 and report["seconds"] < 10, report
    assert turn_records(audit_lines(path)) == expected_turns(child=100, parent=100)


def test_forked_children_rotating_one_path_lose_nothing(tmp_path: Path) -> None:
    """Forked children share the parent's open file, and with it its flock: each must get its own
    before it can lock against the others, or their rotations collide."""
    code = WAIT_CHILD + textwrap.dedent(
        """
    from auditspan.audit_log import JsonLinesAuditLog
    from auditspan.records import encode_record
    path = sys.argv[1]
    log = JsonLinesAuditLog(path, rotate_bytes=16 * 1024, retain=1_000, batch_size=16)

    def write(who, count):
        for n in range(count):
            log.export_lines((encode_record({"event_type": "base", "who": who, "n": n}),))

    write("parent", 2_000)
    pids = []
    for c in range(3):
        pid = os.fork()
        if pid == 0:
            write(f"child{c}", 5_000)
            log.shutdown()
            os._exit(0)
        pids.append(pid)
    write("parent-after", 5_000)
    results = [wait_child(pid) for pid in pids]
    log.shutdown()
    print(json.dumps({"results": results}))
    """
    )
    report = child_report(run_child(code, str(tmp_path / "audit.jsonl")))
    assert [status for status, _ in report["results"]] == [0, 0, 0], report
    files = list(tmp_path.iterdir())
    assert len(files) > 10
    seen: Counter[tuple[str, int]] = Counter()
    for file in files:
        assert file.stat().st_size <= 16 * 1024
        for line in event_lines(audit_lines(file)):
            record = json.loads(line)
            seen[(record["who"], record["n"])] += 1
    expected = {("parent", n) for n in range(2_000)} | {("parent-after", n) for n in range(5_000)}
    expected |= {(f"child{c}", n) for c in range(3) for n in range(5_000)}
    assert set(seen) == expected and max(seen.values()) == 1


SMALL_ROTATE_BYTES = 4096
#: What ``_fitting`` leaves free for checkpoints (``_sink._CHECKPOINT_RESERVE``).
LINES_LIMIT = SMALL_ROTATE_BYTES - 600


def _fill_to_the_lines_limit(log: JsonLinesAuditLog, path: Path) -> int:
    """Write records through ``log`` until ``path`` is a few bytes short of where lines stop fitting."""
    from auditspan.records import encode_record

    overhead = 0  # what sealing adds to a line (its chain object)
    n = 0
    while True:
        size = path.stat().st_size
        line = encode_record({"event_type": "base", "who": "filler", "n": n, "pad": ""})
        if overhead and LINES_LIMIT - size < 2 * (len(line) + overhead):
            # One last line that leaves 2 bytes (a seq one digit longer must still fit).
            pad = LINES_LIMIT - size - len(line) - overhead - 2
            line = encode_record({"event_type": "base", "who": "filler", "n": n, "pad": "x" * pad})
            log.export_lines((line,))
            return n + 1
        log.export_lines((line,))
        overhead = path.stat().st_size - size - len(line)
        n += 1


@pytest.mark.parametrize("trigger", ["shutdown", "rotation", "interval"])
def test_checkpoints_of_two_writers_never_push_a_file_beyond_rotate_bytes(
    tmp_path: Path, trigger: str
) -> None:
    """Each writer keeps room for one checkpoint, but several writers share a file: writer A's
    checkpoint fills the room, then writer B's (at its shutdown, at the rotation its next line
    causes, or when its interval is due) must not be appended beyond ``rotate_bytes`` -- it goes
    to a new file. Two logs on one path in one process lock against each other as two
    processes do (each its own open file), and make the interleaving exact."""
    from auditspan.audit_log.verify import verify_logs
    from auditspan.records import encode_record

    path = tmp_path / "audit.jsonl"
    a = JsonLinesAuditLog(path, fsync="always", rotate_bytes=SMALL_ROTATE_BYTES, retain=100)
    b = JsonLinesAuditLog(
        path,
        fsync="always",
        rotate_bytes=SMALL_ROTATE_BYTES,
        retain=100,
        checkpoint_interval_s=0.05 if trigger == "interval" else 10.0,
    )
    assert b.export_lines((encode_record({"event_type": "base", "who": "b", "n": 0}),)).name == "SUCCESS"
    filled = _fill_to_the_lines_limit(a, path)
    assert LINES_LIMIT - 10 <= path.stat().st_size <= LINES_LIMIT  # the interleaving under test
    a.shutdown()  # A's checkpoint takes most of the room kept for checkpoints
    assert path.stat().st_size > LINES_LIMIT + 300
    if trigger == "shutdown":
        b.shutdown()
    else:
        if trigger == "interval":
            time.sleep(0.1)  # B's checkpoint is due before its next line
        assert b.export_lines((encode_record({"event_type": "base", "who": "b", "n": 1}),)).name == "SUCCESS"
        b.shutdown()
    files = sorted(tmp_path.iterdir())
    sizes = {file.name: file.stat().st_size for file in files}
    assert max(sizes.values()) <= SMALL_ROTATE_BYTES, sizes
    assert len(files) == a.stats.rotations + b.stats.rotations + 1 >= 2, sizes
    seen = Counter(
        (record["who"], record["n"]) for record in map(json.loads, event_lines(audit_lines(*files)))
    )
    expected = {("filler", n): 1 for n in range(filled)}
    expected |= {("b", n): 1 for n in range(1 if trigger == "shutdown" else 2)}
    assert seen == Counter(expected)
    assert a.stats.checkpoints == 1 and b.stats.checkpoints >= 1
    report = verify_logs([path])
    assert report.intact, report.problems
    assert report.checkpoints == a.stats.checkpoints + b.stats.checkpoints


def test_a_rotation_releases_the_lock_of_the_old_file_that_an_idle_forked_child_shares(
    tmp_path: Path,
) -> None:
    """A forked child shares its parent's open file, and an flock belongs to the open file: a
    rotation that only closed the old file left it locked as long as a child that never wrote
    (an idle worker) lived, and every other writer still on the old file waited for it."""
    from auditspan.records import encode_record

    path = tmp_path / "audit.jsonl"
    a = JsonLinesAuditLog(path, fsync="always", rotate_bytes=SMALL_ROTATE_BYTES, retain=100)
    b = JsonLinesAuditLog(path, fsync="always", rotate_bytes=SMALL_ROTATE_BYTES, retain=100)
    pid = os.fork()
    if pid == 0:  # an idle worker: holds its copies of the open files, writes nothing
        time.sleep(60)
        os._exit(0)
    try:
        n = 0
        while not a.stats.rotations:  # A rotates the file B still has open
            a.export_lines((encode_record({"event_type": "base", "who": "a", "n": n}),))
            n += 1
        results: list[AuditLogExportResult] = []
        writer = threading.Thread(
            target=lambda: results.append(
                b.export_lines((encode_record({"event_type": "base", "who": "b"}),))
            )
        )
        writer.start()
        writer.join(10)
        hung = writer.is_alive()
    finally:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    writer.join(10)
    assert not hung, "B waited for the lock of the file A rotated away"
    assert results == [AuditLogExportResult.SUCCESS]
    a.shutdown()
    b.shutdown()
    whos = Counter(json.loads(line)["who"] for line in event_lines(audit_lines(*tmp_path.iterdir())))
    assert whos == Counter({"a": n, "b": 1})


def test_the_fork_registry_keeps_nothing_alive(tmp_path: Path) -> None:
    import gc
    import weakref

    log = JsonLinesAuditLog(tmp_path / "audit.jsonl")
    log.export(records(3))
    log.shutdown()
    ref = weakref.ref(log)
    del log
    gc.collect()
    assert ref() is None


# --- 2. several processes, one path, rotation on ------------------------------------------------------

WRITERS = 4
RECORDS_EACH = 20_000
ROTATE_BYTES = 256 * 1024


def test_four_processes_one_path_with_rotation_lose_and_tear_nothing(tmp_path: Path) -> None:
    code = """
    from auditspan.audit_log import JsonLinesAuditLog
    from auditspan.records import encode_record
    path, who, count, rotate = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    log = JsonLinesAuditLog(path, rotate_bytes=rotate, retain=10_000, batch_size=256)
    def line(n):
        fields = {"event_type": "base", "event_id": f"evt_{who}_{n}", "who": who, "n": n}
        fields["pad"] = "x" * (n % 97)
        return encode_record(fields)
    lines = [line(n) for n in range(count)]
    print("READY", flush=True)
    sys.stdin.readline()  # all start together
    for line in lines:
        log.export_lines((line,))
    log.shutdown()
    print(json.dumps({"failed": log.stats.records_failed, "rotations": log.stats.rotations}), flush=True)
    """
    path = tmp_path / "audit.jsonl"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "AUDITSPAN_"))}
    children = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                PRELUDE + textwrap.dedent(code),
                str(path),
                f"p{w}",
                str(RECORDS_EACH),
                str(ROTATE_BYTES),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for w in range(WRITERS)
    ]
    try:
        for child in children:
            assert child.stdout is not None
            assert child.stdout.readline() == "READY\n"
        for child in children:
            assert child.stdin is not None
            child.stdin.write("go\n")
            child.stdin.flush()
        outputs = [child.communicate(timeout=CHILD_TIMEOUT_S) for child in children]
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()
    for child, (out, err) in zip(children, outputs, strict=True):
        assert child.returncode == 0, err[-3000:]
        assert json.loads(out.strip().splitlines()[-1])["failed"] == 0, out
        assert "ERROR" not in err and "Traceback" not in err, err[-3000:]
    rotations = sum(json.loads(out.strip().splitlines()[-1])["rotations"] for out, _ in outputs)

    files = sorted(tmp_path.iterdir(), key=lambda p: -int(p.suffix[1:]) if p.suffix[1:].isdigit() else 0)
    assert len(files) == rotations + 1 > 20
    seen: Counter[tuple[str, int]] = Counter()
    order: dict[str, list[int]] = {f"p{w}": [] for w in range(WRITERS)}
    biggest = 0
    for file in files:  # oldest first
        biggest = max(biggest, file.stat().st_size)
        assert file.stat().st_size <= ROTATE_BYTES, (file.name, file.stat().st_size)
        assert stat.S_IMODE(file.stat().st_mode) == 0o600
        for line in audit_lines(file):
            assert line.endswith(b"\n"), (file.name, line[:80])
            if is_checkpoint_line(line):
                continue
            record = json.loads(line)
            seen[(record["who"], record["n"])] += 1
            order[record["who"]].append(record["n"])
    assert len(seen) == WRITERS * RECORDS_EACH
    assert [key for key, count in seen.items() if count > 1] == []
    for who, numbers in order.items():  # each process's records in its own order, across files
        assert numbers == list(range(RECORDS_EACH)), who
    print(
        f"\n[several processes] {WRITERS} x {RECORDS_EACH:,} records, rotate_bytes={ROTATE_BYTES:,}: "
        f"{len(seen):,} records once in {len(files)} files ({rotations} rotations), "
        f"largest file {biggest:,} bytes, no torn line"
    )


# --- 3. signals -----------------------------------------------------------------------------------------

SIGNAL_CHILD = """
path, marker, signame, app = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
signum = getattr(signal, signame)
if app == "app":
    def app_handler(number, frame):
        with open(marker, "w") as f:
            f.write(str(number))
        os._exit(5)  # leaves at once, as some applications do: no atexit
    signal.signal(signum, app_handler)
handle = configure(audit_log=path, traces_exporter="none")
log = handle.collector.audit_log
log._batch_size = 20
write = log._sink.write

def slow_write(*args, **kwargs):  # a slow disk: the records are still queued when the signal comes
    time.sleep(0.02)
    return write(*args, **kwargs)

log._sink.write = slow_write
emitter = handle.emitter("s")
turns(emitter, "rec", 200)  # 400 records: 20 batches, about 0.4 s of writing
print("READY", flush=True)
time.sleep(60)  # in C: the handler runs at once only if the signal reaches this thread, not a writer's
print("NOT ENDED", flush=True)
"""


@pytest.mark.parametrize("app", ["app", "none"])
@pytest.mark.parametrize("signame", ["SIGTERM", "SIGINT", "SIGHUP"])
def test_signal_writes_the_queued_records_and_keeps_the_outcome(
    tmp_path: Path, signame: str, app: str
) -> None:
    path, marker = tmp_path / "audit.jsonl", tmp_path / "app-handler-ran"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "AUDITSPAN_"))}
    child = subprocess.Popen(
        [sys.executable, "-c", PRELUDE + SIGNAL_CHILD, str(path), str(marker), signame, app],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert child.stdout is not None
    assert child.stdout.readline() == "READY\n"
    sent = time.monotonic()
    child.send_signal(getattr(signal, signame))
    out, err = child.communicate(timeout=CHILD_TIMEOUT_S)
    seconds = time.monotonic() - sent
    signum = getattr(signal, signame)
    if app == "app":
        assert child.returncode == 5, err[-3000:]  # the application's handler decided
        assert marker.read_text() == str(signum)
    else:
        # SIG_DFL (SIGTERM, SIGHUP) re-raised after the flush; SIGINT: KeyboardInterrupt, which
        # Python turns into death by SIGINT.
        assert child.returncode == -signum, (child.returncode, err[-3000:])
        assert not marker.exists()
    assert "NOT ENDED" not in out
    assert turn_records(audit_lines(path)) == expected_turns(rec=200)
    assert seconds < 30
    print(
        f"\n[signal] {signame} ({app} handler): 400 of 400 records on disk, "
        f"exit {child.returncode}, {seconds:.2f} s"
    )


def test_signal_during_a_write_on_the_main_thread_is_handled_after_it(tmp_path: Path) -> None:
    """Under fsync="always" the main thread writes: a SIGTERM that comes during that write must
    not deadlock on the writer's lock, nor tear the line; it ends the process after the write."""
    code = """
    path = sys.argv[1]
    handle = configure(audit_log=path, traces_exporter="none")
    from auditspan.audit_log import JsonLinesAuditLog
    handle.collector.audit_log.shutdown()
    log = handle.collector.audit_log = JsonLinesAuditLog(path, fsync="always")
    emitter = handle.emitter("s")
    turns(emitter, "rec", 50)
    write = log._sink.write
    def write_then_signal(lines):
        os.kill(os.getpid(), signal.SIGTERM)  # arrives while this thread holds the I/O lock
        return write(lines)
    log._sink.write = write_then_signal
    turns(emitter, "last", 1)
    print("NOT ENDED", flush=True)
    """
    path = tmp_path / "audit.jsonl"
    result = run_child(code, str(path), timeout=60)
    assert result.returncode == -signal.SIGTERM, result.stderr[-3000:]
    assert "NOT ENDED" not in result.stdout
    records = turn_records(audit_lines(path))
    assert records == expected_turns(rec=50) + Counter({("last", 0, "turn_start"): 1})


def test_signal_right_after_the_main_thread_takes_the_io_lock_waits_for_the_write(tmp_path: Path) -> None:
    """The handler must tell that its own thread holds the I/O lock from the moment the lock is
    taken: a SIGTERM between taking it and recording who took it made the handler wait its whole
    5 s for itself, and end the process before the line it interrupted was written."""
    code = """
    path = sys.argv[1]
    handle = configure(audit_log=path, traces_exporter="none")
    from auditspan.audit_log import JsonLinesAuditLog
    handle.collector.audit_log.shutdown()
    log = handle.collector.audit_log = JsonLinesAuditLog(path, fsync="always")
    emitter = handle.emitter("s")
    turns(emitter, "rec", 50)

    class SignalOnAcquire:
        def __init__(self, lock):
            self.lock, self.fired = lock, False
        def acquire(self, *args, **kwargs):
            taken = self.lock.acquire(*args, **kwargs)
            if not self.fired:  # handled at once: the lock is taken, nothing more
                self.fired = True
                os.kill(os.getpid(), signal.SIGTERM)
            return taken
        def release(self):
            self.lock.release()
        def _is_owned(self):
            return self.lock._is_owned()

    log._io_lock = SignalOnAcquire(log._io_lock)
    turns(emitter, "last", 1)
    print("NOT ENDED", flush=True)
    """
    path = tmp_path / "audit.jsonl"
    result = run_child(code, str(path), timeout=60)
    assert result.returncode == -signal.SIGTERM, result.stderr[-3000:]
    assert "NOT ENDED" not in result.stdout
    records = turn_records(audit_lines(path))
    assert records == expected_turns(rec=50) + Counter({("last", 0, "turn_start"): 1})


def test_signal_handlers_only_from_the_main_thread_and_never_over_an_ignored_signal(tmp_path: Path) -> None:
    code = """
    signal.signal(signal.SIGHUP, signal.SIG_IGN)  # as under nohup
    thread = threading.Thread(target=configure, kwargs={"audit_log": sys.argv[1], "traces_exporter": "none"})
    thread.start()
    thread.join()
    print(signal.getsignal(signal.SIGTERM) is signal.SIG_DFL)  # configured from a thread: none installed
    configure(audit_log=sys.argv[1], traces_exporter="none")
    print(signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL)
    print(signal.getsignal(signal.SIGHUP) is signal.SIG_IGN)
    """
    result = run_child(code, str(tmp_path / "a.jsonl"), timeout=60)
    assert result.stdout.split() == ["True", "True", "True"], result.stderr[-3000:]


def test_flush_on_signal_can_be_turned_off(tmp_path: Path) -> None:
    code = """
    configure(audit_log=sys.argv[1], traces_exporter="none")
    print(signal.getsignal(signal.SIGTERM) is signal.SIG_DFL)
    """
    result = subprocess.run(
        [sys.executable, "-c", PRELUDE + textwrap.dedent(code), str(tmp_path / "a.jsonl")],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "AUDITSPAN_FLUSH_ON_SIGNAL": "false"},
    )
    assert result.stdout.strip() == "True", result.stderr
    with pytest.raises(ConfigurationError, match="AUDITSPAN_FLUSH_ON_SIGNAL"):
        configure(audit_log=tmp_path / "b.jsonl", environ={"AUDITSPAN_FLUSH_ON_SIGNAL": "perhaps"})


# --- 4. fsync failures and targets that cannot sync ---------------------------------------------------------


def records(count: int, tag: str = "r") -> list[dict[str, Any]]:
    return [
        build_record({"event_type": "base", "n": n}, event_id=f"evt_{tag}{n}", operation_type="A")
        for n in range(count)
    ]


def test_fsync_that_fails_once_writes_no_line_twice(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="auditspan")
    real_fsync, failures = os.fsync, [0]

    def fsync(fd: int) -> None:
        if failures[0] == 0:
            failures[0] += 1
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    path = tmp_path / "audit.jsonl"
    log = JsonLinesAuditLog(path, fsync="batch")
    for record in records(100):
        log.export([record])
    log.force_flush(10_000)
    for record in records(50, "s"):
        log.export([record])
    assert log.force_flush(10_000)
    log.shutdown()
    ids = [json.loads(line)["event_id"] for line in event_lines(audit_lines(path))]
    assert len(ids) == 150 and len(set(ids)) == 150
    assert log.stats.records_written == 150 and log.stats.sync_errors == 1
    assert len([r for r in caplog.records if "fsync" in r.getMessage()]) == 2  # failed; works again
    print("\n[fsync] EIO once: 150 records, 150 lines, one error line")


def test_fsync_that_always_fails_is_reported_once_and_the_log_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="auditspan")
    calls = [0]

    def fsync(fd: int) -> None:
        calls[0] += 1
        raise OSError(errno.EINVAL, os.strerror(errno.EINVAL))  # as on some FUSE mounts

    monkeypatch.setattr(os, "fsync", fsync)
    path = tmp_path / "audit.jsonl"
    log = JsonLinesAuditLog(path, fsync="batch", max_queue=16, max_block_s=0.05)
    slowest = 0.0
    for n, record in enumerate(records(300)):
        started = time.monotonic()
        log.export([record])
        slowest = max(slowest, time.monotonic() - started)
        if n % 100 == 99:
            log.force_flush(10_000)
    started = time.monotonic()
    log.shutdown()
    shutdown_s = time.monotonic() - started
    lines = event_lines(audit_lines(path))
    assert len(lines) == 300 and len({json.loads(line)["event_id"] for line in lines}) == 300
    assert len(audit_lines(path)) > 300  # and the chain's checkpoints, at least the one at shutdown
    assert calls[0] == 1  # tried once, then the log goes on without fsync
    reports = [r.getMessage() for r in caplog.records if r.name.startswith("auditspan")]
    assert len(reports) == 1 and "without fsync" in reports[0], reports
    assert shutdown_s < 5 and slowest < 1.0
    print(
        f"\n[fsync] EINVAL always: 300 lines for 300 records, 1 report, shutdown {shutdown_s * 1000:.0f} ms"
    )


def test_fsync_that_keeps_failing_with_eio_is_reported_once_and_rewrites_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="auditspan")

    def fsync(fd: int) -> None:
        raise OSError(errno.EIO, os.strerror(errno.EIO))

    monkeypatch.setattr(os, "fsync", fsync)
    path = tmp_path / "audit.jsonl"
    log = JsonLinesAuditLog(path, fsync="batch", max_queue=16, max_block_s=0.05)
    for n, record in enumerate(records(300)):
        log.export([record])
        if n % 100 == 99:
            assert not log.force_flush(10_000)  # written, but not known to be on disk: said so
    started = time.monotonic()
    log.shutdown()
    assert time.monotonic() - started < 5
    lines = event_lines(audit_lines(path))
    assert len(lines) == 300 and len({json.loads(line)["event_id"] for line in lines}) == 300
    assert len(audit_lines(path)) > 300  # and the chain's checkpoints, at least the one at shutdown
    assert log.stats.records_written == 300 and log.stats.sync_errors >= 3
    reports = [r.getMessage() for r in caplog.records if r.name.startswith("auditspan")]
    assert len(reports) == 1 and "fsync" in reports[0] and "not again" in reports[0], reports


def test_a_pipe_and_a_fifo_with_a_reader_get_every_line_once(tmp_path: Path) -> None:
    read_fd, write_fd = os.pipe()
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    fifo_reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    os.set_blocking(fifo_reader, True)
    got: dict[int, bytearray] = {read_fd: bytearray(), fifo_reader: bytearray()}

    def drain(fd: int) -> None:
        while chunk := os.read(fd, 65536):
            got[fd] += chunk

    try:
        for target, reader in ((f"/dev/fd/{write_fd}", read_fd), (str(fifo), fifo_reader)):
            log = JsonLinesAuditLog(target)  # default fsync="batch": nothing to sync on a pipe
            thread = threading.Thread(target=drain, args=(reader,))  # reads until the writers close
            thread.start()
            for record in records(1_000):
                log.export([record])
            started = time.monotonic()
            assert log.force_flush(10_000)
            log.shutdown()
            assert time.monotonic() - started < 5
            if reader == read_fd:
                os.close(write_fd)
            thread.join(10)
            lines = event_lines(bytes(got[reader]).splitlines(keepends=True))
            assert [json.loads(line)["n"] for line in lines] == list(range(1_000))
            assert log.stats.sync_errors == 0 and log.stats.records_written == 1_000
    finally:
        for fd in (read_fd, fifo_reader):
            os.close(fd)
    with pytest.raises(OSError, match="cannot rotate"):
        JsonLinesAuditLog("/dev/null", rotate_bytes=1000)


def test_a_terminal_gets_every_line_once() -> None:
    master, slave = os.openpty()
    got = bytearray()

    def drain() -> None:
        try:
            while chunk := os.read(master, 65536):
                got.extend(chunk)
        except OSError:  # EIO: every writer of the terminal closed it
            pass

    thread = threading.Thread(target=drain)
    thread.start()
    try:
        log = JsonLinesAuditLog(os.ttyname(slave))
        os.close(slave)
        for record in records(300):
            log.export([record])
        started = time.monotonic()
        log.shutdown()
        assert time.monotonic() - started < 5
        thread.join(10)
    finally:
        os.close(master)
    lines = event_lines(line for line in bytes(got).replace(b"\r\n", b"\n").splitlines() if line)
    assert [json.loads(line)["n"] for line in lines] == list(range(300))
    assert log.stats.sync_errors == log.stats.write_errors == 0


def test_dev_null_and_dev_stdout_work_without_fsync(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="auditspan")
    log = JsonLinesAuditLog("/dev/null")
    for record in records(500):
        log.export([record])
    started = time.monotonic()
    log.shutdown()
    assert time.monotonic() - started < 5
    assert log.stats.records_written == 500 and log.stats.write_errors == log.stats.sync_errors == 0
    assert [r.getMessage() for r in caplog.records] == []
    # /dev/stdout (a pipe here, as in a container): every record on stdout once.
    code = """
    handle = configure(audit_log="/dev/stdout", traces_exporter="none")
    turns(handle.emitter("s"), "out", 300)
    handle.shutdown()
    """
    result = run_child(code, timeout=60)
    assert result.returncode == 0, result.stderr[-3000:]
    lines = [line.encode() + b"\n" for line in result.stdout.splitlines() if line.startswith("{")]
    assert turn_records(lines) == expected_turns(out=300)


# --- 5. a failed rotation never touches a descriptor it no longer owns -----------------------------------


def test_failed_rotation_never_touches_the_descriptor_another_file_gets(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    log = JsonLinesAuditLog(path, rotate_bytes=2_000, retain=100, batch_size=8)
    sink = log._sink
    old_fd = sink._fd
    reopen = sink._open
    may_reopen = threading.Event()
    failed = threading.Event()

    def failing_open() -> None:
        if not may_reopen.is_set():
            failed.set()
            raise OSError(errno.EMFILE, os.strerror(errno.EMFILE))
        reopen()

    sink._open = failing_open  # type: ignore[method-assign]
    for record in records(100):  # about 6 KB: the rotation comes, and its reopen fails
        log.export([record])
    assert failed.wait(10)
    # The application opens files; the lowest free number is the one the writer closed, if it did.
    mine = tmp_path / "mine.txt"
    mine.write_bytes(b"the application's own data\n")
    fillers = []
    fd = os.open(mine, os.O_RDWR | os.O_APPEND)
    while fd < old_fd:
        fillers.append(fd)
        fd = os.open(mine, os.O_RDWR | os.O_APPEND)
    try:
        may_reopen.set()  # the writer retries now
        assert log.force_flush(10_000)
        log.shutdown()
        assert mine.read_bytes() == b"the application's own data\n"
        os.fstat(fd)  # still open: nobody closed it
        assert os.lseek(fd, 0, os.SEEK_END) == len(b"the application's own data\n")
    finally:
        for f in (*fillers, fd):
            os.close(f)
    files = [p for p in tmp_path.iterdir() if p.name.startswith("audit.jsonl")]
    ids = [json.loads(line)["event_id"] for line in event_lines(audit_lines(*files))]
    assert sorted(ids) == sorted(f"evt_r{n}" for n in range(100))


# --- 6. paths ---------------------------------------------------------------------------------------------


def test_a_symlink_is_not_followed_unless_asked(tmp_path: Path, clean_environment: None) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me\n")
    link = tmp_path / "audit.jsonl"
    link.symlink_to(victim)
    with pytest.raises(ConfigurationError) as caught:
        configure(audit_log=link, traces_exporter="none", set_global=False, flush_on_signal=False)
    message = str(caught.value)
    assert message.startswith("audit_log:") and str(link) in message and "symbolic link" in message
    assert victim.read_text() == "keep me\n"
    with pytest.raises(ConfigurationError, match=r"^AUDITSPAN_AUDIT_LOG / audit_log: .*symbolic link"):
        configure(environ={"AUDITSPAN_AUDIT_LOG": str(link)}, traces_exporter="none", set_global=False)
    # Asked for explicitly, it is followed.
    log = JsonLinesAuditLog(link, follow_symlinks=True)
    log.export(records(1))
    log.shutdown()
    assert victim.read_text().startswith("keep me\n{")


def test_an_existing_file_with_a_wider_mode_is_tightened_and_logged_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="auditspan")
    path = tmp_path / "audit.jsonl"
    path.write_bytes(b"")
    os.chmod(path, 0o666)
    log = JsonLinesAuditLog(path)
    log.export(records(3))
    log.shutdown()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    reports = [r.getMessage() for r in caplog.records]
    assert len(reports) == 1 and "0666" in reports[0] and "0600" in reports[0], reports


def test_a_fifo_without_a_reader_is_refused_at_once(tmp_path: Path, clean_environment: None) -> None:
    fifo = tmp_path / "audit.fifo"
    os.mkfifo(fifo)
    outcome: list[BaseException | None] = []

    def attempt() -> None:
        try:
            configure(audit_log=fifo, traces_exporter="none", set_global=False, flush_on_signal=False)
            outcome.append(None)
        except BaseException as exc:
            outcome.append(exc)

    thread = threading.Thread(target=attempt, daemon=True)
    thread.start()
    thread.join(10)
    if thread.is_alive():  # it hangs in open(): give it a reader so the thread can end
        os.close(os.open(fifo, os.O_RDONLY | os.O_NONBLOCK))
        pytest.fail("configure() hangs on a FIFO with no reader")
    assert isinstance(outcome[0], ConfigurationError), outcome
    assert str(fifo) in str(outcome[0]) and "FIFO with no reader" in str(outcome[0])


def test_a_file_as_the_parent_folder_is_named(tmp_path: Path, clean_environment: None) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x")
    for target in (blocker / "audit.jsonl", blocker / "sub" / "audit.jsonl"):
        with pytest.raises(ConfigurationError) as caught:
            configure(audit_log=target, traces_exporter="none", set_global=False, flush_on_signal=False)
        message = str(caught.value)
        assert message.startswith("audit_log:") and str(target) in message
        assert f"its parent {str(blocker)!r} is a file, not a folder" in message, message

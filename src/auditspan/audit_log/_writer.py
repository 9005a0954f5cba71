"""Writers of the canonical audit log: one JSON line per record.

``JsonLinesAuditLog`` is an exporter in the SDK's sense -- ``export(records)``
returns a result instead of raising, ``force_flush(timeout_millis)`` and
``shutdown()`` -- that appends to a file (default) or to any text or binary
stream::

    log = JsonLinesAuditLog("audit.jsonl", fsync="batch")
    log.export([record])
    log.force_flush()

How it keeps records and the agent safe:

* The agent thread only encodes the record (a few µs with orjson) and puts
  the line on a bounded queue; a background thread writes batches.
* The queue is bounded (``max_queue`` lines). When it is full the agent
  thread waits up to ``max_block_s`` for room (back-pressure) and then writes
  the line itself, so memory stays bounded and no accepted record is dropped.
* ``fsync``: ``"always"`` writes and fsyncs every record on the agent's thread
  before ``export`` returns (strict: a record reported written survives a
  crash); ``"batch"`` (default) fsyncs after every batch the writer thread
  writes; ``"interval"`` at most every ``fsync_interval_s``; ``"none"`` leaves
  it to the OS.
* A write that fails (full disk, revoked permission) is retried by the writer
  with back-off while the queue holds the records; once the queue is full and
  the bounded wait is over, a record whose own write also fails is counted in
  ``stats.records_failed`` and reported in one error log line per episode --
  the only way a record can be lost, and never silently. Lines written before
  a failure are never written again: what was written and what was synced are
  tracked apart, so an fsync that fails re-writes nothing. An fsync the target
  does not support (``EINVAL``, as on some FUSE mounts) is reported once and
  the log goes on without fsync; other fsync errors (``EIO``) are reported
  once per episode and counted in ``stats.sync_errors``.
* Files are created with mode 0600; an existing file with a wider mode is
  tightened to 0600 (``fchmod``, logged once). The last path component is
  never followed if it is a symbolic link, unless ``follow_symlinks=True``
  (the system's ``/dev/stdout``, ``/dev/stderr`` and ``/dev/fd/N`` are always
  allowed). A FIFO is opened without blocking: one with no reader is refused.
* Files rotate by size (``rotate_bytes``) keeping ``retain`` old files
  (``audit.jsonl.1`` is the newest old one). Any number of processes may
  append to the same path, rotation on: each write takes an exclusive
  ``flock`` on the open log file, checks that the path still names the file
  it holds (another process may have rotated it -- then it opens the path
  anew), rotates if the lines would overflow ``rotate_bytes``, writes whole
  lines, and releases the lock. So no process writes into a file that was
  rotated away, no two rotate at once, and a file never exceeds
  ``rotate_bytes`` unless it holds a single record larger than that (a
  checkpoint that does not fit goes to a new file, as a line does).
* A pipe, a FIFO, a terminal, ``/dev/stdout`` or ``/dev/null`` works as a
  target: no rotation (``rotate_bytes`` is refused), no fsync, no seek; lines
  are written in pieces of at most ``PIPE_BUF`` bytes made of whole lines, so
  several processes sharing one pipe never interleave inside a line (a single
  line longer than ``PIPE_BUF`` is the exception).
* Fork-safe: after ``os.fork()`` the child gets fresh locks, an empty queue
  (the parent writes what it had queued), its own writer thread (started at
  its first record) and its own open file; see ``auditspan._fork``. A
  ``multiprocessing`` child flushes its log when it exits.
"""

from __future__ import annotations

import enum
import logging
import os
import sys
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Protocol, runtime_checkable

from .. import _fork, _signals
from ..records import encode_record
from ._chain import DEFAULT_CHECKPOINT_EVERY, DEFAULT_CHECKPOINT_INTERVAL_S, Checkpoint, Signer, WriterChain
from ._sink import _FORK_WAIT_S, _SYNC_UNSUPPORTED, FSYNC_POLICIES, _Sink, _WriteError

if sys.platform != "win32":
    pass

__all__ = [
    "FSYNC_POLICIES",
    "AuditLogExportResult",
    "AuditLogExporter",
    "AuditLogStats",
    "JsonLinesAuditLog",
    "open_audit_log",
]

_logger = logging.getLogger("auditspan.audit_log")


class AuditLogExportResult(enum.Enum):
    """What ``export`` reports, as the SDK's ``SpanExportResult``."""

    SUCCESS = 0
    FAILURE = 1


@runtime_checkable
class AuditLogExporter(Protocol):
    """Anything that takes canonical records: the exporter contract of the OTel SDK."""

    def export(self, records: Sequence[dict[str, Any]]) -> AuditLogExportResult:
        """Accept records; must not raise."""

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        """Write out everything accepted so far; True when done in time."""

    def shutdown(self) -> None:
        """Flush and release resources; later exports fail."""


@dataclass
class AuditLogStats:
    """Counters of a ``JsonLinesAuditLog`` (read them; they only grow).

    After a fork the child starts from zero: its counters are its own.
    ``sync_errors`` counts fsyncs that failed (the lines were written, and are
    not written again).
    """

    records_accepted: int = 0
    records_written: int = 0
    checkpoints: int = 0
    records_failed: int = 0
    bytes_written: int = 0
    write_errors: int = 0
    blocked_exports: int = 0
    rotations: int = 0
    sync_errors: int = 0


#: Every open JsonLinesAuditLog of this process (weakly): what a signal flushes.
_live: weakref.WeakSet[JsonLinesAuditLog] = weakref.WeakSet()
_mp_exit_registered = False


def _live_logs() -> list[JsonLinesAuditLog]:
    for _ in range(3):
        try:
            return list(_live)
        except RuntimeError:  # changed size during iteration (another thread opened a log)
            continue
    return []


def _flush_for_signal(deadline: float) -> bool:
    """Write and sync every live log before ``deadline``; False when this thread is mid-write."""
    logs = _live_logs()
    if any(log._io_held_here() for log in logs):
        return False
    for log in logs:
        if not log._closed:
            log.force_flush(max(0, int((deadline - time.monotonic()) * 1000)))
            # The process may end now: close its chain (bounded, as the flush).
            log._maybe_checkpoint("signal", force=True, timeout=max(0.0, deadline - time.monotonic()))
    return True


_signals.on_signal(_signals.AUDIT_LOGS, _flush_for_signal)


def _flush_at_process_exit() -> None:
    """A multiprocessing child leaves through ``os._exit``: no atexit, so flush here."""
    for log in _live_logs():
        if not log._closed:
            log.force_flush(int(_signals.FLUSH_TIMEOUT_S * 1000))


def _register_multiprocessing_exit() -> None:
    """In a child of ``multiprocessing``: flush at its exit (its finalizers run, atexit does not)."""
    global _mp_exit_registered
    if _mp_exit_registered:
        return
    util = sys.modules.get("multiprocessing.util")
    if util is not None:
        util.Finalize(None, _flush_at_process_exit, exitpriority=100)
        _mp_exit_registered = True


class JsonLinesAuditLog:
    """Appends canonical records as JSON lines to a file or stream (see the module doc).

    Args:
        target: a path (created with mode 0600, parent folders too) or an open
            text/binary stream (``sys.stdout``, ``io.StringIO``, a socket file).
            A path may name a pipe, a FIFO with a reader, a terminal,
            ``/dev/stdout`` or ``/dev/null``: written without rotation or fsync.
        fsync: ``"always"``, ``"batch"`` (default), ``"interval"`` or ``"none"``.
        fsync_interval_s: the period for ``"interval"``.
        max_queue: lines the queue holds before ``export`` applies back-pressure.
        max_block_s: the longest ``export`` waits for room before writing itself.
        rotate_bytes: rotate the file when it would grow beyond this size.
        retain: how many rotated files to keep.
        follow_symlinks: write through a symbolic link at the path's last
            component (off: such a path is refused, so that nobody can point
            the log at another file).
        chain: seal every line into this writer's hash chain and write
            checkpoints (see ``auditspan._chain``); on by default, as the log is
            evidence; ``False`` writes plain records.
        signer: signs checkpoints (``auditspan.signing.load_signer(path)``).
        checkpoint_every, checkpoint_interval_s: a checkpoint every this many
            records, or this many seconds after the first record none covers.
        witness: called with each checkpoint written, off the I/O lock (the
            writer thread, or the agent's under ``fsync="always"``); must not
            block. ``configure()`` sends it into the trace pipeline.

    Raises:
        ValueError: for an unknown ``fsync`` policy or a non-positive bound.
        OSError: when the file cannot be opened; ``strerror`` says what is wrong
            with the path (a link, a FIFO with no reader, a file as a parent
            folder, a mode that cannot be tightened, ...), the message names it.
    """

    def __init__(
        self,
        target: str | os.PathLike[str] | IO[Any],
        *,
        fsync: str = "batch",
        fsync_interval_s: float = 1.0,
        max_queue: int = 65_536,
        max_block_s: float = 0.5,
        rotate_bytes: int | None = None,
        retain: int = 5,
        batch_size: int = 4_096,
        follow_symlinks: bool = False,
        chain: bool = True,
        signer: Signer | None = None,
        checkpoint_every: int = DEFAULT_CHECKPOINT_EVERY,
        checkpoint_interval_s: float = DEFAULT_CHECKPOINT_INTERVAL_S,
        witness: Callable[[Checkpoint], None] | None = None,
    ) -> None:
        if fsync not in FSYNC_POLICIES:
            raise ValueError(f"fsync must be one of {', '.join(FSYNC_POLICIES)}; got {fsync!r}")
        for name, value in (("max_queue", max_queue), ("batch_size", batch_size), ("retain", retain + 1)):
            if value < 1:
                raise ValueError(f"{name} must be positive, got {value}")
        if rotate_bytes is not None and rotate_bytes < 1:
            raise ValueError(f"rotate_bytes must be positive, got {rotate_bytes}")
        self.fsync = fsync
        self._fsync_interval_s = fsync_interval_s
        self._max_queue = max_queue
        self._max_block_s = max_block_s
        self._batch_size = batch_size
        self._sink = _Sink(target, rotate_bytes, retain, follow_symlinks=follow_symlinks)
        self._sink.on_sync_error = self._sync_failed
        if chain:
            name = self._sink.path.name if self._sink.path is not None else ""
            self._sink.chain = WriterChain(
                log_name=name, signer=signer, every=checkpoint_every, interval_s=checkpoint_interval_s
            )
        self.witness = witness
        self.stats = AuditLogStats()
        self._queue: deque[bytes] = deque()
        self._lock = threading.RLock()  # the lock a Condition() makes for itself, named for export_lines
        self._cond = threading.Condition(self._lock)
        # Never taken while holding ``_lock`` (and never the other way round but in a fork's
        # preparation, which takes ``_lock`` first): the writer and the fork cannot deadlock.
        # Reentrant only so that a signal handler can ask whether its own thread holds it (it
        # must then not wait for itself): ``_is_owned()`` is set within the acquire, so that no
        # signal can come between taking the lock and recording who took it. Never re-entered.
        self._io_lock = threading.RLock()
        self._in_flight = 0
        self._closed = False
        self._last_sync = time.monotonic()
        self._failing = False
        self._sync_failing = False
        self._held_for_fork: list[Any] = []
        self._mp_hooked = False  # registered with multiprocessing's after-fork hooks
        # "always" writes on the agent's thread; a pipe-like target does not, as its reader
        # could stall the agent: it goes through the writer thread (there is no fsync to wait for).
        self._direct = fsync == "always" and (self._sink.regular or self._sink.stream is not None)
        self._thread: threading.Thread | None = None
        if not self._direct:
            self._start_writer()
        _live.add(self)
        _fork.track(self, tier=1)

    @property
    def chained(self) -> bool:
        """Lines are sealed into a hash chain, with checkpoints."""
        return self._sink.chain is not None

    @property
    def path(self) -> Path | None:
        """The file written to, or None for a stream."""
        return self._sink.path

    def __repr__(self) -> str:
        return f"JsonLinesAuditLog({str(self._sink.path or self._sink.stream)!r}, fsync={self.fsync!r})"

    def _start_writer(self) -> None:
        thread = threading.Thread(target=self._run, name="auditspan-audit-log", daemon=True)
        thread.start()
        self._thread = thread

    # -- agent side ------------------------------------------------------------
    def export(self, records: Sequence[dict[str, Any]]) -> AuditLogExportResult:
        """Encode and queue (or, under ``fsync="always"``, write and fsync) the records."""
        try:
            return self.export_lines([encode_record(record) for record in records])
        except Exception:
            _logger.exception("auditspan: audit log export failed")
            return AuditLogExportResult.FAILURE

    def export_lines(self, lines: Sequence[bytes]) -> AuditLogExportResult:
        """Queue already-encoded lines (each ending in a newline). Never raises."""
        if self._closed:
            with self._cond:
                self.stats.records_failed += len(lines)
            return AuditLogExportResult.FAILURE
        if self._thread is None:
            if self._direct:
                return self._write_now(lines)
            with self._lock:  # a forked child's first record: its own writer starts now
                if self._thread is None:
                    try:
                        self._start_writer()
                    except RuntimeError:  # no new threads (interpreter shutdown): write here
                        return self._write_now(lines)
        # The condition's own lock, taken directly: the same mutual exclusion without the two
        # Python-level calls of ``Condition.__enter__``/``__exit__`` on every record.
        with self._lock:
            self.stats.records_accepted += len(lines)
            if len(self._queue) + len(lines) > self._max_queue:
                self.stats.blocked_exports += 1
                deadline = time.monotonic() + self._max_block_s
                while len(self._queue) + len(lines) > self._max_queue and not self._closed:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        break
                    self._cond.wait(remaining)
                if len(self._queue) + len(lines) > self._max_queue:
                    # Still no room: write on this thread rather than drop or grow without bound.
                    self.stats.records_accepted -= len(lines)
                    fallback = True
                else:
                    fallback = False
            else:
                fallback = False
            if not fallback:
                # Only an empty queue has a writer waiting for it (with records queued it is busy
                # writing and looks again before it waits): waking it per record would hand the
                # GIL back and forth on every event.
                idle = not self._queue
                self._queue.extend(lines)
                if idle:
                    self._cond.notify_all()
                return AuditLogExportResult.SUCCESS
        if self._sink.may_stall:
            # A stream (pipe, socket, stdout) that took nothing for max_block_s may never take
            # anything again: writing here could hang the agent. Count the loss instead.
            with self._cond:
                self.stats.records_accepted += len(lines)
            return self._lost(lines, TimeoutError(f"the stream took nothing for {self._max_block_s} s"))
        return self._write_now(lines)

    def _lost(self, lines: Sequence[bytes], exc: BaseException) -> AuditLogExportResult:
        with self._cond:
            self.stats.records_failed += len(lines)
            self.stats.write_errors += 1
        self._report_failure(exc)
        return AuditLogExportResult.FAILURE

    def _write_now(self, lines: Sequence[bytes]) -> AuditLogExportResult:
        with self._cond:
            self.stats.records_accepted += len(lines)
        synced = True
        self._io_acquire()
        try:
            done, rotations, failure = self._write_lines(lines)
            if failure is None and self.fsync == "always":
                synced = self._sync_locked()
        finally:
            self._io_release()
        self._witness()
        with self._cond:
            self._count_written(lines, done, rotations)
            if failure is not None:
                self.stats.records_failed += len(lines) - done
                self.stats.write_errors += 1
        if failure is not None:
            self._report_failure(failure)
            return AuditLogExportResult.FAILURE
        return AuditLogExportResult.SUCCESS if synced else AuditLogExportResult.FAILURE

    def _write_lines(self, lines: Sequence[bytes]) -> tuple[int, int, BaseException | None]:
        """Write (the caller holds the I/O lock): lines written, rotations, and the failure if any."""
        try:
            return len(lines), self._sink.write(lines), None
        except _WriteError as exc:
            return exc.done, exc.rotations, exc.cause
        except Exception as exc:  # a bug must not kill the writer thread; the lines are retried
            return 0, 0, exc

    def _count_written(self, lines: Sequence[bytes], done: int, rotations: int) -> None:
        """Count a write's first ``done`` lines and its rotations (the caller holds ``_cond``)."""
        self.stats.rotations += rotations
        self.stats.records_written += done
        self.stats.bytes_written += sum(len(line) for line in lines[:done])

    def _count_rotations(self, rotations: int) -> None:
        """Count the rotations a checkpoint took (it went to a new file)."""
        if rotations:
            with self._cond:
                self.stats.rotations += rotations

    # -- the I/O lock ------------------------------------------------------------
    def _io_acquire(self, timeout: float = -1) -> bool:
        return self._io_lock.acquire(timeout=timeout)

    def _io_held_here(self) -> bool:
        """This thread holds the I/O lock (a signal handler asks: it must not wait for itself)."""
        return bool(self._io_lock._is_owned())  # type: ignore[attr-defined]  # RLock's, as Condition uses

    def _io_release(self) -> None:
        self._io_lock.release()
        if _signals._deferred:  # a signal came during this write: handle it now that it is whole
            _signals.run_deferred()

    # -- writer thread ---------------------------------------------------------
    def _run(self) -> None:
        _signals.block_in_this_thread()
        backoff = 0.05
        while True:
            with self._cond:
                while not self._queue and not self._closed:
                    wait = self._idle_wait()
                    self._cond.wait(wait)
                    if wait is not None and not self._queue:
                        break
                if not self._queue and self._closed:
                    return
                batch = [self._queue.popleft() for _ in range(min(self._batch_size, len(self._queue)))]
                self._in_flight = len(batch)
            if not batch:
                self._maybe_checkpoint()
                self._maybe_sync(idle=True)
                continue
            self._io_acquire()
            try:
                done, rotations, failure = self._write_lines(batch)
            finally:
                self._io_release()
            self._witness()
            with self._cond:
                self._count_written(batch, done, rotations)
                if failure is not None:
                    self.stats.write_errors += 1
                    # Only the lines not in the file go back, in order: a retry never duplicates.
                    self._queue.extendleft(reversed(batch[done:]))
                self._in_flight = 0
                closed = self._closed
                if failure is None and self._failing:
                    self._failing = False
                    _logger.warning("auditspan: audit log %s is writable again", self)
                self._cond.notify_all()
            if failure is None:
                backoff = 0.05
                self._maybe_sync(idle=False)
                continue
            self._report_failure(failure)
            if closed:
                with self._cond:
                    self.stats.records_failed += len(self._queue)
                    self._queue.clear()
                    self._cond.notify_all()
                return
            time.sleep(backoff)
            backoff = min(backoff * 2, 2.0)

    def _idle_wait(self) -> float | None:
        """How long the idle writer sleeps: until the fsync interval or the next checkpoint is due."""
        waits = [self._fsync_interval_s] if self.fsync == "interval" else []
        chain = self._sink.chain
        if chain is not None:
            due = chain.seconds_to_due()  # read without the I/O lock: a stale value only wakes early
            if due is not None:
                waits.append(due + 0.001)
        return min(waits) if waits else None

    def _maybe_checkpoint(
        self, reason: str = "interval", *, force: bool = False, timeout: float = -1
    ) -> None:
        """Write a checkpoint when one is due (``force``: whenever lines are uncovered); gives up
        when the I/O lock is not free within ``timeout`` seconds (a write stuck on a stalled pipe)."""
        chain = self._sink.chain
        if chain is None or not (chain.pending() if force else chain.due()):
            return
        if not self._io_acquire(timeout):
            return
        rotations = 0
        try:
            rotations = self._sink.checkpoint(reason)
        except OSError as exc:
            self._report_failure(exc)
        except Exception:  # a bug must not kill the writer thread
            _logger.exception("auditspan: audit log checkpoint failed")
        finally:
            self._io_release()
        self._count_rotations(rotations)
        self._witness()

    def _witness(self) -> None:
        """Hand the checkpoints just written to the witness (off the I/O lock). Never raises."""
        sink = self._sink
        if not sink.witnessed:
            return
        with self._cond:
            checkpoints, sink.witnessed = sink.witnessed, []
            self.stats.checkpoints += len(checkpoints)
        witness = self.witness
        if witness is None:
            return
        for checkpoint in checkpoints:
            try:
                witness(checkpoint)
            except Exception:
                _logger.exception("auditspan: the audit log's checkpoint witness failed")

    def _maybe_sync(self, *, idle: bool) -> None:
        if self.fsync == "none":
            return
        now = time.monotonic()
        if self.fsync == "batch" or now - self._last_sync >= self._fsync_interval_s:
            if idle and self.fsync == "batch":
                return
            self._io_acquire()
            try:
                self._sync_locked()
            finally:
                self._io_release()
            self._last_sync = now

    def _sync_locked(self) -> bool:
        """fsync (the caller holds the I/O lock); a failure is reported, never retried by rewriting."""
        try:
            self._sink.sync()
        except OSError as exc:
            self._sync_failed(exc)
            return not self._sink.sync_enabled
        if self._sync_failing:
            self._sync_failing = False
            _logger.warning("auditspan: fsync of audit log %s works again", self)
        return True

    def _sync_failed(self, exc: OSError) -> None:
        self.stats.sync_errors += 1
        if exc.errno in _SYNC_UNSUPPORTED:
            if self._sink.sync_enabled:
                self._sink.sync_enabled = False
                _logger.warning(
                    "auditspan: audit log %s cannot be fsynced (%s); writing on without fsync", self, exc
                )
            return
        if not self._sync_failing:
            self._sync_failing = True
            _logger.error(
                "auditspan: fsync of audit log %s failed: %s; the lines are written (not again), "
                "their durability is not known",
                self,
                exc,
            )

    def _report_failure(self, exc: BaseException) -> None:
        if not self._failing:
            self._failing = True
            _logger.error("auditspan: cannot write audit log %s: %s", self, exc)

    # -- lifecycle -------------------------------------------------------------
    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        """Wait until every accepted record is written (and synced per policy)."""
        deadline = time.monotonic() + timeout_millis / 1000
        with self._cond:
            while self._queue or self._in_flight:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(remaining)
        if self.fsync == "none":
            return True
        if not self._io_acquire(max(0.0, deadline - time.monotonic())):
            return False
        try:
            return self._sync_locked()
        finally:
            self._io_release()

    def shutdown(self, timeout_millis: int = 30_000) -> None:
        """Write what is queued (within the timeout), stop the writer and close the file."""
        if self._closed:
            return
        self.force_flush(timeout_millis)
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout_millis / 1000)
        with self._cond:
            if self._queue:
                self.stats.records_failed += len(self._queue)
                _logger.error(
                    "auditspan: %d audit records could not be written before shutdown", len(self._queue)
                )
                self._queue.clear()
        if not self._io_acquire(timeout_millis / 1000):
            return  # a write is stuck (a stalled pipe): leave the descriptor to the process's exit
        rotations = 0
        try:
            rotations = self._sink.checkpoint("shutdown")
        except Exception as exc:
            self._report_failure(exc)
        try:
            self._sink.close()
        except OSError as exc:
            self._sync_failed(exc)
        finally:
            self._io_release()
        self._count_rotations(rotations)
        self._witness()
        _live.discard(self)

    # -- fork --------------------------------------------------------------------
    def _fork_prepare(self) -> None:
        held = self._held_for_fork
        held.clear()
        # Bounded: a write stuck on a stalled pipe must not hang the fork. The child gets
        # fresh locks in any case; waiting only keeps the state it copies consistent.
        for lock in (self._lock, self._io_lock):
            if lock.acquire(timeout=_FORK_WAIT_S):
                held.append(lock)
        if "multiprocessing.util" in sys.modules and not self._mp_hooked:
            # Registered here in the parent; runs in every multiprocessing child after the fork.
            sys.modules["multiprocessing.util"].register_after_fork(self, _after_multiprocessing_fork)
            self._mp_hooked = True

    def _fork_parent(self) -> None:
        for lock in reversed(self._held_for_fork):
            lock.release()
        self._held_for_fork.clear()

    def _fork_child(self) -> None:
        global _mp_exit_registered
        _mp_exit_registered = False
        _signals._forget_after_fork()
        self._held_for_fork.clear()
        self._lock = threading.RLock()
        self._cond = threading.Condition(self._lock)
        self._io_lock = threading.RLock()
        # What the parent had queued is the parent's to write: the child keeps none of it.
        self._queue = deque()
        self._in_flight = 0
        self._failing = self._sync_failing = False
        self.stats = AuditLogStats()
        self._thread = None  # started at the child's first record
        self._sink.after_fork_in_child()


def _after_multiprocessing_fork(log: JsonLinesAuditLog) -> None:
    _register_multiprocessing_exit()


def open_audit_log(
    target: str | os.PathLike[str] | IO[Any] | AuditLogExporter | None,
) -> AuditLogExporter | None:
    """Resolve the ``audit_log`` argument: a path or stream opens a ``JsonLinesAuditLog``;
    an exporter is used as it is; None means no log.

    Raises ``ValueError`` naming the path, and what is wrong with it, when it cannot be
    opened for appending.
    """
    if target is None:
        return None
    if isinstance(target, (str, os.PathLike)):
        try:
            return JsonLinesAuditLog(target)
        except OSError as exc:
            raise ValueError(
                f"audit_log: cannot open {os.fspath(target)!r} for appending: {exc.strerror}"
            ) from exc
    if hasattr(target, "write"):
        stream: IO[Any] = target  # type: ignore[assignment]
        return JsonLinesAuditLog(stream)
    if isinstance(target, AuditLogExporter):
        return target
    raise ValueError(
        f"audit_log must be a path, a stream or an audit-log exporter, got {type(target).__name__}"
    )

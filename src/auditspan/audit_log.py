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
  the only way a record can be lost, and never silently.
* Files are created with mode 0600 and rotate by size (``rotate_bytes``)
  keeping ``retain`` old files (``audit.jsonl.1`` is the newest old one).
"""

from __future__ import annotations

import contextlib
import enum
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Protocol, runtime_checkable

from .records import encode_record

__all__ = [
    "FSYNC_POLICIES",
    "AuditLogExportResult",
    "AuditLogExporter",
    "AuditLogStats",
    "JsonLinesAuditLog",
    "open_audit_log",
]

_logger = logging.getLogger(__name__)

FSYNC_POLICIES = ("always", "batch", "interval", "none")


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
    """Counters of a ``JsonLinesAuditLog`` (read them; they only grow)."""

    records_accepted: int = 0
    records_written: int = 0
    records_failed: int = 0
    bytes_written: int = 0
    write_errors: int = 0
    blocked_exports: int = 0
    rotations: int = 0


class _Sink:
    """Where lines go: an append-only file with rotation, or a caller's stream."""

    def __init__(
        self, target: str | os.PathLike[str] | IO[Any], rotate_bytes: int | None, retain: int
    ) -> None:
        self.path: Path | None = None
        self.stream: IO[Any] | None = None
        self._fd = -1
        self._size = 0
        self._rotate_bytes = rotate_bytes
        self._retain = retain
        if isinstance(target, (str, os.PathLike)):
            self.path = Path(target)
            self._open()
        else:
            self.stream = target

    def _open(self) -> None:
        assert self.path is not None
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        self._size = os.fstat(self._fd).st_size
        if self._size and _last_byte(self.path) != b"\n":
            # A torn last line from a crash stays one incomplete line; new records start clean.
            self._write_fd(b"\n")

    def _write_fd(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            written = os.write(self._fd, view)
            view = view[written:]
        self._size += len(data)

    def write(self, data: bytes) -> bool:
        """Write ``data``; True when the file was rotated first."""
        rotated = False
        if self.stream is not None:
            try:
                self.stream.write(data.decode("utf-8"))
            except TypeError:  # a binary stream
                self.stream.write(data)
            self.stream.flush()
            return False
        if self._rotate_bytes and self._size and self._size + len(data) > self._rotate_bytes:
            self._rotate()
            rotated = True
        start = os.lseek(self._fd, 0, os.SEEK_END)
        try:
            self._write_fd(data)
        except OSError:
            # A short write (full disk) left part of the data: cut it off, so that a retry
            # neither duplicates the lines before the cut nor glues a torn line to the next one.
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, start)
            raise
        return rotated

    def _rotate(self) -> None:
        assert self.path is not None
        os.fsync(self._fd)
        os.close(self._fd)
        for index in range(self._retain, 0, -1):
            older = self.path.with_name(f"{self.path.name}.{index}")
            if index == self._retain:
                older.unlink(missing_ok=True)
            elif older.exists():
                older.replace(self.path.with_name(f"{self.path.name}.{index + 1}"))
        if self._retain:
            self.path.replace(self.path.with_name(f"{self.path.name}.1"))
        else:
            self.path.unlink(missing_ok=True)
        self._open()

    def sync(self) -> None:
        if self._fd >= 0:
            os.fsync(self._fd)

    def close(self) -> None:
        if self._fd >= 0:
            try:
                os.fsync(self._fd)
            finally:
                os.close(self._fd)
                self._fd = -1
        elif self.stream is not None:
            self.stream.flush()


def _last_byte(path: Path) -> bytes:
    with path.open("rb") as f:
        f.seek(-1, os.SEEK_END)
        return f.read(1)


class JsonLinesAuditLog:
    """Appends canonical records as JSON lines to a file or stream (see the module doc).

    Args:
        target: a path (created with mode 0600, parent folders too) or an open
            text/binary stream (``sys.stdout``, ``io.StringIO``, a socket file).
        fsync: ``"always"``, ``"batch"`` (default), ``"interval"`` or ``"none"``.
        fsync_interval_s: the period for ``"interval"``.
        max_queue: lines the queue holds before ``export`` applies back-pressure.
        max_block_s: the longest ``export`` waits for room before writing itself.
        rotate_bytes: rotate the file when it would grow beyond this size.
        retain: how many rotated files to keep.

    Raises:
        ValueError: for an unknown ``fsync`` policy or a non-positive bound.
        OSError: when the file cannot be opened (the message names the path).
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
        self._sink = _Sink(target, rotate_bytes, retain)
        self.stats = AuditLogStats()
        self._queue: deque[bytes] = deque()
        self._lock = threading.RLock()  # the lock a Condition() makes for itself, named for export_lines
        self._cond = threading.Condition(self._lock)
        self._io_lock = threading.Lock()
        self._in_flight = 0
        self._closed = False
        self._last_sync = time.monotonic()
        self._failing = False
        self._thread: threading.Thread | None = None
        if fsync != "always":
            self._thread = threading.Thread(target=self._run, name="auditspan-audit-log", daemon=True)
            self._thread.start()

    @property
    def path(self) -> Path | None:
        """The file written to, or None for a stream."""
        return self._sink.path

    def __repr__(self) -> str:
        return f"JsonLinesAuditLog({str(self._sink.path or self._sink.stream)!r}, fsync={self.fsync!r})"

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
        if self._sink.stream is not None:
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
        data = b"".join(lines)
        with self._cond:
            self.stats.records_accepted += len(lines)
        try:
            with self._io_lock:
                if self._sink.write(data):
                    self.stats.rotations += 1
                if self.fsync == "always":
                    self._sink.sync()
        except Exception as exc:
            with self._cond:
                self.stats.records_failed += len(lines)
                self.stats.write_errors += 1
            self._report_failure(exc)
            return AuditLogExportResult.FAILURE
        with self._cond:
            self.stats.records_written += len(lines)
            self.stats.bytes_written += len(data)
        return AuditLogExportResult.SUCCESS

    # -- writer thread ---------------------------------------------------------
    def _run(self) -> None:
        backoff = 0.05
        while True:
            with self._cond:
                while not self._queue and not self._closed:
                    self._cond.wait(self._fsync_interval_s if self.fsync == "interval" else None)
                    if self.fsync == "interval" and not self._queue:
                        break
                if not self._queue and self._closed:
                    return
                batch = [self._queue.popleft() for _ in range(min(self._batch_size, len(self._queue)))]
                self._in_flight = len(batch)
            if not batch:
                self._maybe_sync(idle=True)
                continue
            data = b"".join(batch)
            try:
                with self._io_lock:
                    if self._sink.write(data):
                        self.stats.rotations += 1
                self._maybe_sync(idle=False)
            except Exception as exc:
                with self._cond:
                    self.stats.write_errors += 1
                    self._queue.extendleft(reversed(batch))  # keep order; retry after back-off
                    self._in_flight = 0
                    closed = self._closed
                self._report_failure(exc)
                if closed:
                    with self._cond:
                        self.stats.records_failed += len(self._queue)
                        self._queue.clear()
                        self._cond.notify_all()
                    return
                time.sleep(backoff)
                backoff = min(backoff * 2, 2.0)
                continue
            backoff = 0.05
            with self._cond:
                self.stats.records_written += len(batch)
                self.stats.bytes_written += len(data)
                self._in_flight = 0
                if self._failing:
                    self._failing = False
                    _logger.warning("auditspan: audit log %s is writable again", self)
                self._cond.notify_all()

    def _maybe_sync(self, *, idle: bool) -> None:
        if self.fsync == "none":
            return
        now = time.monotonic()
        if self.fsync == "batch" or now - self._last_sync >= self._fsync_interval_s:
            if idle and self.fsync == "batch":
                return
            with self._io_lock:
                self._sink.sync()
            self._last_sync = now

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
        try:
            if self.fsync != "none":
                with self._io_lock:
                    self._sink.sync()
        except OSError as exc:
            self._report_failure(exc)
            return False
        return True

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
        try:
            with self._io_lock:
                self._sink.close()
        except OSError as exc:
            self._report_failure(exc)


def open_audit_log(
    target: str | os.PathLike[str] | IO[Any] | AuditLogExporter | None,
) -> AuditLogExporter | None:
    """Resolve the ``audit_log`` argument: a path or stream opens a ``JsonLinesAuditLog``;
    an exporter is used as it is; None means no log.

    Raises ``ValueError`` naming the path when it cannot be opened for appending.
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

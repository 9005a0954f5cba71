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
  ``rotate_bytes`` unless it holds a single record larger than that.
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

import contextlib
import enum
import errno
import logging
import os
import re
import select
import stat
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

if sys.platform != "win32":
    import fcntl

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

#: fsync errors that mean "this file cannot be synced", not "this sync failed": fsync is given up.
_SYNC_UNSUPPORTED = frozenset({errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP, errno.ENOSYS, errno.EROFS})
#: flock errors that mean "no locks here" (some network file systems): write without the lock.
_LOCK_UNSUPPORTED = frozenset({errno.ENOLCK, errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP, errno.ENOSYS})
#: Writes to a pipe up to this size are atomic: lines of several processes never interleave.
_PIPE_BUF = getattr(select, "PIPE_BUF", 512)
#: The system's own names for this process's streams: links, but not ones a user made.
_SYSTEM_LINK = re.compile(r"^/(?:dev/(?:stdout|stderr)|dev/fd/\d+|proc/self/fd/\d+)$")
#: The longest a fork waits for a write in progress before it goes ahead.
_FORK_WAIT_S = 5.0
#: Room kept in a file for the checkpoint written at rotation (a signed one is about 450 bytes).
_CHECKPOINT_RESERVE = 600
#: The longest last line read to link a new chain to (a longer one is linked by its last bytes).
_LINK_READ_MAX = 1 << 24


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


class _WriteError(Exception):
    """A write stopped part-way: the first ``done`` lines are in the file, the rest are not."""

    def __init__(self, done: int, rotations: int, cause: BaseException) -> None:
        super().__init__(str(cause))
        self.done = done
        self.rotations = rotations
        self.cause = cause


def _path_error(code: int, path: Path, what: str) -> OSError:
    """An OSError whose ``strerror`` says what is wrong with ``path`` (``configure()`` shows it)."""
    return OSError(code, what, str(path))


def _kind(mode: int) -> str:
    for test, name in (
        (stat.S_ISFIFO, "FIFO"),
        (stat.S_ISCHR, "character device"),
        (stat.S_ISBLK, "block device"),
        (stat.S_ISSOCK, "socket"),
        (stat.S_ISDIR, "folder"),
    ):
        if test(mode):
            return name
    return "special file"


class _Sink:
    """Where lines go: an append-only file with rotation, a pipe-like file, or a caller's stream.

    Owns one descriptor at a time (``_fd``; -1 when it holds none). Every close sets ``_fd``
    to -1 first, so that a failure afterwards can never leave a number the process may
    reuse for another file.
    """

    def __init__(
        self,
        target: str | os.PathLike[str] | IO[Any],
        rotate_bytes: int | None,
        retain: int,
        *,
        follow_symlinks: bool = False,
    ) -> None:
        self.path: Path | None = None
        self.stream: IO[Any] | None = None
        self._fd = -1
        self._rotate_bytes = rotate_bytes
        self._retain = retain
        self.regular = False  # a regular file: locked, rotated, synced
        self.sync_enabled = True  # False once fsync proved unsupported
        self._lockable = sys.platform != "win32"
        self._check_tail = False  # the file was not empty when opened: it may end in a torn line
        self._dirty = False  # written since the last successful fsync
        self._reopen = False  # set in a forked child: get an open file of its own
        self._mode_reported = False
        self.on_sync_error: Callable[[OSError], None] | None = None
        self.chain: WriterChain | None = None  # set by the log: lines are sealed into its chain
        self.witnessed: list[Checkpoint] = []  # checkpoints written, for the log to witness
        self._known_end = -1  # where this writer's last write ended (another process wrote if not)
        if isinstance(target, (str, os.PathLike)):
            self.path = Path(target)
            self._follow = follow_symlinks or bool(_SYSTEM_LINK.match(os.fspath(target)))
            self._open()
            if not self.regular and rotate_bytes:
                kind = _kind(os.fstat(self._fd).st_mode)
                self.close()
                raise _path_error(
                    errno.ESPIPE, self.path, f"is a {kind}: it cannot rotate (leave rotate_bytes unset)"
                )
        else:
            self.stream = target

    @property
    def may_stall(self) -> bool:
        """A reader decides when writes go through (pipe, terminal, caller's stream)."""
        return not self.regular

    # -- opening ---------------------------------------------------------------
    def _open(self) -> None:
        """Open ``path`` for appending (the seam the tests make fail); sets ``_fd``."""
        assert self.path is not None
        path = self.path
        _make_parent(path)
        nonblock = getattr(os, "O_NONBLOCK", 0)
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | nonblock | getattr(os, "O_CLOEXEC", 0)
        if not self._follow:
            flags |= getattr(os, "O_NOFOLLOW", 0)
        try:
            fd = os.open(path, flags, 0o600)
        except OSError as exc:
            raise _explain_open_error(exc, path) from exc
        try:
            st = os.fstat(fd)
            if stat.S_ISREG(st.st_mode):
                regular = True
            elif stat.S_ISBLK(st.st_mode) or stat.S_ISDIR(st.st_mode):
                raise _path_error(errno.EINVAL, path, f"is a {_kind(st.st_mode)}, not a file")
            else:
                regular = False
            if nonblock:
                # O_NONBLOCK only kept open() from hanging on a FIFO without a reader; writes block.
                os.set_blocking(fd, True)
            if regular:
                self._tighten_mode(fd, st.st_mode)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        self.regular = regular
        self._reopen = False
        self._check_tail = regular and st.st_size > 0

    def _tighten_mode(self, fd: int, mode: int) -> None:
        assert self.path is not None
        if not stat.S_IMODE(mode) & 0o077 or sys.platform == "win32":  # Windows: no POSIX modes
            return
        try:
            os.fchmod(fd, 0o600)
        except OSError as exc:
            raise _path_error(
                exc.errno or errno.EPERM,
                self.path,
                f"has mode {stat.S_IMODE(mode):04o}, wider than 0600, and cannot be tightened "
                f"({exc.strerror}); fix its mode or owner",
            ) from exc
        if not self._mode_reported:
            self._mode_reported = True
            _logger.warning(
                "auditspan: audit log %s had mode %04o; tightened to 0600", self.path, stat.S_IMODE(mode)
            )

    def _end_torn_line(self, fd: int) -> None:
        """A torn last line from a crash stays one incomplete line; new records start clean.

        Under the lock, before the first write to a file that was not empty (another process
        may be writing the line that looks torn from outside the lock)."""
        size = os.lseek(fd, 0, os.SEEK_END)
        if size and self._last_byte(fd, size) not in (b"\n", b""):
            self._write_all(fd, b"\n", size)
        self._check_tail = False

    def _last_byte(self, fd: int, size: int) -> bytes:
        """The last byte of the file open as ``fd`` (read through the path: ``fd`` is write-only)."""
        assert self.path is not None
        flags = (
            os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | (0 if self._follow else getattr(os, "O_NOFOLLOW", 0))
        )
        try:
            reader = os.open(self.path, flags)
        except OSError:
            return b""
        try:
            a, b = os.fstat(reader), os.fstat(fd)
            if (a.st_dev, a.st_ino) != (b.st_dev, b.st_ino):
                return b""
            return os.pread(reader, 1, size - 1)
        finally:
            os.close(reader)

    # -- writing ---------------------------------------------------------------
    def write(self, lines: Sequence[bytes]) -> int:
        """Write ``lines`` whole and in order; return how many rotations that took.

        Raises ``_WriteError`` telling how many lines got into the file before it failed.
        """
        if self.stream is not None:
            return self._write_stream(lines)
        if not self.regular and not self._reopen and self._fd >= 0:
            return self._write_pipe(lines)
        done = rotations = 0
        try:
            fd = self._current()
            if not self.regular:
                return self._write_pipe(lines)
            with self._locked(fd):
                fd = self._follow_rotation(fd)
                chain = self.chain
                while done < len(lines):
                    size = self._prepare(fd)
                    if chain is not None and chain.due():
                        self._write_checkpoint(fd, size, "count")
                        continue
                    if chain is None:
                        piece: Sequence[bytes] = lines[done:]
                    else:
                        piece = chain.seal(lines[done : done + chain.room()])
                    end = self._fitting(piece, 0, size)
                    if end == 0:
                        if chain is not None and chain.pending():
                            self._write_checkpoint(fd, size, "rotation")
                        fd = self._rotate(fd)
                        rotations += 1
                        continue
                    data = b"".join(piece[:end])
                    self._write_all(fd, data, size)
                    self._known_end = size + len(data)
                    done += end
                    if chain is not None:
                        chain.commit(end)
                        if chain.seq - chain.covered >= chain.every:
                            self._write_checkpoint(fd, self._known_end, "count")
        except OSError as exc:
            raise _WriteError(done, rotations, exc) from exc
        return rotations

    def _prepare(self, fd: int) -> int:
        """Under the lock, before a write: end a torn last line, start the chain; the file's size."""
        if self._check_tail:  # a file not empty when opened (also one rotated to)
            self._end_torn_line(fd)
        size = os.lseek(fd, 0, os.SEEK_END)
        if size and size != self._known_end and self._known_end >= 0:
            # Another process wrote since our last write: it may have died mid-line.
            self._end_torn_line(fd)
            size = os.lseek(fd, 0, os.SEEK_END)
        self._known_end = size
        chain = self.chain
        if chain is not None and chain.seq == 0:
            # Until its first line is in, a chain links to the last line of the file it lands in
            # (a rotation, or following another process's, may have switched files since).
            chain.start(self._last_line(fd, size))
        return size

    def _write_checkpoint(self, fd: int, size: int, reason: str) -> None:
        """Under the lock: append the chain's checkpoint."""
        assert self.chain is not None
        line, checkpoint = self.chain.checkpoint_line(reason)
        self._write_all(fd, line, size)
        self._known_end = size + len(line)
        self.chain.checkpoint_written()
        self.witnessed.append(checkpoint)

    def checkpoint(self, reason: str) -> None:
        """Append a checkpoint of the lines no checkpoint covers yet (none pending: nothing).

        The caller holds the I/O lock. Raises OSError when it cannot be written.
        """
        chain = self.chain
        if chain is None or not chain.pending():
            return
        if self.stream is not None or not self.regular:
            line, checkpoint = chain.checkpoint_line(reason)
            if self.stream is not None:
                try:
                    self.stream.write(line.decode("utf-8"))
                except TypeError:
                    self.stream.write(line)
                self.stream.flush()
            else:
                self._write_all(self._fd, line, None)
            chain.checkpoint_written()
            self.witnessed.append(checkpoint)
            return
        fd = self._current()
        with self._locked(fd):
            fd = self._follow_rotation(fd)
            self._write_checkpoint(fd, self._prepare(fd), reason)

    def _seal_unlocked(self, lines: Sequence[bytes]) -> Sequence[bytes]:
        """Seal for a target without a file lock (stream, pipe): no line to link to."""
        chain = self.chain
        if chain is None:
            return lines
        if not chain.started:
            chain.start(None)
        return chain.seal(lines)

    def _commit(self, count: int) -> None:
        if self.chain is not None:
            self.chain.commit(count)

    def _last_line(self, fd: int, size: int) -> bytes | None:
        """The file's last line without its newline (None in an empty file), read through the path."""
        assert self.path is not None
        if not size:
            return None
        flags = (
            os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | (0 if self._follow else getattr(os, "O_NOFOLLOW", 0))
        )
        reader = os.open(self.path, flags)
        try:
            a, b = os.fstat(reader), os.fstat(fd)
            if (a.st_dev, a.st_ino) != (b.st_dev, b.st_ino):
                raise _path_error(errno.EAGAIN, self.path, "was replaced while its last line was read")
            end = size - 1 if os.pread(reader, 1, size - 1) == b"\n" else size
            chunk = 65_536
            while True:
                start = max(0, end - chunk)
                data = os.pread(reader, end - start, start)
                cut = data.rfind(b"\n")
                if cut >= 0:
                    return data[cut + 1 :]
                if start == 0 or chunk >= _LINK_READ_MAX:
                    return data
                chunk *= 4
        finally:
            os.close(reader)

    def _write_stream(self, lines: Sequence[bytes]) -> int:
        """Write to the caller's stream, a checkpoint after every ``checkpoint_every`` chained lines."""
        assert self.stream is not None
        chain = self.chain
        done = 0
        while done < len(lines):
            chunk = lines[done : done + chain.room()] if chain is not None else lines
            data = b"".join(self._seal_unlocked(chunk))
            try:
                try:
                    self.stream.write(data.decode("utf-8"))
                except TypeError:  # a binary stream
                    self.stream.write(data)
                self.stream.flush()
            except Exception as exc:
                raise _WriteError(done, 0, exc) from exc
            self._commit(len(chunk))
            done += len(chunk)
            if chain is not None and chain.seq - chain.covered >= chain.every:
                try:
                    self.checkpoint("count")
                except Exception as exc:  # the lines are written; the checkpoint comes later
                    raise _WriteError(done, 0, exc) from exc
        return 0

    def _write_pipe(self, lines: Sequence[bytes]) -> int:
        done = 0
        lines = self._seal_unlocked(lines)
        try:
            while done < len(lines):
                end, size = done + 1, len(lines[done])
                while end < len(lines) and size + len(lines[end]) <= _PIPE_BUF:
                    size += len(lines[end])
                    end += 1
                self._write_all(self._fd, b"".join(lines[done:end]), None)
                done = end
        except OSError as exc:
            self._commit(done)
            raise _WriteError(done, 0, exc) from exc
        self._commit(done)
        chain = self.chain
        if chain is not None and chain.seq - chain.covered >= chain.every:
            # A pipe takes whole batches: its count checkpoint follows the batch that reached it.
            try:
                self.checkpoint("count")
            except OSError as exc:
                raise _WriteError(done, 0, exc) from exc
        return 0

    def _fitting(self, lines: Sequence[bytes], start: int, size: int) -> int:
        """How far the lines from ``start`` fit before ``rotate_bytes`` (at least one in an empty file)."""
        if not self._rotate_bytes:
            return len(lines)
        end, total = start, size
        limit = self._rotate_bytes - (_CHECKPOINT_RESERVE if self.chain is not None else 0)
        while end < len(lines) and (total == 0 or total + len(lines[end]) <= limit):
            total += len(lines[end])
            end += 1
        return end

    def _write_all(self, fd: int, data: bytes, start: int | None) -> None:
        view = memoryview(data)
        try:
            while view:
                written = os.write(fd, view)
                view = view[written:]
        except BaseException:
            # A short write (full disk), or an exception raised by a signal handler between two
            # writes, left part of the data: cut it off, so that a retry neither duplicates the
            # lines before the cut nor glues a torn line to the next one.
            if start is not None:
                with contextlib.suppress(OSError):
                    os.ftruncate(fd, start)
            raise
        self._dirty = True

    def _current(self) -> int:
        """The descriptor to write to: reopened after a failed rotation or in a forked child."""
        if self._reopen and self._fd >= 0:
            # The parent's open file: closing our copy leaves the parent's (and its locks) alone.
            fd, self._fd = self._fd, -1
            os.close(fd)
        if self._fd < 0:
            self._open()
        return self._fd

    @contextlib.contextmanager
    def _locked(self, fd: int) -> Any:
        """An exclusive ``flock`` on the open file, against other processes writing to it.

        Whatever file the block ends with (a rotation or a reopen switches files, closing the
        old one releases its lock) is unlocked at the end.
        """
        if self._lockable:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
            except OSError as exc:
                if exc.errno not in _LOCK_UNSUPPORTED:
                    raise
                self._lockable = False
                _logger.warning(
                    "auditspan: audit log %s cannot be locked (%s): several processes must not share it "
                    "with rotation on",
                    self.path,
                    exc.strerror,
                )
        try:
            yield
        finally:
            if self._lockable and self._fd >= 0:
                with contextlib.suppress(OSError):
                    fcntl.flock(self._fd, fcntl.LOCK_UN)

    def _follow_rotation(self, fd: int) -> int:
        """Under the lock: when the path names another file now (rotated by another process, or
        removed), write to the file the path names. Returns the descriptor, locked."""
        assert self.path is not None
        for _ in range(100):  # each round means another process rotated meanwhile
            try:
                named = os.stat(self.path, follow_symlinks=self._follow)
            except FileNotFoundError:
                named = None
            mine = os.fstat(fd)
            if named is not None and (named.st_dev, named.st_ino) == (mine.st_dev, mine.st_ino):
                return fd
            self._fd = -1
            os.close(fd)  # releases its lock
            self._open()
            fd = self._fd
            if self._lockable:
                fcntl.flock(fd, fcntl.LOCK_EX)
        raise _path_error(errno.EAGAIN, self.path, "keeps being replaced by other processes")

    def _rotate(self, fd: int) -> int:
        """Under the lock: rename the file away and open a new one; returns it, locked."""
        assert self.path is not None
        self._sync_fd(fd)  # a failed fsync is reported; the rotation goes on (the lines are written)
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
        # Closing the old file releases its lock: other processes waiting for it then find the
        # path renamed and follow it to the new file.
        self._fd = -1
        os.close(fd)
        self._open()
        if self._lockable:
            fcntl.flock(self._fd, fcntl.LOCK_EX)
        # While this process waited for the lock, another one may have written to the new file,
        # rotated it in its turn and closed it: follow the path again before writing.
        return self._follow_rotation(self._fd)

    # -- syncing and closing -----------------------------------------------------
    def _sync_fd(self, fd: int) -> None:
        if not (self.sync_enabled and self._dirty):
            return
        try:
            os.fsync(fd)
        except OSError as exc:
            if self.on_sync_error is not None:
                self.on_sync_error(exc)
            return
        self._dirty = False

    def sync(self) -> None:
        """fsync what was written since the last sync; raises OSError when that fails."""
        if self._fd >= 0 and self.regular and self.sync_enabled and self._dirty:
            os.fsync(self._fd)
            self._dirty = False

    def close(self) -> None:
        if self._fd >= 0:
            fd, self._fd = self._fd, -1
            try:
                if self.regular and self.sync_enabled and self._dirty:
                    os.fsync(fd)
            finally:
                os.close(fd)
        elif self.stream is not None:
            self.stream.flush()

    def after_fork_in_child(self) -> None:
        # The child shares the parent's open file description, and with it the parent's
        # flock: it needs its own to lock against the parent.
        if self.regular:
            self._reopen = True
        self._known_end = -1
        self.witnessed.clear()
        if self.chain is not None:
            self.chain.after_fork()


def _make_parent(path: Path) -> None:
    parent = path.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError) as exc:
        for folder in (parent, *parent.parents):
            if folder.exists() or folder.is_symlink():
                if not folder.is_dir():
                    raise _path_error(
                        errno.ENOTDIR, path, f"its parent {str(folder)!r} is a file, not a folder"
                    ) from exc
                break
        raise
    except OSError as exc:
        raise _path_error(
            exc.errno or errno.EIO, path, f"cannot create its folder {str(parent)!r}: {exc.strerror}"
        ) from exc


def _explain_open_error(exc: OSError, path: Path) -> OSError:
    code = exc.errno or errno.EIO
    if code == errno.ELOOP:
        return _path_error(
            code,
            path,
            "is a symbolic link; the audit log does not follow links "
            "(give the link's target, or JsonLinesAuditLog(..., follow_symlinks=True))",
        )
    if code == errno.ENXIO:
        return _path_error(code, path, "is a FIFO with no reader (start the reader first)")
    if code == errno.EISDIR:
        return _path_error(code, path, "is a folder, not a file")
    if code == errno.ENOTDIR:
        return _path_error(code, path, "a component of the path is a file, not a folder")
    return _path_error(code, path, exc.strerror or str(exc))


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
    if any(log._io_owner == threading.get_ident() for log in logs):
        return False
    for log in logs:
        if not log._closed:
            log.force_flush(max(0, int((deadline - time.monotonic()) * 1000)))
            # The process may end now: close its chain (bounded, as the flush).
            log._maybe_checkpoint("signal", force=True, timeout=max(0.0, deadline - time.monotonic()))
    return True


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
        self._io_lock = threading.Lock()
        self._io_owner = 0  # the thread holding _io_lock: a signal handler must not wait for itself
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

    # -- the I/O lock ------------------------------------------------------------
    def _io_acquire(self, timeout: float = -1) -> bool:
        if not self._io_lock.acquire(timeout=timeout):
            return False
        self._io_owner = threading.get_ident()
        return True

    def _io_release(self) -> None:
        self._io_owner = 0
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
        try:
            self._sink.checkpoint(reason)
        except OSError as exc:
            self._report_failure(exc)
        except Exception:  # a bug must not kill the writer thread
            _logger.exception("auditspan: audit log checkpoint failed")
        finally:
            self._io_release()
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
        try:
            self._sink.checkpoint("shutdown")
        except Exception as exc:
            self._report_failure(exc)
        try:
            self._sink.close()
        except OSError as exc:
            self._sync_failed(exc)
        finally:
            self._io_release()
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
        self._io_lock = threading.Lock()
        self._io_owner = 0
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

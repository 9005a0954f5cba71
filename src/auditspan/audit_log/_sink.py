"""The sink of the audit log: the file (or pipe, or stream) that lines are written to.

``_Sink`` owns the descriptor, and everything that must hold under the
cross-process lock: opening without following links, mode 0600, ``flock`` on
every write, following the path again when another process rotated it, size
rotation, whole-line writes to pipes (at most ``PIPE_BUF`` bytes), fsync and
its failures. ``JsonLinesAuditLog`` (``_writer``) decides *when* to write;
this module decides *how*, and is the only one that touches the file.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import re
import select
import stat
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, Any

from ._chain import Checkpoint, WriterChain

if sys.platform != "win32":
    import fcntl

_logger = logging.getLogger("auditspan.audit_log")

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
                        fd, turned = self._write_checkpoint(fd, size, "count")
                        rotations += turned
                        continue
                    if chain is None:
                        piece: Sequence[bytes] = lines[done:]
                    else:
                        piece = chain.seal(lines[done : done + chain.room()])
                    end = self._fitting(piece, 0, size)
                    if end == 0:
                        if chain is not None and chain.pending():
                            fd, turned = self._write_checkpoint(fd, size, "rotation")
                            rotations += turned
                            if turned:  # it went to a new file already: the lines go there too
                                continue
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
                            fd, turned = self._write_checkpoint(fd, self._known_end, "count")
                            rotations += turned
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

    def _write_checkpoint(self, fd: int, size: int, reason: str) -> tuple[int, int]:
        """Under the lock: append the chain's checkpoint to the file of ``fd`` (``size`` bytes
        long); returns the descriptor written to and the rotations that took.

        Lines leave ``_CHECKPOINT_RESERVE`` bytes free, but that room is shared: every process
        writing the path may put its checkpoint in it (one at a count, the next at its rotation
        or shutdown). A checkpoint that no longer fits goes to a new file, so that no file grows
        beyond ``rotate_bytes``; it covers its chain's lines in the file before as well.
        """
        assert self.chain is not None
        line, checkpoint = self.chain.checkpoint_line(reason)
        rotations = 0
        while self._rotate_bytes and size and size + len(line) > self._rotate_bytes:
            fd = self._rotate(fd)
            rotations += 1
            size = self._prepare(fd)
        self._write_all(fd, line, size)
        self._known_end = size + len(line)
        self.chain.checkpoint_written()
        self.witnessed.append(checkpoint)
        return fd, rotations

    def checkpoint(self, reason: str) -> int:
        """Append a checkpoint of the lines no checkpoint covers yet (none pending: nothing);
        returns the rotations that took (a checkpoint that does not fit goes to a new file).

        The caller holds the I/O lock. Raises OSError when it cannot be written.
        """
        chain = self.chain
        if chain is None or not chain.pending():
            return 0
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
            return 0
        fd = self._current()
        with self._locked(fd):
            fd = self._follow_rotation(fd)
            return self._write_checkpoint(fd, self._prepare(fd), reason)[1]

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
            self._close_locked(fd)
            self._open()
            fd = self._fd
            if self._lockable:
                fcntl.flock(fd, fcntl.LOCK_EX)
        raise _path_error(errno.EAGAIN, self.path, "keeps being replaced by other processes")

    def _close_locked(self, fd: int) -> None:
        """Unlock and close a file this process holds locked (``_fd`` is -1 from here on).

        Closing alone does not release the lock when a forked child still holds a copy of the
        descriptor (one that has not written yet: an idle worker): the lock belongs to the open
        file, and would stay held for as long as that child lives.
        """
        self._fd = -1
        if self._lockable:
            with contextlib.suppress(OSError):
                fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)

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
        # Other processes waiting for the old file's lock then find the path renamed and follow
        # it to the new file.
        self._close_locked(fd)
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

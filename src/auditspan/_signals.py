"""Flush the audit log when SIGTERM, SIGINT or SIGHUP ends the process.

A container stop sends SIGTERM; its default action ends the process at once,
and the records still queued for the writer thread would be lost. The handler
``configure()`` installs (main thread only; ``flush_on_signal=False`` or
``AUDITSPAN_FLUSH_ON_SIGNAL=false`` turn it off) writes and syncs every live
audit log, waiting at most ``FLUSH_TIMEOUT_S``, and then does what was there
before it:

* a Python handler of the application's is called as usual (it may exit,
  raise, or let the process go on); ``signal.default_int_handler`` raises
  ``KeyboardInterrupt`` as usual;
* ``SIG_DFL``: the signal is raised again with the default action, so the
  process ends with the signal's exit status;
* a signal that was ignored (``SIG_IGN``), or handled by C code, is left alone.

The handler takes no lock the interrupted code may hold. When the main thread
was interrupted in the middle of a write (it holds an audit log's I/O lock,
as under ``fsync="always"``), finishing the flush there would tear the line
being written; the signal is then handled as soon as that write is over.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
import time
from collections.abc import Callable
from types import FrameType
from typing import Any

_logger = logging.getLogger("auditspan")

SIGNALS = ("SIGTERM", "SIGINT", "SIGHUP")
#: The longest the handler waits for the audit logs (a container's grace period is usually 10 s).
FLUSH_TIMEOUT_S = 5.0

_previous: dict[int, Any] = {}
_deferred: list[tuple[int, FrameType | None]] = []
#: What the handler runs, in order: ``flush(deadline) -> bool`` (False: this thread is mid-write).
#: The collector (records held for their call's attempt) registers before the audit log (the
#: logs they go to); registering here, instead of importing them, keeps this module a leaf.
_flushes: list[tuple[int, Callable[[float], bool]]] = []

#: Registration order of ``on_signal``: the collector's held records first, then the audit logs.
HELD_RECORDS = 0
AUDIT_LOGS = 1


def on_signal(stage: int, flush: Callable[[float], bool]) -> None:
    """Run ``flush(deadline)`` when a handled signal arrives, after every flush of a lower ``stage``.

    ``flush`` returns False when it cannot finish now (this thread holds the lock of a write in
    progress); the signal is then handled again as soon as that write is over.
    """
    _flushes.append((stage, flush))
    _flushes.sort(key=lambda item: item[0])


def install() -> list[str]:
    """Install the flushing handler for each signal that has a Python or default handler.

    Returns the names of the signals handled (none outside the main thread).
    Idempotent: a second ``configure()`` does not chain the handler to itself.
    """
    if threading.current_thread() is not threading.main_thread():
        return []
    installed: list[str] = []
    for name in SIGNALS:
        signum = getattr(signal, name, None)
        if signum is None:
            continue
        if signum in _previous:
            installed.append(name)
            continue
        current = signal.getsignal(signum)
        if current is None or current == signal.SIG_IGN:
            continue  # set from C code (not ours to wrap), or ignored: it ends nothing
        signal.signal(signum, _handle)
        _previous[signum] = current
        installed.append(name)
    return installed


def _handle(signum: int, frame: FrameType | None) -> None:
    try:
        deadline = time.monotonic() + FLUSH_TIMEOUT_S
        # Records held for their call's attempt first (they go to the logs), then the logs.
        flushed = all(flush(deadline) for _stage, flush in _flushes)
    except Exception:  # never raise into the interrupted code; the signal still takes its course
        _logger.exception("auditspan: flushing the audit log on signal %d failed", signum)
        flushed = True
    if not flushed:
        _deferred.append((signum, frame))  # this thread is mid-write: finish it first
        return
    _chain(signum, frame)


def _chain(signum: int, frame: FrameType | None) -> None:
    previous = _previous.get(signum, signal.SIG_DFL)
    if callable(previous):
        handler: Callable[[int, FrameType | None], Any] = previous
        handler(signum, frame)
        return
    if previous == signal.SIG_DFL:
        signal.signal(signum, signal.SIG_DFL)
        signal.raise_signal(signum)
        # Still here: the default action does not end the process (SIGCHLD-like) or is blocked.
        signal.signal(signum, _handle)


def block_in_this_thread() -> None:
    """Keep SIGTERM, SIGINT and SIGHUP away from this (background) thread.

    The kernel hands a process's signal to any thread that does not block it. Python runs the
    handler in the main thread, but only when the main thread next runs Python code: had the
    signal landed on a writer thread while the main thread sleeps in C (``time.sleep``,
    ``join``, ``select``), the flush and the process's end would wait for it to wake.
    """
    mask = getattr(signal, "pthread_sigmask", None)
    if mask is None:
        return
    numbers = {getattr(signal, name) for name in SIGNALS if hasattr(signal, name)}
    with contextlib.suppress(OSError, ValueError):
        mask(signal.SIG_BLOCK, numbers)


def run_deferred() -> None:
    """Handle a signal that arrived during a write on this (the main) thread, now that it is over."""
    if threading.current_thread() is not threading.main_thread():
        return
    while _deferred:
        signum, frame = _deferred.pop(0)
        _handle(signum, frame)


def _forget_after_fork() -> None:
    _deferred.clear()

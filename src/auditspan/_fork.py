"""Fork safety: our locks, threads and per-process state survive ``os.fork()``.

Servers fork after the application configured auditspan (gunicorn
``--preload``, Celery prefork, ``multiprocessing`` with the ``fork`` start
method). A child inherits every lock in the state it had at the fork -- one
held by another thread stays held forever -- and none of the parent's
threads. Objects that hold such state register here; one set of
``os.register_at_fork`` hooks then calls, on each object still alive:

* ``_fork_prepare()`` in the parent just before the fork (take the locks, so
  that no child inherits one mid-update),
* ``_fork_parent()`` in the parent after it (release them),
* ``_fork_child()`` in the child (fresh locks, drop the parent's queued work,
  start over).

Each method is optional. ``fork_safe_lock()`` makes a lock the child gets
released, for the small locks that need nothing else. The registry holds weak references only: a hook
never keeps an object alive. Objects are visited in ``tier`` order (lower
first) so that locks are always taken in the order the code takes them
(a collector before its audit log); the parent releases in reverse order.
"""

from __future__ import annotations

import logging
import os
import threading
import weakref
from typing import Any

_logger = logging.getLogger("auditspan")

#: Tier 0: collectors and id sources; tier 1: audit logs; tier 2: exporters' small locks.
_TIERS = 3
_tiers: tuple[weakref.WeakSet[Any], ...] = tuple(weakref.WeakSet() for _ in range(_TIERS))
_registry_lock = threading.Lock()
_prepared: list[Any] = []  # strong references for the few microseconds of the fork only
_locks: weakref.WeakSet[Any] = weakref.WeakSet()


def fork_safe_lock() -> threading.Lock:
    """A ``threading.Lock`` that a forked child gets released, whoever held it at the fork.

    For the small locks of counters and caches: held for microseconds, but a fork that comes
    in those microseconds would leave the child's copy held forever (the stdlib's own locks
    are re-initialised the same way).
    """
    lock = threading.Lock()
    with _registry_lock:
        _locks.add(lock)
    return lock


def track(obj: Any, tier: int = 1) -> None:
    """Call ``obj``'s ``_fork_prepare`` / ``_fork_parent`` / ``_fork_child`` around every fork."""
    with _registry_lock:
        _tiers[tier].add(obj)


def _call(obj: Any, name: str) -> None:
    method = getattr(obj, name, None)
    if method is None:
        return
    try:
        method()
    except Exception:  # a fork hook must never fail the fork
        _logger.exception("auditspan: %s of %r failed", name, obj)


def _before() -> None:
    _registry_lock.acquire()
    _prepared[:] = [obj for tier in _tiers for obj in list(tier)]
    for obj in _prepared:
        _call(obj, "_fork_prepare")


def _after_in_parent() -> None:
    objects = list(_prepared)
    _prepared.clear()
    for obj in reversed(objects):
        _call(obj, "_fork_parent")
    _registry_lock.release()


def _after_in_child() -> None:
    global _registry_lock
    objects = list(_prepared)
    _prepared.clear()
    _registry_lock = threading.Lock()  # the parent's is held (by _before); the child starts afresh
    for lock in list(_locks):
        lock._at_fork_reinit()
    for obj in objects:
        _call(obj, "_fork_child")


if hasattr(os, "register_at_fork"):  # not on Windows
    os.register_at_fork(before=_before, after_in_parent=_after_in_parent, after_in_child=_after_in_child)

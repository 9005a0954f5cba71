"""Never raising at any stack depth: work that finds no room left on the caller's stack.

An agent may call auditspan from deep recursion. Then auditspan's own calls --
building an event, routing it, even logging that something failed -- can hit
the recursion limit, and a guard that only catches and logs raises again from
its own handler. So the entry points (``SpanCollector.emit``, the
``AuditEmitter`` methods, the hooks, the instrumentation's fan-out, the OpenAI
Agents processor) catch ``RecursionError`` and:

1. finish the work on a *fresh stack* (``on_fresh_stack``): a new thread that
   runs it in a copy of the caller's context (current span, current turn), and
   that the caller waits for -- so the event is recorded, in order;
2. when not even a thread can be started (within a few frames of the limit),
   keep the work for later without making a single call (``DEFERRED``, built
   of tuples): the next call into auditspan with room to spare, ``flush()``
   and ``shutdown()`` run it (``drain``);
3. only when that queue is full (``MAX_DEFERRED``) is the work given up, and
   then it is counted (``counts["lost"]``) and reported once there is room
   to log (``report``): never silently.

Handlers on these paths make no call they cannot afford: a ``RecursionError``
raised by the handler's own call is caught by the handler's own ``try``.
"""

from __future__ import annotations

import _thread
import contextvars
import functools
import logging
import os
import sys
from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar

_P = ParamSpec("_P")
_R = TypeVar("_R")

__all__ = ["MAX_DEFERRED", "counts", "defer", "drain", "guard", "on_fresh_stack", "report", "rescue"]

_logger = logging.getLogger("auditspan")

#: Work kept for later at most (each item one event): beyond it, work is counted as lost.
MAX_DEFERRED = 10_000
#: The longest a caller waits for its work on a fresh stack (it goes on there if this passes).
WAIT_S = 5.0

#: Work kept for later, newest first: ``(function, args, kwargs, older)`` or None.
DEFERRED: tuple[Any, ...] | None = None
#: ``deferred``: items in ``DEFERRED``; ``fresh_stack``: work finished on a fresh stack;
#: ``lost``: work given up; ``reported``: how many of the lost ones were already reported.
counts: dict[str, int] = {"deferred": 0, "fresh_stack": 0, "lost": 0, "reported": 0}


def _fork_child() -> None:
    """In a forked child: the parent's kept work is the parent's to run (it drains it)."""
    global DEFERRED
    DEFERRED = None
    counts.update(deferred=0, fresh_stack=0, lost=0, reported=0)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_fork_child)


def on_fresh_stack(
    work: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any], started: list[bool]
) -> Any:
    """``work(*args, **kwargs)`` on a new thread in a copy of the caller's context; its result.

    ``started[0]`` becomes True as soon as the thread exists (the caller's
    handler reads it: work that started must not be kept for later as well).
    The work's own exception is raised again here. If it does not finish
    within ``WAIT_S`` (it waits for a lock the caller holds, say), None is
    returned and it finishes on its own.
    """
    context = contextvars.copy_context()
    outcome: list[Any] = [None, None]  # result, exception
    finished = _thread.allocate_lock()
    finished.acquire()

    def run() -> None:
        try:
            outcome[0] = context.run(work, *args, **kwargs)
        except BaseException as exc:  # handed to the caller
            outcome[1] = exc
        finally:
            finished.release()

    _thread.start_new_thread(run, ())
    started[0] = True
    counts["fresh_stack"] += 1
    try:
        finished.acquire(True, WAIT_S)
    except Exception:  # no room to wait: the thread goes on
        return None
    if outcome[1] is not None:
        raise outcome[1]
    return outcome[0]


def defer(work: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    """Keep ``work`` for the next ``drain`` (callers inline this when they cannot afford a call)."""
    global DEFERRED
    if counts["deferred"] < MAX_DEFERRED:
        DEFERRED = (work, args, kwargs, DEFERRED)
        counts["deferred"] += 1
    else:
        counts["lost"] += 1


def drain() -> None:
    """Run the work kept for later, oldest first; what is still too deep to run stays. Never raises.

    Taking the queue and turning it oldest-first make no call (tuples only), so
    nothing is lost when this itself is called with no stack to spare.
    """
    global DEFERRED
    chain, DEFERRED = DEFERRED, None
    counts["deferred"] = 0
    node: tuple[Any, ...] | None = None
    while chain is not None:
        node = (chain[0], chain[1], chain[2], node)
        chain = chain[3]
    while node is not None:
        work, args, kwargs, rest = node
        try:
            work(*args, **kwargs)
        except RecursionError:  # still too deep: this one and the rest go back, without a call
            while node is not None:
                DEFERRED = (node[0], node[1], node[2], DEFERRED)
                counts["deferred"] += 1
                node = node[3]
            return
        except Exception:
            counts["lost"] += 1
        node = rest
    try:  # noqa: SIM105 -- contextlib.suppress is a call, and there may be no room for one
        report()
    except Exception:
        pass


def report() -> None:
    """Log, once per batch, the work that was given up since the last report. Never raises."""
    try:
        new = counts["lost"] - counts["reported"]
        if new > 0:
            counts["reported"] = counts["lost"]
            _logger.error(
                "auditspan: %d audit events could not be recorded: emitted within a few frames of the "
                "recursion limit while %d others already waited for room, or a decorated tool called there "
                "(it ran, unaudited)",
                new,
                MAX_DEFERRED,
            )
    except Exception:
        pass


def rescue(work: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """After ``work(*args, **kwargs)`` raised ``RecursionError``: finish it on a fresh stack, else keep it.

    Returns the work's result (None when kept for later or when it raised:
    callers are never-raise guards). Raises only ``RecursionError``, when
    there was no room even to keep it: the caller then keeps it without a
    call, inline (see ``SpanCollector.emit``).
    """
    started = [False]
    try:
        return on_fresh_stack(work, args, kwargs, started)
    except RecursionError:
        if started[0]:
            return None
        defer(work, args, kwargs)  # a RecursionError here reaches the caller's inline fallback
        return None
    except Exception:
        if not started[0]:
            defer(work, args, kwargs)
        return None


def guard(method: Callable[_P, _R]) -> Callable[_P, _R]:
    """Wrap an entry point so that running out of stack never raises from it (see the module doc).

    Other exceptions pass unchanged: this guard is about the stack only. When
    the work has to be kept for later, the wrapper returns None whatever the
    method's type says (only within a few frames of the recursion limit).
    """

    @functools.wraps(method)
    def guarded(*args: _P.args, **kwargs: _P.kwargs) -> Any:
        global DEFERRED
        if DEFERRED is not None:
            try:  # noqa: SIM105 -- contextlib.suppress is a call, and there may be no room for one
                drain()
            except Exception:
                pass
        try:
            return method(*args, **kwargs)
        except RecursionError:
            pass
        try:
            return rescue(method, args, kwargs)
        except Exception:  # not even room to keep it with a call: keep it without one
            if counts["deferred"] < MAX_DEFERRED:
                DEFERRED = (method, args, kwargs, DEFERRED)
                counts["deferred"] += 1
            else:
                counts["lost"] += 1
            return None

    return guarded


def short_of_stack(margin: int = 150) -> bool:
    """True when fewer than about ``margin`` frames are left before the recursion limit (about 1 µs).

    For entry points called once per span rather than once per event: they
    check first and, when short, do all their work on a fresh stack, so that
    nothing is half done when the stack runs out.
    """
    try:
        sys._getframe(max(1, sys.getrecursionlimit() - margin))
    except ValueError:
        return False
    return True


def roomy(method: Callable[_P, _R]) -> Callable[_P, _R]:
    """Run an entry point on a fresh stack when the caller's is nearly exhausted (``short_of_stack``).

    Otherwise it runs as usual, and a ``RecursionError`` that escapes it all
    the same is handled like ``guard`` does. Never raises ``RecursionError``.
    """

    @functools.wraps(method)
    def roomy_method(*args: _P.args, **kwargs: _P.kwargs) -> Any:
        global DEFERRED
        try:
            if not short_of_stack():
                return method(*args, **kwargs)
        except RecursionError:
            pass
        try:
            return rescue(method, args, kwargs)
        except Exception:  # not even room to keep it with a call: keep it without one
            if counts["deferred"] < MAX_DEFERRED:
                DEFERRED = (method, args, kwargs, DEFERRED)
                counts["deferred"] += 1
            else:
                counts["lost"] += 1
            return None

    return roomy_method

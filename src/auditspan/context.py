"""Context propagation: keep tool calls and nested agents under the right parent.

Python's context (``contextvars``: the current OpenTelemetry span, and the
current turn of ``auditspan.Audit``) follows the code into some places and not
into others:

======================================================  ==============================
where the work runs                                     context copied?
======================================================  ==============================
``asyncio.gather`` / ``TaskGroup`` / ``create_task``     yes (each task copies it)
``asyncio.to_thread``                                   yes
``loop.run_in_executor(...)``                           **no** -- use ``run_in_executor``
``ThreadPoolExecutor.submit`` / ``.map``                **no** -- use ``ContextExecutor``
``threading.Thread(target=...)``                        **no** -- use ``wrap(target)``
======================================================  ==============================

What breaks when it is not copied (``tests/unit/test_context.py``
shows each case, asserting the parent span ids):

* Events that name their turn (the seed runtime passes ``turn_id`` to every
  ``emit_*`` call) are *not* affected: the collector finds the turn by its id,
  whatever the thread. It pairs a completion with its attempt by
  ``metadata["tool_call_id"]``, else by the thread that emitted the attempt,
  else first-in-first-out -- so a runtime that emits attempts on one thread
  and completions on others, out of order, gets results swapped between
  parallel calls of the same tool unless it sends call ids (copying the
  context does not change that; ``auditspan.Audit`` always sends one).
* Everything that relies on the *current* context is affected. A tool
  decorated with ``@audit.tool`` run in a worker no longer knows its turn: its
  span becomes the root of a trace of its own (with ``Audit(agent_id=...)``
  the collector puts it in that agent's most recent open turn instead, which
  is wrong when two turns of the agent are open at once). A nested agent's
  turn started in a worker is no longer a child of the tool call that started
  it (a new trace). Spans of other instrumentations inside the tool (HTTP
  clients, databases, LLM SDKs) lose their parent the same way.

Hence: with ``auditspan.Audit`` or any other OpenTelemetry instrumentation,
hand work to threads through these helpers::

    from auditspan.context import ContextExecutor

    with ContextExecutor(max_workers=4) as pool:
        futures = [pool.submit(search, q) for q in queries]   # keep their turn

The module also has the two small pieces the hooks and adapters use to make an
audit span the current OpenTelemetry span: ``span_context_for`` (the span a
collector made for a turn or a tool call) and ``use_span_context``.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
from collections.abc import Callable, Iterator
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from typing import Any, ParamSpec, TypeVar

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import NonRecordingSpan, SpanContext

from .collector import SpanCollector

__all__ = [
    "ContextExecutor",
    "find_span_collector",
    "run_in_executor",
    "span_context_for",
    "submit_with_context",
    "use_span_context",
    "wrap",
]

P = ParamSpec("P")
R = TypeVar("R")


def wrap(fn: Callable[P, R]) -> Callable[P, R]:
    """Bind ``fn`` to the context current *now*; each call runs in its own copy of it.

    For ``threading.Thread(target=...)``, callbacks, and executors you do not
    create yourself::

        threading.Thread(target=wrap(worker), args=(job,)).start()

    A copy per call, because one ``Context`` cannot be entered by two threads at once.
    """
    captured = contextvars.copy_context()

    @functools.wraps(fn)
    def bound(*args: P.args, **kwargs: P.kwargs) -> R:
        return captured.copy().run(fn, *args, **kwargs)

    return bound


def submit_with_context(executor: Executor, fn: Callable[..., R], /, *args: Any, **kwargs: Any) -> Future[R]:
    """``executor.submit(fn, *args, **kwargs)``, run in a copy of the caller's context.

    Example::

        future = submit_with_context(pool, fetch, url)
    """
    return executor.submit(contextvars.copy_context().run, fn, *args, **kwargs)


class ContextExecutor(ThreadPoolExecutor):
    """A ``ThreadPoolExecutor`` whose tasks run in a copy of the submitter's context.

    A drop-in replacement: ``submit`` and ``map`` (which calls ``submit``) carry
    the current OpenTelemetry span and the current ``auditspan.Audit`` turn into
    the worker::

        with ContextExecutor(max_workers=4) as pool:
            results = list(pool.map(fetch, urls))
    """

    def submit(self, fn: Callable[..., R], /, *args: Any, **kwargs: Any) -> Future[R]:
        """Schedule ``fn(*args, **kwargs)`` in a copy of the caller's context."""
        return super().submit(contextvars.copy_context().run, fn, *args, **kwargs)


def run_in_executor(executor: Executor | None, fn: Callable[..., R], /, *args: Any) -> asyncio.Future[R]:
    """``loop.run_in_executor(executor, fn, *args)`` with the caller's context (which it lacks).

    ``asyncio.to_thread`` already copies the context; ``run_in_executor`` does not::

        result = await run_in_executor(None, blocking_call, 42)
    """
    loop = asyncio.get_running_loop()
    return loop.run_in_executor(executor, functools.partial(contextvars.copy_context().run, fn, *args))


def span_context_for(
    collector: Any,
    session_id: str | None,
    turn_id: str | None,
    tool_call_id: str | None = None,
) -> SpanContext | None:
    """The span context of an open turn (or of a tool call in it) of a ``SpanCollector``; else None.

    ``tool_call_id`` is the ``metadata["tool_call_id"]`` the call's events
    carried (see ``SpanCollector.span_context``). Never raises.
    """
    try:
        found = collector.span_context(session_id, turn_id, tool_call_id)
    except Exception:
        return None
    return found if isinstance(found, SpanContext) and found.is_valid else None


@contextlib.contextmanager
def use_span_context(span_context: SpanContext | None) -> Iterator[None]:
    """Make ``span_context`` the current span inside the block (nothing happens for None).

    The span is attached as a ``NonRecordingSpan``: code in the block sees the
    right parent for its own spans, but cannot change or end the audit span.
    """
    if span_context is None or not span_context.is_valid:
        yield
        return
    token = otel_context.attach(trace.set_span_in_context(NonRecordingSpan(span_context)))
    try:
        yield
    finally:
        otel_context.detach(token)


def find_span_collector(target: Any, _depth: int = 0) -> Any:
    """The ``SpanCollector`` that events given to ``target`` reach, or None.

    ``target`` may be the collector itself, an emitter (this package's or the
    seed system's, instrumented or not), or a fan-out (``CompositeCollector``)
    with a ``SpanCollector`` among its children. Never raises.
    """
    try:
        if target is None or _depth > 5:
            return None
        if isinstance(target, SpanCollector):
            return target
        resolve = getattr(type(target), "auditspan_collector", None)  # the instrumentation's fan-out
        if callable(resolve):
            return find_span_collector(resolve(target), _depth + 1)
        inner = vars(target).get("_collector") if hasattr(target, "__dict__") else None
        if inner is not None:  # an emitter
            return find_span_collector(inner, _depth + 1)
        for name in ("collectors", "_collectors"):
            children = getattr(target, name, None)
            if isinstance(children, (list, tuple)):
                for child in children:
                    found = find_span_collector(child, _depth + 1)
                    if found is not None:
                        return found
    except Exception:
        return None
    return None

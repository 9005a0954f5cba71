"""``@audit.tool``: a decorated tool's every call is a ``ToolCall``, whatever kind of function it is.

Sync and async functions run inside ``with call`` / ``async with call``.
Generators, sync or async, are driven by one ``_GeneratorRun``: the call
begins at the first step and lasts until the generator is exhausted, fails
or is closed; the tool's code runs with the call's span current, and the
result preview is the items it yielded. The two generator wrappers hold only
what differs between the kinds (``send`` or ``await asend`` ...).
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import AsyncGenerator, Callable, Generator, Mapping
from typing import Any

from .. import _deep
from .._sanitize import PREVIEW_LIMIT
from ..emitter import _preview_of
from ._tool_call import ToolCall

__all__ = ["wrap_tool"]

#: ``Audit.tool_call``, as the wrappers call it: ``(name, arguments, operation_type=, metadata=)``.
MakeCall = Callable[..., ToolCall]


def wrap_tool(
    make_call: MakeCall,
    func: Callable[..., Any],
    name: str,
    operation_type: str | None,
    metadata: Mapping[str, Any] | None,
) -> Callable[..., Any]:
    """``func`` wrapped so that each call is a tool call ``name`` made by ``make_call``.

    The wrapper is of the same kind as ``func`` (sync, async, generator, async
    generator) and carries its name and docstring. Called with no stack left
    even to describe the call, the tool runs unaudited, counted as lost
    (``auditspan._deep``).
    """
    try:
        signature: inspect.Signature | None = inspect.signature(func)
    except (TypeError, ValueError):
        signature = None

    def new_call(args: tuple[Any, ...], kwargs: dict[str, Any]) -> ToolCall:
        try:
            arguments = _arguments_of(signature, args, kwargs)
        except RecursionError:  # no stack left to bind them: as they came
            arguments = {"args": args, "kwargs": kwargs}
        return make_call(name, arguments, operation_type=operation_type, metadata=metadata)

    if inspect.isasyncgenfunction(func):

        @functools.wraps(func)
        async def async_gen_wrapper(*args: Any, **kwargs: Any) -> AsyncGenerator[Any, Any]:
            try:
                call = new_call(args, kwargs)
            except RecursionError:  # no stack left even to describe the call: it runs, counted
                _deep.counts["lost"] += 1
                async for item in func(*args, **kwargs):
                    yield item
                return
            run = _GeneratorRun(call)
            inner = func(*args, **kwargs)
            try:
                while True:
                    with call.active():
                        try:
                            item = await run.resume(inner.asend, inner.athrow)
                        except StopAsyncIteration:
                            break
                    try:
                        run.sent = yield run.passed(item)
                    except GeneratorExit:
                        await inner.aclose()
                        raise
                    except BaseException as exc:
                        run.throw_next(exc)
            except BaseException as exc:
                run.failed(exc)
                raise
            run.done(None)

        return async_gen_wrapper

    if inspect.isgeneratorfunction(func):

        @functools.wraps(func)
        def gen_wrapper(*args: Any, **kwargs: Any) -> Generator[Any, Any, Any]:
            try:
                call = new_call(args, kwargs)
            except RecursionError:  # no stack left even to describe the call: it runs, counted
                _deep.counts["lost"] += 1
                return (yield from func(*args, **kwargs))
            run = _GeneratorRun(call)
            inner = func(*args, **kwargs)
            try:
                while True:
                    with call.active():
                        try:
                            item = run.resume(inner.send, inner.throw)
                        except StopIteration as stop:
                            returned = stop.value
                            break
                    try:
                        run.sent = yield run.passed(item)
                    except GeneratorExit:
                        inner.close()
                        raise
                    except BaseException as exc:
                        run.throw_next(exc)
            except BaseException as exc:
                run.failed(exc)
                raise
            return run.done(returned)

        return gen_wrapper

    if inspect.iscoroutinefunction(func):

        @functools.wraps(func)
        async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
            try:
                call = new_call(args, kwargs)
            except RecursionError:  # no stack left even to describe the call: it runs, counted
                _deep.counts["lost"] += 1
                return await func(*args, **kwargs)
            async with call:
                call.result = await func(*args, **kwargs)
            return call.result

        return async_wrapper

    @functools.wraps(func)
    def sync_wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            call = new_call(args, kwargs)
        except RecursionError:  # no stack left even to describe the call (within a few frames of the
            _deep.counts["lost"] += 1  # limit): it runs unaudited, counted and reported (_deep.report)
            return func(*args, **kwargs)
        with call:
            call.result = func(*args, **kwargs)
        return call.result

    return sync_wrapper


class _GeneratorRun:
    """One call of a decorated generator, sync or async: the driver both generator wrappers share.

    It begins the call (loop check, policy, attempt: a refusal raises before
    the tool's generator is even made), says how to resume the tool's
    generator (``send`` the consumer's value, or ``throw`` what the consumer
    threw in), keeps the result preview -- the items passed on, while they
    fit in it -- and ends the call: ``done`` with the generator's return
    value, ``failed`` with what escaped (``GeneratorExit`` when the consumer
    closed it: status ``closed``).
    """

    __slots__ = ("_parts", "_size", "_thrown", "call", "sent")

    def __init__(self, call: ToolCall) -> None:
        call.begin()
        self.call = call
        #: What the consumer sent in with its last step (None for ``next``).
        self.sent: Any = None
        self._thrown: BaseException | None = None
        self._parts: list[str] = []  # the items' previews, while they fit in one preview
        self._size = 0

    def resume(self, send: Callable[[Any], Any], throw: Callable[[BaseException], Any]) -> Any:
        """The tool's generator's next step (for an async one, the awaitable of it)."""
        thrown, self._thrown = self._thrown, None
        return throw(thrown) if thrown is not None else send(self.sent)

    def throw_next(self, exc: BaseException) -> None:
        """The consumer threw ``exc`` in: the next ``resume`` throws it into the tool's generator."""
        self._thrown, self.sent = exc, None

    def passed(self, item: Any) -> Any:
        """``item`` as it goes on to the consumer (added to the result preview while that has room)."""
        if self._size < PREVIEW_LIMIT:
            text = _preview_of(item)
            self._parts.append(text)
            self._size += len(text) + 2
        return item

    def failed(self, exc: BaseException) -> None:
        """End the call with ``exc`` (closed, for ``GeneratorExit``; else failed)."""
        self.call.result = self._items()
        self.call.finish(exc)

    def done(self, returned: Any) -> Any:
        """End the call as complete; its result is ``returned``, else the items' preview."""
        self.call.result = returned if returned is not None else self._items()
        self.call.finish(None)
        return returned

    def _items(self) -> str:
        return "[" + ", ".join(self._parts) + (", ...]" if self._size >= PREVIEW_LIMIT else "]")


def _arguments_of(signature: inspect.Signature | None, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    if signature is None:
        return {"args": args, "kwargs": kwargs} if kwargs else list(args)
    try:
        bound = signature.bind(*args, **kwargs)
    except TypeError:  # the call itself will fail the same way, and be recorded as a failure
        return {"args": args, "kwargs": kwargs}
    arguments = dict(bound.arguments)
    for name in ("self", "cls"):
        arguments.pop(name, None)
    return arguments

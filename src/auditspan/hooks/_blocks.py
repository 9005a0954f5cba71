"""What turns and tool calls share as blocks: making their span current, ``async with``, messages."""

from __future__ import annotations

from contextvars import Token
from types import TracebackType
from typing import TypeVar

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import NonRecordingSpan, SpanContext

__all__ = ["INACTIVE", "Activation", "AsyncWith", "message_of"]


def message_of(exc: BaseException) -> str:
    """An exception's message; its own ``__str__`` may raise: never into the agent."""
    try:
        return str(exc)
    except Exception:
        return f"<unprintable {type(exc).__name__}>"


class Activation:
    """Makes one span context current, and undoes it (a token per ``attach``)."""

    __slots__ = ("_ctx", "_token")

    def __init__(self, span_context: SpanContext | None) -> None:
        self._ctx = span_context
        self._token: Token[otel_context.Context] | None = None

    def enter(self) -> None:
        """Make the span current (nothing for None, or with no stack left)."""
        if self._ctx is not None:
            try:
                self._token = otel_context.attach(trace.set_span_in_context(NonRecordingSpan(self._ctx)))
            except RecursionError:  # no stack left: the span is not made current, nothing raises
                self._token = None

    def exit(self) -> None:
        """Undo ``enter``."""
        token, self._token = self._token, None
        if token is not None:
            try:  # noqa: SIM105 -- contextlib.suppress is a call, and there may be no room for one
                otel_context.detach(token)
            except RecursionError:
                pass


#: What a turn or call activates before it has a span context (shared: it holds no state).
INACTIVE = Activation(None)

_Block = TypeVar("_Block", bound="AsyncWith")


class AsyncWith:
    """``async with`` for a block whose ``with`` does no I/O: the same enter and exit."""

    def __enter__(self: _Block) -> _Block:
        raise NotImplementedError

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        raise NotImplementedError

    async def __aenter__(self: _Block) -> _Block:
        return self.__enter__()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.__exit__(exc_type, exc, tb)

"""Installing the processor: once per provider, and lazily where the audit log comes later.

``configure()`` and the ``opentelemetry-instrument`` path may both reach the same
TracerProvider (a distro's, or an application's that ``configure()`` reuses). Two
processors on one provider would write every record twice, so ``install`` remembers, per
provider (weakly), the processor it added, and adds none while that one is open.

``DeferredIngest`` is what the instrumentation path adds at start-up, when the audit log
does not exist yet (the process collector is made at the first audit event): it looks at
each span's keys -- a set test -- and only at the first agent, tool or guardrail span makes
the real processor, through its factory, and hands everything on to it from then on.
"""

from __future__ import annotations

import contextlib
import logging
import weakref
from collections.abc import Callable

from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor, TracerProvider

from .._fork import fork_safe_lock
from ._conventions import RECOGNITION_KEYS
from ._processor import AuditSpanProcessor

__all__ = ["DeferredIngest", "install", "installed"]

_logger = logging.getLogger("auditspan")
_lock = fork_safe_lock()
_installed: weakref.WeakKeyDictionary[TracerProvider, SpanProcessor] = weakref.WeakKeyDictionary()


def _open(processor: SpanProcessor | None) -> bool:
    return processor is not None and not getattr(processor, "closed", False)


def installed(provider: TracerProvider) -> SpanProcessor | None:
    """The ingesting processor ``install`` added to ``provider``, while it is open."""
    with _lock:
        processor = _installed.get(provider)
    return processor if _open(processor) else None


def install(provider: TracerProvider, make: Callable[[], SpanProcessor]) -> SpanProcessor | None:
    """Add ``make()`` to ``provider`` unless an open one is there already; return what was added.

    ``None`` when the provider already has one (its records are written by that one).
    """
    with _lock:
        if _open(_installed.get(provider)):
            return None
        processor = make()
        provider.add_span_processor(processor)
        _installed[provider] = processor
    return processor


class DeferredIngest(SpanProcessor):
    """A span processor that makes its ``AuditSpanProcessor`` at the first span it needs one for.

    ``factory()`` returns the processor (or ``None``: ingesting is off); it is called once,
    on the thread of the first agent, tool or guardrail span. A failing factory is logged
    once and turns this processor off. Never raises.
    """

    def __init__(self, factory: Callable[[], AuditSpanProcessor | None]) -> None:
        self._factory = factory
        self._inner: AuditSpanProcessor | None = None
        self._resolved = False
        self._lock = fork_safe_lock()
        self.closed = False

    @property
    def processor(self) -> AuditSpanProcessor | None:
        """The processor, once made."""
        return self._inner

    def _resolve(self) -> AuditSpanProcessor | None:
        with self._lock:
            if not self._resolved:
                self._resolved = True
                try:
                    self._inner = self._factory()
                except Exception:
                    with contextlib.suppress(Exception):  # a failing log handler must not raise either
                        _logger.exception(
                            "auditspan: cannot set up the span processor; spans are not audited"
                        )
        return self._inner

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        inner = self._inner
        if inner is None:
            if self._resolved or self.closed:
                return
            try:
                attributes = span.attributes
                if not attributes or RECOGNITION_KEYS.isdisjoint(attributes):
                    return
            except Exception:
                return
            inner = self._resolve()
            if inner is None:
                return
        inner.on_start(span, parent_context)

    def on_end(self, span: ReadableSpan) -> None:
        inner = self._inner
        if inner is not None:
            inner.on_end(span)

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        inner = self._inner
        return inner.force_flush(timeout_millis) if inner is not None else True

    def shutdown(self) -> None:
        self.closed = True
        inner = self._inner
        if inner is not None:
            inner.shutdown()

"""The span writer: the collector's one door to the OpenTelemetry tracer.

It starts spans with the ids the collector chose (so that an audit record
written before its span starts already carries the span's id), adds span
events, sets status and ends spans. Everything it writes was mapped by
``_attributes``; which span gets what is decided by ``_state``.

Choosing a span's ids needs two things the SDK offers without promising them:
its tracer's ``id_generator`` (replaced by one that hands out the chosen ids,
``_ids._InjectingIdGenerator``) and its private ``_span_limits`` (so that
auditspan marks the cuts the SDK would make silently). Both are checked, not
trusted: the first span started through the injected generator must carry the
ids asked for. When the tracer has no ``id_generator``, or the SDK no longer
uses it, injection is turned off (logged once) and the collector takes each
span's own ids once it has started -- records then carry the span's real ids;
only a record written before its span exists (a held record written early)
carries its turn's trace id without a span id. Without ``_span_limits`` the
limit is auditspan's own (``max_attribute_length``).
"""

from __future__ import annotations

import logging
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Link, Span, SpanContext, SpanKind, Status, StatusCode, TraceFlags

from .. import attributes as attr
from .._ids import _InjectingIdGenerator
from .._version import __version__
from ._attributes import event_attributes

__all__ = ["SpanWriter"]

_logger = logging.getLogger("auditspan.collector")
_ERROR = StatusCode.ERROR


class SpanWriter:
    """Starts, decorates and ends the collector's spans on a tracer of ``tracer_provider``.

    Args:
        tracer_provider: where spans go; the global provider when None (looked
            up at the first span, so that a provider set later is used).
        max_length: the longest string put on a span (lowered to the SDK's
            ``max_attribute_length`` when that is smaller).
        span_events: whether events become span events (``events_as``).
        stats: the collector's counters (``spans_unsampled`` grows here).

    Not locked: the collector calls it under its lock.
    """

    def __init__(self, tracer_provider: Any, max_length: int, span_events: bool, stats: Any) -> None:
        self.tracer_provider = tracer_provider
        self.max_length = max_length
        self.span_events = span_events
        self.stats = stats
        self._tracer: trace.Tracer | None = None
        self._injector: _InjectingIdGenerator | None = None
        #: Whether the first span started with injected ids has been checked to carry them.
        self._verified = False

    @property
    def ids_hold(self) -> bool:
        """Whether the ids chosen for a span not started yet will be its own (no tracer yet: assumed)."""
        return self._injector is not None or self._tracer is None

    def tracer(self) -> trace.Tracer:
        """The tracer, fetched (and its id generator wrapped) at the first call."""
        if self._tracer is None:
            provider = self.tracer_provider or trace.get_tracer_provider()
            tracer = provider.get_tracer(attr.INSTRUMENTATION_SCOPE, __version__)
            limits = getattr(tracer, "_span_limits", None)  # the SDK would cut silently: mark it ourselves
            limit = getattr(limits, "max_attribute_length", None)
            if isinstance(limit, int) and 0 < limit < self.max_length:
                self.max_length = limit
            inner = getattr(tracer, "id_generator", None)
            if inner is not None:
                try:
                    self._injector = _InjectingIdGenerator(inner)
                    tracer.id_generator = self._injector  # type: ignore[union-attr]
                except Exception:  # a read-only attribute: the spans' own ids, as without one
                    self._injector = None
            self._tracer = tracer
        return self._tracer

    @staticmethod
    def parent() -> otel_context.Context | None:
        """The current context when it holds a valid span (the parent of what starts now), else None."""
        current = otel_context.get_current()
        if trace.get_current_span(current).get_span_context().is_valid:
            return current
        return None

    @staticmethod
    def parent_trace_id(parent: otel_context.Context | None) -> int:
        """The trace id of ``parent``'s span (0 for none)."""
        if parent is None:
            return 0
        return trace.get_current_span(parent).get_span_context().trace_id

    @staticmethod
    def current() -> Span | None:
        """The agent's current span when it is valid, else None."""
        current = trace.get_current_span()
        return current if current.get_span_context().is_valid else None

    @staticmethod
    def in_context(span: Span) -> otel_context.Context:
        """A context with ``span`` current (the parent of its children)."""
        return trace.set_span_in_context(span)

    @staticmethod
    def ids_of(span: Span) -> tuple[int, int]:
        """(trace id, span id) of ``span``; (0, 0) for an invalid one (the API's no-op tracer)."""
        ctx = span.get_span_context()
        return (ctx.trace_id, ctx.span_id) if ctx.is_valid else (0, 0)

    def start(
        self,
        name: str,
        parent: otel_context.Context | None,
        start_ns: int,
        attributes: dict[str, Any],
        trace_id: int,
        span_id: int,
        retry_of: tuple[int, int] | None = None,
    ) -> Span:
        """Start a span, with the ids chosen when the SDK takes them; a root span when ``parent`` is None.

        ``retry_of``: (trace id, span id) of the failed attempt this call retries (a link).
        """
        tracer = self._tracer or self.tracer()
        injector = self._injector
        if injector is not None:
            injector.set_next(trace_id, span_id)
        try:
            # An explicit empty context makes a root span even when the agent has a current span.
            span = tracer.start_span(
                name,
                context=parent if parent is not None else otel_context.Context(),
                kind=SpanKind.INTERNAL,
                attributes=attributes,
                links=[Link(SpanContext(*retry_of, False, TraceFlags(1)))] if retry_of else None,
                start_time=start_ns,
            )
        finally:
            if injector is not None:
                injector.clear()
        if not self._verified and injector is not None:
            self._verify(span, parent, trace_id, span_id)
        if not span.is_recording():
            self.stats.spans_unsampled += 1  # its records are still written, with its ids
        return span

    def _verify(self, span: Span, parent: otel_context.Context | None, trace_id: int, span_id: int) -> None:
        """After the first span with injected ids: did it get them? If not, injection is turned off."""
        ctx = span.get_span_context()
        if not ctx.is_valid:
            return  # a tracer that makes no spans: nothing to tell yet
        self._verified = True
        if ctx.span_id == span_id and (parent is not None or ctx.trace_id == trace_id):
            return
        _logger.warning(
            "auditspan: this OpenTelemetry SDK does not take the span ids auditspan chooses "
            "(tracer.id_generator); records carry each span's own ids once it has started"
        )
        tracer, injector = self._tracer, self._injector
        self._injector = None
        try:
            if injector is not None and getattr(tracer, "id_generator", None) is injector:
                tracer.id_generator = injector._inner  # type: ignore[union-attr]
        except Exception:  # left in place: it hands out the SDK's own ids when given none
            pass

    def add_event(self, span: Span | None, fields: dict[str, Any], event_id: str | None, ts: int) -> None:
        """Record an event on ``span`` as a span event (when events become span events)."""
        if span is not None and self.span_events:
            span.add_event(
                attr.EVENT_NAME_PREFIX + fields["event_type"],
                event_attributes(fields, event_id, self.max_length),
                ts,
            )

    @staticmethod
    def fail(span: Span, attributes: dict[str, Any], error: str) -> None:
        """Set ``attributes`` on ``span`` and an ERROR status described by ``error``."""
        span.set_attributes(attributes)
        span.set_status(Status(_ERROR, error))

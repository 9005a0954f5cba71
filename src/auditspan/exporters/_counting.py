"""Counting wrappers around the span pipeline that ``configure()`` builds: what left, what was lost.

``CountingSpanProcessor`` counts the spans that enter the batch processor and
``CountingSpanExporter`` those the exporter accepted or refused, into one
``SpanExportStats``; ``dropped`` is what is left (the queue was full).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from .. import _fork

__all__ = ["CountingSpanExporter", "CountingSpanProcessor", "SpanExportStats"]

_logger = logging.getLogger("auditspan.configuration")


@dataclass
class SpanExportStats:
    """What happened to the spans of auditspan's own export pipeline (counted, never guessed).

    ``ended`` spans entered the batch processor; ``exported`` reached the
    exporter and were accepted; ``failed`` were refused (receiver down, after
    the exporter's retries). ``dropped`` -- the batch queue was full -- is
    exact once the pipeline is flushed (after ``force_flush`` / ``shutdown``).
    Spans a sampler did not record are ``collector.stats.spans_unsampled``.
    """

    ended: int = 0
    exported: int = 0
    failed: int = 0
    export_calls: int = 0
    failed_calls: int = 0

    @property
    def dropped(self) -> int:
        """Spans that never reached the exporter: the queue was full, or shutdown gave up waiting."""
        return max(0, self.ended - self.exported - self.failed)


class CountingSpanProcessor(SpanProcessor):
    """Counts the spans that enter the wrapped batch processor (``on_end``, on the thread that ends them)."""

    def __init__(self, inner: SpanProcessor, stats: SpanExportStats) -> None:
        self.inner = inner
        self.stats = stats

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        self.inner.on_start(span, parent_context)

    def on_end(self, span: ReadableSpan) -> None:
        self.stats.ended += 1
        self.inner.on_end(span)

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return self.inner.force_flush(timeout_millis)

    def shutdown(self) -> None:
        self.inner.shutdown()


class CountingSpanExporter(SpanExporter):
    """Counts spans the wrapped exporter accepted and refused, and says so once when spans are lost.

    ``force_flush()`` of the SDK reports success even when every export
    failed, so delivery is judged from these counts instead. The first refused
    batch logs one warning line naming where the spans were going and where
    the audit records still are; later ones are only counted.
    """

    def __init__(
        self, inner: SpanExporter, stats: SpanExportStats, destinations: Mapping[str, str] | None = None
    ) -> None:
        self.inner = inner
        self.stats = stats
        self.destinations = destinations if destinations is not None else {}
        self.warned = False
        self._lock = threading.Lock()
        _fork.track(self, tier=2)

    def _fork_child(self) -> None:
        self._lock = threading.Lock()  # the SDK's batch processor restarts its export thread in the child

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        try:
            result = self.inner.export(spans)
        except Exception:
            _logger.exception("auditspan: span exporter raised")
            result = SpanExportResult.FAILURE
        with self._lock:
            self.stats.export_calls += 1
            if result is SpanExportResult.SUCCESS:
                self.stats.exported += len(spans)
            else:
                self.stats.failed += len(spans)
                self.stats.failed_calls += 1
                warn, self.warned = not self.warned, True
        if result is not SpanExportResult.SUCCESS and warn:
            _logger.warning(
                "auditspan: spans could not be delivered to %s; every audit record is still written (%s); "
                "further failures are only counted (span_stats), and shutdown reports the total",
                self.destinations.get("traces", "the span exporter"),
                self.destinations.get("audit log", "no audit log"),
            )
        return result

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return self.inner.force_flush(timeout_millis)

    def shutdown(self) -> None:
        self.inner.shutdown()

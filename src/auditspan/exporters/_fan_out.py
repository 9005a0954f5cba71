"""One batch processor, several exporters (``OTEL_TRACES_EXPORTER=otlp,console``)."""

from __future__ import annotations

from collections.abc import Sequence

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

__all__ = ["FanOutSpanExporter"]


class FanOutSpanExporter(SpanExporter):
    """Several exporters behind one batch processor: success only when every one succeeded."""

    def __init__(self, exporters: list[SpanExporter]) -> None:
        self.exporters = exporters

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        results = [exporter.export(spans) for exporter in self.exporters]
        ok = all(result is SpanExportResult.SUCCESS for result in results)
        return SpanExportResult.SUCCESS if ok else SpanExportResult.FAILURE

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return all([exporter.force_flush(timeout_millis) for exporter in self.exporters])

    def shutdown(self) -> None:
        for exporter in self.exporters:
            exporter.shutdown()

"""OTLP/JSON-lines file exporters: spans and log records in local files.

The embedded default of ``configure()`` when no OTLP endpoint is set: each
export appends one ``ExportTraceServiceRequest`` in the OTLP/JSON encoding
(hex trace and span ids, camelCase keys) -- the format the OpenTelemetry
Collector's ``file`` exporter writes and its ``otlpjsonfile`` receiver reads,
so a folder of these can be shipped to any backend later::

    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(OtlpJsonFileSpanExporter("traces.jsonl")))

``OtlpJsonFileLogExporter`` does the same for log records
(``ExportLogsServiceRequest``). ``read_spans(path)`` reads a span file back as
flat span dicts.
"""

from __future__ import annotations

import base64
import json
import os
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from google.protobuf.json_format import MessageToDict
from opentelemetry.exporter.otlp.proto.common._log_encoder import encode_logs
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk._logs import ReadableLogRecord
from opentelemetry.sdk._logs.export import LogRecordExporter, LogRecordExportResult
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from .. import _fork

__all__ = ["OtlpJsonFileLogExporter", "OtlpJsonFileSpanExporter", "read_spans"]


def _b64_to_hex(value: str) -> str:
    return base64.b64decode(value).hex()


class _JsonLinesFile:
    """An append-only file (mode 0600) that takes one JSON document per line."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        self._file = os.fdopen(fd, "a", encoding="utf-8")
        self._lock = threading.Lock()
        self._closed = False
        self._held_for_fork = False
        _fork.track(self, tier=2)

    # A fork in the middle of a write would leave the child a held lock and half a line in the
    # file object's buffer: wait for the write (bounded), and give the child a fresh lock.
    def _fork_prepare(self) -> None:
        self._held_for_fork = self._lock.acquire(timeout=5.0)

    def _fork_parent(self) -> None:
        if self._held_for_fork:
            self._held_for_fork = False
            self._lock.release()

    def _fork_child(self) -> None:
        self._held_for_fork = False
        self._lock = threading.Lock()

    def write(self, document: dict[str, Any]) -> bool:
        if self._closed:
            return False
        line = json.dumps(document, separators=(",", ":"), ensure_ascii=False)
        with self._lock:
            self._file.write(line + "\n")
            self._file.flush()
        return True

    def sync(self) -> bool:
        with self._lock:
            if not self._closed:
                self._file.flush()
                os.fsync(self._file.fileno())
        return True

    def close(self) -> None:
        with self._lock:
            if not self._closed:
                self._closed = True
                self._file.close()


class OtlpJsonFileSpanExporter(SpanExporter):
    """Appends each batch of spans as one OTLP/JSON line (file mode 0600)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self._out = _JsonLinesFile(path)
        self.path = self._out.path

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        """Write ``spans`` as one line; FAILURE (not an exception) when that fails."""
        try:
            request = MessageToDict(encode_spans(spans))
            for resource_spans in request.get("resourceSpans", ()):
                for scope_spans in resource_spans.get("scopeSpans", ()):
                    for span in scope_spans.get("spans", ()):
                        _hex_ids(span)
                        for link in span.get("links", ()):
                            _hex_ids(link)
            written = self._out.write(request)
        except Exception:
            return SpanExportResult.FAILURE
        return SpanExportResult.SUCCESS if written else SpanExportResult.FAILURE

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        """Everything is written at export time; sync it to disk."""
        return self._out.sync()

    def shutdown(self) -> None:
        """Close the file; later exports fail."""
        self._out.close()


class OtlpJsonFileLogExporter(LogRecordExporter):
    """Appends each batch of log records as one OTLP/JSON line (file mode 0600)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self._out = _JsonLinesFile(path)
        self.path = self._out.path

    def export(self, batch: Sequence[ReadableLogRecord]) -> LogRecordExportResult:
        """Write ``batch`` as one line; FAILURE (not an exception) when that fails."""
        try:
            request = MessageToDict(encode_logs(batch))
            for resource_logs in request.get("resourceLogs", ()):
                for scope_logs in resource_logs.get("scopeLogs", ()):
                    for log_record in scope_logs.get("logRecords", ()):
                        _hex_ids(log_record)
            written = self._out.write(request)
        except Exception:
            return LogRecordExportResult.FAILURE
        return LogRecordExportResult.SUCCESS if written else LogRecordExportResult.FAILURE

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        """Everything is written at export time; sync it to disk."""
        return self._out.sync()

    def shutdown(self) -> None:
        """Close the file; later exports fail."""
        self._out.close()


def _hex_ids(item: dict[str, Any]) -> None:
    # OTLP/JSON writes ids as hex, where protobuf's JSON mapping writes base64.
    for key in ("traceId", "spanId", "parentSpanId"):
        if item.get(key):
            item[key] = _b64_to_hex(item[key])


def read_spans(path: str | os.PathLike[str]) -> Iterator[dict[str, Any]]:
    """Yield every span of an OTLP/JSON lines file as a dict.

    Each span dict is the OTLP/JSON span (``traceId``, ``spanId``,
    ``parentSpanId``, ``name``, ``startTimeUnixNano``, ``attributes``, ...)
    plus ``"resource"``: the resource attributes as a plain dict, and
    ``"attributeMap"``: the span attributes as a plain dict.
    """
    with open(path, encoding="utf-8") as f:
        for line in f:
            if not line.strip():
                continue
            request = json.loads(line)
            for resource_spans in request.get("resourceSpans", ()):
                resource = attribute_map(resource_spans.get("resource", {}).get("attributes", ()))
                for scope_spans in resource_spans.get("scopeSpans", ()):
                    for span in scope_spans.get("spans", ()):
                        span["resource"] = resource
                        span["attributeMap"] = attribute_map(span.get("attributes", ()))
                        yield span


def attribute_map(attributes: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """OTLP/JSON ``[{"key": k, "value": {"stringValue": v}}]`` as ``{k: v}``."""
    result: dict[str, Any] = {}
    for item in attributes:
        value = item.get("value", {})
        result[item["key"]] = _any_value(value)
    return result


def _any_value(value: dict[str, Any]) -> Any:
    if "stringValue" in value:
        return value["stringValue"]
    if "boolValue" in value:
        return value["boolValue"]
    if "intValue" in value:
        return int(value["intValue"])
    if "doubleValue" in value:
        return float(value["doubleValue"])
    if "arrayValue" in value:
        return [_any_value(v) for v in value["arrayValue"].get("values", ())]
    if "kvlistValue" in value:
        return attribute_map(value["kvlistValue"].get("values", ()))
    return None

"""The record writer: each canonical record to the audit log and, when asked, as an OTel log record.

Records are written outside the collector's lock, in the order their events
came. After ``shutdown()`` the audit log is closed: a record that still comes
(an application's atexit handler) is appended synchronously instead
(``write_after_shutdown``), never lost.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from typing import Any

from opentelemetry import _logs, trace
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

from .. import attributes as attr
from .._version import __version__
from ..audit_log import AuditLogExporter, JsonLinesAuditLog
from ..records import encode_record
from ._attributes import SEVERITY_NUMBERS, log_attributes

__all__ = ["RecordWriter"]

_logger = logging.getLogger("auditspan.collector")


class RecordWriter:
    """Writes canonical records to ``audit_log`` and, with ``log_events``, to ``logger_provider``.

    Args:
        audit_log: the audit-log exporter (None: no log); may be replaced (``audit_log``).
        logger_provider: where log records go; the global one when None.
        log_events: whether each record is also an OTel log record (``events_as`` "logs"/"both").
        limit: the longest string put on a log record's attribute (read at each record:
            the span writer may lower it when it meets the tracer).
        stats: the collector's counters (``records``, ``records_after_shutdown``).
        on_error: counts and logs an internal error (the collector's).
    """

    def __init__(
        self,
        audit_log: AuditLogExporter | None,
        logger_provider: Any,
        log_events: bool,
        limit: Callable[[], int],
        stats: Any,
        on_error: Callable[[BaseException], None],
    ) -> None:
        self.logger_provider = logger_provider
        self.log_events = log_events
        self._limit = limit
        self.stats = stats
        self._on_error = on_error
        self._logger: Any = None
        self.audit_log = audit_log

    @property
    def audit_log(self) -> AuditLogExporter | None:
        """The audit-log exporter records go to (None: no log)."""
        return self._audit_log

    @audit_log.setter
    def audit_log(self, log: AuditLogExporter | None) -> None:
        self._audit_log = log
        #: Where ``write`` sends records: the audit log, and after shutdown ``_AfterShutdown``.
        self._records_to: Any = log

    def after_shutdown(self) -> None:
        """The audit log is shut down: records from now on go through ``write_after_shutdown``."""
        self._records_to = _AfterShutdown(self)

    def write(self, record: dict[str, Any], ts: int) -> None:
        """Write one record (and its log record); an error is counted, not raised (but ``RecursionError``)."""
        try:
            if self.log_events:
                self._emit_log(record, ts)
            log = self._records_to
            if type(log) is JsonLinesAuditLog:  # the usual log: its export() minus a call and a list
                log.export_lines((encode_record(record),))
            elif log is not None:
                log.export((record,))
            self.stats.records += 1
        except RecursionError:
            raise  # emit writes it from a fresh stack
        except Exception as exc:
            self._on_error(exc)

    def write_after_shutdown(self, record: dict[str, Any]) -> None:
        """A record that arrived after ``shutdown()`` (an application's atexit handler, say).

        Written synchronously -- appended to the log's file, which is opened
        for this one line (never through a symlink), or to its stream -- and
        said once; its span is dropped (counted by the handle as dropped: the
        provider is shut down). An exporter of another kind is asked as usual.
        """
        self.stats.records_after_shutdown += 1
        log = self.audit_log
        line = encode_record(record)
        where = "nowhere (no audit log)"
        if isinstance(log, JsonLinesAuditLog) and log.path is not None:
            where = str(log.path)
            # As the log opened it: no symlink followed unless it was told to, no hang on a FIFO.
            flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC | os.O_NONBLOCK
            if not getattr(log._sink, "_follow", False):
                flags |= os.O_NOFOLLOW
            fd = os.open(log.path, flags, 0o600)
            try:
                os.set_blocking(fd, True)
                view = memoryview(line)
                while view:
                    view = view[os.write(fd, view) :]
            finally:
                os.close(fd)
        elif isinstance(log, JsonLinesAuditLog) and log._sink.stream is not None:
            where = repr(log._sink.stream)
            log._sink.write([line])
        elif log is not None:
            where = repr(log)
            log.export((record,))
        if self.stats.records_after_shutdown == 1:
            _logger.warning(
                "auditspan: an audit event arrived after shutdown (from an atexit handler, say): its record "
                "was written synchronously to %s, its span dropped (further ones are counted in "
                "collector.stats.records_after_shutdown)",
                where,
            )

    def _emit_log(self, record: dict[str, Any], ts: int) -> None:
        """The record as an OTel log record, in the context of its span (when it has one)."""
        if self._logger is None:
            provider = self.logger_provider or _logs.get_logger_provider()
            self._logger = provider.get_logger(attr.INSTRUMENTATION_SCOPE, __version__)
        telemetry = record.get("telemetry") or {}
        trace_hex, span_hex = telemetry.get("trace_id"), telemetry.get("span_id")
        ctx = None
        if trace_hex and span_hex:
            span_context = SpanContext(
                int(trace_hex, 16), int(span_hex, 16), False, TraceFlags(TraceFlags.SAMPLED)
            )
            ctx = trace.set_span_in_context(NonRecordingSpan(span_context))
        severity = str(record.get("severity") or "info").lower()
        self._logger.emit(
            timestamp=ts,
            context=ctx,
            severity_number=SEVERITY_NUMBERS.get(severity, 9),
            severity_text=severity.upper(),
            body=encode_record(record).decode().rstrip("\n"),
            attributes=log_attributes(record, self._limit()),
            event_name=attr.EVENT_NAME_PREFIX + str(record.get("event_type")),
        )


class _AfterShutdown:
    """What records go to once the audit log is shut down (``RecordWriter.write_after_shutdown``)."""

    __slots__ = ("_writer",)

    def __init__(self, writer: RecordWriter) -> None:
        self._writer = writer

    def export(self, records: Any) -> None:
        for record in records:
            self._writer.write_after_shutdown(record)

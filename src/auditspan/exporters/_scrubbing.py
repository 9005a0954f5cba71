"""Scrubbing exporters: the capture policy on every span and log record that leaves the process.

auditspan redacts what it writes itself, but the spans of other instrumentations carry
arguments, results, prompts and exception messages as the frameworks recorded them --
Pydantic AI puts a failing tool's exception text on its span, secrets included. When
auditspan builds the export pipeline (``configure()``), each span exporter and log
exporter is wrapped in one of these, so nothing leaves unredacted:

* span and event attributes, link attributes, the span name and the status description:
  secrets replaced (``Redactor.scrub``; the span name as a name, ``scrub_name``); the
  value under a sensitive key (``authorization``, ``api_key``, ...) replaced whole;
* content attributes -- prompts, replies, tool arguments and results, messages
  (``gen_ai.tool.call.arguments``, ``input.value``, ``traceloop.entity.input``, ...) --
  under the capture policy: redacted, or removed under ``none``;
* ``exception.message`` / ``exception.stacktrace`` of exception events: scrubbed;
* log records: the body (text, or each string of a structured body) and the attributes.

Under the ``full`` policy nothing is changed. auditspan's own spans and log records
(scope ``auditspan``) already went through the policy and pass as they are. The work is
done on the exporter's thread (the batch processor's), not the agent's. Like logfire's
scrubber it can be turned off: ``AUDITSPAN_SCRUBBING=false`` /
``configure(scrubbing=False)``.

Example::

    exporter = ScrubbingSpanExporter(OTLPSpanExporter(), Redactor())
    provider.add_span_processor(BatchSpanProcessor(exporter))
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any, Final

from opentelemetry.sdk._logs import ReadableLogRecord
from opentelemetry.sdk._logs.export import LogRecordExporter, LogRecordExportResult
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.trace import Link, Status

from .. import attributes as attr
from ..redaction import CapturePolicy, Redactor

__all__ = ["CONTENT_ATTRIBUTES", "ScrubbingLogExporter", "ScrubbingSpanExporter", "scrub_attributes"]

#: Attributes that hold content (what a prompt, reply, tool call or message says): the capture
#: policy applies to them as to auditspan's own previews. Keys that start with one of
#: ``_CONTENT_PREFIXES`` count too (OpenInference flattens messages into ``llm.input_messages.0...``).
CONTENT_ATTRIBUTES: Final = frozenset(
    {
        attr.GEN_AI_TOOL_CALL_ARGUMENTS,
        attr.GEN_AI_TOOL_CALL_RESULT,
        attr.GEN_AI_INPUT_MESSAGES,
        attr.GEN_AI_OUTPUT_MESSAGES,
        "gen_ai.system_instructions",
        attr.GEN_AI_PROMPT,
        attr.GEN_AI_COMPLETION,
        attr.INPUT_VALUE,
        attr.OUTPUT_VALUE,
        attr.TRACELOOP_ENTITY_INPUT,
        attr.TRACELOOP_ENTITY_OUTPUT,
        attr.LEGACY_TOOL_ARGUMENTS,
        attr.LEGACY_TOOL_RESPONSE,
        attr.PYDANTIC_AI_FINAL_RESULT,
        attr.PYDANTIC_AI_ALL_MESSAGES,
        attr.ADK_TOOL_CALL_ARGS,
        attr.ADK_TOOL_RESPONSE,
        "pydantic_ai.tool.deferral.metadata",
    }
)
_CONTENT_PREFIXES: Final = (
    "llm.input_messages.",
    "llm.output_messages.",
    "gen_ai.prompt.",
    "gen_ai.completion.",
)


def _is_content(key: str) -> bool:
    return key in CONTENT_ATTRIBUTES or key.startswith(_CONTENT_PREFIXES)


def _own(scope: Any) -> bool:
    name = getattr(scope, "name", None)
    return isinstance(name, str) and (
        name == attr.INSTRUMENTATION_SCOPE or name.startswith(attr.INSTRUMENTATION_SCOPE + ".")
    )


def _scrub_value(redactor: Redactor, key: str, value: Any, content: bool) -> Any:
    """One attribute value with the policy applied (its type kept: a sequence stays a sequence)."""
    if type(value) is str:
        if content:
            return redactor.capture(value)
        if redactor.key_is_sensitive(key) and value:
            return redactor.redact_value({key: value})[key]
        return redactor.scrub(value)
    if isinstance(value, (bool, int, float)) or value is None:
        return value
    if isinstance(value, bytes):
        return value
    if isinstance(value, Mapping):
        return {k: _scrub_value(redactor, str(k), v, content) for k, v in value.items()}
    if isinstance(value, Sequence):
        return tuple(_scrub_value(redactor, key, item, content) for item in value)
    return redactor.scrub(str(value))


def scrub_attributes(redactor: Redactor, attributes: Mapping[str, Any] | None) -> dict[str, Any]:
    """``attributes`` with the capture policy applied (see the module docstring). Never raises.

    A value that cannot be scrubbed becomes ``[REDACTED:error]`` (fail closed).
    """
    if not attributes:
        return {}
    drop_content = redactor.policy is CapturePolicy.NONE
    scrubbed: dict[str, Any] = {}
    for key, value in attributes.items():
        content = _is_content(key)
        if content and drop_content:
            continue  # "none": content is not kept, not even as an empty value
        try:
            scrubbed[key] = _scrub_value(redactor, key, value, content)
        except Exception:
            scrubbed[key] = "[REDACTED:error]"
    return scrubbed


def _scrub_span(redactor: Redactor, span: ReadableSpan) -> ReadableSpan:
    status = span.status
    description = status.description
    if description:
        status = Status(status.status_code, redactor.scrub(description))
    return ReadableSpan(
        name=redactor.scrub_name(span.name),
        context=span.context,
        parent=span.parent,
        resource=span.resource,
        attributes=scrub_attributes(redactor, span.attributes),
        events=[
            Event(event.name, scrub_attributes(redactor, event.attributes), event.timestamp, limit=None)
            for event in span.events
        ],
        links=[Link(link.context, scrub_attributes(redactor, link.attributes)) for link in span.links],
        kind=span.kind,
        status=status,
        start_time=span.start_time,
        end_time=span.end_time,
        instrumentation_scope=span.instrumentation_scope,
    )


class ScrubbingSpanExporter(SpanExporter):
    """Wrap a span exporter: each span it gets has the capture policy applied first.

    Spans of auditspan's own scope pass unchanged (already redacted); under ``full``
    everything does. A span that cannot be scrubbed is not exported (fail closed) and is
    counted in ``spans_withheld``. Thread-safe as the wrapped exporter is.
    """

    def __init__(self, inner: SpanExporter, redactor: Redactor) -> None:
        self.inner = inner
        self.redactor = redactor
        self.spans_withheld = 0

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        if self.redactor.policy is CapturePolicy.FULL:
            return self.inner.export(spans)
        clean: list[ReadableSpan] = []
        for span in spans:
            if _own(span.instrumentation_scope):
                clean.append(span)
                continue
            try:
                clean.append(_scrub_span(self.redactor, span))
            except Exception:
                self.spans_withheld += 1
        return self.inner.export(clean)

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return self.inner.force_flush(timeout_millis)

    def shutdown(self) -> None:
        self.inner.shutdown()


def _scrub_body(redactor: Redactor, body: Any) -> Any:
    if type(body) is str:
        return redactor.scrub(body)
    if body is None or isinstance(body, (bool, int, float, bytes)):
        return body
    if isinstance(body, Mapping):
        return scrub_attributes(redactor, {str(k): v for k, v in body.items()})
    if isinstance(body, Sequence):
        return [_scrub_body(redactor, item) for item in body]
    return redactor.scrub(str(body))


def _scrub_log(redactor: Redactor, readable: ReadableLogRecord) -> ReadableLogRecord:
    record = copy.copy(readable.log_record)
    record.body = _scrub_body(redactor, record.body)
    record.attributes = scrub_attributes(redactor, record.attributes)
    return dataclasses.replace(readable, log_record=record)


class ScrubbingLogExporter(LogRecordExporter):
    """Wrap a log-record exporter: bodies and attributes get the capture policy first.

    As ``ScrubbingSpanExporter``: auditspan's own records pass unchanged, nothing changes
    under ``full``, a record that cannot be scrubbed is withheld (``records_withheld``).
    """

    def __init__(self, inner: LogRecordExporter, redactor: Redactor) -> None:
        self.inner = inner
        self.redactor = redactor
        self.records_withheld = 0

    def export(self, batch: Sequence[ReadableLogRecord]) -> LogRecordExportResult:
        if self.redactor.policy is CapturePolicy.FULL:
            return self.inner.export(batch)
        clean: list[ReadableLogRecord] = []
        for record in batch:
            if _own(record.instrumentation_scope):
                clean.append(record)
                continue
            try:
                clean.append(_scrub_log(self.redactor, record))
            except Exception:
                self.records_withheld += 1
        return self.inner.export(clean)

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return self.inner.force_flush(timeout_millis)

    def shutdown(self) -> None:
        self.inner.shutdown()  # type: ignore[no-untyped-call]  # the SDK leaves it untyped

"""Scrubbing exporters: a secret in another instrumentation's span or log record never reaches the exporter.

Spans and log records are made through a real TracerProvider / LoggerProvider (a third-party
instrumentation scope, as a framework's own spans have) and exported through the wrappers
into the SDK's in-memory exporters.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
from opentelemetry._logs import LogRecord
from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Link, Status, StatusCode

from auditspan import Redactor
from auditspan import attributes as attr
from auditspan.exporters._scrubbing import ScrubbingLogExporter, ScrubbingSpanExporter, scrub_attributes

from ...secret_corpus import load_lookalikes, load_secrets

SECRET = "sk-proj-abcDEF1234567890abcDEF12XYZ"
HIDDEN = SECRET[len("sk-proj-") :]


def _spans(policy: str = "redacted") -> tuple[TracerProvider, InMemorySpanExporter]:
    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(ScrubbingSpanExporter(memory, Redactor(policy))))
    return provider, memory


def _dump(spans: Any) -> str:
    return "\n".join(span.to_json() for span in spans)


def _tool_span_with_secrets(provider: TracerProvider) -> None:
    tracer = provider.get_tracer("a-framework")
    other = tracer.start_span("earlier")
    other.end()
    assert other.get_span_context() is not None
    with (
        pytest.raises(PermissionError),
        tracer.start_as_current_span(
            f"execute_tool deploy {SECRET}",
            attributes={
                attr.GEN_AI_OPERATION_NAME: "execute_tool",
                attr.GEN_AI_TOOL_CALL_ARGUMENTS: json.dumps({"token": SECRET, "env": "prod"}),
                "db.statement": f"SELECT * FROM t WHERE key = '{SECRET}'",
                "http.request.header.authorization": ("Basic dXNlcjpwYXNzd29yZA==",),
                "url.full": f"https://user:{HIDDEN}@api.example.com/v1",
                "retry.count": 3,
            },
            links=[Link(other.get_span_context(), {"reason": f"key {SECRET}"})],
        ) as span,
    ):
        span.add_event("progress", {"note": f"used {SECRET}"})
        span.set_status(Status(StatusCode.ERROR, f"denied for {SECRET}"))
        raise PermissionError(f"API key {SECRET} was rejected")


def test_a_secret_in_another_instrumentations_span_never_reaches_the_exporter() -> None:
    provider, memory = _spans()
    _tool_span_with_secrets(provider)
    exported = memory.get_finished_spans()
    text = _dump(exported)
    assert HIDDEN not in text
    assert "dXNlcjpwYXNzd29yZA" not in text
    span = next(s for s in exported if s.name.startswith("execute_tool"))
    assert span.name == "execute_tool deploy [REDACTED:openai_key]"
    attributes = span.attributes
    assert attributes is not None
    assert attributes["retry.count"] == 3
    assert attributes[attr.GEN_AI_OPERATION_NAME] == "execute_tool"
    assert "[REDACTED:" in str(attributes[attr.GEN_AI_TOOL_CALL_ARGUMENTS])
    assert attributes["http.request.header.authorization"] == (
        "[REDACTED:http_request_header_authorization]",
    )
    assert attributes["url.full"] == "https://user:[REDACTED:url_password]@api.example.com/v1"
    exception = next(e for e in span.events if e.name == "exception")
    assert exception.attributes is not None
    assert exception.attributes["exception.message"] == "API key [REDACTED:openai_key] was rejected"
    assert "[REDACTED:openai_key]" in str(exception.attributes["exception.stacktrace"])
    assert exception.attributes["exception.type"] == "PermissionError"
    # The SDK set the status from the exception as the span left its ``with``.
    assert span.status.description == "PermissionError: API key [REDACTED:openai_key] was rejected"
    assert span.links[0].attributes == {"reason": "key [REDACTED:openai_key]"}
    # Ids, times, kind and parent are the span's own.
    assert span.context is not None and span.start_time is not None and span.end_time is not None


def test_a_status_description_set_by_the_framework_is_scrubbed() -> None:
    provider, memory = _spans()
    with provider.get_tracer("fw").start_as_current_span("call") as span:
        span.set_status(Status(StatusCode.ERROR, f"denied for {SECRET}"))
    [exported] = memory.get_finished_spans()
    assert exported.status.description == "denied for [REDACTED:openai_key]"
    assert exported.status.status_code is StatusCode.ERROR


def test_capture_policy_none_removes_content_and_still_redacts_the_rest() -> None:
    provider, memory = _spans("none")
    _tool_span_with_secrets(provider)
    span = next(s for s in memory.get_finished_spans() if s.name.startswith("execute_tool"))
    assert span.attributes is not None
    assert attr.GEN_AI_TOOL_CALL_ARGUMENTS not in span.attributes
    assert HIDDEN not in _dump([span])


def test_capture_policy_full_changes_nothing() -> None:
    provider, memory = _spans("full")
    _tool_span_with_secrets(provider)
    span = next(s for s in memory.get_finished_spans() if s.name.startswith("execute_tool"))
    assert SECRET in span.name
    assert span.attributes is not None and SECRET in str(span.attributes["db.statement"])


def test_auditspan_own_spans_pass_unchanged() -> None:
    provider, memory = _spans()
    with provider.get_tracer(attr.INSTRUMENTATION_SCOPE).start_as_current_span("execute_tool x") as span:
        span.set_attribute("note", "already redacted by the collector")
    [exported] = memory.get_finished_spans()
    assert isinstance(exported, ReadableSpan)
    assert exported.attributes == {"note": "already redacted by the collector"}


def test_every_secret_of_the_corpus_is_scrubbed_and_lookalikes_survive() -> None:
    redactor = Redactor()
    secrets = load_secrets()
    attributes = {f"field.{i}": secret.in_context for i, secret in enumerate(secrets)}
    attributes.update({f"content.{i}": secret.in_context for i, secret in enumerate(secrets)})
    scrubbed = json.dumps(scrub_attributes(redactor, attributes))
    for secret in secrets:
        for piece in secret.pieces():
            assert piece not in scrubbed, (secret.kind, piece)
    lookalikes = load_lookalikes()
    kept = scrub_attributes(redactor, {f"k{i}": text for i, text in enumerate(lookalikes)})
    assert list(kept.values()) == lookalikes


@pytest.mark.filterwarnings("ignore:`LoggingHandler` in `opentelemetry-sdk` is deprecated:DeprecationWarning")
def test_a_secret_in_a_log_record_never_reaches_the_exporter() -> None:
    memory = InMemoryLogRecordExporter()
    provider = LoggerProvider()
    provider.add_log_record_processor(SimpleLogRecordProcessor(ScrubbingLogExporter(memory, Redactor())))
    logger = provider.get_logger("a-framework")
    logger.emit(LogRecord(body=f"calling with {SECRET}", attributes={"api_key": "plain-value", "n": 1}))
    logger.emit(LogRecord(body={"message": f"token {SECRET}", "nested": [f"x {SECRET}"]}))
    handler = LoggingHandler(logger_provider=provider)
    std = logging.getLogger("test_scrubbing.framework")
    std.addHandler(handler)
    std.propagate = False
    try:
        try:
            raise ValueError(f"bad key {SECRET}")
        except ValueError:
            std.exception("tool failed with %s", SECRET)
    finally:
        std.removeHandler(handler)
    records = memory.get_finished_logs()
    assert len(records) == 3
    text = "\n".join(record.to_json() for record in records)
    assert HIDDEN not in text
    first = records[0].log_record
    assert first.body == "calling with [REDACTED:openai_key]"
    assert first.attributes is not None and first.attributes["api_key"] == "[REDACTED:api_key]"
    assert first.attributes["n"] == 1
    assert records[1].log_record.body == {
        "message": "token [REDACTED:openai_key]",
        "nested": ("x [REDACTED:openai_key]",),
    }
    third = records[2].log_record
    assert third.attributes is not None
    assert "[REDACTED:openai_key]" in str(third.attributes.get("exception.message"))


def test_an_unscrubbable_span_is_withheld_not_leaked() -> None:
    class Broken(Redactor):
        def scrub_name(self, name: str) -> str:
            raise RuntimeError("broken")

    memory = InMemorySpanExporter()
    exporter = ScrubbingSpanExporter(memory, Broken())
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    with provider.get_tracer("fw").start_as_current_span(f"span {SECRET}"):
        pass
    assert memory.get_finished_spans() == ()
    assert exporter.spans_withheld == 1

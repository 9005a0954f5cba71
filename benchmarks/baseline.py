"""The baseline: the same spans, attributes and span events made directly with the OpenTelemetry SDK.

``BareSdkAgent`` is what a runtime instrumented by hand would do for the
workload's events: a turn span, one child span per tool call carrying the same
attributes auditspan sets, the same span events with the same attribute keys,
status ERROR on failures -- and nothing else (no timestamp parsing, no
classification beyond a per-tool table taken from the collector once, no
redaction, no canonical record). Both go through
the same ``BatchSpanProcessor`` and a no-op exporter (``make_provider``).

``span_shape`` reduces a finished span to what must be equal between the two
(name, attribute keys, event names and keys, status, parent or root); the
smoke test checks that the baseline really makes what the collector makes.
"""

from __future__ import annotations

import itertools
import json
import os
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    SimpleSpanProcessor,
    SpanExporter,
    SpanExportResult,
)
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Span, SpanKind, Status, StatusCode

from auditspan import attributes as attr
from auditspan.collector import SpanCollector
from auditspan.events import AuditEvent

from .workload import TOOLS, turn_events

_OPERATION_PREFIX = attr.OPERATION_TYPE.rsplit(".", 1)[0] + "."

__all__ = [
    "BareSdkAgent",
    "CountingProcessor",
    "NoopSpanExporter",
    "SpanShape",
    "make_provider",
    "operation_attributes",
    "span_shape",
]


def _messages(role: str, text: str) -> str:
    """The GenAI conventions' message JSON, as an application would encode it."""
    message: dict[str, Any] = {"role": role, "parts": [{"type": "text", "content": text}]}
    if role == "assistant":
        message["finish_reason"] = "stop"
    return json.dumps([message], separators=(",", ":"), ensure_ascii=False)


class NoopSpanExporter(SpanExporter):
    """Accepts every batch and only counts the spans (so a run can check none went missing)."""

    def __init__(self) -> None:
        self.spans = 0

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        """Count and drop."""
        self.spans += len(spans)
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        """Nothing to release."""

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        """Nothing buffered."""
        return True


class CountingProcessor(SpanProcessor):
    """Counts spans as they end: the number of spans *produced*, whatever the exporters do with them."""

    def __init__(self) -> None:
        self.ended = 0

    def on_end(self, span: ReadableSpan) -> None:
        """One more span produced."""
        self.ended += 1


#: Queue of the benchmarks' BatchSpanProcessor: the default 2,048 drops spans when thousands of turns
#: end in one burst (the open-turns scaling run), and a dropped span would spoil the counts checked.
#: The queue's size does not change what a span costs to record.
BENCH_QUEUE_SIZE = 1 << 16


def make_provider() -> tuple[TracerProvider, NoopSpanExporter]:
    """A ``TracerProvider`` with a ``BatchSpanProcessor`` (default batch and delay) over a no-op exporter."""
    noop = NoopSpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(noop, max_queue_size=BENCH_QUEUE_SIZE))
    return provider, noop


@dataclass
class _Pending:
    attributes: dict[str, Any] = field(default_factory=dict)
    events: list[tuple[str, dict[str, Any]]] = field(default_factory=list)


@lru_cache(maxsize=1)
def operation_attributes() -> dict[str, dict[str, Any]]:
    """Per tool, the ``auditspan.operation.*`` attributes the collector gives its spans.

    A hand-written integration would hard-code its tools' semantic types; the
    baseline takes them from the collector itself (capture policy and
    classifier included), so both make spans with the same attribute keys.
    """
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    collector = SpanCollector(tracer_provider=provider)
    for event in turn_events(random.Random(0), 0, calls=len(TOOLS), failure_rate=0.0):
        collector.emit(event)
    collector.shutdown()
    provider.shutdown()
    found: dict[str, dict[str, Any]] = {}
    for span in exporter.get_finished_spans():
        attributes = dict(span.attributes or {})
        if attributes.get(attr.GEN_AI_OPERATION_NAME) == attr.OPERATION_EXECUTE_TOOL:
            tool = str(attributes[attr.GEN_AI_TOOL_NAME])
            found[tool] = {k: v for k, v in attributes.items() if k.startswith(_OPERATION_PREFIX)}
    return found


class BareSdkAgent:
    """Direct SDK instrumentation of the workload's events (see the module doc).

    ``handle(event)`` takes the workload's event objects; it knows only the
    event types the workload emits and assumes the runtime's order.
    """

    def __init__(self, tracer_provider: trace.TracerProvider) -> None:
        self._tracer = tracer_provider.get_tracer(attr.INSTRUMENTATION_SCOPE)
        self._turns: dict[str, tuple[Span, Context]] = {}
        self._pending: dict[tuple[str | None, str], _Pending] = {}
        self._open: dict[tuple[str | None, str], Span] = {}
        self._types = operation_attributes()
        self._prefix = os.urandom(8).hex()
        self._counter = itertools.count(1)

    def _event_attributes(self, event: AuditEvent, *names: str) -> dict[str, Any]:
        attributes: dict[str, Any] = {
            attr.EVENT_TYPE: event.event_type,
            attr.EVENT_ID: f"evt_{self._prefix}{next(self._counter):016x}",
            attr.EVENT_SEVERITY: event.severity,
        }
        for name in names:
            attributes[attr.EVENT_FIELD_PREFIX + name] = getattr(event, name)
        return attributes

    def handle(self, event: Any) -> None:
        """Make the spans / span events / attributes of one event."""
        kind = event.event_type
        key = (event.turn_id, getattr(event, "tool_name", ""))
        if kind == "tool_loop_warning":
            self._pending.setdefault(key, _Pending()).attributes[attr.LOOP_STATUS] = event.severity_level
        elif kind == "tool_policy_decision":
            pending = self._pending.setdefault(key, _Pending())
            pending.attributes[attr.POLICY_DECISION] = event.action.upper()
            pending.attributes[attr.POLICY_SOURCE] = event.policy_source
            pending.events.append(
                (
                    attr.EVENT_NAME_PREFIX + kind,
                    self._event_attributes(event, "action", "policy_source"),
                )
            )
        elif kind == "tool_call_attempt":
            self._start_call(event, key)
        elif kind == "sandbox_decision":
            span = self._open[key]
            span.set_attribute(attr.SANDBOX_BACKEND, event.backend_type)
            span.set_attribute(attr.SANDBOX_CONTEXT, event.context)
            span.add_event(
                attr.EVENT_NAME_PREFIX + kind,
                self._event_attributes(event, "context", "reason", "backend_type"),
            )
        elif kind == "tool_call_complete":
            span = self._open.pop(key)
            span.set_attribute(attr.TOOL_OUTCOME, attr.OUTCOME_SUCCESS)
            span.set_attribute(attr.TOOL_STATUS, event.status)
            span.set_attribute(attr.TOOL_DURATION_MS, float(event.duration_ms))
            span.set_attribute(attr.TOOL_RESULT_PREVIEW, event.result_preview)
            span.set_attribute(attr.GEN_AI_TOOL_CALL_RESULT, event.result_preview)
            span.set_attribute(attr.OUTPUT_VALUE, event.result_preview)
            span.end()
        elif kind == "tool_call_failure":
            span = self._open.pop(key)
            span.set_attribute(attr.TOOL_OUTCOME, attr.OUTCOME_FAILURE)
            span.set_attribute(attr.ERROR_TYPE, event.error_type)
            span.set_attribute(attr.TOOL_ERROR_MESSAGE, event.error_message)
            span.set_status(Status(StatusCode.ERROR, f"{event.error_type}: {event.error_message}"))
            span.end()
        elif kind == "turn_start":
            self._start_turn(event)
        elif kind == "turn_end":
            span, _ = self._turns.pop(event.turn_id)
            span.set_attribute(attr.TURN_CONTENT_PREVIEW, event.content_preview)
            span.set_attribute(attr.GEN_AI_OUTPUT_MESSAGES, _messages("assistant", event.content_preview))
            span.set_attribute(attr.OUTPUT_VALUE, event.content_preview)
            span.set_attribute(attr.TURN_FUNCTION_CALLS_COUNT, event.function_calls_count)
            span.end()
        else:
            raise ValueError(f"the baseline does not model {kind!r} events")

    def _start_turn(self, event: Any) -> None:
        attributes = {
            attr.GEN_AI_OPERATION_NAME: attr.OPERATION_INVOKE_AGENT,
            attr.GEN_AI_AGENT_ID: event.agent_id,
            attr.GEN_AI_AGENT_NAME: event.agent_id,
            attr.GEN_AI_CONVERSATION_ID: event.session_id,
            attr.TURN_ID: event.turn_id,
        }
        span = self._tracer.start_span(
            f"{attr.OPERATION_INVOKE_AGENT} {event.agent_id}",
            context=Context(),
            kind=SpanKind.INTERNAL,
            attributes=attributes,
        )
        span.set_attribute(attr.TURN_PROMPT_PREVIEW, event.prompt_preview)
        span.set_attribute(attr.GEN_AI_INPUT_MESSAGES, _messages("user", event.prompt_preview))
        span.set_attribute(attr.INPUT_VALUE, event.prompt_preview)
        self._turns[event.turn_id] = (span, trace.set_span_in_context(span))

    def _start_call(self, event: Any, key: tuple[str | None, str]) -> None:
        turn_context = self._turns[event.turn_id][1]
        pending = self._pending.pop(key, None) or _Pending()
        attributes: dict[str, Any] = {
            attr.GEN_AI_OPERATION_NAME: attr.OPERATION_EXECUTE_TOOL,
            attr.GEN_AI_TOOL_NAME: event.tool_name,
            attr.GEN_AI_TOOL_TYPE: attr.TOOL_TYPE_FUNCTION,
            attr.TOOL_ATTEMPT: 1,
            attr.GEN_AI_AGENT_ID: event.agent_id,
            attr.GEN_AI_AGENT_NAME: event.agent_id,
            attr.GEN_AI_CONVERSATION_ID: event.session_id,
            attr.TURN_ID: event.turn_id,
            **self._types[event.tool_name],
            **pending.attributes,
            attr.TOOL_ARGUMENTS_PREVIEW: event.arguments_preview,
            attr.GEN_AI_TOOL_CALL_ARGUMENTS: event.arguments_preview,
            attr.INPUT_VALUE: event.arguments_preview,
        }
        span = self._tracer.start_span(
            f"{attr.OPERATION_EXECUTE_TOOL} {event.tool_name}",
            context=turn_context,
            kind=SpanKind.INTERNAL,
            attributes=attributes,
        )
        for name, event_attributes in pending.events:
            span.add_event(name, event_attributes)
        self._open[key] = span

    @property
    def open_turns(self) -> int:
        """Turns started and not yet ended."""
        return len(self._turns)

    def end_open_turns(self) -> None:
        """End every turn still open (for streams whose turns never end)."""
        for span, _ in self._turns.values():
            span.end()
        self._turns.clear()


#: (name, attribute keys, ((event name, event attribute keys), ...), status code, has parent)
SpanShape = tuple[str, frozenset[str], tuple[tuple[str, frozenset[str]], ...], str, bool]


def span_shape(span: ReadableSpan) -> SpanShape:
    """What the baseline must share with the collector's span: names and keys, not values."""
    events = tuple((e.name, frozenset(e.attributes or {})) for e in span.events)
    return (
        span.name,
        frozenset(span.attributes or {}),
        events,
        span.status.status_code.name,
        span.parent is not None,
    )


def shapes(spans: Iterable[ReadableSpan]) -> list[SpanShape]:
    """``span_shape`` of each span, sorted (for comparing two runs as multisets)."""
    return sorted((span_shape(s) for s in spans), key=repr)

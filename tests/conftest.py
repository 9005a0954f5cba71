"""Shared fixtures: a SpanCollector wired to the SDK's in-memory exporters and a real log file."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
from opentelemetry import trace
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.util._once import Once

from auditspan import AuditEmitter, SpanCollector
from auditspan.attributes import CHECKPOINT_SPAN_NAME
from auditspan.audit_log._chain import CHECKPOINT_EVENT_TYPE

_S = TypeVar("_S", ReadableSpan, dict[str, Any])


def is_checkpoint_line(line: str | bytes) -> bool:
    """A chain's ``audit_checkpoint`` line (the chain is on by default), not an event's record."""
    text = line.decode("utf-8", "replace") if isinstance(line, bytes) else line
    if f'"{CHECKPOINT_EVENT_TYPE}"' not in text:
        return False
    try:
        return bool(json.loads(text).get("event_type") == CHECKPOINT_EVENT_TYPE)
    except ValueError:
        return False  # a torn line: not a checkpoint


def event_lines(lines: Iterable[bytes]) -> list[bytes]:
    """The lines of event records: checkpoints are the chain's, counted apart."""
    return [line for line in lines if not is_checkpoint_line(line)]


def event_record(line: str | bytes) -> dict[str, Any]:
    """An event's record as the collector made it: the chain's ``chain`` key dropped."""
    record: dict[str, Any] = json.loads(line)
    record.pop("chain", None)
    return record


def event_records(lines: Iterable[str | bytes]) -> list[dict[str, Any]]:
    """The event records of audit log lines: checkpoints skipped, ``chain`` dropped."""
    return [event_record(line) for line in lines if line.strip() and not is_checkpoint_line(line)]


def without_checkpoints(records: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Parsed audit records without the chain's checkpoints, each without its ``chain`` key."""
    return [
        {k: v for k, v in r.items() if k != "chain"}
        for r in records
        if r.get("event_type") != CHECKPOINT_EVENT_TYPE
    ]


def event_spans(spans: Iterable[_S]) -> list[_S]:
    """Spans (SDK spans or OTLP/JSON dicts) without the chain's witness spans (``auditspan.checkpoint``)."""
    return [s for s in spans if (s["name"] if isinstance(s, dict) else s.name) != CHECKPOINT_SPAN_NAME]


def checkpoint_count(path: Path) -> int:
    """How many checkpoints the chain wrote into an audit log (each also a witness span)."""
    with path.open("rb") as f:
        return sum(1 for line in f if is_checkpoint_line(line))


class Harness:
    """A collector, its emitter, and read-back of finished spans, log records and audit records."""

    def __init__(self, tmp_path: Path, **options: Any) -> None:
        self.span_exporter = InMemorySpanExporter()
        self.tracer_provider = TracerProvider()
        self.tracer_provider.add_span_processor(SimpleSpanProcessor(self.span_exporter))
        self.log_exporter = InMemoryLogRecordExporter()
        self.logger_provider = LoggerProvider()
        self.logger_provider.add_log_record_processor(SimpleLogRecordProcessor(self.log_exporter))
        self.log_path = tmp_path / "audit.jsonl"
        options.setdefault("audit_log", self.log_path)
        self.collector = SpanCollector(
            tracer_provider=self.tracer_provider, logger_provider=self.logger_provider, **options
        )
        self.emitter = AuditEmitter(self.collector, session_id="sess-1")

    def spans(self) -> list[ReadableSpan]:
        return list(self.span_exporter.get_finished_spans())

    def span(self, name: str) -> ReadableSpan:
        matching = [s for s in self.spans() if s.name == name]
        assert len(matching) == 1, f"expected one span {name!r}, got {[s.name for s in self.spans()]}"
        return matching[0]

    def records(self) -> list[dict[str, Any]]:
        assert self.collector.audit_log is not None
        assert self.collector.audit_log.force_flush(10_000)
        with self.log_path.open(encoding="utf-8") as f:
            return event_records(f)

    def close(self) -> None:
        self.collector.shutdown()
        self.tracer_provider.shutdown()
        self.logger_provider.shutdown()


@pytest.fixture
def fresh_global_provider(monkeypatch: pytest.MonkeyPatch) -> None:
    """No global TracerProvider yet, as in a fresh process (``configure()`` reuses a global SDK one)."""
    monkeypatch.setattr(trace, "_TRACER_PROVIDER", None)
    monkeypatch.setattr(trace, "_TRACER_PROVIDER_SET_ONCE", Once())


@pytest.fixture
def clean_environment(monkeypatch: pytest.MonkeyPatch, fresh_global_provider: None) -> None:
    """A fresh process with none of the ``OTEL_*``, ``AUDITSPAN_*`` or ``NO_COLOR`` settings of the caller."""
    for name in list(os.environ):
        if name.startswith(("OTEL_", "AUDITSPAN_", "NO_COLOR")):
            monkeypatch.delenv(name)


@pytest.fixture
def harness(tmp_path: Path) -> Iterator[Harness]:
    h = Harness(tmp_path)
    yield h
    h.close()


@pytest.fixture
def make_harness(tmp_path: Path) -> Iterator[Any]:
    made: list[Harness] = []

    def make(**options: Any) -> Harness:
        sub = tmp_path / f"h{len(made)}"
        sub.mkdir()
        h = Harness(sub, **options)
        made.append(h)
        return h

    yield make
    for h in made:
        h.close()


def hex_trace(span: ReadableSpan) -> str:
    assert span.context is not None
    return f"{span.context.trace_id:032x}"


def hex_span(span: ReadableSpan) -> str:
    assert span.context is not None
    return f"{span.context.span_id:016x}"

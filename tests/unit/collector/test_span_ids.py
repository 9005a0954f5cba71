"""Span-id injection is checked, not trusted: records carry their spans' real ids on any SDK.

The collector chooses each span's ids and gives them to the SDK by replacing
the tracer's ``id_generator`` (and reads the private ``_span_limits``). An SDK
that drops either must not cost the records their link to the spans: these
tests run the collector on tracers of the real SDK that lack what it relies on,
and compare every record's ids with the spans the in-memory exporter received.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.trace import Tracer, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from auditspan import events as ev
from auditspan.collector import SpanCollector


class _TracerWithoutPrivates:
    """The SDK's tracer seen through an SDK that no longer has ``id_generator`` or ``_span_limits``."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def start_span(self, *args: Any, **kwargs: Any) -> Any:
        return self._inner.start_span(*args, **kwargs)


class _ProviderWithoutPrivates(TracerProvider):
    def get_tracer(self, *args: Any, **kwargs: Any) -> Any:
        return _TracerWithoutPrivates(super().get_tracer(*args, **kwargs))


class _TracerIgnoringItsGenerator(Tracer):
    """An SDK whose tracer still has ``id_generator`` but keeps using the one it was made with."""

    @property
    def id_generator(self) -> Any:
        return self.__dict__["_own_generator"]

    @id_generator.setter
    def id_generator(self, value: Any) -> None:  # a replacement is accepted and ignored
        pass


class _ProviderIgnoringReplacement(TracerProvider):
    def get_tracer(self, *args: Any, **kwargs: Any) -> Any:
        tracer = super().get_tracer(*args, **kwargs)
        own = tracer.__dict__.pop("id_generator")
        tracer.__class__ = _TracerIgnoringItsGenerator
        tracer.__dict__["_own_generator"] = own
        return tracer


def _run(
    provider: TracerProvider, path: Path
) -> tuple[list[dict[str, Any]], set[tuple[str, str]], SpanCollector]:
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    collector = SpanCollector(tracer_provider=provider, audit_log=path)
    stamp = iter(f"2026-11-21T19:24:{n:02d}.000000+00:00" for n in range(60))

    def emit(event: ev.AuditEvent) -> None:
        event.timestamp = next(stamp)
        event.session_id = "sess-1"
        collector.emit(event)

    emit(ev.TurnStartEvent(agent_id="a", turn_id="t1"))
    emit(ev.ToolPolicyDecisionEvent(agent_id="a", turn_id="t1", tool_name="read_file", action="allow"))
    emit(ev.ToolCallAttemptEvent(agent_id="a", turn_id="t1", tool_name="read_file", arguments_preview="{}"))
    emit(ev.ToolCallCompleteEvent(agent_id="a", turn_id="t1", tool_name="read_file"))
    emit(ev.TurnEndEvent(agent_id="a", turn_id="t1"))
    # No turn and no current span: the call is a root span of its own, its trace id chosen by auditspan.
    emit(ev.ToolCallAttemptEvent(agent_id="b", tool_name="ls"))
    emit(ev.ToolCallCompleteEvent(agent_id="b", tool_name="ls"))
    emit(ev.ErrorEvent(agent_id="c", error_type="Crash", error_message="lost"))
    collector.shutdown()
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    records = [line for line in lines if line["event_type"] != "audit_checkpoint"]
    spans = {
        (f"{s.context.trace_id:032x}", f"{s.context.span_id:016x}") for s in exporter.get_finished_spans()
    }
    return records, spans, collector


@pytest.mark.parametrize("provider_class", [_ProviderWithoutPrivates, _ProviderIgnoringReplacement])
def test_records_carry_their_spans_real_ids_when_the_sdk_does_not_take_the_chosen_ones(
    provider_class: type[TracerProvider], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="auditspan"):
        records, spans, collector = _run(provider_class(), tmp_path / "audit.jsonl")
    assert len(records) == 8 and len(spans) == 4  # the turn, read_file, ls, the error's span of its own
    for record in records:
        ids = (record["telemetry"]["trace_id"], record["telemetry"]["span_id"])
        assert ids in spans, record["event_type"]
        assert int(ids[0], 16) != 0 and int(ids[1], 16) != 0
    assert collector.stats.internal_errors == 0


def test_a_tracer_that_ignores_the_replacement_is_detected_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="auditspan"):
        _run(_ProviderIgnoringReplacement(), tmp_path / "audit.jsonl")
    warnings = [r.getMessage() for r in caplog.records if "does not take the span ids" in r.getMessage()]
    assert len(warnings) == 1


def test_the_sdks_tracer_takes_the_chosen_ids(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """The usual SDK: no warning, and the records' ids are the spans' (chosen before they started)."""
    with caplog.at_level(logging.WARNING, logger="auditspan"):
        records, spans, _ = _run(TracerProvider(), tmp_path / "audit.jsonl")
    assert all((r["telemetry"]["trace_id"], r["telemetry"]["span_id"]) in spans for r in records)
    assert not [r for r in caplog.records if "does not take the span ids" in r.getMessage()]

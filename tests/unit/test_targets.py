"""``auditspan._targets``: the one lookup from a target to the emitter of a session.

``Audit`` (hooks) and ``AuditSpanProcessor`` (the OpenAI Agents adapter) both take a target -- the
handle of ``configure()``, a collector, an emitter, or None -- and both resolve it here, so a target
means the same to each: the same emitter kind, session and collector.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import auditspan
from auditspan import AuditEmitter, CompositeCollector
from auditspan._targets import collector_of, emitter_for
from auditspan.context import find_span_collector
from auditspan.hooks import Audit

from ..conftest import event_records


@pytest.fixture
def handle(tmp_path: Path) -> Iterator[Any]:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(InMemorySpanExporter()))
    h = auditspan.configure(tracer_provider=provider, audit_log=tmp_path / "audit.jsonl", set_global=False)
    yield h
    h.shutdown()


def test_a_handle_makes_an_emitter_of_the_session_on_its_collector(handle: Any) -> None:
    emitter = emitter_for(handle, "sess-t")
    assert type(emitter) is AuditEmitter and emitter.session_id == "sess-t"
    assert emitter.collector is handle.collector and collector_of(handle) is handle.collector


def test_a_collector_is_wrapped_and_an_emitter_is_kept_as_it_is(harness: Any) -> None:
    fan_out = CompositeCollector(harness.collector)
    emitter = emitter_for(fan_out, "sess-t")
    assert type(emitter) is AuditEmitter and emitter.session_id == "sess-t" and emitter.collector is fan_out
    assert collector_of(fan_out) is fan_out
    assert emitter_for(harness.emitter, "ignored") is harness.emitter  # it keeps its own session
    assert collector_of(harness.emitter) is harness.emitter  # flushing it flushes its collector


@pytest.mark.parametrize("target", [42, "collector", object()])
def test_anything_else_is_refused_by_name(target: Any) -> None:
    with pytest.raises(TypeError, match=f"not {type(target).__name__}$"):
        emitter_for(target, None)


def test_none_is_the_process_collector(tmp_path: Path) -> None:
    """In a subprocess: the process collector is made once per process, and sets globals."""
    code = (
        "from auditspan._targets import collector_of, emitter_for\n"
        "from auditspan.instrumentation import process_collector\n"
        "emitter = emitter_for(None, 'sess-p')\n"
        "assert emitter.collector is process_collector() is collector_of(None)\n"
        "emitter.emit_tool_call_attempt('ping', args='x', turn_id='t')\n"
    )
    env = {"PATH": "/usr/bin:/bin", "AUDITSPAN_OUTPUT_DIR": str(tmp_path), "OTEL_TRACES_EXPORTER": "none"}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    (record,) = event_records((tmp_path / "audit.jsonl").read_text(encoding="utf-8").splitlines())
    assert record["session_id"] == "sess-p" and record["tool_name"] == "ping"


@pytest.mark.parametrize("kind", ["handle", "collector", "emitter"])
def test_hooks_and_the_openai_adapter_resolve_a_target_alike(kind: str, handle: Any) -> None:
    pytest.importorskip("agents", reason="openai-agents is not installed")
    from auditspan.integrations.openai_agents import AuditSpanProcessor

    target = {"handle": handle, "collector": handle.collector, "emitter": handle.emitter("own")}[kind]
    by_hooks = Audit(target, session_id="sess-a").emitter
    by_adapter = AuditSpanProcessor(target, session_id="sess-a")._emitter_for("sess-a")
    assert type(by_hooks) is type(by_adapter) is AuditEmitter
    assert by_hooks.session_id == by_adapter.session_id == ("own" if kind == "emitter" else "sess-a")
    assert by_hooks.collector is by_adapter.collector
    assert find_span_collector(by_hooks) is find_span_collector(by_adapter) is handle.collector
    if kind == "emitter":
        assert by_hooks is by_adapter is target

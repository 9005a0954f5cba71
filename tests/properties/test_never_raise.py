"""Never raising, and never losing silently (issue 13, item 9).

(a) Every entry point is called from deep recursion -- a few frames from the
    recursion limit, and every depth up from there -- with logging that fails
    too; nothing may escape into the caller, and every event must be in the
    audit log once the stack has room again (``shutdown()``).
(b) Events emitted after the atexit shutdown (an application's own atexit
    handler, registered before ``configure()``) are written, and said so once.
(c) ``configure()`` after ``shutdown()`` builds a fresh pipeline instead of
    reusing the provider that was shut down.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import textwrap
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import auditspan
from auditspan import AuditEmitter, CompositeCollector, SpanCollector, _deep
from auditspan.events import ToolCallAttemptEvent
from auditspan.hooks import Audit
from auditspan.instrumentation import _FanOut, _Link

from ..conftest import event_spans

#: How close to the limit the calls are made: from this many frames left up to 60.
NEAREST = 4
DEPTHS = range(NEAREST, 61)


def _room() -> int:
    """How many more nested calls fit from the caller's frame before ``RecursionError``."""

    def probe(n: int) -> int:
        try:
            return probe(n + 1)
        except RecursionError:
            return n

    return probe(0)


def _at_depth(frames_left: int, call: Callable[[], object]) -> BaseException | None:
    """Recurse until about ``frames_left`` calls are left before the recursion limit, then ``call()``."""

    def down(levels: int) -> BaseException | None:
        if levels > 0:
            return down(levels - 1)
        try:
            call()
        except BaseException as exc:  # whatever escapes is the finding
            return exc
        return None

    return down(_room() - frames_left)


class _FailingHandler(logging.Handler):
    """A log handler that raises from ``handle`` (a full disk, a closed socket): logging itself fails."""

    def handle(self, record: logging.LogRecord) -> bool:
        raise OSError("the log handler is broken")


@pytest.fixture
def broken_logging() -> Iterator[None]:
    logger = logging.getLogger("auditspan")
    handler = _FailingHandler()
    logger.addHandler(handler)
    yield
    logger.removeHandler(handler)


@pytest.fixture
def handle(tmp_path: Path) -> Iterator[Any]:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(InMemorySpanExporter()))
    h = auditspan.configure(tracer_provider=provider, audit_log=tmp_path / "audit.jsonl", set_global=False)
    yield h
    h.shutdown()


def _tool_counts(path: Path) -> Counter[tuple[str, str]]:
    records = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    return Counter((r["tool_name"], r["event_type"]) for r in records if r.get("tool_name"))


def _escaped(call: Callable[[int], object]) -> dict[int, str]:
    found = {}
    for frames_left in DEPTHS:
        exc = _at_depth(frames_left, lambda k=frames_left: call(k))  # type: ignore[misc]
        if exc is not None:
            found[frames_left] = type(exc).__name__
    return found


def test_entry_points_never_raise_near_the_recursion_limit_and_every_event_is_recorded(
    handle: Any, tmp_path: Path, broken_logging: None
) -> None:
    audit = Audit(handle, session_id="sess-deep")
    emitter = handle.emitter("sess-deep")
    collector: SpanCollector = handle.collector
    fan_out = _FanOut(CompositeCollector(), _Link(lambda: collector))
    composite = CompositeCollector(collector)

    @audit.tool
    def decorated(x: int) -> int:
        return x

    def hooks_block(k: int) -> None:
        with audit.tool_call("hooks_block", {"k": k}) as call:
            call.result = k

    # Events are made up here, as an agent makes them before calling in.
    events = {
        name: {
            k: ToolCallAttemptEvent(tool_name=name, arguments_preview=str(k), turn_id=name) for k in DEPTHS
        }
        for name in ("collector", "composite", "fan_out")
    }
    entry_points: dict[str, Callable[[int], object]] = {
        "collector": lambda k: collector.emit(events["collector"][k]),
        "collector_dict": lambda k: collector.emit(
            {"event_type": "tool_call_attempt", "tool_name": "collector_dict", "metadata": {"k": [k] * 3}}
        ),
        "emitter": lambda k: emitter.emit_tool_call_attempt("emitter", args=str(k), turn_id="t2"),
        "composite": lambda k: composite.emit(events["composite"][k]),
        "fan_out": lambda k: fan_out.emit(events["fan_out"][k]),
        "hooks_block": hooks_block,
        "decorated": lambda k: decorated(k),
    }
    lost_before = _deep.counts["lost"]
    escaped = {name: _escaped(call) for name, call in entry_points.items()}
    assert escaped == {name: {} for name in entry_points}
    handle.shutdown()  # drains what was kept for later, then closes the log

    counts = _tool_counts(tmp_path / "audit.jsonl")
    calls = len(DEPTHS)
    for name in ("collector", "collector_dict", "emitter", "composite", "fan_out"):
        assert counts[(name, "tool_call_attempt")] == calls, name
    assert (
        counts[("hooks_block", "tool_call_attempt")] == counts[("hooks_block", "tool_call_complete")] == calls
    )
    # A decorated tool called with 5 or fewer frames left cannot even make its call object: it runs,
    # and is counted (and reported) as not audited -- never silently.
    audited = counts[("decorated", "tool_call_attempt")]
    assert counts[("decorated", "tool_call_complete")] == audited >= calls - 2
    assert _deep.counts["lost"] - lost_before == calls - audited
    assert _deep.DEFERRED is None


def test_the_openai_agents_processor_never_raises_near_the_recursion_limit(
    handle: Any, tmp_path: Path, broken_logging: None
) -> None:
    from agents import set_trace_processors, trace
    from agents.tracing import function_span

    from auditspan.integrations.openai_agents import AuditSpanProcessor

    set_trace_processors([])
    with trace("deep"):
        span = function_span(name="sdk_tool", input='{"q": 1}', output="ok")
        span.start()
        span.finish()
    processor = AuditSpanProcessor(handle, session_id="sess-oa")

    def both(k: int) -> None:
        processor.on_span_start(span)
        processor.on_span_end(span)

    assert _escaped(both) == {}
    handle.shutdown()
    counts = _tool_counts(tmp_path / "audit.jsonl")
    assert (
        counts[("sdk_tool", "tool_call_attempt")] == counts[("sdk_tool", "tool_call_complete")] == len(DEPTHS)
    )


def test_a_failing_log_handler_never_turns_an_internal_error_into_an_exception(
    tmp_path: Path, broken_logging: None
) -> None:
    class _Exploding:
        def export(self, records: Any) -> None:
            raise RuntimeError("the exporter broke")

        def force_flush(self, timeout_millis: int = 0) -> bool:
            return True

        def shutdown(self) -> None:
            pass

    collector = SpanCollector(TracerProvider(), audit_log=_Exploding())
    collector.emit(ToolCallAttemptEvent(tool_name="x"))  # the internal error is logged -- and logging raises
    assert collector.stats.internal_errors == 1

    class _RaisingCollector:
        def emit(self, event: Any) -> None:
            raise RuntimeError("the application's collector broke")

        def flush(self) -> None:
            raise RuntimeError("broke again")

    audit = Audit(AuditEmitter(CompositeCollector(_RaisingCollector())), session_id="s")
    with audit.tool_call("y", {}) as call:  # CompositeCollector and hooks log: the handler raises
        call.result = 1
    audit.flush()


AFTER_SHUTDOWN = """
import atexit, sys
import auditspan

def late():  # registered before configure(): runs after auditspan's own atexit shutdown
    audit.emit_tool_call_attempt("late_tool", args="after shutdown", turn_id="t-late")
    audit.emit_tool_call_complete("late_tool", result="done", turn_id="t-late")

atexit.register(late)
handle = auditspan.configure(service_name="late", audit_log=sys.argv[1], output_dir=sys.argv[2])
audit = handle.emitter("sess-late")
audit.emit_tool_call_attempt("early_tool", args="before", turn_id="t-early")
"""


def test_events_after_the_atexit_shutdown_are_written_and_said_once(tmp_path: Path) -> None:
    script = tmp_path / "late.py"
    script.write_text(textwrap.dedent(AFTER_SHUTDOWN))
    log = tmp_path / "audit.jsonl"
    done = subprocess.run(
        [sys.executable, str(script), str(log), str(tmp_path / "out")],
        capture_output=True,
        text=True,
        timeout=60,
        env={k: v for k, v in __import__("os").environ.items() if not k.startswith(("OTEL_", "AUDITSPAN_"))},
    )
    assert done.returncode == 0, done.stderr
    counts = _tool_counts(log)
    assert counts == {
        ("early_tool", "tool_call_attempt"): 1,
        ("late_tool", "tool_call_attempt"): 1,
        ("late_tool", "tool_call_complete"): 1,
    }
    said = [line for line in done.stderr.splitlines() if "arrived after shutdown" in line]
    assert len(said) == 1 and str(log) in said[0]


def test_configure_after_shutdown_builds_a_fresh_pipeline(tmp_path: Path, clean_environment: None) -> None:
    first_spans, second_spans = InMemorySpanExporter(), InMemorySpanExporter()
    first = auditspan.configure(audit_log=tmp_path / "1.jsonl", span_exporter=first_spans)
    first.emitter("s").emit_tool_call_attempt("one", turn_id="t")
    first.shutdown()
    assert [s.name for s in event_spans(first_spans.get_finished_spans())] == [
        "execute_tool one",
        "invoke_agent",
    ]

    second = auditspan.configure(audit_log=tmp_path / "2.jsonl", span_exporter=second_spans)
    assert second.tracer_provider is not first.tracer_provider
    audit = second.emitter("s")
    audit.emit_tool_call_attempt("two", turn_id="t2")
    audit.emit_tool_call_complete("two", turn_id="t2")
    second.shutdown()
    assert "execute_tool two" in [s.name for s in event_spans(second_spans.get_finished_spans())]
    assert second.span_stats.exported >= 2 and second.span_stats.dropped == 0

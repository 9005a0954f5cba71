"""``AuditSpanInstrumentor``: zero-code (a real ``opentelemetry-instrument`` subprocess) and in code."""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from auditspan import AuditEmitter, CompositeCollector
from auditspan.instrumentation import (
    AuditSpanFileSpanExporter,
    AuditSpanInstrumentor,
    _PostImportFinder,
    instrument_emitter,
)
from auditspan.otlp_file import read_spans

from ..conftest import event_spans, without_checkpoints
from ..fixtures.standin import STANDIN_PATH
from ..fixtures.zero_code import OPENTELEMETRY_INSTRUMENT, zero_code_env

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
AGENT = FIXTURES / "seed_standin" / "agent.py"


def _run(env: dict[str, str], *args: str, python: str = sys.executable) -> subprocess.CompletedProcess[str]:
    instrument = Path(python).parent / "opentelemetry-instrument"
    if not instrument.exists():
        instrument = OPENTELEMETRY_INSTRUMENT
    return subprocess.run(
        [str(instrument), python, *args], env=env, capture_output=True, text=True, timeout=180, check=False
    )


def _lines(path: Path) -> list[dict[str, Any]]:
    """Records of a JSON-lines file; an audit log's without the chain's checkpoints and ``chain`` keys."""
    with path.open(encoding="utf-8") as f:
        return without_checkpoints(json.loads(line) for line in f if line.strip())


def _check_zero_code_output(out: Path, app_log: Path) -> list[dict[str, Any]]:
    """The audit log mirrors the application's own log, and every record points at a real span."""
    app = _lines(app_log)
    records = _lines(out / "audit.jsonl")
    assert len(app) == 31
    assert [r["event_type"] for r in records] == [e["event_type"] for e in app]
    assert [r["timestamp"] for r in records] == [e["timestamp"] for e in app]
    assert {r["session_id"] for r in records} == {"sess-zero-code"}
    spans = event_spans(read_spans(out / "traces.jsonl"))
    by_id = {s["spanId"]: s for s in spans}
    assert len(spans) == 8  # 2 turns, 6 tool call spans (one denied, two attempts of fetch_url)
    for record in records:
        telemetry = record["telemetry"]
        span = by_id[telemetry["span_id"]]
        assert span["traceId"] == telemetry["trace_id"]
    turns = [s for s in spans if s["name"] == "invoke_agent planner"]
    assert len(turns) == 2 and all(not s.get("parentSpanId") for s in turns)
    for span in spans:
        if span["name"].startswith("execute_tool"):
            assert by_id[span["parentSpanId"]]["name"] == "invoke_agent planner"
    denied = [s for s in spans if s["name"] == "execute_tool delete_records"]
    assert denied[0]["attributeMap"]["auditspan.tool.outcome"] == "denied"
    assert {s["resource"]["service.name"] for s in spans} == {"zero-code-agent"}
    return spans


# ------------------------------------------------------------------------------ zero code
def test_opentelemetry_instrument_traces_the_seed_emitter_without_code_changes(tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = _run(zero_code_env(tmp_path, out), str(AGENT), str(tmp_path / "app.jsonl"))
    assert result.returncode == 0, result.stderr
    # The application still sees (and writes to) its own collector.
    assert json.loads(result.stdout) == {"collector": "JSONLSinkCollector", "same_sink": True}
    _check_zero_code_output(out, tmp_path / "app.jsonl")


def test_zero_code_with_the_sdk_configurator_uses_its_settings_and_resource(
    tmp_path: Path,
) -> None:
    """As with opentelemetry-distro: the SDK builds a provider from OTEL_TRACES_EXPORTER=auditspan_file;
    auditspan's pipeline is built from the same settings, under the same Resource."""
    out = tmp_path / "out"
    env = zero_code_env(
        tmp_path,
        out,
        sdk_configurator=True,
        OTEL_TRACES_EXPORTER="auditspan_file",
        OTEL_METRICS_EXPORTER="none",
    )
    env["OTEL_LOGS_EXPORTER"] = "none"
    result = _run(env, str(AGENT), str(tmp_path / "app.jsonl"))
    assert result.returncode == 0, result.stderr
    spans = _check_zero_code_output(out, tmp_path / "app.jsonl")
    # The SDK configurator's Resource (it says who configured it).
    assert all("telemetry.auto.version" in s["resource"] for s in spans)


def test_zero_code_is_off_when_the_instrumentation_is_disabled(tmp_path: Path) -> None:
    out = tmp_path / "out"
    env = zero_code_env(tmp_path, out, OTEL_PYTHON_DISABLED_INSTRUMENTATIONS="auditspan")
    result = _run(env, str(AGENT), str(tmp_path / "app.jsonl"))
    assert result.returncode == 0, result.stderr
    assert len(_lines(tmp_path / "app.jsonl")) == 31
    assert not (out / "audit.jsonl").exists()
    assert not (out / "traces.jsonl").exists()


def test_zero_code_audit_log_path_from_the_environment(tmp_path: Path) -> None:
    out = tmp_path / "out"
    log = tmp_path / "elsewhere" / "audit-trail.jsonl"
    env = zero_code_env(tmp_path, out, AUDITSPAN_AUDIT_LOG=str(log))
    result = _run(env, str(AGENT), str(tmp_path / "app.jsonl"))
    assert result.returncode == 0, result.stderr
    assert len(_lines(log)) == 31
    assert not (out / "audit.jsonl").exists()
    assert len(event_spans(read_spans(out / "traces.jsonl"))) == 8


def _xerxes_python() -> str:
    """The interpreter of the cached xerxes-agent venv that scripts/install-test-servers makes."""
    configured = os.environ.get("AUDITSPAN_XERXES_PYTHON")
    cache = Path(os.environ.get("AUDITSPAN_CACHE_DIR") or Path.home() / ".cache" / "auditspan")
    python = Path(configured) if configured else cache / "xerxes-0.2.5" / "bin" / "python"
    if not python.exists():
        pytest.fail(
            f"xerxes-agent is not installed at {python}: run scripts/install-test-servers", pytrace=False
        )
    return str(python)


def test_zero_code_on_the_real_xerxes_runtime(tmp_path: Path) -> None:
    python = _xerxes_python()
    out = tmp_path / "out"
    env = zero_code_env(tmp_path, out, extra_path=[FIXTURES])
    result = _run(env, str(FIXTURES / "xerxes_agent.py"), python=python)
    assert result.returncode == 0, result.stderr
    seen = json.loads(result.stdout.strip().splitlines()[-1])
    assert seen["emitter"] == "xerxes.audit.emitter.AuditEmitter"
    assert seen["collector_is_app"] is True
    records = _lines(out / "audit.jsonl")
    assert [r["event_type"] for r in records] == seen["app_events"]
    assert len(records) == 31
    spans = event_spans(read_spans(out / "traces.jsonl"))
    assert sorted(s["name"] for s in spans) == sorted(
        ["invoke_agent planner"] * 2
        + ["execute_tool web_search", "execute_tool delete_records", "execute_tool fetch_url"]
        + ["execute_tool fetch_url", "execute_tool get_weather", "execute_tool read_file"]
    )


# ------------------------------------------------------------------------------ in code
class _ListCollector:
    """An application's own collector (the seed's protocol)."""

    def __init__(self) -> None:
        self.events: list[Any] = []
        self.flushes = 0

    def emit(self, event: Any) -> None:
        self.events.append(event)

    def flush(self) -> None:
        self.flushes += 1

    def custom(self) -> str:
        return "still reachable"


def _forget_standin() -> None:
    for name in list(sys.modules):
        if name == "calute" or name.startswith("calute."):
            del sys.modules[name]
    importlib.invalidate_caches()


@pytest.fixture
def instrumentor() -> Iterator[AuditSpanInstrumentor]:
    inst = AuditSpanInstrumentor()
    yield inst
    if inst.is_instrumented_by_opentelemetry:
        inst.uninstrument()


@pytest.fixture
def standin_installed(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The stand-in seed package is importable (installed) but not imported."""
    _forget_standin()
    monkeypatch.syspath_prepend(str(STANDIN_PATH))
    yield
    _forget_standin()


def _finders() -> list[Any]:
    return [f for f in sys.meta_path if isinstance(f, _PostImportFinder)]


def test_seed_package_not_installed_is_neither_imported_nor_hooked(
    instrumentor: AuditSpanInstrumentor, harness: Any
) -> None:
    _forget_standin()
    assert str(STANDIN_PATH) not in sys.path
    instrumentor.instrument(collector=harness.collector)
    assert "calute" not in sys.modules
    assert "xerxes" not in sys.modules
    assert _finders() == []


def test_seed_package_imported_after_instrumentation_is_hooked_on_import(
    instrumentor: AuditSpanInstrumentor, harness: Any, standin_installed: None
) -> None:
    instrumentor.instrument(collector=harness.collector)
    assert "calute" not in sys.modules and "calute.audit" not in sys.modules  # not imported by auditspan
    assert len(_finders()) == 1

    from calute.audit import AuditEmitter as SeedEmitter
    from calute.audit import InMemoryCollector

    app = InMemoryCollector()
    emitter = SeedEmitter(collector=app, session_id="sess-1")
    assert emitter.collector is app  # what the application set is what it sees
    turn = emitter.emit_turn_start(agent_id="a", prompt="hi")
    emitter.emit_tool_call_attempt("web_search", args="{'query': 'x'}", agent_id="a", turn_id=turn)
    emitter.emit_tool_call_complete("web_search", duration_ms=3.0, result="ok", agent_id="a", turn_id=turn)
    emitter.emit_turn_end(agent_id="a", turn_id=turn, content="done", fc_count=1)

    assert [e.event_type for e in app.get_events()] == [
        "turn_start",
        "tool_call_attempt",
        "tool_call_complete",
        "turn_end",
    ]
    assert sorted(s.name for s in harness.spans()) == ["execute_tool web_search", "invoke_agent a"]
    records = harness.records()
    assert [r["event_type"] for r in records] == [e.event_type for e in app.get_events()]
    assert {r["session_id"] for r in records} == {"sess-1"}
    # The loader was put back: the module looks as if imported normally.
    import calute.audit

    assert not type(calute.audit.__loader__).__name__.startswith("_Patching")


def test_seed_package_imported_before_instrumentation_is_patched_at_once(
    instrumentor: AuditSpanInstrumentor, harness: Any, standin_installed: None
) -> None:
    from calute.audit import AuditEmitter as SeedEmitter

    instrumentor.instrument(collector=harness.collector)
    assert _finders() == []
    emitter = SeedEmitter(collector=_ListCollector())
    emitter.emit_turn_start(agent_id="a", turn_id="t1")
    emitter.emit_turn_end(agent_id="a", turn_id="t1")
    assert [s.name for s in harness.spans()] == ["invoke_agent a"]


def test_application_collector_is_kept_and_still_reachable(
    instrumentor: AuditSpanInstrumentor, harness: Any
) -> None:
    instrumentor.instrument(collector=harness.collector)
    app = _ListCollector()
    emitter = AuditEmitter(app, session_id="s")
    assert emitter.collector is app
    emitter.emit_error(error_type="ValueError", error_msg="bad")
    emitter.flush()
    assert [e.event_type for e in app.events] == ["error"]
    assert app.flushes == 1
    assert [r["event_type"] for r in harness.records()] == ["error"]
    assert emitter._collector.custom() == "still reachable"  # attributes reach the app's collector


def test_emitters_already_feeding_a_span_collector_are_not_doubled(
    instrumentor: AuditSpanInstrumentor, harness: Any
) -> None:
    instrumentor.instrument(collector=harness.collector)
    direct = AuditEmitter(harness.collector, session_id="s")
    composite = AuditEmitter(CompositeCollector(_ListCollector(), harness.collector), session_id="s")
    assert direct._collector is harness.collector
    assert isinstance(composite._collector, CompositeCollector)
    for emitter in (direct, composite):
        emitter.emit_error(error_type="E", error_msg="once")
    assert len(harness.records()) == 2


def test_a_failing_application_collector_still_reaches_auditspan(
    instrumentor: AuditSpanInstrumentor, harness: Any
) -> None:
    class Broken(_ListCollector):
        def emit(self, event: Any) -> None:
            raise OSError("disk full")

    instrumentor.instrument(collector=harness.collector)
    emitter = AuditEmitter(Broken())
    with pytest.raises(OSError, match="disk full"):  # the application's behaviour is unchanged ...
        emitter.emit_error(error_type="E")
    assert [r["event_type"] for r in harness.records()] == ["error"]  # ... and the event is not lost


def test_uninstrument_stops_forwarding_and_leaves_new_emitters_alone(
    instrumentor: AuditSpanInstrumentor, harness: Any, standin_installed: None
) -> None:
    from calute.audit import AuditEmitter as SeedEmitter

    seed_init = SeedEmitter.__init__
    own_init = AuditEmitter.__init__
    instrumentor.instrument(collector=harness.collector)
    app = _ListCollector()
    before = AuditEmitter(app)
    seed_before = SeedEmitter(collector=_ListCollector())
    fan_out = before._collector
    before.emit_error(error_type="E1")
    instrumentor.uninstrument()

    assert AuditEmitter.__init__ is own_init and SeedEmitter.__init__ is seed_init
    assert before._collector is app and seed_before._collector is not None
    assert type(seed_before._collector).__name__ == "_ListCollector"
    before.emit_error(error_type="E2")
    fan_out.emit(object())  # a fan-out still referenced somewhere no longer forwards either
    after = AuditEmitter(_ListCollector())
    assert type(after._collector).__name__ == "_ListCollector"
    after.emit_error(error_type="E3")
    assert [e.error_type for e in app.events if hasattr(e, "error_type")] == ["E1", "E2"]
    assert [r["error_type"] for r in harness.records()] == ["E1"]
    assert _finders() == []


def test_uninstrument_removes_the_import_hook(
    instrumentor: AuditSpanInstrumentor, harness: Any, standin_installed: None
) -> None:
    instrumentor.instrument(collector=harness.collector)
    assert len(_finders()) == 1
    instrumentor.uninstrument()
    assert _finders() == []
    from calute.audit import AuditEmitter as SeedEmitter

    emitter = SeedEmitter(collector=_ListCollector())
    assert type(emitter._collector).__name__ == "_ListCollector"


def test_instrument_emitter_attaches_one_created_before(
    instrumentor: AuditSpanInstrumentor, harness: Any
) -> None:
    early = AuditEmitter(_ListCollector())
    assert instrument_emitter(early) is False  # not instrumented yet
    instrumentor.instrument(collector=harness.collector)
    assert instrument_emitter(early) is True
    assert instrument_emitter(early) is False  # already attached
    early.emit_error(error_type="E")
    assert len(harness.records()) == 1


def test_instrument_builds_and_owns_a_collector_from_options(
    instrumentor: AuditSpanInstrumentor, harness: Any, tmp_path: Path
) -> None:
    log = tmp_path / "own.jsonl"
    instrumentor.instrument(tracer_provider=harness.tracer_provider, audit_log=str(log))
    emitter = AuditEmitter(_ListCollector(), session_id="s")
    emitter.emit_turn_start(agent_id="a", turn_id="t")
    emitter.emit_turn_end(agent_id="a", turn_id="t")
    instrumentor.uninstrument()  # shuts the owned collector down: its log is complete and closed
    assert [r["event_type"] for r in _lines(log)] == ["turn_start", "turn_end"]
    assert [s.name for s in harness.spans()] == ["invoke_agent a"]


def test_bad_collector_options_fail_in_instrument(instrumentor: AuditSpanInstrumentor) -> None:
    with pytest.raises(ValueError, match="events_as"):
        instrumentor.instrument(events_as="carrier-pigeon")
    assert not instrumentor.is_instrumented_by_opentelemetry


def test_file_exporter_for_the_entry_point_needs_no_arguments(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    monkeypatch.setenv("AUDITSPAN_OUTPUT_DIR", str(tmp_path / "o"))
    exporter = AuditSpanFileSpanExporter()
    assert exporter.path == tmp_path / "o" / "traces.jsonl"
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    provider.get_tracer("t").start_span("s").end()
    provider.shutdown()
    assert [s["name"] for s in read_spans(tmp_path / "o" / "traces.jsonl")] == ["s"]


def test_a_refusal_followed_by_the_runtimes_failure_event_is_one_span(harness: Any) -> None:
    """What xerxes' executor emits for a denied call (read from its source): decision, then failure."""
    emitter = AuditEmitter(harness.collector, session_id="s")
    turn = emitter.emit_turn_start(agent_id="a")
    emitter.emit_tool_policy_decision("delete_records", agent_id="a", action="deny", turn_id=turn)
    emitter.emit_tool_call_failure(
        "delete_records", error_type="ToolPolicyViolation", error_msg="denied", agent_id="a", turn_id=turn
    )
    emitter.emit_turn_end(agent_id="a", turn_id=turn)
    calls = [s for s in harness.spans() if s.name == "execute_tool delete_records"]
    assert [s.attributes["auditspan.tool.outcome"] for s in calls] == ["denied"]
    decision, failure = (r for r in harness.records() if r.get("tool_name") == "delete_records")
    assert failure["telemetry"]["span_id"] == decision["telemetry"]["span_id"]
    assert failure["governance"]["decision"] == "DENY"

"""configure(): standard OTEL_* settings, the embedded default, reuse of a provider, clear errors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import auditspan
from auditspan.configuration import ConfigurationError
from auditspan.otlp_file import read_spans

from ...conftest import checkpoint_count, event_records, event_spans

# Each test starts as a fresh process would: no global TracerProvider yet.
pytestmark = pytest.mark.usefixtures("fresh_global_provider")


def run_turn(handle: auditspan.AuditSpanHandle) -> str:
    audit = handle.emitter(session_id="s1")
    turn = audit.emit_turn_start(agent_id="planner", prompt="hi")
    audit.emit_tool_call_attempt("lookup", args="{'id': 1}", turn_id=turn, agent_id="planner")
    audit.emit_tool_call_complete("lookup", duration_ms=3.0, turn_id=turn, agent_id="planner")
    audit.emit_turn_end(agent_id="planner", turn_id=turn, fc_count=1)
    return turn


def test_embedded_default_writes_local_files(tmp_path: Path) -> None:
    handle = auditspan.configure(service_name="demo-agent", output_dir=tmp_path, environ={})
    run_turn(handle)
    handle.shutdown()
    spans = event_spans(read_spans(tmp_path / "traces.jsonl"))
    assert sorted(s["name"] for s in spans) == ["execute_tool lookup", "invoke_agent planner"]
    assert {s["resource"]["service.name"] for s in spans} == {"demo-agent"}
    records = event_records((tmp_path / "audit.jsonl").read_text().splitlines())
    assert len(records) == 4
    span_ids = {s["spanId"] for s in spans}
    assert {r["telemetry"]["span_id"] for r in records} <= span_ids
    witnessed = checkpoint_count(tmp_path / "audit.jsonl")  # one witness span per checkpoint
    assert handle.span_stats.exported == 2 + witnessed and handle.span_stats.failed == 0
    assert "traces.jsonl" in handle.destinations["traces"]
    assert trace.get_tracer_provider() is handle.tracer_provider


def test_service_name_from_environment(tmp_path: Path) -> None:
    env = {"OTEL_SERVICE_NAME": "from-env", "OTEL_RESOURCE_ATTRIBUTES": "deployment.environment=test"}
    handle = auditspan.configure(output_dir=tmp_path, environ=env, set_global=False)
    resource = handle.tracer_provider.resource.attributes
    handle.shutdown()
    assert resource["service.name"] in ("from-env",)


def test_existing_provider_is_reused_not_replaced(tmp_path: Path) -> None:
    exporter = InMemorySpanExporter()
    app_provider = TracerProvider()
    app_provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(app_provider)
    handle = auditspan.configure(output_dir=tmp_path, environ={})
    assert handle.tracer_provider is app_provider
    run_turn(handle)
    handle.shutdown()
    assert len(event_spans(exporter.get_finished_spans())) == 2
    assert not (tmp_path / "traces.jsonl").exists()
    # the application's provider is still usable: auditspan did not shut it down
    with app_provider.get_tracer("app").start_as_current_span("after"):
        pass
    assert len(event_spans(exporter.get_finished_spans())) == 3


@pytest.mark.parametrize(
    ("env", "kwargs", "message"),
    [
        (
            {"OTEL_EXPORTER_OTLP_PROTOCOL": "carrier-pigeon"},
            {},
            "OTEL_EXPORTER_OTLP_PROTOCOL: unknown protocol",
        ),
        ({"OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"}, {}, "no http/json"),
        ({"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "udp"}, {}, "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"),
        (
            {"OTEL_EXPORTER_OTLP_ENDPOINT": "localhost:4317"},
            {},
            "OTEL_EXPORTER_OTLP_ENDPOINT: malformed endpoint",
        ),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://host:99999"}, {}, "OTEL_EXPORTER_OTLP_ENDPOINT: malformed"),
        (
            {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "ftp://x/v1/traces"},
            {},
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        ),
        (
            {"OTEL_EXPORTER_OTLP_HEADERS": "api-key=1,broken"},
            {},
            "OTEL_EXPORTER_OTLP_HEADERS: entry 2 'broken'",
        ),
        ({"OTEL_TRACES_EXPORTER": "zipkin"}, {}, "OTEL_TRACES_EXPORTER: unknown exporter 'zipkin'"),
        ({"OTEL_LOGS_EXPORTER": "loki", "AUDITSPAN_EVENTS_AS": "logs"}, {}, "OTEL_LOGS_EXPORTER"),
        ({"OTEL_EXPORTER_OTLP_COMPRESSION": "brotli"}, {}, "OTEL_EXPORTER_OTLP_COMPRESSION"),
        ({"OTEL_EXPORTER_OTLP_TIMEOUT": "soon"}, {}, "OTEL_EXPORTER_OTLP_TIMEOUT"),
        ({"AUDITSPAN_EVENTS_AS": "spans"}, {}, "AUDITSPAN_EVENTS_AS"),
        ({"AUDITSPAN_FSYNC": "sometimes"}, {}, "AUDITSPAN_FSYNC"),
        ({}, {"otlp_protocol": "tcp"}, "otlp_protocol: unknown protocol"),
    ],
)
def test_bad_settings_fail_at_configure_naming_the_setting(
    tmp_path: Path, env: dict[str, str], kwargs: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigurationError, match=message):
        auditspan.configure(output_dir=tmp_path, environ=env, set_global=False, **kwargs)


def test_unwritable_audit_path_names_it(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    with pytest.raises(ConfigurationError, match=r"audit_log: cannot open .*not-a-dir"):
        auditspan.configure(audit_log=blocker / "audit.jsonl", environ={}, set_global=False)
    with pytest.raises(ConfigurationError, match="audit_log"):
        auditspan.configure(environ={"AUDITSPAN_AUDIT_LOG": str(blocker / "a.jsonl")}, set_global=False)


def test_otlp_settings_build_the_right_exporters(tmp_path: Path) -> None:
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpExporter

    env = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:1",
        "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
        "OTEL_EXPORTER_OTLP_HEADERS": "x-tenant=acme,authorization=Bearer%20abc",
        "OTEL_EXPORTER_OTLP_COMPRESSION": "gzip",
    }
    handle = auditspan.configure(output_dir=tmp_path, environ=env, set_global=False)
    exporter = _exporter_of(handle)
    assert isinstance(exporter, HttpExporter)
    # (that headers and gzip reach a real receiver is proven in tests/e2e)
    assert handle.destinations["traces"] == "http://127.0.0.1:1/v1/traces (OTLP http/protobuf)"
    handle.shutdown()

    env["OTEL_EXPORTER_OTLP_PROTOCOL"] = "grpc"
    handle = auditspan.configure(output_dir=tmp_path, environ=env, set_global=False)
    assert isinstance(_exporter_of(handle), GrpcExporter)
    handle.shutdown()


def _exporter_of(handle: auditspan.AuditSpanHandle) -> Any:
    processors = handle.tracer_provider._active_span_processor._span_processors
    exporter = processors[0].inner.span_exporter.inner
    return getattr(exporter, "inner", exporter)  # under the scrubbing exporter (AUDITSPAN_SCRUBBING)


def test_events_as_logs_creates_a_logger_provider(tmp_path: Path) -> None:
    handle = auditspan.configure(output_dir=tmp_path, events_as="both", environ={}, set_global=False)
    run_turn(handle)
    handle.shutdown()
    lines = (tmp_path / "logs.jsonl").read_text().splitlines()
    names = [
        rec["eventName"]
        for line in lines
        for rl in json.loads(line)["resourceLogs"]
        for sl in rl["scopeLogs"]
        for rec in sl["logRecords"]
    ]
    assert names == [
        "audit.turn_start",
        "audit.tool_call_attempt",
        "audit.tool_call_complete",
        "audit.turn_end",
    ]


def test_shutdown_is_idempotent(tmp_path: Path) -> None:
    handle = auditspan.configure(output_dir=tmp_path, environ={}, set_global=False)
    handle.shutdown()
    handle.shutdown()


def test_unreachable_collector_is_counted_and_bounded(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    import socket
    import time

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{port}", "OTEL_EXPORTER_OTLP_TIMEOUT": "500"}
    handle = auditspan.configure(output_dir=tmp_path, environ=env, set_global=False)
    run_turn(handle)
    started = time.monotonic()
    handle.shutdown(timeout_s=3)
    assert time.monotonic() - started < 20  # bounded, generously: the point is "does not hang"
    records = event_records((tmp_path / "audit.jsonl").read_text().splitlines())
    assert len(records) == 4  # no audit record lost
    # The turn's two spans and one witness span per checkpoint of the chain.
    assert handle.span_stats.ended == 2 + checkpoint_count(tmp_path / "audit.jsonl")
    assert handle.span_stats.exported == 0
    assert handle.span_stats.failed + handle.span_stats.dropped == handle.span_stats.ended
    assert "spans could not be delivered" in caplog.text or "dropped" in caplog.text


@pytest.mark.parametrize(
    ("env", "kwargs", "message"),
    [
        ({"AUDITSPAN_CAPTURE": "some"}, {}, "AUDITSPAN_CAPTURE"),
        ({}, {"capture": "partial"}, "capture"),
        ({"AUDITSPAN_RULES": "/nonexistent/rules.yaml"}, {}, "AUDITSPAN_RULES"),
        ({"AUDITSPAN_CLASSIFICATION_RULES": "/nonexistent/types.yaml"}, {}, "AUDITSPAN_CLASSIFICATION_RULES"),
    ],
)
def test_bad_policy_settings_are_named(
    tmp_path: Path, env: dict[str, str], kwargs: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigurationError, match=message):
        auditspan.configure(output_dir=tmp_path, environ=env, set_global=False, **kwargs)


def test_capture_policy_reaches_spans_and_records(tmp_path: Path) -> None:
    secret = "sk-proj-4fG7hJ2kL9mN3pQ6rS8tU1vW5xY0zA2bC4dE6fG8"
    for policy, expect_secret, expect_preview in (
        ("redacted", False, True),
        ("none", False, False),
        ("full", True, True),
    ):
        out = tmp_path / policy
        handle = auditspan.configure(output_dir=out, environ={}, set_global=False, capture=policy)
        audit = handle.emitter(session_id="s")
        turn = audit.emit_turn_start(agent_id="a", prompt=f"use key {secret} please")
        audit.emit_tool_call_attempt(
            "http_get",
            args=f"{{'headers': {{'Authorization': 'Bearer {secret}'}}}}",
            turn_id=turn,
            agent_id="a",
        )
        audit.emit_tool_call_complete("http_get", result="ok", turn_id=turn, agent_id="a")
        audit.emit_turn_end(agent_id="a", turn_id=turn)
        handle.shutdown()
        everything = (out / "audit.jsonl").read_text() + (out / "traces.jsonl").read_text()
        assert (secret in everything) is expect_secret, policy
        assert ("use key" in everything) is expect_preview, policy


def test_exporter_lists_fan_out_to_each(tmp_path: Path) -> None:
    from opentelemetry.sdk.trace.export import ConsoleSpanExporter

    from auditspan.otlp_file import OtlpJsonFileSpanExporter

    env = {"OTEL_TRACES_EXPORTER": "console,auditspan_file"}
    handle = auditspan.configure(output_dir=tmp_path, environ=env, set_global=False)

    run_turn(handle)
    handle.shutdown()
    assert len(event_spans(read_spans(tmp_path / "traces.jsonl"))) == 2
    kinds = [type(e) for e in _exporter_of(handle).exporters]
    assert kinds == [ConsoleSpanExporter, OtlpJsonFileSpanExporter]
    assert handle.span_stats.exported == 2 + checkpoint_count(tmp_path / "audit.jsonl")  # and witnesses
    assert "the console and " in handle.destinations["traces"]


def test_exporter_names_are_not_checked_when_the_app_owns_the_provider(tmp_path: Path) -> None:
    # The application's provider (the SDK configurator's, say) has its exporters: not auditspan's business.
    trace.set_tracer_provider(TracerProvider())
    auditspan.configure(output_dir=tmp_path, environ={"OTEL_TRACES_EXPORTER": "zipkin,otlp"}).shutdown()

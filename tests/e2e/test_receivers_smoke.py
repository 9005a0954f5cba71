"""Smoke tests of the e2e harness with the plain OpenTelemetry SDK (no auditspan code).

* A root span with three children (one ERROR with an attributed event) reaches Phoenix
  intact over OTLP/gRPC and OTLP/HTTP, directly and through a rotel hop, and reaches oteltap.
* ``OTEL_EXPORTER_OTLP_HEADERS`` and ``OTEL_EXPORTER_OTLP_COMPRESSION=gzip`` are visible at
  the receiver (Phoenix's request record and gRPC compression trace), and Phoenix acts on a
  header (``x-project-name``) over HTTP.
* A rotel hop drops the client's headers, adds its own and gzips upstream; its debug log
  shows the resource attributes and span kinds that Phoenix does not return.
"""

from __future__ import annotations

import os
import re
import shutil
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcSpanExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.trace import SpanKind, Status, StatusCode

from .servers import (
    PHOENIX_PROJECT_ATTRIBUTE,
    PHOENIX_PROJECT_HEADER,
    Oteltap,
    OtlpProtocol,
    Phoenix,
    Rotel,
    RotelFactory,
    ServerError,
    flatten_attributes,
    poll_until,
    port_accepting,
    running_servers,
)

PROTOCOLS: list[OtlpProtocol] = ["grpc", "http"]
CHILDREN = ["child-0", "child-1", "child-2"]
FAILING_CHILD = "child-1"
ERROR_MESSAGE = "tool failed"
EVENT_NAME = "tool.error"
EVENT_ATTRIBUTES: dict[str, Any] = {"reason": "timeout", "attempt": 2, "elapsed_s": 1.5, "retryable": False}
PROBE_HEADER = "x-auditspan-probe"


class RecordingExporter(SpanExporter):
    """Wraps an exporter and keeps every export result (force_flush() alone does not tell)."""

    def __init__(self, inner: SpanExporter) -> None:
        self.inner = inner
        self.results: list[SpanExportResult] = []

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        result = self.inner.export(spans)
        self.results.append(result)
        return result

    def shutdown(self) -> None:
        self.inner.shutdown()

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return self.inner.force_flush(timeout_millis)


@dataclass(frozen=True)
class SentTree:
    """Ids of the span tree that :func:`send_tree` sent (hex, as receivers print them)."""

    trace_id: str
    root_id: str
    span_ids: dict[str, str]


def make_exporter(protocol: OtlpProtocol, endpoint: str) -> SpanExporter:
    """An OTLP exporter; headers and compression come from the OTEL_EXPORTER_OTLP_* environment."""
    if protocol == "grpc":
        return GrpcSpanExporter(endpoint=endpoint, insecure=True)
    return HttpSpanExporter(endpoint=endpoint)


def send_tree(exporter: SpanExporter, project: str) -> SentTree:
    """Send root (SERVER) + 3 INTERNAL children in one batch; assert every export succeeded."""
    recording = RecordingExporter(exporter)
    provider = TracerProvider(
        resource=Resource.create({PHOENIX_PROJECT_ATTRIBUTE: project, "service.name": "auditspan-e2e"})
    )
    provider.add_span_processor(BatchSpanProcessor(recording))
    tracer = provider.get_tracer("auditspan.e2e.smoke")
    span_ids: dict[str, str] = {}
    with tracer.start_as_current_span("root", kind=SpanKind.SERVER) as root:
        for name in CHILDREN:
            with tracer.start_as_current_span(name) as child:
                if name == FAILING_CHILD:
                    child.add_event(EVENT_NAME, EVENT_ATTRIBUTES)
                    child.set_status(Status(StatusCode.ERROR, ERROR_MESSAGE))
                span_ids[name] = f"{child.get_span_context().span_id:016x}"
    context = root.get_span_context()
    span_ids["root"] = f"{context.span_id:016x}"
    provider.shutdown()  # flushes the batch
    assert recording.results, "the exporter was never called"
    assert all(r is SpanExportResult.SUCCESS for r in recording.results), recording.results
    return SentTree(trace_id=f"{context.trace_id:032x}", root_id=span_ids["root"], span_ids=span_ids)


def assert_tree_in_phoenix(phoenix: Phoenix, project: str, sent: SentTree) -> None:
    """Every span of ``sent`` is in ``project`` with its ids, parent, status and event."""
    spans = phoenix.wait_for_spans(project, count=4)
    assert sorted(s["name"] for s in spans) == sorted(["root", *CHILDREN])
    by_name = {s["name"]: s for s in spans}
    for name, span in by_name.items():
        assert span["context"]["trace_id"] == sent.trace_id
        assert span["context"]["span_id"] == sent.span_ids[name]
    assert by_name["root"]["parent_id"] is None
    for name in CHILDREN:
        assert by_name[name]["parent_id"] == sent.root_id
        failing = name == FAILING_CHILD
        assert by_name[name]["status_code"] == ("ERROR" if failing else "UNSET")
        assert by_name[name]["status_message"] == (ERROR_MESSAGE if failing else "")
    events = by_name[FAILING_CHILD]["events"]
    assert [e["name"] for e in events] == [EVENT_NAME]
    assert events[0]["attributes"] == EVENT_ATTRIBUTES
    assert all(by_name[n]["events"] == [] for n in ("root", "child-0", "child-2"))

    # The OTLP-shaped read-back agrees (status as OTLP codes, events as attribute lists).
    otlp = {s["name"]: s for s in phoenix.otlp_spans(project)}
    assert otlp["root"]["parent_span_id"] is None
    assert {otlp[n]["parent_span_id"] for n in CHILDREN} == {sent.root_id}
    assert {n: otlp[n]["status"]["code"] for n in otlp} == {
        "root": 0,
        "child-0": 0,
        "child-1": 2,
        "child-2": 0,
    }
    (event,) = otlp[FAILING_CHILD]["events"]
    assert event["name"] == EVENT_NAME
    assert flatten_attributes(event["attributes"]) == EVENT_ATTRIBUTES


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_span_tree_reaches_phoenix_directly(
    protocol: OtlpProtocol, phoenix: Phoenix, phoenix_project: str
) -> None:
    """SDK -> Phoenix: ids, parents, status and event attributes arrive intact."""
    endpoint = phoenix.grpc_endpoint if protocol == "grpc" else phoenix.traces_endpoint
    sent = send_tree(make_exporter(protocol, endpoint), phoenix_project)
    assert_tree_in_phoenix(phoenix, phoenix_project, sent)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_span_tree_reaches_phoenix_through_rotel(
    protocol: OtlpProtocol, phoenix: Phoenix, phoenix_project: str, rotel: RotelFactory
) -> None:
    """SDK -> rotel -> Phoenix, same protocol on both hops: the tree arrives intact."""
    hop = rotel(protocol)  # SDK -> rotel and rotel -> Phoenix both over `protocol`
    sent = send_tree(make_exporter(protocol, hop.endpoint(protocol)), phoenix_project)
    assert_tree_in_phoenix(phoenix, phoenix_project, sent)


def test_span_tree_reaches_oteltap(oteltap: Oteltap) -> None:
    """SDK -> oteltap over OTLP/HTTP: the tree arrives intact, with the OTel span kinds."""
    sent = send_tree(make_exporter("http", oteltap.traces_endpoint), "unused")
    spans = oteltap.wait_for(4)
    assert sorted(s["name"] for s in spans) == sorted(["root", *CHILDREN])
    by_name = {s["name"]: s for s in spans}
    assert {s["traceId"] for s in spans} == {sent.trace_id}
    assert {n: s["spanId"] for n, s in by_name.items()} == sent.span_ids
    assert by_name["root"]["parentSpanId"] == ""
    assert {by_name[n]["parentSpanId"] for n in CHILDREN} == {sent.root_id}
    assert {n: s["kind"] for n, s in by_name.items()} == {"root": 2, "child-0": 1, "child-1": 1, "child-2": 1}
    assert by_name[FAILING_CHILD]["status"] == {"code": 2, "message": ERROR_MESSAGE}
    (event,) = by_name[FAILING_CHILD]["events"]
    assert event["name"] == EVENT_NAME
    assert flatten_attributes(event["attributes"]) == EVENT_ATTRIBUTES


@pytest.mark.parametrize("compression", ["gzip", "none"])
@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_env_headers_and_compression_reach_phoenix(
    protocol: OtlpProtocol,
    compression: str,
    phoenix: Phoenix,
    phoenix_project: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """OTEL_EXPORTER_OTLP_HEADERS / _COMPRESSION are what Phoenix receives, per protocol."""
    probe = uuid.uuid4().hex
    header_project = f"{phoenix_project}-by-header"
    monkeypatch.setenv(
        "OTEL_EXPORTER_OTLP_HEADERS", f"{PROBE_HEADER}={probe},{PHOENIX_PROJECT_HEADER}={header_project}"
    )
    if compression == "gzip":
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip")
    else:
        monkeypatch.delenv("OTEL_EXPORTER_OTLP_COMPRESSION", raising=False)
    gzipped = compression == "gzip"

    mark = phoenix.mark()
    endpoint = phoenix.grpc_endpoint if protocol == "grpc" else phoenix.traces_endpoint
    sent = send_tree(make_exporter(protocol, endpoint), phoenix_project)

    requests = phoenix.received_requests(since=mark)
    assert requests, "Phoenix recorded no OTLP request"
    assert {r.protocol for r in requests} == {protocol}
    assert [r.header(PROBE_HEADER) for r in requests] == [probe] * len(requests)
    if protocol == "http":
        assert [r.header("content-encoding") for r in requests] == [("gzip" if gzipped else None)] * len(
            requests
        )
        assert [r.body_is_gzip for r in requests] == [gzipped] * len(requests)
        # Phoenix acts on the header: x-project-name beats the resource attribute over HTTP.
        assert_tree_in_phoenix(phoenix, header_project, sent)
        assert phoenix.spans(phoenix_project) == []
    else:
        encodings, _ = poll_until(
            lambda: (
                found if len(found := phoenix.grpc_message_encodings(since=mark)) >= len(requests) else None
            ),
            timeout=5.0,
        )
        assert encodings == [("gzip" if gzipped else "identity")] * len(requests)
        # Over gRPC Phoenix ignores x-project-name: the resource attribute decides.
        assert_tree_in_phoenix(phoenix, phoenix_project, sent)
        assert phoenix.spans(header_project) == []


def test_rotel_hop_replaces_client_headers_and_gzips_upstream(
    phoenix: Phoenix, phoenix_project: str, rotel: RotelFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Client headers stop at rotel, which sends its own, gzipped; its debug log shows the resource."""
    client_probe, hop_probe = uuid.uuid4().hex, uuid.uuid4().hex
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", f"{PROBE_HEADER}={client_probe}")
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_COMPRESSION", raising=False)
    hop = rotel("http", upstream_headers={"x-auditspan-hop": hop_probe}, debug_log=True)

    mark = phoenix.mark()
    sent = send_tree(make_exporter("grpc", hop.grpc_endpoint), phoenix_project)
    assert_tree_in_phoenix(phoenix, phoenix_project, sent)

    requests = phoenix.received_requests(since=mark)
    assert requests
    assert all((r.header("user-agent") or "").startswith("Rotel") for r in requests)
    assert [r.header("x-auditspan-hop") for r in requests] == [hop_probe] * len(requests)
    assert [r.header(PROBE_HEADER) for r in requests] == [None] * len(requests)
    assert [(r.header("content-encoding"), r.body_is_gzip) for r in requests] == [("gzip", True)] * len(
        requests
    )

    # rotel's debug log shows what Phoenix does not return: resource attributes and OTel kinds.
    debug = {s.name: s for s in hop.wait_for_debug_spans(4)}
    assert sorted(debug) == sorted(["root", *CHILDREN])
    assert {s.resource[PHOENIX_PROJECT_ATTRIBUTE] for s in debug.values()} == {phoenix_project}
    assert {s.resource["service.name"] for s in debug.values()} == {"auditspan-e2e"}
    assert debug["root"].kind == "SPAN_KIND_SERVER"
    assert {debug[n].kind for n in CHILDREN} == {"SPAN_KIND_INTERNAL"}
    assert {s.trace_id for s in debug.values()} == {sent.trace_id}
    assert debug["root"].parent_span_id == ""
    assert {debug[n].parent_span_id for n in CHILDREN} == {sent.root_id}
    assert debug[FAILING_CHILD].status_code == "STATUS_CODE_ERROR"
    assert debug[FAILING_CHILD].status_message == ERROR_MESSAGE
    assert [(e.name, dict(e.attributes)) for e in debug[FAILING_CHILD].events] == [
        (EVENT_NAME, EVENT_ATTRIBUTES)
    ]


def test_failed_start_raises_with_log_tail() -> None:
    """A server that exits before it is ready raises with its log tail, and keeps that log."""
    server = Rotel("http://127.0.0.1:9", extra_args=["--no-such-flag"])
    with pytest.raises(ServerError, match="no-such-flag") as failure:
        server.start()
    assert not server.running
    assert server not in running_servers()
    named = re.search(r"log (\S+) ends", str(failure.value))
    assert named is not None
    log = Path(named[1])
    try:
        assert "no-such-flag" in log.read_text(encoding="utf-8")
    finally:
        shutil.rmtree(log.parent)


def test_stop_ends_the_process_group_and_frees_the_port() -> None:
    """stop() leaves no process in the server's group and nothing listening on its port."""
    with Oteltap() as tap:
        pid, port, workdir = tap.pid, tap.port, tap.workdir
        assert pid is not None
        os.killpg(pid, 0)  # alive: no exception
    with pytest.raises(ProcessLookupError):
        os.killpg(pid, 0)
    assert not port_accepting(port)
    assert not workdir.exists()

"""``configure()``: one call from nothing to traces, log records and an audit log.

Honours the standard settings -- ``OTEL_SERVICE_NAME``,
``OTEL_RESOURCE_ATTRIBUTES``, ``OTEL_EXPORTER_OTLP_ENDPOINT`` /
``..._TRACES_ENDPOINT`` / ``..._LOGS_ENDPOINT``, ``..._PROTOCOL`` (``grpc``,
``http/protobuf``), ``..._HEADERS``, ``..._COMPRESSION``, ``..._TIMEOUT``,
``OTEL_TRACES_EXPORTER`` and ``OTEL_LOGS_EXPORTER`` (``otlp``, ``console``,
``none``), the ``OTEL_BSP_*`` batch settings and ``OTEL_TRACES_SAMPLER`` --
and a few of its own:

=========================  ====================================================
``AUDITSPAN_AUDIT_LOG``    path of the canonical audit log
                           (default ``<output dir>/audit.jsonl``; ``none`` for no log)
``AUDITSPAN_OUTPUT_DIR``   the embedded default's folder (``./auditspan-output``)
``AUDITSPAN_EVENTS_AS``    ``span_events`` (default), ``logs`` or ``both``
``AUDITSPAN_FSYNC``        the audit log's fsync policy (``batch``)
``AUDITSPAN_CAPTURE``      ``redacted`` (default), ``none`` or ``full``
``AUDITSPAN_RULES``        behavioural rules file, ``builtin`` (default) or ``none``
``AUDITSPAN_CLASSIFICATION_RULES``  tool-name glob -> semantic type rules file
``AUDITSPAN_FLUSH_ON_SIGNAL``  ``true`` (default): flush the audit log on SIGTERM,
                           SIGINT and SIGHUP before the application's handler;
                           ``false`` installs no handler
``AUDITSPAN_CHAIN``        ``true`` (default): hash-chain the audit log, with checkpoints;
                           ``false`` writes plain records (refused with a signing key)
``AUDITSPAN_SIGNING_KEY``  Ed25519 private key file (``auditspan keygen``) that signs
                           the audit log's checkpoints (unset: unsigned)
=========================  ====================================================

With no endpoint and no exporter configured, spans go to
``<output dir>/traces.jsonl`` (OTLP/JSON lines) -- the embedded default, so
``configure()`` works with zero setup. A TracerProvider the application
already installed is reused as it is: auditspan adds no exporter to it and
does not shut it down.

Bad settings fail here, with a ``ConfigurationError`` naming the setting::

    >>> configure(otlp_protocol="carrier-pigeon")
    Traceback (most recent call last):
    ...
    auditspan.configuration.ConfigurationError: otlp_protocol: unknown protocol 'carrier-pigeon'; ...
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import weakref
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

from . import _fork, _signals
from ._bounded import run_bounded
from ._config_files import ConfigurationError
from .audit_log import FSYNC_POLICIES, AuditLogExporter, JsonLinesAuditLog
from .audit_log._chain import Signer, span_witness
from .audit_log.signing import SigningError, load_signer
from .classification import Classifier
from .collector import EVENTS_AS, SpanCollector
from .emitter import AuditEmitter
from .redaction import CapturePolicy, Redactor
from .rules import PII_EXFILTRATION_RULE, BehaviourRule, RuleEngine, load_rules

__all__ = ["AuditSpanHandle", "ConfigurationError", "SpanExportStats", "configure"]

_logger = logging.getLogger(__name__)

#: Providers a handle of ``configure()`` shut down: a later ``configure()`` never reuses them.
_SHUT_DOWN: weakref.WeakSet[Any] = weakref.WeakSet()

_PROTOCOLS = ("grpc", "http/protobuf")
_EXPORTERS = ("otlp", "console", "none", "auditspan_file")
_COMPRESSIONS = ("gzip", "deflate", "none")
DEFAULT_OUTPUT_DIR = "auditspan-output"


@dataclass
class SpanExportStats:
    """What happened to the spans of auditspan's own export pipeline (counted, never guessed).

    ``ended`` spans entered the batch processor; ``exported`` reached the
    exporter and were accepted; ``failed`` were refused (receiver down, after
    the exporter's retries). ``dropped`` -- the batch queue was full -- is
    exact once the pipeline is flushed (after ``force_flush`` / ``shutdown``).
    Spans a sampler did not record are ``collector.stats.spans_unsampled``.
    """

    ended: int = 0
    exported: int = 0
    failed: int = 0
    export_calls: int = 0
    failed_calls: int = 0

    @property
    def dropped(self) -> int:
        """Spans that never reached the exporter: the queue was full, or shutdown gave up waiting."""
        return max(0, self.ended - self.exported - self.failed)


class _CountingSpanProcessor(SpanProcessor):
    """Counts the spans that enter the wrapped batch processor."""

    def __init__(self, inner: SpanProcessor, stats: SpanExportStats) -> None:
        self.inner = inner
        self.stats = stats

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        self.inner.on_start(span, parent_context)

    def on_end(self, span: ReadableSpan) -> None:
        self.stats.ended += 1
        self.inner.on_end(span)

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return self.inner.force_flush(timeout_millis)

    def shutdown(self) -> None:
        self.inner.shutdown()


class _CountingSpanExporter(SpanExporter):
    """Counts spans the wrapped exporter accepted and refused, and says so once when spans are lost.

    ``force_flush()`` of the SDK reports success even when every export
    failed, so delivery is judged from these counts instead. The first refused
    batch logs one warning line naming where the spans were going and where
    the audit records still are; later ones are only counted.
    """

    def __init__(
        self, inner: SpanExporter, stats: SpanExportStats, destinations: Mapping[str, str] | None = None
    ) -> None:
        self.inner = inner
        self.stats = stats
        self.destinations = destinations if destinations is not None else {}
        self.warned = False
        self._lock = threading.Lock()
        _fork.track(self, tier=2)

    def _fork_child(self) -> None:
        self._lock = threading.Lock()  # the SDK's batch processor restarts its export thread in the child

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        try:
            result = self.inner.export(spans)
        except Exception:
            _logger.exception("auditspan: span exporter raised")
            result = SpanExportResult.FAILURE
        with self._lock:
            self.stats.export_calls += 1
            if result is SpanExportResult.SUCCESS:
                self.stats.exported += len(spans)
            else:
                self.stats.failed += len(spans)
                self.stats.failed_calls += 1
                warn, self.warned = not self.warned, True
        if result is not SpanExportResult.SUCCESS and warn:
            _logger.warning(
                "auditspan: spans could not be delivered to %s; every audit record is still written (%s); "
                "further failures are only counted (span_stats), and shutdown reports the total",
                self.destinations.get("traces", "the span exporter"),
                self.destinations.get("audit log", "no audit log"),
            )
        return result

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return self.inner.force_flush(timeout_millis)

    def shutdown(self) -> None:
        self.inner.shutdown()


@dataclass
class AuditSpanHandle:
    """What ``configure()`` returns: the collector, emitters wired to it, and shutdown.

    Attributes:
        collector: the ``SpanCollector`` every emitter of this handle writes to.
        tracer_provider: the provider spans go to (created or reused).
        logger_provider: the provider log records go to, when log events are on.
        destinations: where things go, in words (for people and the demo).
        span_stats: spans exported / failed by auditspan's own exporter.
    """

    collector: SpanCollector
    tracer_provider: Any
    logger_provider: Any = None
    destinations: dict[str, str] = field(default_factory=dict)
    span_stats: SpanExportStats = field(default_factory=SpanExportStats)
    _owned: list[Any] = field(default_factory=list, repr=False)
    _shut: bool = field(default=False, repr=False)
    #: auditspan's own counting exporters (they warn once when spans cannot be delivered).
    _pipelines: list[Any] = field(default_factory=list, repr=False)

    def emitter(self, session_id: str | None = None) -> AuditEmitter:
        """A new ``AuditEmitter`` for one session, writing to this handle's collector."""
        return AuditEmitter(self.collector, session_id=session_id)

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        """Push out everything emitted so far (spans, log records, audit records)."""
        return self.collector.force_flush(timeout_millis)

    def summary(self) -> str:
        """One line: how many audit records and spans went where (exact after ``shutdown()``).

        Example::

            telemetry.shutdown()
            print(telemetry.summary())
            # auditspan: 5 audit records -> /work/auditspan-output/audit.jsonl; 2 spans -> /work/...
        """
        log = self.collector.audit_log
        written = getattr(getattr(log, "stats", None), "records_written", None)
        records = written if isinstance(written, int) else self.collector.stats.records
        stats = self.span_stats
        spans = f"{_count(stats.exported, 'span')} -> {self.destinations.get('traces', 'nowhere')}"
        lost = [f"{n} {what}" for n, what in ((stats.failed, "failed"), (stats.dropped, "dropped")) if n]
        where = self.destinations.get("audit log", "no audit log")
        return f"auditspan: {_count(records, 'audit record')} -> {where}; {spans}" + (
            f" ({', '.join(lost)})" if lost else ""
        )

    def shutdown(self, timeout_s: float = 10.0) -> None:
        """End open turns, flush, and shut down what ``configure()`` created. Idempotent.

        Returns within about ``timeout_s`` per provider even when the collector
        is unreachable (the audit log is flushed first; it waits for the disk
        only); what was lost on the way is reported in one log line.
        """
        if self._shut:
            return
        self._shut = True
        self.collector.shutdown()
        for provider in self._owned:
            _SHUT_DOWN.add(provider)
            run_bounded(provider.shutdown, timeout_s, f"shutdown of {type(provider).__name__}")
        self._report()
        _logger.info("%s", self.summary())

    def _report(self) -> None:
        stats, unsampled = self.span_stats, self.collector.stats.spans_unsampled
        if stats.failed or stats.dropped or unsampled:
            # One warning line about lost spans in all: after the first failure's, the total is info.
            warned = any(getattr(p, "warned", False) for p in self._pipelines)
            _logger.log(
                logging.INFO if warned and not stats.dropped and not unsampled else logging.WARNING,
                "auditspan: %d spans exported, %d failed to export, %d dropped (queue full, or unsent at "
                "shutdown), %d not sampled; "
                "every audit record was still written to the audit log",
                stats.exported,
                stats.failed,
                stats.dropped,
                unsampled,
            )


def configure(
    service_name: str | None = None,
    audit_log: str | os.PathLike[str] | AuditLogExporter | Any | None = None,
    *,
    events_as: str | None = None,
    output_dir: str | os.PathLike[str] | None = None,
    otlp_endpoint: str | None = None,
    otlp_protocol: str | None = None,
    otlp_headers: str | Mapping[str, str] | None = None,
    traces_exporter: str | None = None,
    span_exporter: SpanExporter | None = None,
    tracer_provider: TracerProvider | None = None,
    resource_attributes: Mapping[str, Any] | None = None,
    set_global: bool = True,
    reuse_global_provider: bool = True,
    capture: str | None = None,
    rules: str | os.PathLike[str] | Iterable[BehaviourRule] | None = None,
    classification_rules: str | os.PathLike[str] | None = None,
    environ: Mapping[str, str] | None = None,
    flush_on_signal: bool | None = None,
    chain: bool | None = None,
    signing_key: str | os.PathLike[str] | None = None,
    **collector_options: Any,
) -> AuditSpanHandle:
    """Set up traces, log events and the canonical audit log; return the handle.

    Args:
        service_name: ``service.name`` on the Resource (else ``OTEL_SERVICE_NAME``).
        audit_log: path, stream or exporter of the canonical audit log; else
            ``AUDITSPAN_AUDIT_LOG``; else ``<output dir>/audit.jsonl``.
        events_as: ``span_events``, ``logs`` or ``both`` (else ``AUDITSPAN_EVENTS_AS``).
        output_dir: the embedded default's folder (else ``AUDITSPAN_OUTPUT_DIR``).
        otlp_endpoint, otlp_protocol, otlp_headers: override the ``OTEL_EXPORTER_OTLP_*`` settings.
        traces_exporter: ``otlp``, ``console``, ``auditspan_file`` or ``none``, or a comma-separated
            list of them (else ``OTEL_TRACES_EXPORTER``).
        span_exporter: an exporter object to use instead of any of the above.
        tracer_provider: a provider to use; else the global one if the
            application set one (unless ``reuse_global_provider`` is false; never
            one an earlier handle shut down: a ``configure()`` after
            ``shutdown()`` gets a fresh provider, not made global -- the API sets
            the global provider once); else a new one (made global if ``set_global``).
        resource_attributes: more Resource attributes.
        capture: ``redacted`` (default: secrets in previews, arguments, results,
            error messages, metadata, ids and names replaced by ``[REDACTED:<kind>]``),
            ``none`` (previews dropped) or ``full`` (kept verbatim); else ``AUDITSPAN_CAPTURE``.
        rules: behavioural rules -- a YAML/JSON file, ``"builtin"`` (the seed's
            PII-exfiltration rule, the default), ``"none"``, or rule objects; else ``AUDITSPAN_RULES``.
        classification_rules: a YAML/JSON file of tool-name globs -> semantic
            type; else ``AUDITSPAN_CLASSIFICATION_RULES``.
        environ: the settings to read instead of ``os.environ`` (tests, embedding).
        flush_on_signal: on SIGTERM, SIGINT and SIGHUP, write and sync the queued audit
            records (bounded wait), then run the handler that was there before (the
            application's, or the default action: the process still ends, with the
            signal's status). Installed from the main thread only, for signals not
            ignored; else ``AUDITSPAN_FLUSH_ON_SIGNAL`` (default true).
        chain: seal the audit log's records into hash chains with checkpoints witnessed in the
            trace pipeline (see the README's Tamper evidence); else ``AUDITSPAN_CHAIN`` (default
            true: the audit log is evidence, so it is tamper-evident unless turned off).
        signing_key: an Ed25519 private key file (PEM, ``auditspan keygen``) that signs the
            audit log's checkpoints; else ``AUDITSPAN_SIGNING_KEY``; else unsigned. Needs the
            ``auditspan[signing]`` extra.
        collector_options: passed to ``SpanCollector`` (``redactor``, ``rules``, bounds ...).

    Raises:
        ConfigurationError: a setting is wrong; the message names it.
    """
    env = os.environ if environ is None else environ
    settings = _Settings.read(
        env,
        service_name=service_name,
        events_as=events_as,
        output_dir=output_dir,
        otlp_endpoint=otlp_endpoint,
        otlp_protocol=otlp_protocol,
        otlp_headers=otlp_headers,
        traces_exporter=traces_exporter,
    )
    destinations: dict[str, str] = {}
    owned: list[Any] = []
    pipelines: list[Any] = []
    stats = SpanExportStats()

    # Audit log first: an unwritable path must fail before anything is installed.
    log_target = _audit_log_target(audit_log, env, settings.output_dir)
    log_setting = (
        "audit_log"
        if audit_log is not None
        else "AUDITSPAN_AUDIT_LOG / audit_log"
        if env.get("AUDITSPAN_AUDIT_LOG", "").strip()
        else "AUDITSPAN_OUTPUT_DIR / audit_log"
    )
    on_signal = _flag(env, "AUDITSPAN_FLUSH_ON_SIGNAL", flush_on_signal, "flush_on_signal")
    # The audit log is evidence: chained unless turned off; a signing key then has nothing to sign.
    keyed = signing_key is not None or bool(env.get("AUDITSPAN_SIGNING_KEY", "").strip())
    chained = _flag(env, "AUDITSPAN_CHAIN", chain, "chain")
    if keyed and not chained:
        raise ConfigurationError(
            "AUDITSPAN_SIGNING_KEY / signing_key: set, but AUDITSPAN_CHAIN / chain is false: "
            "there are no checkpoints to sign"
        )
    log_exporter: Any = None
    if log_target is not None:
        if isinstance(log_target, (str, os.PathLike)):
            fsync = env.get("AUDITSPAN_FSYNC", "batch").strip().lower() or "batch"
            if fsync not in FSYNC_POLICIES:
                raise ConfigurationError(
                    f"AUDITSPAN_FSYNC: must be one of {', '.join(FSYNC_POLICIES)}, got {fsync!r}"
                )
            signer = _signer(signing_key, env) if chained else None
            try:
                log_exporter = JsonLinesAuditLog(log_target, fsync=fsync, chain=chained, signer=signer)
            except OSError as exc:
                where = os.fspath(log_target)
                raise ConfigurationError(
                    f"{log_setting}: cannot open {where!r} for appending: {exc.strerror or exc}"
                ) from exc
            destinations["audit log"] = str(Path(log_target).resolve())
        else:
            log_exporter = log_target
            destinations["audit log"] = repr(log_target)

    provider = tracer_provider
    replaced_global = False
    if provider is None and reuse_global_provider:
        existing = trace.get_tracer_provider()
        if isinstance(existing, TracerProvider) and existing in _SHUT_DOWN:
            # The global provider is one an earlier handle shut down (configure() after shutdown()):
            # it would drop every span. A fresh one, not global (the API sets the global once).
            replaced_global = True
        elif isinstance(existing, TracerProvider):
            provider = existing
            destinations["traces"] = "the application's TracerProvider (its own exporters)"
    if provider is None:
        resource = Resource.create(_resource_attributes(settings.service_name, resource_attributes))
        provider = TracerProvider(resource=resource)
        exporter = span_exporter or _span_exporters(settings, destinations)
        if exporter is not None:
            provider.add_span_processor(_pipeline(exporter, stats, destinations, pipelines))
        owned.append(provider)
        if set_global and not replaced_global:
            trace.set_tracer_provider(provider)
    elif span_exporter is not None:
        provider.add_span_processor(_pipeline(span_exporter, stats, destinations, pipelines))
        destinations["traces"] = repr(span_exporter)

    if isinstance(log_exporter, JsonLinesAuditLog) and log_exporter.chained and log_exporter.witness is None:
        # Each checkpoint also goes into the trace pipeline: the backend keeps a copy to verify against.
        log_exporter.witness = span_witness(provider)

    logger_provider = None
    if settings.events_as != "span_events":  # no log records are sent otherwise: no pipeline, no file
        logger_provider = _logger_provider(settings, provider, destinations)
        owned.insert(0, logger_provider)

    collector_options.setdefault("redactor", _redactor(capture, env))
    collector_options.setdefault("rules", _rules(rules, env))
    collector_options.setdefault("classifier", _classifier(classification_rules, env))
    try:
        collector = SpanCollector(
            tracer_provider=provider,
            logger_provider=logger_provider,
            audit_log=log_exporter,
            events_as=settings.events_as,
            **collector_options,
        )
    except (TypeError, ValueError) as exc:
        raise ConfigurationError(f"collector options: {exc}") from exc
    handle = AuditSpanHandle(
        collector=collector,
        tracer_provider=provider,
        logger_provider=logger_provider,
        destinations=destinations,
        span_stats=stats,
        _owned=owned,
        _pipelines=pipelines,
    )
    atexit.register(handle.shutdown)
    if on_signal:
        _signals.install()
    return handle


def _flag(
    env: Mapping[str, str], name: str, value: bool | None, argument: str, *, default: bool = True
) -> bool:
    """A true/false setting: the argument if given, else the environment variable (else ``default``)."""
    if value is not None:
        return bool(value)
    raw = env.get(name, "").strip().lower()
    if not raw:
        return default
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise ConfigurationError(f"{name} / {argument}: must be true or false, got {raw!r}")


def _count(n: int, noun: str) -> str:
    """``1 span``, ``2 spans``."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _pipeline(
    exporter: SpanExporter,
    stats: SpanExportStats,
    destinations: Mapping[str, str] | None = None,
    pipelines: list[Any] | None = None,
) -> SpanProcessor:
    """A batch processor (``OTEL_BSP_*`` settings apply) whose every span is counted."""
    batch: int | None = None  # None: the SDK reads OTEL_BSP_MAX_EXPORT_BATCH_SIZE (default 512)
    queue = os.environ.get("OTEL_BSP_MAX_QUEUE_SIZE", "").strip()
    if (
        queue.isdigit()
        and int(queue) > 0
        and not os.environ.get("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "").strip()
    ):
        # The SDK refuses a queue smaller than its default batch; a small queue alone is a valid wish.
        batch = min(512, int(queue))
    try:
        counting = _CountingSpanExporter(exporter, stats, destinations)
        processor = BatchSpanProcessor(counting, max_export_batch_size=batch)
    except ValueError as exc:
        raise ConfigurationError(f"OTEL_BSP_*: {exc}") from None
    if pipelines is not None:
        pipelines.append(counting)
    return _CountingSpanProcessor(processor, stats)


@dataclass
class _Settings:
    service_name: str | None
    events_as: str
    output_dir: Path
    traces_exporters: tuple[str, ...]
    logs_exporters: tuple[str, ...]
    protocol: str
    traces_endpoint: str | None
    logs_endpoint: str | None
    headers: dict[str, str]
    compression: str | None
    timeout_s: float

    @classmethod
    def read(
        cls,
        env: Mapping[str, str],
        *,
        service_name: str | None,
        events_as: str | None,
        output_dir: str | os.PathLike[str] | None,
        otlp_endpoint: str | None,
        otlp_protocol: str | None,
        otlp_headers: str | Mapping[str, str] | None,
        traces_exporter: str | None,
    ) -> _Settings:
        def get(name: str) -> str | None:
            value = env.get(name)
            return value.strip() if value and value.strip() else None

        events = (events_as or get("AUDITSPAN_EVENTS_AS") or "span_events").lower()
        if events not in EVENTS_AS:
            raise ConfigurationError(
                f"AUDITSPAN_EVENTS_AS / events_as: must be one of {', '.join(EVENTS_AS)}, got {events!r}"
            )

        protocol_setting = "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"
        protocol = otlp_protocol or get(protocol_setting)
        if protocol is None:
            protocol_setting = "OTEL_EXPORTER_OTLP_PROTOCOL"
            protocol = get(protocol_setting) or "http/protobuf"
        if otlp_protocol is not None:
            protocol_setting = "otlp_protocol"
        protocol = protocol.lower()
        if protocol == "http":
            protocol = "http/protobuf"
        if protocol not in _PROTOCOLS:
            hint = " (the Python OTLP exporters have no http/json)" if protocol == "http/json" else ""
            raise ConfigurationError(
                f"{protocol_setting}: unknown protocol {protocol!r}; use one of {', '.join(_PROTOCOLS)}{hint}"
            )

        base = otlp_endpoint or get("OTEL_EXPORTER_OTLP_ENDPOINT")
        base_name = "otlp_endpoint" if otlp_endpoint else "OTEL_EXPORTER_OTLP_ENDPOINT"
        traces_endpoint = None if otlp_endpoint else get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        logs_endpoint = None if otlp_endpoint else get("OTEL_EXPORTER_OTLP_LOGS_ENDPOINT")
        for name, value in (
            (base_name, base),
            ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", traces_endpoint),
            ("OTEL_EXPORTER_OTLP_LOGS_ENDPOINT", logs_endpoint),
        ):
            if value is not None:
                _check_endpoint(name, value)
        if base is not None:
            traces_endpoint = traces_endpoint or _signal_endpoint(base, protocol, "traces")
            logs_endpoint = logs_endpoint or _signal_endpoint(base, protocol, "logs")

        # Lists are allowed (``otlp,console``); names are checked when auditspan builds the pipeline,
        # not when it reuses the application's provider (whose exporters are not its business).
        traces_exporters = _names(traces_exporter or get("OTEL_TRACES_EXPORTER")) or (
            ("otlp",) if traces_endpoint else ("auditspan_file",)
        )
        logs_exporters = _names(get("OTEL_LOGS_EXPORTER")) or (
            ("otlp",) if logs_endpoint else ("auditspan_file",)
        )

        headers: dict[str, str] = {}
        for name in ("OTEL_EXPORTER_OTLP_HEADERS", "OTEL_EXPORTER_OTLP_TRACES_HEADERS"):
            raw = get(name)
            if raw:
                headers.update(_parse_headers(name, raw))
        if otlp_headers is not None:
            headers.update(
                _parse_headers("otlp_headers", otlp_headers)
                if isinstance(otlp_headers, str)
                else dict(otlp_headers)
            )

        compression = (
            get("OTEL_EXPORTER_OTLP_TRACES_COMPRESSION") or get("OTEL_EXPORTER_OTLP_COMPRESSION") or ""
        ).lower()
        if compression and compression not in _COMPRESSIONS:
            raise ConfigurationError(
                f"OTEL_EXPORTER_OTLP_COMPRESSION: unknown compression {compression!r}; "
                f"use one of {', '.join(_COMPRESSIONS)}"
            )
        timeout_raw = get("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT") or get("OTEL_EXPORTER_OTLP_TIMEOUT") or "10000"
        try:
            timeout_ms = float(timeout_raw)
            if timeout_ms <= 0:
                raise ValueError
        except ValueError:
            raise ConfigurationError(
                f"OTEL_EXPORTER_OTLP_TIMEOUT: must be a positive number of milliseconds, got {timeout_raw!r}"
            ) from None
        out = Path(output_dir or get("AUDITSPAN_OUTPUT_DIR") or DEFAULT_OUTPUT_DIR)
        return cls(
            service_name=service_name or get("OTEL_SERVICE_NAME"),
            events_as=events,
            output_dir=out,
            traces_exporters=traces_exporters,
            logs_exporters=logs_exporters,
            protocol=protocol,
            traces_endpoint=traces_endpoint,
            logs_endpoint=logs_endpoint,
            headers=headers,
            compression=None if compression in ("", "none") else compression,
            timeout_s=timeout_ms / 1000,
        )


def embedded_traces_file(
    env: Mapping[str, str], output_dir: str | os.PathLike[str] | None = None
) -> Path | None:
    """The ``traces.jsonl`` that ``configure(output_dir=..., environ=env)`` would write spans to; None
    when they go elsewhere (an OTLP endpoint, the console, nowhere) or a global provider is installed.

    Raises ``ConfigurationError`` for a bad setting, as ``configure()`` would.
    """
    if isinstance(trace.get_tracer_provider(), TracerProvider):
        return None
    settings = _Settings.read(
        env,
        service_name=None,
        events_as=None,
        output_dir=output_dir,
        otlp_endpoint=None,
        otlp_protocol=None,
        otlp_headers=None,
        traces_exporter=None,
    )
    names = settings.traces_exporters
    if "auditspan_file" in names or ("otlp" in names and settings.traces_endpoint is None):
        return settings.output_dir / "traces.jsonl"
    return None


def _signer(path: str | os.PathLike[str] | None, env: Mapping[str, str]) -> Signer | None:
    name = "signing_key" if path is not None else "AUDITSPAN_SIGNING_KEY"
    value = path if path is not None else env.get("AUDITSPAN_SIGNING_KEY", "").strip()
    if not value:
        return None
    try:
        return load_signer(value)
    except SigningError as exc:
        raise ConfigurationError(f"{name}: {exc}") from None


def _redactor(capture: str | None, env: Mapping[str, str]) -> Redactor:
    name = "capture" if capture is not None else "AUDITSPAN_CAPTURE"
    value = capture if capture is not None else env.get("AUDITSPAN_CAPTURE", "").strip() or "redacted"
    try:
        return Redactor(CapturePolicy.parse(value))
    except ValueError as exc:
        raise ConfigurationError(f"{name}: {exc}") from None


def _rules(
    rules: str | os.PathLike[str] | Iterable[BehaviourRule] | None, env: Mapping[str, str]
) -> RuleEngine | None:
    name = "rules" if rules is not None else "AUDITSPAN_RULES"
    value = rules if rules is not None else env.get("AUDITSPAN_RULES", "").strip() or "builtin"
    if isinstance(value, str) and value.lower() in ("builtin", "none"):
        return RuleEngine([PII_EXFILTRATION_RULE]) if value.lower() == "builtin" else None
    try:
        loaded = load_rules(value) if isinstance(value, (str, os.PathLike)) else list(value)
        return RuleEngine(loaded)
    except (OSError, ValueError) as exc:
        raise ConfigurationError(f"{name}: {exc}") from None


def _classifier(path: str | os.PathLike[str] | None, env: Mapping[str, str]) -> Classifier:
    name = "classification_rules" if path is not None else "AUDITSPAN_CLASSIFICATION_RULES"
    value = path if path is not None else env.get("AUDITSPAN_CLASSIFICATION_RULES", "").strip()
    if not value:
        return Classifier()
    try:
        return Classifier.from_file(value)
    except (OSError, ValueError) as exc:
        raise ConfigurationError(f"{name}: {exc}") from None


def _check_endpoint(name: str, value: str) -> None:
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError as exc:
        raise ConfigurationError(f"{name}: malformed endpoint {value!r}: {exc}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigurationError(
            f"{name}: malformed endpoint {value!r}; expected http(s)://host[:port][/path], e.g. http://127.0.0.1:4317"
        )
    del port


def _signal_endpoint(base: str, protocol: str, signal: str) -> str:
    if protocol == "grpc":
        return base
    return base.rstrip("/") + f"/v1/{signal}"


def _parse_headers(name: str, raw: str) -> dict[str, str]:
    headers: dict[str, str] = {}
    for index, item in enumerate(raw.split(","), start=1):
        if not item.strip():
            continue
        key, sep, value = item.partition("=")
        key = unquote(key.strip()).lower()
        if not sep or not key or any(c.isspace() for c in key):
            raise ConfigurationError(
                f"{name}: entry {index} {item.strip()!r} is not key=value (comma-separated, URL-encoded)"
            )
        headers[key] = unquote(value.strip())
    return headers


def _resource_attributes(service_name: str | None, extra: Mapping[str, Any] | None) -> dict[str, Any]:
    attributes: dict[str, Any] = dict(extra or {})
    if service_name:
        attributes["service.name"] = service_name
    return attributes


def _audit_log_target(
    audit_log: Any, env: Mapping[str, str], output_dir: Path
) -> str | os.PathLike[str] | Any | None:
    if audit_log is not None:
        return audit_log
    configured = env.get("AUDITSPAN_AUDIT_LOG", "").strip()
    if configured.lower() == "none":
        return None
    return configured or output_dir / "audit.jsonl"


def _names(value: str | None) -> tuple[str, ...]:
    return tuple(dict.fromkeys(v.strip().lower() for v in (value or "").split(",") if v.strip()))


def _check_exporters(setting: str, names: tuple[str, ...]) -> None:
    unknown = [n for n in names if n not in _EXPORTERS]
    if unknown:
        raise ConfigurationError(
            f"{setting}: unknown exporter {unknown[0]!r}; use one of {', '.join(_EXPORTERS)}"
        )


def _span_exporters(settings: _Settings, destinations: dict[str, str]) -> SpanExporter | None:
    """The exporter of ``OTEL_TRACES_EXPORTER`` (a fan-out when it names several)."""
    _check_exporters("OTEL_TRACES_EXPORTER", settings.traces_exporters)
    exporters: list[SpanExporter] = []
    where: list[str] = []
    for kind in settings.traces_exporters:
        if kind == "console":
            from opentelemetry.sdk.trace.export import ConsoleSpanExporter

            exporters.append(ConsoleSpanExporter())
            where.append("the console")
        elif kind == "auditspan_file" or (kind == "otlp" and settings.traces_endpoint is None):
            from .exporters.otlp_file import OtlpJsonFileSpanExporter

            path = settings.output_dir / "traces.jsonl"
            try:
                exporters.append(OtlpJsonFileSpanExporter(path))
            except OSError as exc:
                raise ConfigurationError(
                    f"AUDITSPAN_OUTPUT_DIR: cannot write {str(path)!r}: {exc.strerror or exc}"
                ) from exc
            where.append(f"{path.resolve()} (OTLP/JSON lines)")
        elif kind == "otlp":
            exporters.append(_otlp_exporter(settings, "traces"))
            where.append(f"{settings.traces_endpoint} (OTLP {settings.protocol})")
    destinations["traces"] = " and ".join(where) or "nowhere (OTEL_TRACES_EXPORTER=none)"
    if not exporters:
        return None
    return exporters[0] if len(exporters) == 1 else _FanOutSpanExporter(exporters)


class _FanOutSpanExporter(SpanExporter):
    """Several exporters behind one batch processor: success only when every one succeeded."""

    def __init__(self, exporters: list[SpanExporter]) -> None:
        self.exporters = exporters

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        results = [exporter.export(spans) for exporter in self.exporters]
        ok = all(result is SpanExportResult.SUCCESS for result in results)
        return SpanExportResult.SUCCESS if ok else SpanExportResult.FAILURE

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return all([exporter.force_flush(timeout_millis) for exporter in self.exporters])

    def shutdown(self) -> None:
        for exporter in self.exporters:
            exporter.shutdown()


def _otlp_exporter(settings: _Settings, signal: str) -> Any:
    endpoint = settings.traces_endpoint if signal == "traces" else settings.logs_endpoint
    headers = settings.headers or None
    if settings.protocol == "grpc":
        import grpc

        compression = {"gzip": grpc.Compression.Gzip, "deflate": grpc.Compression.Deflate}.get(
            settings.compression or ""
        )
        grpc_exporter: Any
        if signal == "traces":
            from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
                OTLPSpanExporter as grpc_exporter,
            )
        else:
            from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter as grpc_exporter
        return grpc_exporter(
            endpoint=endpoint,
            insecure=bool(endpoint and endpoint.startswith("http://")),
            headers=headers,
            timeout=settings.timeout_s,
            compression=compression,
        )
    from opentelemetry.exporter.otlp.proto.http import Compression as HttpCompression

    http_exporter: Any
    if signal == "traces":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as http_exporter
    else:
        from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter as http_exporter
    return http_exporter(
        endpoint=endpoint,
        headers=headers,
        timeout=settings.timeout_s,
        compression=HttpCompression(settings.compression) if settings.compression else None,
    )


def _logger_provider(settings: _Settings, tracer_provider: Any, destinations: dict[str, str]) -> Any:
    from opentelemetry.sdk._logs import LoggerProvider
    from opentelemetry.sdk._logs.export import BatchLogRecordProcessor

    resource = getattr(tracer_provider, "resource", None) or Resource.create(
        _resource_attributes(settings.service_name, None)
    )
    provider = LoggerProvider(resource=resource)
    _check_exporters("OTEL_LOGS_EXPORTER", settings.logs_exporters)
    where: list[str] = []
    for kind in settings.logs_exporters:
        exporter: Any
        if kind == "otlp" and settings.logs_endpoint:
            exporter = _otlp_exporter(settings, "logs")
            where.append(f"{settings.logs_endpoint} (OTLP {settings.protocol})")
        elif kind == "console":
            from opentelemetry.sdk._logs.export import ConsoleLogRecordExporter

            exporter = ConsoleLogRecordExporter()
            where.append("the console")
        elif kind == "none":
            continue
        else:
            from .exporters.otlp_file import OtlpJsonFileLogExporter

            path = settings.output_dir / "logs.jsonl"
            exporter = OtlpJsonFileLogExporter(path)
            where.append(f"{path.resolve()} (OTLP/JSON lines)")
        provider.add_log_record_processor(BatchLogRecordProcessor(exporter))
    destinations["log records"] = " and ".join(where) or "nowhere (OTEL_LOGS_EXPORTER=none)"
    return provider

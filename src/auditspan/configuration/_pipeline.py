"""Building the pipeline of ``configure()`` from what ``_settings`` read: providers, exporters, audit log."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.sdk.trace.sampling import Sampler

from .. import _signals
from .._config_files import ConfigurationError
from ..audit_log import AuditLogExporter, JsonLinesAuditLog
from ..audit_log._chain import Signer, span_witness
from ..audit_log.signing import SigningError, load_signer
from ..classification import Classifier
from ..collector import SpanCollector
from ..exporters._counting import CountingSpanExporter, CountingSpanProcessor, SpanExportStats
from ..exporters._fan_out import FanOutSpanExporter
from ..exporters._scrubbing import ScrubbingLogExporter, ScrubbingSpanExporter
from ..ingest import AuditSampler, AuditSpanProcessor
from ..ingest._install import install
from ..redaction import Redactor
from ..rules import PII_EXFILTRATION_RULE, BehaviourRule, RuleEngine, load_rules
from . import _settings as setting
from ._handle import SHUT_DOWN, AuditSpanHandle, keep_until_exit
from ._settings import EXPORTERS, Settings, read_settings

__all__ = ["configure", "embedded_traces_file"]


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
    ingest_spans: bool | None = None,
    scrubbing: bool | None = None,
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
        ingest_spans: add an ``AuditSpanProcessor`` to the provider (made or reused), writing the
            audit records of other instrumentations' agent and tool spans into the same audit log
            with the same classifier, capture policy and rules, and wrap the sampler of a provider
            made here in ``AuditSampler`` (so that those records do not depend on sampling); else
            ``AUDITSPAN_INGEST`` (default true).
        scrubbing: apply the capture policy to every span and log record the pipeline made here
            exports, other instrumentations' included (``auditspan.exporters._scrubbing``); else
            ``AUDITSPAN_SCRUBBING`` (default true).
        collector_options: passed to ``SpanCollector`` (``redactor``, ``rules``, bounds ...).

    Raises:
        ConfigurationError: a setting is wrong; the message names it.
    """
    env = os.environ if environ is None else environ
    settings = read_settings(
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
        if setting.AUDIT_LOG.lookup(env) is not None
        else "AUDITSPAN_OUTPUT_DIR / audit_log"
    )
    on_signal = setting.FLUSH_ON_SIGNAL.read(env, flush_on_signal)
    # The audit log is evidence: chained unless turned off; a signing key then has nothing to sign.
    keyed = signing_key is not None or setting.SIGNING_KEY.lookup(env) is not None
    chained = setting.CHAIN.read(env, chain)
    if keyed and not chained:
        raise ConfigurationError(
            "AUDITSPAN_SIGNING_KEY / signing_key: set, but AUDITSPAN_CHAIN / chain is false: "
            "there are no checkpoints to sign"
        )
    log_exporter: Any = None
    if log_target is not None:
        if isinstance(log_target, (str, os.PathLike)):
            fsync = setting.FSYNC.read(env)
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

    ingest = setting.INGEST.read(env, ingest_spans)
    scrub = setting.SCRUBBING.read(env, scrubbing)
    # Read before the pipeline is built: the scrubbing exporters apply the collector's capture policy.
    collector_options.setdefault("redactor", _redactor(capture, env))
    redactor = collector_options["redactor"]
    wrap = (
        (lambda exporter: ScrubbingSpanExporter(exporter, redactor)) if scrub else (lambda exporter: exporter)
    )

    provider = tracer_provider
    replaced_global = False
    if provider is None and reuse_global_provider:
        existing = trace.get_tracer_provider()
        if isinstance(existing, TracerProvider) and existing in SHUT_DOWN:
            # The global provider is one an earlier handle shut down (configure() after shutdown()):
            # it would drop every span. A fresh one, not global (the API sets the global once).
            replaced_global = True
        elif isinstance(existing, TracerProvider):
            provider = existing
            destinations["traces"] = "the application's TracerProvider (its own exporters)"
    if provider is None:
        resource = Resource.create(_resource_attributes(settings.service_name, resource_attributes))
        # No exit handler of its own: the handle shuts it down (at exit too), after the open turns ended.
        provider = TracerProvider(resource=resource, shutdown_on_exit=False, sampler=_sampler(ingest))
        exporter = span_exporter or _span_exporters(settings, destinations)
        if exporter is not None:
            provider.add_span_processor(_pipeline(wrap(exporter), stats, env, destinations, pipelines))
        owned.append(provider)
        if set_global and not replaced_global:
            trace.set_tracer_provider(provider)
    elif span_exporter is not None:
        provider.add_span_processor(_pipeline(wrap(span_exporter), stats, env, destinations, pipelines))
        destinations["traces"] = repr(span_exporter)

    if isinstance(log_exporter, JsonLinesAuditLog) and log_exporter.chained and log_exporter.witness is None:
        # Each checkpoint also goes into the trace pipeline: the backend keeps a copy to verify against.
        log_exporter.witness = span_witness(provider)

    logger_provider = None
    if settings.events_as != "span_events":  # no log records are sent otherwise: no pipeline, no file
        logger_provider = _logger_provider(settings, provider, destinations, redactor if scrub else None)
        owned.insert(0, logger_provider)

    collector_options.setdefault("rules", _rules(rules, env))
    collector_options.setdefault("classifier", _classifier(classification_rules, env))
    # Read here, from env: left to the collector, the limit would come from the process environment.
    collector_options.setdefault("max_attribute_length", setting.attribute_length_limit(env))
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
    ingesting = None
    shared_log = collector.audit_log
    if ingest and shared_log is not None:
        # Once per provider: another configure() (or the instrumentation path) may have added one.
        ingesting = install(
            provider,
            lambda: AuditSpanProcessor(
                shared_log,
                classifier=collector.classifier,
                redactor=collector.redactor,
                rules=collector.rules,
            ),
        )
    handle = AuditSpanHandle(
        collector=collector,
        tracer_provider=provider,
        logger_provider=logger_provider,
        destinations=destinations,
        span_stats=stats,
        _owned=owned,
        _pipelines=pipelines,
        ingest=ingesting,
    )
    keep_until_exit(handle)
    if on_signal:
        _signals.install()
    return handle


def embedded_traces_file(
    env: Mapping[str, str], output_dir: str | os.PathLike[str] | None = None
) -> Path | None:
    """The ``traces.jsonl`` that ``configure(output_dir=..., environ=env)`` would write spans to; None
    when they go elsewhere (an OTLP endpoint, the console, nowhere) or a global provider is installed.

    Raises ``ConfigurationError`` for a bad setting, as ``configure()`` would.
    """
    if isinstance(trace.get_tracer_provider(), TracerProvider):
        return None
    settings = read_settings(
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
    value = setting.SIGNING_KEY.read(env, path)
    if not value:
        return None
    try:
        return load_signer(value)
    except SigningError as exc:
        raise ConfigurationError(f"{name}: {exc}") from None


def _redactor(capture: str | None, env: Mapping[str, str]) -> Redactor:
    """The ``Redactor`` of the capture policy ``capture`` (else ``AUDITSPAN_CAPTURE``, else redacted)."""
    return Redactor(setting.CAPTURE.read(env, capture))


def _rules(
    rules: str | os.PathLike[str] | Iterable[BehaviourRule] | None, env: Mapping[str, str]
) -> RuleEngine | None:
    name = "rules" if rules is not None else "AUDITSPAN_RULES"
    value = setting.RULES.read(env, rules)
    if isinstance(value, str) and value.lower() in ("builtin", "none"):
        return RuleEngine([PII_EXFILTRATION_RULE]) if value.lower() == "builtin" else None
    try:
        loaded = load_rules(value) if isinstance(value, (str, os.PathLike)) else list(value)
        return RuleEngine(loaded)
    except (OSError, ValueError) as exc:
        raise ConfigurationError(f"{name}: {exc}") from None


def _classifier(path: str | os.PathLike[str] | None, env: Mapping[str, str]) -> Classifier:
    name = "classification_rules" if path is not None else "AUDITSPAN_CLASSIFICATION_RULES"
    value = setting.CLASSIFICATION_RULES.read(env, path)
    if not value:
        return Classifier()
    try:
        return Classifier.from_file(value)
    except (OSError, ValueError) as exc:
        raise ConfigurationError(f"{name}: {exc}") from None


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
    if setting.AUDIT_LOG.lookup(env) is None:
        return output_dir / "audit.jsonl"
    return setting.AUDIT_LOG.read(env)


def _check_exporters(name: str, names: tuple[str, ...]) -> None:
    unknown = [n for n in names if n not in EXPORTERS]
    if unknown:
        raise ConfigurationError(
            f"{name}: unknown exporter {unknown[0]!r}; use one of {', '.join(EXPORTERS)}"
        )


def _sampler(ingest: bool) -> Sampler | None:
    """``OTEL_TRACES_SAMPLER``'s sampler (the SDK reads it), wrapped so that agent and tool spans
    reach the ingesting processor whatever it drops; ``None`` (the SDK's own choice) when not ingesting."""
    if not ingest:
        return None
    # A provider with no sampler given reads OTEL_TRACES_SAMPLER / _ARG: the public way to get that one.
    return AuditSampler(TracerProvider(shutdown_on_exit=False).sampler)


def _span_exporters(settings: Settings, destinations: dict[str, str]) -> SpanExporter | None:
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
            from ..exporters.otlp_file import OtlpJsonFileSpanExporter

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
    return exporters[0] if len(exporters) == 1 else FanOutSpanExporter(exporters)


def _otlp_exporter(settings: Settings, signal: str) -> Any:
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


def _logger_provider(
    settings: Settings, tracer_provider: Any, destinations: dict[str, str], redactor: Redactor | None
) -> Any:
    """The log pipeline of ``OTEL_LOGS_EXPORTER``; each exporter scrubbed by ``redactor`` when given."""
    from opentelemetry.sdk._logs import LoggerProvider
    from opentelemetry.sdk._logs.export import BatchLogRecordProcessor

    resource = getattr(tracer_provider, "resource", None) or Resource.create(
        _resource_attributes(settings.service_name, None)
    )
    provider = LoggerProvider(resource=resource, shutdown_on_exit=False)  # the handle shuts it down
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
            from ..exporters.otlp_file import OtlpJsonFileLogExporter

            path = settings.output_dir / "logs.jsonl"
            exporter = OtlpJsonFileLogExporter(path)
            where.append(f"{path.resolve()} (OTLP/JSON lines)")
        if redactor is not None:
            exporter = ScrubbingLogExporter(exporter, redactor)
        provider.add_log_record_processor(BatchLogRecordProcessor(exporter))
    destinations["log records"] = " and ".join(where) or "nowhere (OTEL_LOGS_EXPORTER=none)"
    return provider


def _pipeline(
    exporter: SpanExporter,
    stats: SpanExportStats,
    env: Mapping[str, str],
    destinations: Mapping[str, str] | None = None,
    pipelines: list[Any] | None = None,
) -> SpanProcessor:
    """A batch processor (``OTEL_BSP_*`` settings apply) whose every span is counted.

    The ``OTEL_BSP_*`` values a given ``environ`` sets are handed to the SDK (a
    value that is not a whole number is a ``ConfigurationError``); for the others
    the SDK reads the process environment, as it always does.
    """
    given: dict[str, Any] = {}
    if env is not os.environ:
        for bsp, argument in setting.BSP_ARGUMENTS:
            value = bsp.read(env)
            if value is not None:
                given[argument] = value
    queue = setting.sdk_setting(setting.BSP_MAX_QUEUE_SIZE, env) or ""
    if queue.isdigit() and int(queue) > 0 and not setting.sdk_setting(setting.BSP_MAX_EXPORT_BATCH_SIZE, env):
        # The SDK refuses a queue smaller than its default batch; a small queue alone is a valid wish.
        given["max_export_batch_size"] = min(512, int(queue))
    try:
        counting = CountingSpanExporter(exporter, stats, destinations)
        processor = BatchSpanProcessor(counting, **given)
    except ValueError as exc:
        raise ConfigurationError(f"OTEL_BSP_*: {exc}") from None
    if pipelines is not None:
        pipelines.append(counting)
    return CountingSpanProcessor(processor, stats)

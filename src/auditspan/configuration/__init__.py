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
already installed is reused as it is: auditspan adds no exporter to it (only
the ``AuditSpanProcessor`` of ``AUDITSPAN_INGEST``), keeps its sampler and
does not shut it down. ``AUDITSPAN_INGEST`` (``true``) and
``AUDITSPAN_SCRUBBING`` (``true``) switch the ingesting processor and the
scrubbing exporters.

Each setting is declared once, in ``_settings.SETTINGS`` (argument, environment
variables, default, parser); ``_settings`` reads them, ``_pipeline`` builds from
what was read, ``_handle`` holds the handle and the one exit hook. Every
setting is read from the ``environ`` given to ``configure()`` (default
``os.environ``); the ``OTEL_BSP_*`` settings are the SDK's, which reads the
process environment for those ``environ`` does not set.

Bad settings fail here, with a ``ConfigurationError`` naming the setting::

    >>> configure(otlp_protocol="carrier-pigeon")
    Traceback (most recent call last):
    ...
    auditspan.configuration.ConfigurationError: otlp_protocol: unknown protocol 'carrier-pigeon'; ...
"""

from __future__ import annotations

from .._config_files import ConfigurationError
from ..exporters._counting import SpanExportStats
from ._handle import AuditSpanHandle
from ._pipeline import configure
from ._pipeline import embedded_traces_file as embedded_traces_file
from ._settings import DEFAULT_OUTPUT_DIR as DEFAULT_OUTPUT_DIR

__all__ = ["AuditSpanHandle", "ConfigurationError", "SpanExportStats", "configure"]

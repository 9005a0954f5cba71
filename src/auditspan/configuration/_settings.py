"""The settings of ``configure()``, declared once each: argument, environment variables, default, parser.

``SETTINGS`` is the table (a test checks the README's table of settings against
its ``AUDITSPAN_*`` rows). Reading is kept apart from building: ``read_settings`` turns
``configure()``'s arguments and the ``environ`` it was given into a
``Settings`` value, raising ``ConfigurationError`` naming the setting, and
touches nothing else (no file is opened, no provider made).

A setting's value is, in order: its ``configure()`` argument when given; else
the first of its environment variables that is set and not blank (surrounding
space removed); else its default. Every variable is read from the mapping
passed in, never from ``os.environ`` directly -- with one documented
exception: the ``OTEL_BSP_*`` settings belong to the SDK's batch processor,
which reads the process environment for what it is not given, so
``sdk_setting`` looks there too, after the mapping, to know what the SDK will
use.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Generic, TypeVar
from urllib.parse import unquote, urlsplit

from .._config_files import ConfigurationError
from ..audit_log import FSYNC_POLICIES
from ..collector import DEFAULT_ATTRIBUTE_LENGTH, EVENTS_AS
from ..redaction import CapturePolicy

__all__ = [
    "DEFAULT_OUTPUT_DIR",
    "EXPORTERS",
    "SETTINGS",
    "Setting",
    "Settings",
    "attribute_length_limit",
    "read_settings",
    "sdk_setting",
]

T = TypeVar("T")

DEFAULT_OUTPUT_DIR: Final = "auditspan-output"
PROTOCOLS: Final = ("grpc", "http/protobuf")
#: What ``OTEL_TRACES_EXPORTER`` / ``OTEL_LOGS_EXPORTER`` may name (checked when auditspan builds the
#: pipeline, not when it reuses the application's provider, whose exporters are not its business).
EXPORTERS: Final = ("otlp", "console", "none", "auditspan_file")
COMPRESSIONS: Final = ("gzip", "deflate", "none")


@dataclass(frozen=True)
class Setting(Generic[T]):
    """One setting: where it is read, its default, and how its text becomes a value.

    Attributes:
        argument: ``configure()``'s keyword for it, or None when only the environment sets it.
        env_vars: the environment variables, in the order they are tried (the first set wins).
        default: the value when neither the argument nor a variable is set.
        parse: ``(text, where) -> value`` for a variable's text (``where``: the variable's
            name); raises ``ConfigurationError`` naming the setting, or returns None to
            ignore the text and try the next variable (as the SDK ignores a bad limit).
        convert: ``(argument, keyword) -> value`` for an argument; by default ``parse`` for a
            ``str`` and the argument itself otherwise.
        blank_argument_unset: an empty or false argument counts as not given.
        meaning: one line, for people (the README's table says more).
    """

    argument: str | None
    env_vars: tuple[str, ...]
    default: T
    parse: Callable[[str, str], T | None]
    meaning: str
    convert: Callable[[Any, str], T] | None = None
    blank_argument_unset: bool = False

    def lookup(self, env: Mapping[str, str]) -> tuple[str, str] | None:
        """``(text, variable)`` of the first of ``env_vars`` set and not blank in ``env``, else None."""
        for name in self.env_vars:
            value = env.get(name)
            if value and value.strip():
                return value.strip(), name
        return None

    def given(self, argument: Any) -> bool:
        """Whether ``argument`` (``configure()``'s keyword) sets this setting."""
        return bool(argument) if self.blank_argument_unset else argument is not None

    def read(self, env: Mapping[str, str], argument: Any = None) -> T:
        """The value: the argument if given, else the first variable that parses, else the default."""
        if self.argument is not None and self.given(argument):
            if self.convert is not None:
                return self.convert(argument, self.argument)
            if isinstance(argument, str):
                value = self.parse(argument, self.argument)
                return self.default if value is None else value
            return argument  # type: ignore[no-any-return]  # an object the caller vouches for
        for name in self.env_vars:
            text = env.get(name)
            if text and text.strip():
                value = self.parse(text.strip(), name)
                if value is not None:
                    return value
        return self.default


# --- parsers ----------------------------------------------------------------------------
def _text(text: str, where: str) -> str:
    return text


def _one_of(choices: tuple[str, ...], label: str) -> Callable[[str, str], str]:
    """A parser of one of ``choices`` (case ignored); its error names ``label``."""

    def parse(text: str, where: str) -> str:
        value = text.lower()
        if value not in choices:
            raise ConfigurationError(f"{label}: must be one of {', '.join(choices)}, got {value!r}")
        return value

    return parse


def _protocol(text: str, where: str) -> str:
    protocol = text.lower()
    if protocol == "http":
        protocol = "http/protobuf"
    if protocol not in PROTOCOLS:
        hint = " (the Python OTLP exporters have no http/json)" if protocol == "http/json" else ""
        raise ConfigurationError(
            f"{where}: unknown protocol {protocol!r}; use one of {', '.join(PROTOCOLS)}{hint}"
        )
    return protocol


def _endpoint(text: str, where: str) -> str:
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError as exc:
        raise ConfigurationError(f"{where}: malformed endpoint {text!r}: {exc}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigurationError(
            f"{where}: malformed endpoint {text!r}; expected http(s)://host[:port][/path], e.g. http://127.0.0.1:4317"
        )
    del port
    return text


def _names(text: str, where: str) -> tuple[str, ...]:
    """A comma-separated list of exporter names, lower case, each once (checked when used)."""
    return tuple(dict.fromkeys(v.strip().lower() for v in text.split(",") if v.strip()))


def _headers(text: str, where: str) -> dict[str, str]:
    headers: dict[str, str] = {}
    for index, item in enumerate(text.split(","), start=1):
        if not item.strip():
            continue
        key, sep, value = item.partition("=")
        key = unquote(key.strip()).lower()
        if not sep or not key or any(c.isspace() for c in key):
            raise ConfigurationError(
                f"{where}: entry {index} {item.strip()!r} is not key=value (comma-separated, URL-encoded)"
            )
        headers[key] = unquote(value.strip())
    return headers


def _compression(text: str, where: str) -> str | None:
    compression = text.lower()
    if compression not in COMPRESSIONS:
        raise ConfigurationError(
            f"OTEL_EXPORTER_OTLP_COMPRESSION: unknown compression {compression!r}; "
            f"use one of {', '.join(COMPRESSIONS)}"
        )
    return compression


def _timeout_s(text: str, where: str) -> float:
    try:
        timeout_ms = float(text)
        if timeout_ms <= 0:
            raise ValueError
    except ValueError:
        raise ConfigurationError(
            f"OTEL_EXPORTER_OTLP_TIMEOUT: must be a positive number of milliseconds, got {text!r}"
        ) from None
    return timeout_ms / 1000


def _flag(variable: str, keyword: str) -> Callable[[str, str], bool]:
    """A true/false parser; its error names the variable and the keyword."""

    def parse(text: str, where: str) -> bool:
        raw = text.lower()
        if raw in ("1", "true", "yes", "on"):
            return True
        if raw in ("0", "false", "no", "off"):
            return False
        raise ConfigurationError(f"{variable} / {keyword}: must be true or false, got {raw!r}")

    return parse


def _truth(value: Any, keyword: str) -> bool:
    return bool(value)


def _capture(text: str, where: str) -> CapturePolicy:
    try:
        return CapturePolicy.parse(text)
    except ValueError as exc:
        raise ConfigurationError(f"{where}: {exc}") from None


def _audit_log(text: str, where: str) -> str | None:
    return None if text.lower() == "none" else text


def _positive_int(text: str, where: str) -> int | None:
    """A positive whole number; anything else is ignored (the SDK ignores such a limit too)."""
    return int(text) if text.isdigit() and int(text) > 0 else None


def _whole_number(text: str, where: str) -> int:
    """An ``OTEL_BSP_*`` number (the SDK checks its range)."""
    try:
        return int(text)
    except ValueError:
        raise ConfigurationError(f"{where}: must be a whole number, got {text!r}") from None


# --- the table ----------------------------------------------------------------------------
SERVICE_NAME: Final = Setting[str | None](
    "service_name",
    ("OTEL_SERVICE_NAME",),
    None,
    _text,
    "service.name on the Resource",
    blank_argument_unset=True,
)
EVENTS: Final = Setting[str](
    "events_as",
    ("AUDITSPAN_EVENTS_AS",),
    "span_events",
    _one_of(EVENTS_AS, "AUDITSPAN_EVENTS_AS / events_as"),
    "span_events (default), logs or both",
    blank_argument_unset=True,
)
PROTOCOL: Final = Setting[str](
    "otlp_protocol",
    ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL"),
    "http/protobuf",
    _protocol,
    "grpc or http/protobuf (default)",
    blank_argument_unset=True,
)
ENDPOINT: Final = Setting[str | None](
    "otlp_endpoint",
    ("OTEL_EXPORTER_OTLP_ENDPOINT",),
    None,
    _endpoint,
    "where OTLP goes (traces at /v1/traces, logs at /v1/logs over HTTP)",
    blank_argument_unset=True,
)
TRACES_ENDPOINT: Final = Setting[str | None](
    None, ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",), None, _endpoint, "where OTLP traces go (as is)"
)
LOGS_ENDPOINT: Final = Setting[str | None](
    None, ("OTEL_EXPORTER_OTLP_LOGS_ENDPOINT",), None, _endpoint, "where OTLP log records go (as is)"
)
TRACES_EXPORTER: Final = Setting[tuple[str, ...]](
    "traces_exporter",
    ("OTEL_TRACES_EXPORTER",),
    (),
    _names,
    "otlp, console, auditspan_file or none, or a comma-separated list",
    blank_argument_unset=True,
)
LOGS_EXPORTER: Final = Setting[tuple[str, ...]](
    None, ("OTEL_LOGS_EXPORTER",), (), _names, "the same, for log records"
)
#: Both variables apply, the second over the first (then ``otlp_headers``): read with ``lookup_all``.
HEADERS: Final = Setting[dict[str, str]](
    "otlp_headers",
    ("OTEL_EXPORTER_OTLP_HEADERS", "OTEL_EXPORTER_OTLP_TRACES_HEADERS"),
    {},
    _headers,
    "k=v,k2=v2, URL-encoded",
)
COMPRESSION: Final = Setting[str | None](
    None,
    ("OTEL_EXPORTER_OTLP_TRACES_COMPRESSION", "OTEL_EXPORTER_OTLP_COMPRESSION"),
    None,
    _compression,
    "gzip, deflate or none",
)
TIMEOUT_S: Final = Setting[float](
    None,
    ("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "OTEL_EXPORTER_OTLP_TIMEOUT"),
    10.0,
    _timeout_s,
    "the OTLP exporters' timeout in milliseconds (default 10,000)",
)
OUTPUT_DIR: Final = Setting[str | os.PathLike[str]](
    "output_dir",
    ("AUDITSPAN_OUTPUT_DIR",),
    DEFAULT_OUTPUT_DIR,
    _text,
    "the embedded default's folder (./auditspan-output)",
    blank_argument_unset=True,
)
#: ``none`` parses to None, as does an unset variable: ``_pipeline`` tells them apart with ``lookup``.
AUDIT_LOG: Final = Setting[Any](
    "audit_log",
    ("AUDITSPAN_AUDIT_LOG",),
    None,
    _audit_log,
    "the audit log's path (none: no log; default <output dir>/audit.jsonl)",
    convert=lambda value, keyword: value,
)
FSYNC: Final = Setting[str](
    None,
    ("AUDITSPAN_FSYNC",),
    "batch",
    _one_of(FSYNC_POLICIES, "AUDITSPAN_FSYNC"),
    "the audit log's fsync policy: always, batch (default), interval, none",
)
CAPTURE: Final = Setting[CapturePolicy](
    "capture", ("AUDITSPAN_CAPTURE",), CapturePolicy.REDACTED, _capture, "redacted (default), none or full"
)
RULES: Final = Setting[Any](
    "rules",
    ("AUDITSPAN_RULES",),
    "builtin",
    _text,
    "behavioural rules: builtin (default), none, or a YAML/JSON file",
    convert=lambda value, keyword: value,
)
CLASSIFICATION_RULES: Final = Setting[Any](
    "classification_rules",
    ("AUDITSPAN_CLASSIFICATION_RULES",),
    None,
    _text,
    "a YAML/JSON file of tool-name globs -> semantic type",
    convert=lambda value, keyword: value,
)
CHAIN: Final = Setting[bool](
    "chain",
    ("AUDITSPAN_CHAIN",),
    True,
    _flag("AUDITSPAN_CHAIN", "chain"),
    "true (default): hash-chain the audit log, with checkpoints; false: plain records",
    convert=_truth,
)
SIGNING_KEY: Final = Setting[Any](
    "signing_key",
    ("AUDITSPAN_SIGNING_KEY",),
    None,
    _text,
    "an Ed25519 private key file that signs the checkpoints (unset: unsigned)",
    convert=lambda value, keyword: value,
)
FLUSH_ON_SIGNAL: Final = Setting[bool](
    "flush_on_signal",
    ("AUDITSPAN_FLUSH_ON_SIGNAL",),
    True,
    _flag("AUDITSPAN_FLUSH_ON_SIGNAL", "flush_on_signal"),
    "true (default): flush the audit log on SIGTERM, SIGINT and SIGHUP; false: install nothing",
    convert=_truth,
)
INGEST: Final = Setting[bool](
    "ingest_spans",
    ("AUDITSPAN_INGEST",),
    True,
    _flag("AUDITSPAN_INGEST", "ingest_spans"),
    "true (default): other instrumentations' agent and tool spans get audit records "
    "(AuditSpanProcessor; a sampler that drops them is wrapped in AuditSampler); false: neither",
    convert=_truth,
)
SCRUBBING: Final = Setting[bool](
    "scrubbing",
    ("AUDITSPAN_SCRUBBING",),
    True,
    _flag("AUDITSPAN_SCRUBBING", "scrubbing"),
    "true (default): the capture policy on every span and log record auditspan's pipeline exports; "
    "false: on auditspan's own only",
    convert=_truth,
)
ATTRIBUTE_LENGTH: Final = Setting[int](
    "max_attribute_length",
    ("OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT", "OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT"),
    DEFAULT_ATTRIBUTE_LENGTH,
    _positive_int,
    "strings auditspan puts on spans are cut to this many characters",
)
BSP_MAX_QUEUE_SIZE: Final = Setting[int | None](
    None,
    ("OTEL_BSP_MAX_QUEUE_SIZE",),
    None,
    _whole_number,
    "the batch span processor's queue (read by the SDK)",
)
BSP_MAX_EXPORT_BATCH_SIZE: Final = Setting[int | None](
    None, ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE",), None, _whole_number, "its batch (read by the SDK)"
)
BSP_SCHEDULE_DELAY: Final = Setting[int | None](
    None, ("OTEL_BSP_SCHEDULE_DELAY",), None, _whole_number, "its delay between exports, ms (read by the SDK)"
)
BSP_EXPORT_TIMEOUT: Final = Setting[int | None](
    None, ("OTEL_BSP_EXPORT_TIMEOUT",), None, _whole_number, "its export timeout, ms (read by the SDK)"
)

#: Every setting ``configure()`` reads, in the order it checks them.
SETTINGS: Final[tuple[Setting[Any], ...]] = (
    SERVICE_NAME,
    EVENTS,
    PROTOCOL,
    ENDPOINT,
    TRACES_ENDPOINT,
    LOGS_ENDPOINT,
    TRACES_EXPORTER,
    LOGS_EXPORTER,
    HEADERS,
    COMPRESSION,
    TIMEOUT_S,
    OUTPUT_DIR,
    AUDIT_LOG,
    FSYNC,
    CAPTURE,
    RULES,
    CLASSIFICATION_RULES,
    CHAIN,
    SIGNING_KEY,
    FLUSH_ON_SIGNAL,
    INGEST,
    SCRUBBING,
    ATTRIBUTE_LENGTH,
    BSP_MAX_QUEUE_SIZE,
    BSP_MAX_EXPORT_BATCH_SIZE,
    BSP_SCHEDULE_DELAY,
    BSP_EXPORT_TIMEOUT,
)
#: The ``OTEL_BSP_*`` settings and the ``BatchSpanProcessor`` argument each one is.
BSP_ARGUMENTS: Final = (
    (BSP_MAX_QUEUE_SIZE, "max_queue_size"),
    (BSP_SCHEDULE_DELAY, "schedule_delay_millis"),
    (BSP_MAX_EXPORT_BATCH_SIZE, "max_export_batch_size"),
    (BSP_EXPORT_TIMEOUT, "export_timeout_millis"),
)


def sdk_setting(setting: Setting[Any], env: Mapping[str, str]) -> str | None:
    """The text of an SDK setting (``OTEL_BSP_*``) as the SDK will see it: ``env``'s, else the process's.

    The SDK reads the process environment for every value it is not given, so a
    value ``env`` lacks is looked up there: the one read of ``os.environ`` that is
    not through ``env`` (when ``env`` is ``os.environ``, it is the same read).
    """
    found = setting.lookup(env)
    if found is None and env is not os.environ:
        found = setting.lookup(os.environ)
    return found[0] if found is not None else None


def attribute_length_limit(env: Mapping[str, str]) -> int:
    """The longest string auditspan puts on a span, from ``OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT``
    (else ``OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT``; a value that is not a positive whole number is
    ignored), else 8,192."""
    return ATTRIBUTE_LENGTH.read(env)


@dataclass
class Settings:
    """What ``configure()`` read (the pipeline is built from this, and from nothing else of ``env``)."""

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


def read_settings(
    env: Mapping[str, str],
    *,
    service_name: str | None,
    events_as: str | None,
    output_dir: str | os.PathLike[str] | None,
    otlp_endpoint: str | None,
    otlp_protocol: str | None,
    otlp_headers: str | Mapping[str, str] | None,
    traces_exporter: str | None,
) -> Settings:
    """The exporter settings of ``configure()`` from its arguments and ``env``.

    Raises ``ConfigurationError`` naming the first wrong setting (in ``SETTINGS`` order).
    """
    events = EVENTS.read(env, events_as)
    protocol = PROTOCOL.read(env, otlp_protocol)
    base = ENDPOINT.read(env, otlp_endpoint)
    # An endpoint given as an argument wins over every endpoint variable.
    traces_endpoint = None if ENDPOINT.given(otlp_endpoint) else TRACES_ENDPOINT.read(env)
    logs_endpoint = None if ENDPOINT.given(otlp_endpoint) else LOGS_ENDPOINT.read(env)
    if base is not None:
        traces_endpoint = traces_endpoint or _signal_endpoint(base, protocol, "traces")
        logs_endpoint = logs_endpoint or _signal_endpoint(base, protocol, "logs")

    traces_exporters = TRACES_EXPORTER.read(env, traces_exporter) or (
        ("otlp",) if traces_endpoint else ("auditspan_file",)
    )
    logs_exporters = LOGS_EXPORTER.read(env) or (("otlp",) if logs_endpoint else ("auditspan_file",))

    headers: dict[str, str] = {}
    for name in HEADERS.env_vars:  # every one applies, the more specific last
        raw = env.get(name)
        if raw and raw.strip():
            headers.update(_headers(raw.strip(), name))
    if otlp_headers is not None:
        headers.update(
            _headers(otlp_headers, "otlp_headers") if isinstance(otlp_headers, str) else dict(otlp_headers)
        )

    compression = COMPRESSION.read(env)
    timeout_s = TIMEOUT_S.read(env)
    return Settings(
        service_name=SERVICE_NAME.read(env, service_name),
        events_as=events,
        output_dir=Path(OUTPUT_DIR.read(env, output_dir)),
        traces_exporters=traces_exporters,
        logs_exporters=logs_exporters,
        protocol=protocol,
        traces_endpoint=traces_endpoint,
        logs_endpoint=logs_endpoint,
        headers=headers,
        compression=None if compression in (None, "none") else compression,
        timeout_s=timeout_s,
    )


def _signal_endpoint(base: str, protocol: str, signal: str) -> str:
    if protocol == "grpc":
        return base
    return base.rstrip("/") + f"/v1/{signal}"

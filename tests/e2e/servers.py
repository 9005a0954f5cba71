"""Real OTLP receivers for end-to-end tests: Arize Phoenix, rotel and oteltap.

Each class starts one server process on free loopback ports, waits until it is ready, and
stops its whole process group (SIGTERM, then SIGKILL after a grace period) on ``stop()``,
on leaving a ``with`` block, and at interpreter exit as a last resort. A server that does not
become ready raises :class:`ServerError` carrying the tail of its log.

Receivers
---------
``Phoenix``
    Arize Phoenix, a trace store with OTLP/HTTP (``traces_endpoint``) and OTLP/gRPC
    (``grpc_endpoint``) ingest and a REST read-back API. Installed in its own virtualenv by
    ``scripts/install-test-servers``; :func:`phoenix_executable` finds it. Spans land in the
    project named by the resource attribute ``openinference.project.name``
    (:data:`PHOENIX_PROJECT_ATTRIBUTE`); over OTLP/HTTP the request header ``x-project-name``
    (:data:`PHOENIX_PROJECT_HEADER`) takes precedence. Ingest is asynchronous: read back with
    :meth:`Phoenix.wait_for_spans`, never right after the export. Phoenix does not return
    resource attributes, and reports every span's OTLP ``kind`` as ``SPAN_KIND_INTERNAL``
    (it keeps the OpenInference kind instead): check those through a rotel debug log.

    With ``record_requests=True`` (the default) Phoenix also records what reached it:

    * every OTLP/HTTP ``POST /v1/traces`` and every OTLP/gRPC ``Export`` call, with its
      request headers / gRPC metadata, through Phoenix's own extension points
      (``PHOENIX_FASTAPI_MIDDLEWARE_PATHS`` and ``PHOENIX_GRPC_INTERCEPTOR_PATHS``) ->
      :meth:`Phoenix.received_requests`; for HTTP also the body size and whether the body
      really is gzip;
    * the compression of every received gRPC message, from gRPC core's own ``compression``
      tracer (``GRPC_TRACE=compression``) -> :meth:`Phoenix.grpc_message_encodings`.
      (gRPC strips ``grpc-encoding`` from the metadata an interceptor sees.)

    Use :meth:`Phoenix.mark` before sending and pass the mark as ``since=`` to see only
    what arrived afterwards (tests run one at a time against the shared Phoenix).

``Rotel``
    rotel, an OpenTelemetry collector (the ``rotel-agent`` binary of the ``rotel`` package):
    receives OTLP/gRPC and OTLP/HTTP, forwards to an upstream OTLP endpoint. It adds its
    own ``upstream_headers`` upstream (``--otlp-exporter-custom-headers``) and compresses
    upstream with gzip by default; headers that a client sent to rotel are *not* forwarded.
    ``debug_log=True`` prints every span passing through (resource attributes, scope, kind,
    status, attributes, events -- not request headers or encoding), parsed by
    :meth:`Rotel.debug_spans`. Other settings: any ``rotel-agent start`` flag through
    ``extra_args``, or ``ROTEL_*`` environment variables through ``extra_env`` (this rotel
    has no env-file option).

``Oteltap``
    oteltap, a small OTLP/HTTP-protobuf receiver that prints each received span as one
    NDJSON line: :meth:`Oteltap.spans`, :meth:`Oteltap.wait_for`. It shows no resource
    attributes and no request headers, and it rejects gzip-compressed requests (HTTP 400),
    so send to it uncompressed.

Example::

    with Phoenix() as phoenix, Rotel(phoenix.grpc_endpoint) as rotel:
        exporter = OTLPSpanExporter(endpoint=rotel.grpc_endpoint, insecure=True)
        ...  # export spans whose resource has openinference.project.name = "my-project"
        spans = phoenix.wait_for_spans("my-project", count=4, timeout=30)

Only the standard library is used, so these classes also run outside pytest.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import weakref
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib.util import find_spec
from pathlib import Path
from typing import IO, Any, ClassVar, Final, Literal, Protocol, TypeVar

PHOENIX_VERSION: Final = "20.26.1"
#: Resource attribute that selects the Phoenix project a span lands in.
PHOENIX_PROJECT_ATTRIBUTE: Final = "openinference.project.name"
#: OTLP/HTTP request header that overrides the project (ignored over gRPC).
PHOENIX_PROJECT_HEADER: Final = "x-project-name"
#: Set to 1 to keep the servers' temporary directories (logs, Phoenix database) after stop.
KEEP_WORKDIRS_ENV: Final = "AUDITSPAN_E2E_KEEP_WORKDIRS"

OtlpProtocol = Literal["grpc", "http"]
_S = TypeVar("_S", bound="ManagedServer")
_T = TypeVar("_T")

_LOOPBACK: Final = "127.0.0.1"
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_PORT_CLASH = re.compile(
    r"address already in use|address in use|errno 98|eaddrinuse|failed to bind", re.IGNORECASE
)
# urllib without proxies: every server here is on loopback.
_HTTP = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class ServerError(RuntimeError):
    """A test server failed to start, died, or answered unexpectedly."""


# --- locating the installed servers ---------------------------------------------------------


def cache_dir() -> Path:
    """Cache root of ``scripts/install-test-servers``: ``$AUDITSPAN_CACHE_DIR`` or ``~/.cache/auditspan``."""
    configured = os.environ.get("AUDITSPAN_CACHE_DIR")
    return Path(configured) if configured else Path.home() / ".cache" / "auditspan"


def phoenix_executable() -> Path:
    """Path of the ``phoenix`` executable the install script creates (it may not exist yet)."""
    return cache_dir() / f"phoenix-{PHOENIX_VERSION}" / "bin" / "phoenix"


def rotel_agent_path() -> Path:
    """Path of the ``rotel-agent`` binary inside the installed ``rotel`` package."""
    spec = find_spec("rotel")
    if spec is None or spec.origin is None:
        raise ServerError("the rotel package is not installed: pip install -e '.[test]'")
    return Path(spec.origin).parent / "rotel-agent"


# --- ports and processes ----------------------------------------------------------------------


def free_ports(count: int) -> list[int]:
    """Return ``count`` distinct TCP ports that are free on 127.0.0.1 right now."""
    sockets: list[socket.socket] = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind((_LOOPBACK, 0))
            sockets.append(s)  # held open so the next pick cannot return the same port
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def port_accepting(port: int, timeout: float = 0.5) -> bool:
    """True when a TCP connection to 127.0.0.1:``port`` succeeds."""
    try:
        with socket.create_connection((_LOOPBACK, port), timeout=timeout):
            return True
    except OSError:
        return False


def poll_until(
    probe: Callable[[], _T | None], timeout: float, interval: float = 0.1
) -> tuple[_T | None, float]:
    """Call ``probe`` until it returns something other than None or ``timeout`` seconds pass.

    Returns ``(result, elapsed)``; ``result`` is None when the deadline passed.
    """
    start = time.monotonic()
    while True:
        result = probe()
        elapsed = time.monotonic() - start
        if result is not None or elapsed >= timeout:
            return result, elapsed
        time.sleep(interval)


_LIVE: weakref.WeakSet[ManagedServer] = weakref.WeakSet()


def running_servers() -> list[ManagedServer]:
    """Servers started in this process and not yet stopped."""
    return [s for s in list(_LIVE) if s.running]


@atexit.register
def _stop_leftovers() -> None:
    for server in list(_LIVE):
        with contextlib.suppress(Exception):
            server.stop()


class _PortClash(ServerError):
    pass


class ManagedServer:
    """Base class: one server process in its own session, with a temp dir and a log file.

    Subclasses define how many ports they need, their command line, environment and
    readiness probe. Use as a context manager, or call :meth:`start` / :meth:`stop`.
    ``extra_env`` adds or overrides environment variables of the server process.

    On Linux the server also gets SIGTERM when the thread that started it ends (so a test
    run killed with SIGKILL leaves nothing behind): start servers from a thread that lives
    as long as they should, e.g. the main thread as pytest fixtures do.
    """

    name: ClassVar[str] = "server"
    port_count: ClassVar[int] = 1
    ready_poll_interval: ClassVar[float] = 0.05
    start_attempts: ClassVar[int] = 3

    def __init__(
        self,
        *,
        startup_timeout: float,
        stop_grace: float = 5.0,
        extra_env: Mapping[str, str] | None = None,
    ) -> None:
        self.startup_timeout = startup_timeout
        self.stop_grace = stop_grace
        self.extra_env: dict[str, str] = dict(extra_env or {})
        self.ports: list[int] = []
        self._proc: subprocess.Popen[bytes] | None = None
        self._workdir: Path | None = None
        self._log_offset = 0  # log size when the current attempt started

    # -- lifecycle --------------------------------------------------------------------------

    def start(self: _S) -> _S:
        """Start the server and wait until it is ready; raise :class:`ServerError` otherwise."""
        if self.running:
            return self
        self._workdir = Path(tempfile.mkdtemp(prefix=f"auditspan-e2e-{self.name}-"))
        try:
            for attempt in range(1, self.start_attempts + 1):
                self.ports = free_ports(self.port_count)
                try:
                    self._launch()
                    self._wait_ready()
                    return self
                except _PortClash:
                    # Another process took a picked port between pick and bind: pick again.
                    self._terminate()
                    if attempt == self.start_attempts:
                        raise
        except BaseException:
            self.stop(keep_workdir=True)  # the error names the log file: keep it readable
            raise
        raise AssertionError("unreachable")  # pragma: no cover

    def stop(self, *, keep_workdir: bool = False) -> None:
        """Stop the whole process group (SIGTERM, SIGKILL after ``stop_grace``) and clean up.

        The temporary directory is removed unless ``keep_workdir`` or the environment
        variable ``AUDITSPAN_E2E_KEEP_WORKDIRS=1`` says otherwise.
        """
        self._terminate()
        _LIVE.discard(self)
        workdir, self._workdir = self._workdir, None
        keep = keep_workdir or os.environ.get(KEEP_WORKDIRS_ENV) == "1"
        if workdir is not None and not keep:
            shutil.rmtree(workdir, ignore_errors=True)

    def __enter__(self: _S) -> _S:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        """True while the server process is alive."""
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int | None:
        """PID of the server process (also its process-group id), or None when not started."""
        return None if self._proc is None else self._proc.pid

    @property
    def workdir(self) -> Path:
        """The server's temporary directory (working dir, log files)."""
        if self._workdir is None:
            raise ServerError(f"{self.name} is not started")
        return self._workdir

    @property
    def log_path(self) -> Path:
        """The server's log file (its stdout and stderr unless a subclass redirects stdout)."""
        return self.workdir / f"{self.name}.log"

    def log_text(self) -> str:
        """The whole log so far, with terminal colour codes removed."""
        try:
            raw = self.log_path.read_bytes()
        except (FileNotFoundError, ServerError):
            return ""
        return _ANSI.sub("", raw.decode("utf-8", errors="replace"))

    def log_tail(self, lines: int = 40) -> str:
        """The last ``lines`` lines of the log."""
        return "\n".join(self.log_text().splitlines()[-lines:])

    # -- subclass hooks -----------------------------------------------------------------------

    def _command(self) -> list[str]:
        raise NotImplementedError

    def _environment(self) -> dict[str, str]:
        return {**os.environ, **self.extra_env}

    def _is_ready(self) -> bool:
        return all(port_accepting(p) for p in self.ports)

    def _prepare(self) -> None:
        """Write any files the server needs before it starts."""

    def _stdout_path(self) -> Path | None:
        """Where stdout goes; None sends it to the log with stderr."""
        return None

    # -- internals ----------------------------------------------------------------------------

    def _launch(self) -> None:
        self._prepare()
        self._log_offset = len(self.log_text())
        stdout_path = self._stdout_path()
        with contextlib.ExitStack() as files:
            log: IO[bytes] = files.enter_context(self.log_path.open("ab"))
            out: IO[bytes] = files.enter_context(stdout_path.open("ab")) if stdout_path else log
            self._proc = subprocess.Popen(
                self._command(),
                env=self._environment(),
                cwd=self.workdir,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=log,
                start_new_session=True,  # own process group: stop() kills children too
                preexec_fn=_exit_with_parent,
            )
        _LIVE.add(self)

    def _wait_ready(self) -> None:
        proc = self._proc
        assert proc is not None
        deadline = time.monotonic() + self.startup_timeout
        while True:
            code = proc.poll()
            if code is not None:
                text = self.log_text()[self._log_offset :]
                error = _PortClash if _PORT_CLASH.search(text) else ServerError
                raise error(
                    f"{self.name} exited with code {code} before it was ready "
                    f"(ports {self.ports}); log {self.log_path} ends:\n{self.log_tail()}"
                )
            if self._is_ready():
                return
            if time.monotonic() >= deadline:
                raise ServerError(
                    f"{self.name} not ready after {self.startup_timeout:g}s (ports {self.ports}); "
                    f"log {self.log_path} ends:\n{self.log_tail()}"
                )
            time.sleep(self.ready_poll_interval)

    def _terminate(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        pgid = proc.pid  # start_new_session: the leader's pid is the group id
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGTERM)
        try:
            proc.wait(self.stop_grace)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pgid, signal.SIGKILL)
            proc.wait(self.stop_grace)
        # The leader is gone; sweep any child it left in the group.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGKILL)


def _exit_with_parent() -> None:
    # Runs in the child before exec: on Linux, SIGTERM it when the test process dies, even by
    # SIGKILL, so a killed test run leaves no server behind.
    if sys.platform == "linux":
        import ctypes

        pr_set_pdeathsig = 1
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)


def _inherited_env(drop_prefixes: Sequence[str], drop_names: Sequence[str] = ()) -> dict[str, str]:
    # The test process may carry OTEL_*/PHOENIX_* settings meant for the code under test.
    return {
        k: v for k, v in os.environ.items() if not k.startswith(tuple(drop_prefixes)) and k not in drop_names
    }


# --- OTLP JSON helpers ----------------------------------------------------------------------


def otlp_value(value: Mapping[str, Any]) -> Any:
    """Python value of an OTLP JSON ``AnyValue`` (camelCase or snake_case keys)."""
    for key, v in value.items():
        if v is None:
            continue
        kind = key.replace("_", "").lower()
        if kind == "stringvalue":
            return v
        if kind == "intvalue":
            return int(v)  # proto JSON writes int64 as a string
        if kind == "doublevalue":
            return float(v)
        if kind == "boolvalue":
            return bool(v)
        if kind == "arrayvalue":
            return [otlp_value(x) for x in v.get("values") or []]
        if kind == "kvlistvalue":
            return flatten_attributes(v.get("values") or [])
        if kind == "bytesvalue":
            return v
    return None


def flatten_attributes(attributes: Sequence[Mapping[str, Any]] | None) -> dict[str, Any]:
    """``{key: value}`` from an OTLP JSON attribute list (``[{"key": k, "value": {...}}]``).

    >>> flatten_attributes([{"key": "n", "value": {"intValue": "3"}}])
    {'n': 3}
    """
    return {a["key"]: otlp_value(a.get("value") or {}) for a in attributes or []}


# --- Phoenix ----------------------------------------------------------------------------------

# Loaded by Phoenix itself (PHOENIX_FASTAPI_MIDDLEWARE_PATHS / PHOENIX_GRPC_INTERCEPTOR_PATHS):
# appends one JSON line per OTLP request to $AUDITSPAN_E2E_REQUEST_LOG. Recording must never
# break ingest, hence the broad excepts.
_RECORDER_SOURCE: Final = '''\
"""Records the OTLP requests Phoenix receives (written by tests/e2e/servers.py)."""
import json
import os
import time
from abc import ABCMeta

from grpc.aio import ServerInterceptor
from starlette.middleware.base import BaseHTTPMiddleware

_LOG = os.environ["AUDITSPAN_E2E_REQUEST_LOG"]


def _write(record):
    with open(_LOG, "a", encoding="utf-8") as f:
        f.write(json.dumps(record, sort_keys=True) + "\\n")


class RecordOtlpHttp(BaseHTTPMiddleware):
    async def dispatch(self, request, call_next):
        if request.method == "POST" and request.url.path.endswith("/v1/traces"):
            try:
                body = await request.body()  # Starlette replays the body to the endpoint
                headers = {}
                for k, v in request.headers.items():
                    headers[k] = headers[k] + ", " + v if k in headers else v
                _write({"protocol": "http", "path": request.url.path, "headers": headers,
                        "body_bytes": len(body), "body_is_gzip": body[:2] == b"\\x1f\\x8b",
                        "time": time.time()})
            except Exception:
                pass
        return await call_next(request)


class _InterceptorClass(ABCMeta, ServerInterceptor):
    # Phoenix passes the configured *class* to grpc.aio.server(), which wants an instance:
    # a class whose metaclass is itself a ServerInterceptor satisfies both checks.
    async def intercept_service(self, continuation, handler_call_details):
        return await continuation(handler_call_details)


class RecordOtlpGrpc(ServerInterceptor, metaclass=_InterceptorClass):
    @classmethod
    async def intercept_service(cls, continuation, handler_call_details):
        try:
            headers = {}
            for k, v in handler_call_details.invocation_metadata or ():
                v = v if isinstance(v, str) else v.hex()
                headers[k] = headers[k] + ", " + v if k in headers else v
            _write({"protocol": "grpc", "path": handler_call_details.method, "headers": headers,
                    "body_bytes": None, "body_is_gzip": None, "time": time.time()})
        except Exception:
            pass
        return await continuation(handler_call_details)
'''

_GRPC_DECOMPRESS = re.compile(r"DecompressMessage: len=(\d+) max=\d+ alg=(\d+)")
_GRPC_ALGORITHMS: Final = {0: "identity", 1: "deflate", 2: "gzip"}


@dataclass(frozen=True)
class ReceivedRequest:
    """One OTLP request as Phoenix received it (see :meth:`Phoenix.received_requests`)."""

    protocol: OtlpProtocol
    #: URL path (HTTP) or full gRPC method name.
    path: str
    #: Request headers (HTTP) or invocation metadata (gRPC), names lower-case.
    headers: Mapping[str, str]
    #: Size of the body as received (HTTP only; None for gRPC).
    body_bytes: int | None
    #: Whether the body starts with the gzip magic bytes (HTTP only; None for gRPC).
    body_is_gzip: bool | None
    time: float

    def header(self, name: str) -> str | None:
        """Value of header ``name`` (case-insensitive), or None."""
        return self.headers.get(name.lower())


@dataclass(frozen=True)
class PhoenixMark:
    """A point in Phoenix's request record and log; pass as ``since=``."""

    requests: int
    log_offset: int


class Phoenix(ManagedServer):
    """Arize Phoenix on free loopback ports, with a read-back client.

    >>> with Phoenix() as phoenix:                                      # doctest: +SKIP
    ...     ...  # send spans with resource openinference.project.name="p1"
    ...     spans = phoenix.wait_for_spans("p1", count=4, timeout=30)
    """

    name = "phoenix"
    port_count = 2
    ready_poll_interval = 0.2

    def __init__(
        self,
        executable: Path | str | None = None,
        *,
        record_requests: bool = True,
        extra_env: Mapping[str, str] | None = None,
        startup_timeout: float = 120.0,
        request_timeout: float = 10.0,
    ) -> None:
        super().__init__(startup_timeout=startup_timeout, extra_env=extra_env)
        self.executable = Path(executable) if executable is not None else phoenix_executable()
        self.record_requests = record_requests
        self.request_timeout = request_timeout

    # -- endpoints ------------------------------------------------------------------------

    @property
    def http_port(self) -> int:
        """Port of the HTTP server (UI, REST API, OTLP/HTTP)."""
        return self.ports[0]

    @property
    def grpc_port(self) -> int:
        """Port of the OTLP/gRPC server (binds all interfaces: send to 127.0.0.1 only)."""
        return self.ports[1]

    @property
    def http_endpoint(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:6006`` (OTLP/HTTP base endpoint as well)."""
        return f"http://{_LOOPBACK}:{self.http_port}"

    @property
    def traces_endpoint(self) -> str:
        """Full OTLP/HTTP traces URL, ``{http_endpoint}/v1/traces``."""
        return f"{self.http_endpoint}/v1/traces"

    @property
    def grpc_endpoint(self) -> str:
        """OTLP/gRPC endpoint, e.g. ``http://127.0.0.1:4317`` (plaintext)."""
        return f"http://{_LOOPBACK}:{self.grpc_port}"

    # -- process --------------------------------------------------------------------------

    @property
    def request_log_path(self) -> Path:
        """NDJSON file with one line per received OTLP request (when ``record_requests``)."""
        return self.workdir / "otlp-requests.ndjson"

    def _prepare(self) -> None:
        if not self.executable.exists():
            raise ServerError(
                f"Phoenix is not installed at {self.executable}: run scripts/install-test-servers"
            )
        if self.record_requests:
            (self.workdir / "auditspan_e2e_recorder.py").write_text(_RECORDER_SOURCE, encoding="utf-8")

    def _command(self) -> list[str]:
        return [str(self.executable), "serve"]

    def _environment(self) -> dict[str, str]:
        env = _inherited_env(("PHOENIX_", "OTEL_"), ("GRPC_TRACE", "GRPC_VERBOSITY"))
        data_dir = self.workdir / "data"
        data_dir.mkdir(exist_ok=True)
        env.update(
            PHOENIX_WORKING_DIR=str(data_dir),
            PHOENIX_HOST=_LOOPBACK,
            PHOENIX_PORT=str(self.http_port),
            PHOENIX_GRPC_PORT=str(self.grpc_port),
            PHOENIX_TELEMETRY_ENABLED="false",
            PHOENIX_ALLOW_EXTERNAL_RESOURCES="false",
        )
        if self.record_requests:
            recorder = self.workdir / "auditspan_e2e_recorder.py"
            env.update(
                AUDITSPAN_E2E_REQUEST_LOG=str(self.request_log_path),
                PHOENIX_FASTAPI_MIDDLEWARE_PATHS=f"{recorder}:RecordOtlpHttp",
                PHOENIX_GRPC_INTERCEPTOR_PATHS=f"{recorder}:RecordOtlpGrpc",
                GRPC_TRACE="compression",  # two log lines per gRPC call, naming the algorithm
                GRPC_VERBOSITY="debug",
            )
        env.update(self.extra_env)
        return env

    def _is_ready(self) -> bool:
        status, _ = self._get("/healthz", timeout=1.0)
        return status == 200 and port_accepting(self.grpc_port)

    # -- REST read-back -------------------------------------------------------------------

    def _get(
        self, path: str, params: Sequence[tuple[str, str]] = (), timeout: float | None = None
    ) -> tuple[int, bytes]:
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        request = urllib.request.Request(f"{self.http_endpoint}{path}{query}")
        try:
            with _HTTP.open(request, timeout=timeout or self.request_timeout) as response:
                return int(response.status), bytes(response.read())
        except urllib.error.HTTPError as error:
            return int(error.code), bytes(error.read())
        except OSError:
            return 0, b""

    def _paged(self, path: str, params: Sequence[tuple[str, str]]) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        cursor: str | None = None
        while True:
            page = [*params, ("limit", "1000"), *([("cursor", cursor)] if cursor else [])]
            status, body = self._get(path, page)
            if status == 404:
                return []  # the project appears with its first span
            if status != 200:
                raise ServerError(f"GET {path} -> {status}: {body[:500]!r}")
            payload = json.loads(body)
            items.extend(payload["data"])
            cursor = payload.get("next_cursor")
            if not cursor:
                return items

    @staticmethod
    def _span_filters(trace_id: str | None, roots_only: bool) -> list[tuple[str, str]]:
        filters = [("trace_id", trace_id)] if trace_id else []
        return filters + ([("parent_id", "null")] if roots_only else [])

    def projects(self) -> list[str]:
        """Names of all projects (``default`` included)."""
        return [p["name"] for p in self._paged("/v1/projects", [])]

    def spans(
        self, project: str, *, trace_id: str | None = None, roots_only: bool = False
    ) -> list[dict[str, Any]]:
        """All spans of ``project`` visible now (newest first), in Phoenix's own JSON form.

        Each span has ``name``, ``context.trace_id``, ``context.span_id``, ``parent_id``
        (None for roots), ``status_code`` (``"OK"``/``"ERROR"``/``"UNSET"``),
        ``status_message``, ``attributes`` (a dict) and ``events`` (each with ``name``,
        ``timestamp`` and an ``attributes`` dict). Unknown project -> ``[]``.
        """
        path = f"/v1/projects/{urllib.parse.quote(project, safe='')}/spans"
        return self._paged(path, self._span_filters(trace_id, roots_only))

    def otlp_spans(
        self, project: str, *, trace_id: str | None = None, roots_only: bool = False
    ) -> list[dict[str, Any]]:
        """All spans of ``project`` in OTLP JSON form (``/spans/otlpv1``).

        Each span has ``trace_id``, ``span_id``, ``parent_span_id``, ``name``, ``kind``
        (always ``SPAN_KIND_INTERNAL`` in Phoenix), ``status.code`` (0 unset, 1 ok, 2 error),
        ``status.message``, ``attributes`` and ``events`` as OTLP attribute lists (see
        :func:`flatten_attributes`).
        """
        path = f"/v1/projects/{urllib.parse.quote(project, safe='')}/spans/otlpv1"
        return self._paged(path, self._span_filters(trace_id, roots_only))

    def wait_for_spans(
        self,
        project: str,
        count: int,
        timeout: float = 30.0,
        *,
        otlp: bool = False,
        trace_id: str | None = None,
    ) -> list[dict[str, Any]]:
        """Poll until at least ``count`` spans of ``project`` are visible; return them all.

        ``otlp=True`` returns the :meth:`otlp_spans` form. Raises ``AssertionError`` listing
        what it saw when the deadline passes.
        """
        read = self.otlp_spans if otlp else self.spans
        seen: list[dict[str, Any]] = []

        def probe() -> list[dict[str, Any]] | None:
            nonlocal seen
            seen = read(project, trace_id=trace_id)
            return seen if len(seen) >= count else None

        found, elapsed = poll_until(probe, timeout, interval=0.2)
        if found is None:
            names = sorted(str(s.get("name")) for s in seen)
            raise AssertionError(
                f"Phoenix project {project!r}: expected at least {count} spans within {timeout:g}s, "
                f"saw {len(seen)} after {elapsed:.1f}s: {names}; projects: {self.projects()}"
            )
        return found

    # -- what reached Phoenix ---------------------------------------------------------------

    def mark(self) -> PhoenixMark:
        """Current position in the request record and the log (for ``since=``)."""
        return PhoenixMark(requests=len(self._request_lines()), log_offset=len(self.log_text()))

    def _request_lines(self) -> list[str]:
        try:
            return self.request_log_path.read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            return []

    def received_requests(self, since: PhoenixMark | None = None) -> list[ReceivedRequest]:
        """OTLP requests received (HTTP ``/v1/traces`` and gRPC ``Export``), oldest first.

        Needs ``record_requests=True``. A request is recorded before Phoenix answers it, so
        everything an exporter has finished sending is already here.
        """
        if not self.record_requests:
            raise ServerError("this Phoenix was started with record_requests=False")
        lines = self._request_lines()[since.requests if since else 0 :]
        requests = []
        for line in lines:
            r = json.loads(line)
            requests.append(
                ReceivedRequest(
                    protocol=r["protocol"],
                    path=r["path"],
                    headers={k.lower(): v for k, v in r["headers"].items()},
                    body_bytes=r["body_bytes"],
                    body_is_gzip=r["body_is_gzip"],
                    time=r["time"],
                )
            )
        return requests

    def grpc_message_encodings(self, since: PhoenixMark | None = None) -> list[str]:
        """Compression of each gRPC request message received: ``identity``/``deflate``/``gzip``.

        Read from gRPC core's compression trace in Phoenix's log (``record_requests=True``).
        """
        if not self.record_requests:
            raise ServerError("this Phoenix was started with record_requests=False")
        text = self.log_text()[since.log_offset if since else 0 :]
        return [_GRPC_ALGORITHMS.get(int(m[2]), m[2]) for m in _GRPC_DECOMPRESS.finditer(text)]


# --- rotel ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DebugEvent:
    """A span event as printed by rotel's detailed debug log."""

    name: str
    attributes: Mapping[str, Any]


@dataclass(frozen=True)
class DebugSpan:
    """A span as printed by rotel's detailed debug log, with its resource and scope.

    ``attributes``/``resource`` values are decoded for ``Str``/``Int``/``Double``/``Bool``;
    other types stay as rotel printed them, e.g. ``"Slice(Int(1), Int(2))"``.
    """

    trace_id: str
    span_id: str
    #: Empty string for a root span.
    parent_span_id: str
    name: str
    #: e.g. ``SPAN_KIND_INTERNAL``, ``SPAN_KIND_SERVER``.
    kind: str
    #: ``STATUS_CODE_UNSET`` / ``STATUS_CODE_OK`` / ``STATUS_CODE_ERROR``.
    status_code: str
    status_message: str
    attributes: Mapping[str, Any]
    events: Sequence[DebugEvent]
    resource: Mapping[str, Any]
    #: Instrumentation scope as printed: ``"name version"``.
    scope: str


_LOG_LINE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z\s")
_SPAN_FIELD = re.compile(r"^\s{4}(Trace ID|Parent ID|ID|Name|Kind|Status code|Status message)\s*: ?(.*)$")
_ARROW = re.compile(r"^\s*-> ([^:]+):(.*)$")
_TYPED = re.compile(r"^(Str|Int|Double|Bool)\((.*)\)$", re.DOTALL)


def _debug_value(raw: str) -> Any:
    m = _TYPED.match(raw)
    if m is None:
        return raw
    kind, text = m[1], m[2]
    try:
        if kind == "Int":
            return int(text)
        if kind == "Double":
            return float(text)
    except ValueError:
        return raw
    if kind == "Bool":
        return text == "true"
    return text


@dataclass
class _SpanDraft:
    fields: dict[str, str] = field(default_factory=dict)
    attributes: dict[str, str] = field(default_factory=dict)
    events: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    resource: dict[str, str] = field(default_factory=dict)
    scope: str = ""

    def build(self) -> DebugSpan:
        f = self.fields
        return DebugSpan(
            trace_id=f.get("Trace ID", ""),
            span_id=f.get("ID", ""),
            parent_span_id=f.get("Parent ID", ""),
            name=f.get("Name", ""),
            kind=f.get("Kind", ""),
            status_code=f.get("Status code", ""),
            status_message=f.get("Status message", ""),
            attributes={k: _debug_value(v) for k, v in self.attributes.items()},
            events=[
                DebugEvent(name, {k: _debug_value(v) for k, v in attrs.items()})
                for name, attrs in self.events
            ],
            resource={k: _debug_value(v) for k, v in self.resource.items()},
            scope=self.scope,
        )


def parse_rotel_debug_log(text: str) -> list[DebugSpan]:
    """Spans from rotel's ``--debug-log traces --debug-log-verbosity detailed`` output."""
    spans: list[_SpanDraft] = []
    resource: dict[str, str] = {}
    scope = ""
    span: _SpanDraft | None = None
    section = ""  # where "-> key: value" lines go
    target: dict[str, str] | None = None  # receives continuation lines of multi-line values
    last_key = ""
    for line in text.splitlines():
        stripped = line.strip()
        if _LOG_LINE.match(line):
            continue  # rotel's own log lines interleave with the debug output
        if stripped.startswith("ResourceSpans #"):
            resource, span, section, target = {}, None, "", None
        elif stripped == "Resource attributes:":
            section = "resource"
        elif stripped.startswith(("Resource SchemaURL", "ScopeSpans #", "ScopeSpans SchemaURL")):
            section, target = "", None
        elif stripped.startswith("InstrumentationScope"):
            scope = stripped.removeprefix("InstrumentationScope").strip()
            section, target = "", None
        elif stripped.startswith("Span #"):
            span = _SpanDraft(resource=resource, scope=scope)
            spans.append(span)
            section, target = "span", None
        elif span is not None and (m := _SPAN_FIELD.match(line)):
            span.fields[m[1]] = m[2]
            section, target = "span", None
        elif stripped.startswith(("Start time:", "End time:")):
            target = None
        elif stripped == "Attributes:" and span is not None:
            section = "span_attrs"
        elif stripped == "Events:":
            section = "events"
        elif stripped.startswith("SpanEvent #") and span is not None:
            span.events.append(("", {}))
            section, target = "event", None
        elif stripped.startswith(("Links:", "SpanLink #")):
            section, target = "links", None
        elif m := _ARROW.match(line):
            key, value = m[1].strip(), m[2].removeprefix(" ")
            if section == "resource":
                target, last_key = resource, key
                resource[key] = value
            elif section == "span_attrs" and span is not None:
                target, last_key = span.attributes, key
                span.attributes[key] = value
            elif section == "event" and span is not None:
                _, attrs = span.events[-1]
                if key == "Name":
                    span.events[-1] = (value, attrs)
                elif key == "Attributes":
                    section = "event_attrs"
                target = None
            elif section == "event_attrs" and span is not None:
                attrs = span.events[-1][1]
                target, last_key = attrs, key
                attrs[key] = value
        elif target is not None and last_key in target:
            target[last_key] += "\n" + line  # a string value that contained newlines
    return [s.build() for s in spans]


class Rotel(ManagedServer):
    """rotel collector: OTLP/gRPC + OTLP/HTTP in, OTLP out to ``upstream``.

    ``upstream`` is a base endpoint such as ``phoenix.grpc_endpoint`` (with
    ``upstream_protocol="grpc"``) or ``phoenix.http_endpoint`` (``"http"``; rotel appends
    ``/v1/traces``). ``upstream_headers`` are added to every upstream request;
    ``upstream_compression`` defaults to rotel's own default, gzip.

    >>> with Rotel(phoenix.grpc_endpoint, debug_log=True) as rotel:     # doctest: +SKIP
    ...     ...  # export to rotel.grpc_endpoint or rotel.traces_endpoint
    ...     rotel.wait_for_debug_spans(4)
    """

    name = "rotel"
    port_count = 2

    def __init__(
        self,
        upstream: str,
        *,
        upstream_protocol: OtlpProtocol = "grpc",
        upstream_headers: Mapping[str, str] | None = None,
        upstream_compression: Literal["gzip", "none"] | None = None,
        debug_log: bool = False,
        extra_args: Sequence[str] = (),
        extra_env: Mapping[str, str] | None = None,
        startup_timeout: float = 20.0,
    ) -> None:
        super().__init__(startup_timeout=startup_timeout, extra_env=extra_env)
        for key, value in (upstream_headers or {}).items():
            if not key or any(c in key + value for c in ",="):
                raise ValueError(f"rotel cannot pass header {key!r}={value!r} (no ',' or '=' allowed)")
        self.upstream = upstream
        self.upstream_protocol = upstream_protocol
        self.upstream_headers = dict(upstream_headers or {})
        self.upstream_compression = upstream_compression
        self.debug_log = debug_log
        self.extra_args = list(extra_args)

    @property
    def grpc_endpoint(self) -> str:
        """OTLP/gRPC endpoint, e.g. ``http://127.0.0.1:4317``."""
        return f"http://{_LOOPBACK}:{self.ports[0]}"

    @property
    def http_endpoint(self) -> str:
        """OTLP/HTTP base endpoint, e.g. ``http://127.0.0.1:4318``."""
        return f"http://{_LOOPBACK}:{self.ports[1]}"

    @property
    def traces_endpoint(self) -> str:
        """Full OTLP/HTTP traces URL, ``{http_endpoint}/v1/traces``."""
        return f"{self.http_endpoint}/v1/traces"

    def endpoint(self, protocol: OtlpProtocol) -> str:
        """``grpc_endpoint`` or ``traces_endpoint``, for an exporter of ``protocol``."""
        return self.grpc_endpoint if protocol == "grpc" else self.traces_endpoint

    def _command(self) -> list[str]:
        command = [
            str(rotel_agent_path()),
            "start",
            "--otlp-grpc-endpoint", f"{_LOOPBACK}:{self.ports[0]}",
            "--otlp-http-endpoint", f"{_LOOPBACK}:{self.ports[1]}",
            "--exporter", "otlp",
            "--otlp-exporter-endpoint", self.upstream,
            "--otlp-exporter-protocol", self.upstream_protocol,
            # Both default to fixed /tmp paths shared by every rotel on the machine.
            "--pid-file", str(self.workdir / "rotel.pid"),
            "--log-file", str(self.workdir / "rotel-daemon.log"),
        ]  # fmt: skip
        if self.upstream_headers:
            pairs = ",".join(f"{k}={v}" for k, v in self.upstream_headers.items())
            command += ["--otlp-exporter-custom-headers", pairs]
        if self.upstream_compression:
            command += ["--otlp-exporter-compression", self.upstream_compression]
        if self.debug_log:
            command += ["--debug-log", "traces", "--debug-log-verbosity", "detailed"]
        return command + self.extra_args

    def _environment(self) -> dict[str, str]:
        env = _inherited_env(("ROTEL_", "OTEL_"))
        env.update(NO_COLOR="1")
        env.update(self.extra_env)
        return env

    def debug_spans(self) -> list[DebugSpan]:
        """Spans printed so far by the debug log (needs ``debug_log=True``)."""
        if not self.debug_log:
            raise ServerError("this rotel was started without debug_log=True")
        return parse_rotel_debug_log(self.log_text())

    def wait_for_debug_spans(self, count: int, timeout: float = 10.0) -> list[DebugSpan]:
        """Poll the debug log until at least ``count`` spans passed through; return them."""
        seen: list[DebugSpan] = []

        def probe() -> list[DebugSpan] | None:
            nonlocal seen
            seen = self.debug_spans()
            return seen if len(seen) >= count else None

        found, _ = poll_until(probe, timeout)
        if found is None:
            raise AssertionError(
                f"rotel debug log: expected at least {count} spans within {timeout:g}s, saw "
                f"{[s.name for s in seen]}; log ends:\n{self.log_tail()}"
            )
        return found


class RotelFactory(Protocol):
    """Type of the ``rotel`` fixture: ``rotel("http", debug_log=True)`` -> a started :class:`Rotel`."""

    def __call__(self, protocol: OtlpProtocol = "grpc", **options: Any) -> Rotel:
        """Start a rotel forwarding to the session Phoenix over ``protocol``."""
        ...


# --- oteltap ----------------------------------------------------------------------------------


class Oteltap(ManagedServer):
    """oteltap: OTLP/HTTP-protobuf receiver printing each span as an NDJSON line.

    Spans come back as OTLP JSON with camelCase keys: ``traceId``, ``spanId``,
    ``parentSpanId`` ("" for roots), ``name``, ``kind`` (int: 1 internal, 2 server, ...),
    ``status`` (``{"code": 0|1|2, "message": ...}``), ``attributes``, ``events`` (see
    :func:`flatten_attributes`). No resource, no headers; gzip requests are refused.

    >>> with Oteltap() as tap:                                          # doctest: +SKIP
    ...     ...  # export uncompressed to tap.traces_endpoint
    ...     spans = tap.wait_for(4)
    """

    name = "oteltap"

    def __init__(self, *, startup_timeout: float = 20.0, extra_env: Mapping[str, str] | None = None) -> None:
        super().__init__(startup_timeout=startup_timeout, extra_env=extra_env)

    @property
    def port(self) -> int:
        """The HTTP port."""
        return self.ports[0]

    @property
    def http_endpoint(self) -> str:
        """OTLP/HTTP base endpoint, e.g. ``http://127.0.0.1:4318``."""
        return f"http://{_LOOPBACK}:{self.port}"

    @property
    def traces_endpoint(self) -> str:
        """Full OTLP/HTTP traces URL, ``{http_endpoint}/v1/traces``."""
        return f"{self.http_endpoint}/v1/traces"

    @property
    def output_path(self) -> Path:
        """oteltap's stdout: one JSON line per received span (plus a banner line)."""
        return self.workdir / "oteltap.ndjson"

    def _stdout_path(self) -> Path:
        return self.output_path

    def _command(self) -> list[str]:
        # The current interpreter: oteltap is installed in the venv the tests run in.
        return [sys.executable, "-m", "oteltap", "--port", str(self.port)]

    def _environment(self) -> dict[str, str]:
        return {**_inherited_env(("OTEL_",)), "PYTHONUNBUFFERED": "1", **self.extra_env}

    def spans(self) -> list[dict[str, Any]]:
        """Spans received so far, oldest first."""
        try:
            text = self.output_path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return []
        spans: list[dict[str, Any]] = []
        for line in text.splitlines():
            if not line.startswith("{"):
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line still being written
            if isinstance(record, dict) and "spanId" in record:
                spans.append(record)
        return spans

    def wait_for(self, count: int, timeout: float = 10.0) -> list[dict[str, Any]]:
        """Poll until at least ``count`` spans arrived; return them all."""
        seen: list[dict[str, Any]] = []

        def probe() -> list[dict[str, Any]] | None:
            nonlocal seen
            seen = self.spans()
            return seen if len(seen) >= count else None

        found, _ = poll_until(probe, timeout)
        if found is None:
            raise AssertionError(
                f"oteltap: expected at least {count} spans within {timeout:g}s, saw "
                f"{[s.get('name') for s in seen]}; log ends:\n{self.log_tail()}"
            )
        return found

"""Zero-code instrumentation: ``opentelemetry-instrument`` attaches auditspan to every audit emitter.

Run an agent unchanged::

    opentelemetry-instrument python my_agent.py

and every audit emitter the runtime creates -- the seed system's
(``xerxes.audit.AuditEmitter`` or ``calute.audit.AuditEmitter``) and this
package's own ``auditspan.AuditEmitter`` -- also feeds one process-wide
``SpanCollector``: traces plus the canonical audit log. In code, the same is
``AuditSpanInstrumentor().instrument()`` (undo with ``uninstrument()``).

How an emitter is attached
    The emitter classes' ``__init__`` is wrapped: once an emitter is built, its
    collector is replaced by a fan-out that hands each event to the
    application's collector first (as before, under the emitter's lock) and then
    to auditspan's. The application's collector stays what ``emitter.collector``
    returns. An emitter whose collector already is (or fans out to) a
    ``SpanCollector`` is left alone, so nothing is recorded twice. Emitters
    created *before* instrumentation are not found; attach one with
    ``instrument_emitter(emitter)``. ``uninstrument()`` restores the
    emitters' own collectors, stops the fan-outs still referenced elsewhere, and
    unwraps the classes: emitters created later are untouched.

The seed package is never imported by auditspan
    ``importlib.util.find_spec`` tells whether ``xerxes`` / ``calute`` is
    installed at all (nothing is imported, nothing is done when it is not).
    When it is installed but not yet imported -- the normal case, as
    ``opentelemetry-instrument`` runs before the application's imports -- a
    post-import hook (a ``sys.meta_path`` finder) wraps the emitter class the
    moment the application imports ``<package>.audit``; importing the seed
    package eagerly would load its whole runtime (LLM clients, ...) in every
    instrumented process. Note that the successor runtime builds its emitter
    only when ``RuntimeFeaturesConfig.audit_collector`` is set: give it one
    (e.g. ``InMemoryCollector()``) -- there is no emitter to attach to otherwise.

Where traces and the audit log go
    ``opentelemetry-instrument`` configures the SDK only through a *configurator*
    entry point (``opentelemetry_configurator``), which ``opentelemetry-distro``
    provides; that configurator builds the exporters named by
    ``OTEL_TRACES_EXPORTER`` / ``OTEL_LOGS_EXPORTER`` from the entry-point
    groups ``opentelemetry_traces_exporter`` / ``opentelemetry_logs_exporter``,
    instantiating each class with no arguments. There is no entry-point group
    for anything like an audit log, and an exporter of that pipeline sees only
    spans or log records -- which are batched, sampled and dropped when queues
    fill, while an audit record must never be lost. So:

    * the audit log is written by the ``SpanCollector`` itself, at the path
      ``AUDITSPAN_AUDIT_LOG`` (default ``$AUDITSPAN_OUTPUT_DIR/audit.jsonl``,
      ``./auditspan-output/audit.jsonl``; ``none`` turns it off) -- read when
      the first event arrives, through ``auditspan.configure()``;
    * traces go to the TracerProvider the application installed by then,
      with its exporters; otherwise ``configure()`` builds auditspan's own
      from the ``OTEL_*`` settings, with the embedded default
      ``$AUDITSPAN_OUTPUT_DIR/traces.jsonl`` when no OTLP endpoint is set. A
      provider the distro's configurator built (its Resource carries
      ``telemetry.auto.version``) is made from those same settings: auditspan
      builds its own pipeline beside it, under the same Resource -- so the
      distro's default ``OTEL_TRACES_EXPORTER=otlp`` with no endpoint (which
      would aim at ``localhost:4317``, where a first run has nothing) writes
      the embedded default, and auditspan counts what it cannot deliver and
      says so in one warning line;
    * with a configurator, ``OTEL_TRACES_EXPORTER=auditspan_file`` (and
      ``OTEL_LOGS_EXPORTER=auditspan_file``) select ``AuditSpanFileSpanExporter``
      (``AuditSpanFileLogExporter``): the same OTLP/JSON-lines files, in
      ``$AUDITSPAN_OUTPUT_DIR``.

    The collector is made at the first event, not at start-up, so that an
    application that installs its own TracerProvider during start-up gets its
    spans there (the OpenTelemetry API lets a global provider be set once).
    ``OTEL_PYTHON_DISABLED_INSTRUMENTATIONS=auditspan`` turns all of this off.

Entry points (``pyproject.toml``)::

    [project.entry-points.opentelemetry_instrumentor]
    auditspan = "auditspan.instrumentation:AuditSpanInstrumentor"
    [project.entry-points.opentelemetry_traces_exporter]
    auditspan_file = "auditspan.instrumentation:AuditSpanFileSpanExporter"
    [project.entry-points.opentelemetry_logs_exporter]
    auditspan_file = "auditspan.instrumentation:AuditSpanFileLogExporter"
"""

from __future__ import annotations

import contextlib
import importlib.abc
import importlib.machinery
import importlib.util
import logging
import os
import sys
import weakref
from collections.abc import Callable, Collection, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

from opentelemetry.instrumentation.instrumentor import BaseInstrumentor  # type: ignore[attr-defined]
from opentelemetry.sdk.trace import SpanProcessor

from . import _deep
from ._fork import fork_safe_lock
from .collector import SpanCollector
from .configuration import configure
from .emitter import AuditEmitter
from .exporters.otlp_file import OtlpJsonFileLogExporter, OtlpJsonFileSpanExporter
from .ingest import AuditSpanProcessor
from .ingest._install import DeferredIngest, install

__all__ = [
    "SEED_AUDIT_MODULES",
    "AuditSpanFileLogExporter",
    "AuditSpanFileSpanExporter",
    "AuditSpanInstrumentor",
    "instrument_emitter",
    "process_collector",
]

_logger = logging.getLogger(__name__)

#: Seed packages (top-level name, module that exports ``AuditEmitter``), the successor first.
SEED_AUDIT_MODULES: tuple[tuple[str, str], ...] = (("xerxes", "xerxes.audit"), ("calute", "calute.audit"))

_OUTPUT_DIR_ENV = "AUDITSPAN_OUTPUT_DIR"
_DEFAULT_OUTPUT_DIR = "auditspan-output"


# ------------------------------------------------------------------ the process collector
_default_lock = fork_safe_lock()
_default_handle: Any = None


def process_collector() -> SpanCollector:
    """The process-wide ``SpanCollector`` (made with ``auditspan.configure()`` on first use).

    ``configure()`` reuses a TracerProvider the application (or an
    OpenTelemetry distro) installed, else builds one from the ``OTEL_*``
    settings; the audit log comes from ``AUDITSPAN_AUDIT_LOG``. Made once per
    process and shut down at exit.

    Raises:
        auditspan.ConfigurationError: a setting is wrong (the message names it).
    """
    global _default_handle
    with _default_lock:
        if _default_handle is None:
            resource = _auto_instrumentation_resource()
            if resource is not None:
                # Built by the distro from the OTEL_* settings: auditspan builds its own pipeline from the
                # same settings and Resource, so it counts (and reports) what it cannot deliver, and OTLP
                # with no endpoint set goes to the embedded default, as configure() does.
                _default_handle = configure(
                    reuse_global_provider=False, resource_attributes=resource, set_global=False
                )
            else:
                _default_handle = configure()
        collector: SpanCollector = _default_handle.collector
        return collector


def _process_ingest() -> AuditSpanProcessor | None:
    """The processor for the distro's provider: the process collector's log, classifier, policy, rules.

    ``None`` when ``configure()`` installed none (``AUDITSPAN_INGEST=false``, or no audit log).
    """
    collector = process_collector()
    if getattr(_default_handle, "ingest", None) is None or collector.audit_log is None:
        return None
    return AuditSpanProcessor(
        collector.audit_log,
        classifier=collector.classifier,
        redactor=collector.redactor,
        rules=collector.rules,
    )


def _install_ingest() -> SpanProcessor | None:
    """Agent and tool spans of other instrumentations go to the distro's provider: audit them there.

    With a distro, the process collector's pipeline is auditspan's own provider, beside the
    distro's global one, where the frameworks' spans go. A processor is added to the global
    one now (the distro made it before the instrumentors run) that makes its
    ``AuditSpanProcessor`` at the first agent or tool span -- nothing is set up before. Without
    a distro, ``configure()`` adds it to the provider it makes or reuses, at the first event.
    """
    if _auto_instrumentation_resource() is None:
        return None
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider

    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        return None
    return install(provider, lambda: DeferredIngest(_process_ingest))


def _auto_instrumentation_resource() -> dict[str, Any] | None:
    """The Resource attributes of the global provider when auto-instrumentation built it, else None.

    The SDK configurator (what ``opentelemetry-distro`` installs) marks its
    Resource with ``telemetry.auto.version``; a provider the application
    made itself has no such mark and is reused as it is.
    """
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider

    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        return None
    attributes = dict(provider.resource.attributes)
    return attributes if "telemetry.auto.version" in attributes else None


# ------------------------------------------------------------------ fan-out to auditspan
class _Link:
    """Where the fan-outs of one instrumentation forward to; switched off by ``uninstrument()``."""

    def __init__(self, factory: Callable[[], Any]) -> None:
        self.active = True
        self._factory = factory
        self._collector: Any = None
        self._failed = False
        self._lock = fork_safe_lock()

    def collector(self) -> Any:
        collector = self._collector
        if collector is not None or self._failed:
            return collector
        with self._lock:
            if self._collector is None and not self._failed:
                try:
                    self._collector = self._factory()
                except RecursionError:
                    raise  # not a failure to set up: no stack left (forward retries from a fresh one)
                except Exception:
                    self._failed = True
                    _log_safely("auditspan: cannot set up the collector; audit events are not traced")
            return self._collector

    def forward(self, event: Any) -> None:
        if not self.active:
            return
        try:
            self._forward(event)
        except RecursionError:  # no stack left for our calls: from a fresh one, else later (_deep)
            try:
                _deep.rescue(self._forward, (event,), {})
            except RecursionError:  # no room even to call that: kept without a call
                if _deep.counts["deferred"] < _deep.MAX_DEFERRED:
                    _deep.DEFERRED = (self._forward, (event,), {}, _deep.DEFERRED)
                    _deep.counts["deferred"] += 1
                else:
                    _deep.counts["lost"] += 1

    def _forward(self, event: Any) -> None:
        try:
            collector = self.collector()
            if collector is not None:
                collector.emit(event)
        except RecursionError:
            raise
        except Exception:  # SpanCollector.emit never raises; a user-given collector might
            _log_safely("auditspan: forwarding an audit event failed")

    def flush(self) -> None:
        if not self.active or self._collector is None:
            return
        try:
            self._collector.flush()
        except Exception:
            _log_safely("auditspan: flushing the collector failed")


def _log_safely(message: str) -> None:
    """Log the exception being handled; a failing handler (or no stack left) never reaches the agent."""
    try:  # noqa: SIM105 -- contextlib.suppress is a call, and there may be no room for one
        _logger.exception(message)
    except Exception:
        pass


class _FanOut:
    """An emitter's collector: the application's own first, then auditspan's.

    Attribute access goes to the application's collector, so code that reaches
    it through the emitter keeps working.
    """

    __slots__ = ("__weakref__", "inner", "link")

    def __init__(self, inner: Any, link: _Link) -> None:
        self.inner = inner
        self.link = link

    def emit(self, event: Any) -> None:
        """Hand ``event`` to the application's collector, then (even if that raised) to auditspan's."""
        try:
            self.inner.emit(event)
        finally:
            self.link.forward(event)

    def flush(self) -> None:
        """Flush both collectors."""
        try:
            self.inner.flush()
        finally:
            self.link.flush()

    def auditspan_collector(self) -> Any:
        """The collector auditspan's side forwards to (None while not made yet or switched off)."""
        return self.link.collector() if self.link.active else None

    def __getattr__(self, name: str) -> Any:
        if name in _FanOut.__slots__:  # not set yet (a copy being made): no delegation
            raise AttributeError(name)
        return getattr(self.inner, name)


def _unwrap(collector: Any) -> Any:
    return collector.inner if isinstance(collector, _FanOut) else collector


def _feeds_span_collector(collector: Any, depth: int = 0) -> bool:
    """True if events given to ``collector`` already reach a ``SpanCollector``."""
    if isinstance(collector, (SpanCollector, _FanOut)):
        return True
    if depth > 4:
        return False
    for name in ("collectors", "_collectors"):
        children = getattr(collector, name, None)
        if isinstance(children, (list, tuple)):
            return any(_feeds_span_collector(child, depth + 1) for child in children)
    return False


# ------------------------------------------------------------------ class patches
class _ClassPatch:
    """``cls.__init__`` wrapped to attach each new emitter; ``cls.collector`` unwrapping the fan-out."""

    def __init__(self, cls: type, attach: Callable[[Any], object]) -> None:
        self.cls = cls
        self._saved = {name: cls.__dict__[name] for name in ("__init__", "collector") if name in cls.__dict__}
        original_init: Callable[..., None] = getattr(cls, "__init__")  # noqa: B009 -- the class attribute

        def __init__(emitter: Any, *args: Any, **kwargs: Any) -> None:
            original_init(emitter, *args, **kwargs)
            attach(emitter)

        __init__.__wrapped__ = original_init  # type: ignore[attr-defined]
        __init__.__doc__ = original_init.__doc__
        self._init = __init__
        type.__setattr__(cls, "__init__", __init__)
        prop = cls.__dict__.get("collector")
        self._prop: property | None = None
        if isinstance(prop, property) and prop.fget is not None:
            getter = prop.fget

            def collector(emitter: Any) -> Any:
                return _unwrap(getter(emitter))

            self._prop = property(collector, doc=prop.__doc__)
            type.__setattr__(cls, "collector", self._prop)

    def undo(self) -> None:
        for name, ours in (("__init__", self._init), ("collector", self._prop)):
            if ours is None or self.cls.__dict__.get(name) is not ours:
                continue  # never ours, or patched again by someone else since: leave it
            if name in self._saved:
                type.__setattr__(self.cls, name, self._saved[name])
            else:
                type.__delattr__(self.cls, name)


# ------------------------------------------------------------------ post-import hook
class _PatchingLoader(importlib.abc.Loader):
    """Runs the real loader, then ``callback(module)``; puts the real loader back on the module."""

    def __init__(self, inner: importlib.abc.Loader, callback: Callable[[ModuleType], None]) -> None:
        self._inner = inner
        self._callback = callback

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return self._inner.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        module.__loader__ = self._inner
        if module.__spec__ is not None:
            module.__spec__.loader = self._inner
        self._inner.exec_module(module)
        try:
            self._callback(module)
        except Exception:
            _logger.exception("auditspan: instrumenting %s failed", module.__name__)


class _PostImportFinder(importlib.abc.MetaPathFinder):
    """Calls ``callbacks[name](module)`` right after the module ``name`` is imported."""

    def __init__(self, callbacks: dict[str, Callable[[ModuleType], None]]) -> None:
        self.callbacks = callbacks

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        callback = self.callbacks.get(fullname)
        if callback is None:
            return None
        for finder in list(sys.meta_path):
            if finder is self:
                continue
            find = getattr(finder, "find_spec", None)
            if find is None:
                continue
            spec = find(fullname, path, target)
            if spec is None:
                continue
            loader = spec.loader
            if isinstance(loader, importlib.abc.Loader) and hasattr(loader, "exec_module"):
                spec.loader = _PatchingLoader(loader, callback)
            return spec  # type: ignore[no-any-return]
        return None


# ------------------------------------------------------------------ the instrumentor
def _installed(package: str) -> bool:
    """Whether a top-level package can be imported (finding it imports nothing)."""
    try:
        return importlib.util.find_spec(package) is not None
    except (ImportError, ValueError):
        return False


class _Attachment:
    """Everything one ``instrument()`` changed, to be undone by ``uninstrument()``."""

    def __init__(self, link: _Link, owned: Any) -> None:
        self.link = link
        self.owned = owned
        self.ingest: SpanProcessor | None = None
        self.patches: list[_ClassPatch] = []
        self.emitters: weakref.WeakSet[Any] = weakref.WeakSet()
        self.finder: _PostImportFinder | None = None
        self.lock = fork_safe_lock()

    def attach(self, emitter: Any) -> bool:
        try:
            current = getattr(emitter, "_collector", None)
            if current is None or _feeds_span_collector(current):
                return False
            emitter._collector = _FanOut(current, self.link)
            with self.lock:
                self.emitters.add(emitter)
            return True
        except Exception:
            _logger.exception("auditspan: cannot attach to %r", emitter)
            return False

    def patch_class(self, cls: Any) -> None:
        if not isinstance(cls, type) or any(p.cls is cls for p in self.patches):
            return
        self.patches.append(_ClassPatch(cls, self.attach))

    def patch_seed_module(self, module: ModuleType) -> None:
        self.patch_class(getattr(module, "AuditEmitter", None))

    def undo(self) -> None:
        self.link.active = False
        if self.finder is not None:
            with contextlib.suppress(ValueError):
                sys.meta_path.remove(self.finder)
        for patch in reversed(self.patches):
            patch.undo()
        with self.lock:
            emitters = list(self.emitters)
            self.emitters.clear()
        for emitter in emitters:
            current = getattr(emitter, "_collector", None)
            if isinstance(current, _FanOut) and current.link is self.link:
                emitter._collector = current.inner
        if self.ingest is not None:
            self.ingest.shutdown()  # stays on the provider (the SDK cannot remove one), but records nothing
        collector = self.link._collector
        if self.owned is not None:
            self.owned.shutdown()
        elif collector is not None:
            collector.flush()


_active: _Attachment | None = None
_active_lock = fork_safe_lock()


def instrument_emitter(emitter: Any) -> bool:
    """Attach an emitter created before ``instrument()`` ran; True if it now feeds auditspan.

    Works for the seed system's emitters and ``auditspan.AuditEmitter`` alike
    (anything that keeps its collector in ``_collector``). Returns False when
    not instrumented, or when the emitter already feeds a ``SpanCollector``.
    """
    attachment = _active
    return attachment.attach(emitter) if attachment is not None else False


class AuditSpanInstrumentor(BaseInstrumentor):  # type: ignore[misc]
    """OpenTelemetry instrumentor: every audit emitter also feeds an auditspan ``SpanCollector``.

    ``opentelemetry-instrument`` calls ``instrument()`` with no arguments (the
    process collector, made by ``auditspan.configure()`` at the first event).
    In code, any of these keyword arguments may be given::

        AuditSpanInstrumentor().instrument(collector=my_span_collector)
        AuditSpanInstrumentor().instrument(tracer_provider=provider, audit_log="audit.jsonl")
        ...
        AuditSpanInstrumentor().uninstrument()

    ``collector`` is used as it is (and not shut down); otherwise
    ``tracer_provider``, ``logger_provider``, ``audit_log`` and other
    ``SpanCollector`` options build a collector that ``uninstrument()`` shuts
    down. See the module docstring for what is patched and where output goes.
    """

    def instrumentation_dependencies(self) -> Collection[str]:
        """None: the seed packages are optional and are found at run time."""
        return ()

    def _instrument(self, **kwargs: Any) -> None:
        global _active
        collector = kwargs.pop("collector", None)
        owned = None
        if collector is None and kwargs:
            owned = collector = SpanCollector(**kwargs)  # bad options raise here, to the caller
        link = _Link((lambda: collector) if collector is not None else process_collector)
        attachment = _Attachment(link, owned)
        attachment.patch_class(AuditEmitter)
        callbacks: dict[str, Callable[[ModuleType], None]] = {}
        for package, module_name in SEED_AUDIT_MODULES:
            if package not in sys.modules and not _installed(package):
                continue  # not installed: nothing to hook, nothing imported
            module = sys.modules.get(module_name)
            if module is not None:
                attachment.patch_seed_module(module)
            else:
                callbacks[module_name] = attachment.patch_seed_module
        if callbacks:
            attachment.finder = _PostImportFinder(callbacks)
            sys.meta_path.insert(0, attachment.finder)
        if collector is None:  # the process collector's: other instrumentations' spans too
            attachment.ingest = _install_ingest()
        with _active_lock:
            _active = attachment

    def _uninstrument(self, **kwargs: Any) -> None:
        global _active
        with _active_lock:
            attachment, _active = _active, None
        if attachment is not None:
            attachment.undo()


# ------------------------------------------------------------------ exporters for entry points
def _output_dir() -> Path:
    return Path(os.environ.get(_OUTPUT_DIR_ENV, "").strip() or _DEFAULT_OUTPUT_DIR)


class AuditSpanFileSpanExporter(OtlpJsonFileSpanExporter):
    """``OTEL_TRACES_EXPORTER=auditspan_file``: spans in ``$AUDITSPAN_OUTPUT_DIR/traces.jsonl``.

    For the SDK configurator of ``opentelemetry-distro``, which builds
    exporters from entry points with no arguments.
    """

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        super().__init__(path if path is not None else _output_dir() / "traces.jsonl")


class AuditSpanFileLogExporter(OtlpJsonFileLogExporter):
    """``OTEL_LOGS_EXPORTER=auditspan_file``: log records in ``$AUDITSPAN_OUTPUT_DIR/logs.jsonl``."""

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        super().__init__(path if path is not None else _output_dir() / "logs.jsonl")

"""``AuditSpanHandle``: what ``configure()`` returns, and the one exit hook that shuts handles down.

Every handle the application did not shut down is shut down at interpreter
exit by one ``atexit`` hook (``on_exit``, registered by the first
``configure()``), the newest handle first. ``keep_until_exit`` holds a handle
only until its ``shutdown()``, so a shut-down handle is not kept alive for the
rest of the process. The providers ``configure()`` makes register no exit
handler of their own: the handle shuts them down after its collector has ended
the open turns, so those spans still have a pipeline to go to.
"""

from __future__ import annotations

import atexit
import logging
import weakref
from dataclasses import dataclass, field
from typing import Any

from .._bounded import run_bounded
from .._fork import fork_safe_lock
from ..collector import SpanCollector
from ..emitter import AuditEmitter
from ..exporters._counting import SpanExportStats

__all__ = ["SHUT_DOWN", "AuditSpanHandle", "keep_until_exit", "on_exit"]

_logger = logging.getLogger("auditspan.configuration")

#: Providers a handle of ``configure()`` shut down: a later ``configure()`` never reuses them.
SHUT_DOWN: weakref.WeakSet[Any] = weakref.WeakSet()

#: Handles not shut down yet, oldest first (by id: a handle is a dataclass, not hashable).
_live: dict[int, AuditSpanHandle] = {}
_live_lock = fork_safe_lock()
_hooked = False


@dataclass
class AuditSpanHandle:
    """What ``configure()`` returns: the collector, emitters wired to it, and shutdown.

    Attributes:
        collector: the ``SpanCollector`` every emitter of this handle writes to.
        tracer_provider: the provider spans go to (created or reused).
        logger_provider: the provider log records go to, when log events are on.
        destinations: where things go, in words (for people and the demo).
        span_stats: spans exported / failed by auditspan's own exporter.
        ingest: the ``AuditSpanProcessor`` added to the provider (``ingest_spans``), or None
            (off, no audit log, or the provider had one already).
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
    ingest: Any = None

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
        _live.pop(id(self), None)
        if self.ingest is not None:  # first: a provider auditspan reused keeps it, closed
            self.ingest.shutdown()
        self.collector.shutdown()
        for provider in self._owned:
            SHUT_DOWN.add(provider)
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


def keep_until_exit(handle: AuditSpanHandle) -> None:
    """Shut ``handle`` down at interpreter exit unless it was shut down before (see the module doc)."""
    global _hooked
    with _live_lock:
        _live[id(handle)] = handle
        if not _hooked:
            atexit.register(on_exit)
            _hooked = True


def on_exit() -> None:
    """The exit hook: shut down every handle still live, the newest first (as separate hooks would)."""
    with _live_lock:
        handles = list(_live.values())
    for handle in reversed(handles):
        try:
            handle.shutdown()
        except Exception:  # one handle's failure must not keep the others from flushing
            _logger.exception("auditspan: shutdown at exit failed")


def _count(n: int, noun: str) -> str:
    """``1 span``, ``2 spans``."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"

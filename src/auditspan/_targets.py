"""Where audit events go: the one lookup from what a user passes to the emitter of a session.

``auditspan.hooks.Audit`` and the OpenAI Agents adapter both take a *target*:
the handle of ``auditspan.configure()``, a collector (``SpanCollector``,
``CompositeCollector``, anything with ``emit`` and ``flush``), an emitter
(``AuditEmitter``, or the seed system's), or None for the process collector.
Both turn it into emitters here, so a target means the same thing to each.
"""

from __future__ import annotations

from typing import Any

from .emitter import AuditEmitter

__all__ = ["collector_of", "emitter_for"]


def emitter_for(target: Any, session_id: str | None) -> Any:
    """The emitter that stamps ``session_id`` on events and hands them to ``target``.

    An emitter is returned as it is (it keeps its own session); the handle of
    ``configure()`` makes one (``handle.emitter(session_id)``); a collector is
    wrapped in a new ``AuditEmitter``; None means the process collector
    (``auditspan.instrumentation.process_collector()``, made on first use).

    Raises:
        TypeError: ``target`` is none of these (it has no ``emit``).
    """
    if target is None:
        return AuditEmitter(_process_collector(), session_id=session_id)
    if hasattr(target, "emit_tool_call_attempt"):  # an emitter already
        return target
    make = getattr(target, "emitter", None)
    if callable(make) and hasattr(target, "collector"):  # the handle of configure()
        return make(session_id)
    if hasattr(target, "emit"):
        return AuditEmitter(target, session_id=session_id)
    raise TypeError(
        f"Audit target must be an AuditSpanHandle, a collector or an emitter, not {type(target).__name__}"
    )


def collector_of(target: Any) -> Any:
    """What the emitters of ``target`` write to, to flush it: an emitter or a collector is its own.

    None means the process collector, as in ``emitter_for``.
    """
    if target is None:
        return _process_collector()
    if hasattr(target, "emit_tool_call_attempt"):  # an emitter: flushing it flushes its collector
        return target
    if callable(getattr(target, "emitter", None)) and hasattr(target, "collector"):  # a configure() handle
        return target.collector
    return target


def _process_collector() -> Any:
    # Imported here, not at the top: ``auditspan.instrumentation`` loads opentelemetry-instrumentation,
    # which would add about half to the time ``import auditspan`` takes, for the None target only
    # (not a cycle).
    from .instrumentation import process_collector

    return process_collector()

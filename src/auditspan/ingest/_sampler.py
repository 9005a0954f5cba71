"""``AuditSampler``: a sampler that drops no agent or tool call from the processors' sight.

A span the sampler drops (``Decision.DROP``) is a ``NonRecordingSpan``: it reaches no span
processor, so ``AuditSpanProcessor`` would never see that call and its audit records would
depend on sampling. ``AuditSampler(base)`` asks ``base`` and keeps its answer, except that
a DROP becomes RECORD_ONLY for

* a span it recognises at its start as an agent, tool or guardrail span (from the name
  and attributes the instrumentation gives ``start_span``: the GenAI operation name, MCP's
  method, OpenInference's or OpenLLMetry's kind), and
* a span whose parent is recording but not sampled -- the spans under such an agent
  span, so that a tool call deeper down still finds its turn.

auditspan's own spans keep ``base``'s answer: ``SpanCollector`` writes their records
whatever is sampled.

RECORD_ONLY spans go through every processor's ``on_start`` / ``on_end`` but are not
sampled, so exporters (the batch processor exports only sampled spans) never send them:
the backend sees what ``base`` chose, the audit log sees every call. They cost what a
recorded span costs in the process, not what an exported one costs.

``record_all=True`` makes every dropped span RECORD_ONLY: for instrumentations that name a
span's kind only at its end (OpenInference's LangChain instrumentor), which no sampler
can recognise at the start.

Example::

    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased

    provider = TracerProvider(sampler=AuditSampler(ParentBased(TraceIdRatioBased(0.01))))
"""

from __future__ import annotations

from collections.abc import Sequence

from opentelemetry.context import Context
from opentelemetry.sdk.trace.sampling import Decision, Sampler, SamplingResult
from opentelemetry.trace import Link, SpanKind, get_current_span
from opentelemetry.trace.span import TraceState
from opentelemetry.util.types import Attributes

from .. import attributes as attr
from ._conventions import recognize

__all__ = ["AuditSampler"]

#: auditspan's own spans carry one of these from their start: ``SpanCollector`` writes their records
#: whatever is sampled, so they keep the base sampler's answer (and count as unsampled, as before).
_OWN_KEYS = frozenset({attr.TURN_ID, attr.OPERATION_TYPE})


class AuditSampler(Sampler):
    """Wrap ``base``: what it drops, agent and tool spans keep as RECORD_ONLY (see the module docstring).

    Thread-safe and stateless; never raises (on an internal error, ``base``'s answer stands).
    """

    def __init__(self, base: Sampler, *, record_all: bool = False) -> None:
        self.base = base
        self.record_all = record_all

    def should_sample(
        self,
        parent_context: Context | None,
        trace_id: int,
        name: str,
        kind: SpanKind | None = None,
        attributes: Attributes = None,
        links: Sequence[Link] | None = None,
        trace_state: TraceState | None = None,
    ) -> SamplingResult:
        result = self.base.should_sample(parent_context, trace_id, name, kind, attributes, links, trace_state)
        if result.decision is not Decision.DROP:
            return result
        try:
            if attributes and not _OWN_KEYS.isdisjoint(attributes):
                return result
            if (
                self.record_all
                or _under_record_only(parent_context)
                or recognize(name, attributes) is not None
            ):
                return SamplingResult(Decision.RECORD_ONLY, attributes, result.trace_state)
        except Exception:
            pass
        return result

    def get_description(self) -> str:
        return f"AuditSampler{{{self.base.get_description()}}}"


def _under_record_only(parent_context: Context | None) -> bool:
    parent = get_current_span(parent_context)
    return parent.is_recording() and not parent.get_span_context().trace_flags.sampled

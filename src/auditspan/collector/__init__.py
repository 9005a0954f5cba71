"""``SpanCollector``: the audit event stream becomes traces and canonical records.

An audit collector in the seed system's sense (``emit(event)``, ``flush()``,
plus ``shutdown()``): it plugs into an ``AuditEmitter`` (this package's or the
seed system's) or a ``CompositeCollector``, and accepts this package's events,
the seed system's event objects (anything with ``to_dict()``) and plain dicts::

    from opentelemetry.sdk.trace import TracerProvider
    from auditspan import AuditEmitter, SpanCollector

    collector = SpanCollector(tracer_provider=TracerProvider(), audit_log="audit.jsonl")
    audit = AuditEmitter(collector, session_id="sess-01")

How the stream maps onto spans (the README has the full table):

* ``turn_start`` .. ``turn_end`` is a span ``invoke_agent {agent}``; it is a
  child of the OTel span current at ``turn_start`` if there is one, else a root.
* Each tool call is a child span ``execute_tool {tool}`` of its turn. The
  events that govern a call arrive *before* its attempt (loop check, policy
  decision, argument hook): they are held as the call's pending span events,
  and the span starts at the first of them once the attempt arrives -- with
  its semantic type, decision and arguments known at start, for samplers. A
  call refused by policy or blocked by the loop detector never gets an
  attempt: its span is made at once, status ERROR, ``auditspan.tool.outcome``
  ``denied`` / ``blocked``.
* Completion ends the span at the event's time; a failure also sets status
  ERROR and ``error.type``. The next attempt of a failed tool in the same turn
  is a retry: ``auditspan.tool.attempt`` counts up and the span links to the
  failed attempt.
* Policy, sandbox, loop, hook, error and unknown events are span events
  ``audit.<event_type>`` (and/or log records with that ``event_name``).
* Times come from the events' own timestamps.

Matching without call ids: a completion, a sandbox decision or a result hook
belongs to the open call of that tool in that turn that was attempted on the
same thread, else to the oldest (``metadata["tool_call_id"]`` matches exactly
when the runtime provides it). Events with ``turn_id=None`` go to the most
recent open turn of the same session and agent; with none open, a tool call
becomes a child of the current OTel span or a root span of its own. A turn id
never started opens a *synthetic* turn (``auditspan.turn.synthetic``).

State is bounded, whatever the event stream (see ``SpanCollector`` for each
structure's bound and ``state_sizes()`` to watch them): at most
``max_open_turns`` turns, the homes of events without a turn included (the
least recently active is ended, ``auditspan.turn.incomplete="evicted"``),
``max_calls_per_turn`` unfinished calls per turn and ``max_open_calls`` in all
(the oldest is ended, ``auditspan.tool.incomplete="evicted"``), and 10,000
remembered failed and refused calls each. Evicting state may end a span early;
it never costs an audit record: every event still yields its record. Each
eviction is counted in ``stats`` and each episode of them logged once. Turns
idle for ``stale_turn_after_s`` end on the next ``flush()`` or turn start;
``shutdown()`` ends all of them.

Nothing raises into the agent: an internal failure is counted in
``stats.internal_errors``, logged once, and the event's record is still
written.

The package is a pipeline, one private module a stage (``emit`` reads it top to bottom):

* ``_normalise``: any input becomes fields of the record schema's types, with
  the capture policy applied by one rule (the field tables: ``_fields``);
* ``_state``: the turn and tool-call state machine (open, match, hold, evict,
  stale), plain Python without OpenTelemetry;
* ``_spans``: the span writer (tracer, chosen span ids, start, events, end),
  with the attribute mappings of ``_attributes`` (pure functions);
* ``_records`` and ``_writer``: canonical records built, then written to the
  audit log and as log records;
* ``_facade``: ``SpanCollector``, which owns the lock, the stats and the
  lifecycle (emit, flush, shutdown, fork).
"""

from __future__ import annotations

from ._facade import DEFAULT_ATTRIBUTE_LENGTH as DEFAULT_ATTRIBUTE_LENGTH
from ._facade import EVENTS_AS, CollectorStats, SpanCollector
from ._state import MAX_REMEMBERED_CALLS as MAX_REMEMBERED_CALLS

__all__ = ["EVENTS_AS", "CollectorStats", "SpanCollector"]

"""Adapters that turn other agent frameworks' own signals into auditspan audit events.

* ``auditspan.integrations.openai_agents`` -- the OpenAI Agents SDK, through its
  tracing-processor interface (needs the ``openai-agents`` package).

Each adapter only emits audit events through an ``AuditEmitter``; spans and
audit records come from the ``SpanCollector`` as for any other runtime.
"""

from __future__ import annotations

__all__: list[str] = []

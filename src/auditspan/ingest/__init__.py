"""Ingest: the agent and tool spans of any instrumentation, turned into audit records.

``AuditSpanProcessor`` is a span processor that recognises agent, tool and guardrail
spans of the GenAI conventions, MCP, OpenInference and OpenLLMetry and writes their
canonical records (``_processor``); ``AuditSampler`` keeps those spans visible to
processors whatever the sampler drops (``_sampler``). What each dialect says, and how it
is read, are pure functions (``_conventions``): ``recognize``, ``tool_facts``,
``agent_facts``, ``outcome``, ``guardrail_verdict``.
"""

from ._conventions import (
    AgentFacts,
    Outcome,
    Recognized,
    ToolFacts,
    agent_facts,
    guardrail_verdict,
    outcome,
    recognize,
    tool_facts,
)
from ._processor import AuditSpanProcessor, IngestStats
from ._sampler import AuditSampler

__all__ = [
    "AgentFacts",
    "AuditSampler",
    "AuditSpanProcessor",
    "IngestStats",
    "Outcome",
    "Recognized",
    "ToolFacts",
    "agent_facts",
    "guardrail_verdict",
    "outcome",
    "recognize",
    "tool_facts",
]

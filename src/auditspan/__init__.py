"""auditspan: AI-agent audit events as OpenTelemetry traces, beside a canonical audit log.

The pipeline, one module or package a stage, in the order an event goes through::

    events          the audit event model (seed-compatible dataclasses, parser, event tags)
    emitter         AuditEmitter: one emit_* method per event type
    semantic_types  the operation types of seed 004, categories, risk levels
    classification  semantic operation types of tool calls (DATABASE_READ, ...)
    redaction       the capture policy: which fields are content, tags or scrubbed; secrets out
    rules           behavioural sequence rules (the PII-exfiltration rule built in)
    governance      policy decisions, their order, the governance envelope
    collector       SpanCollector: events -> turn/call state -> spans, span events, log records, records
    ingest          AuditSpanProcessor: other instrumentations' agent and tool spans -> records
    records         the canonical audit record and its JSON Schema
    audit_log       the canonical audit log (JSON lines, hash chain, signing, verify)
    exporters       the OTLP/JSON-lines files; the wrappers of auditspan's export pipeline
    configuration   configure(): settings table -> providers, OTLP exporters, audit log
    hooks           Audit: turns and tool calls of code without audit events
    integrations    adapters of runtimes (the OpenAI Agents SDK)
    cli             the ``auditspan`` command (demo, replay, show, validate, verify)

Quick start::

    import auditspan

    telemetry = auditspan.configure(service_name="my-agent", audit_log="audit.jsonl")
    audit = telemetry.emitter(session_id="sess-01")
    turn = audit.emit_turn_start(agent_id="planner", prompt="Find flights to Lisbon")
    audit.emit_tool_call_attempt("search_flights", args="{'to': 'LIS'}", turn_id=turn)
    audit.emit_tool_call_complete("search_flights", duration_ms=812.0, result="3 flights", turn_id=turn)
    audit.emit_turn_end(agent_id="planner", turn_id=turn, content="Found 3.", fc_count=1)
    telemetry.shutdown()
"""

from __future__ import annotations

from ._ids import DeterministicIds, RandomIds
from ._version import __version__
from .audit_log import AuditLogExporter, AuditLogExportResult, AuditLogStats, JsonLinesAuditLog
from .classification import Classification, ClassificationRule, Classifier
from .collector import CollectorStats, SpanCollector
from .configuration import AuditSpanHandle, ConfigurationError, configure
from .context import ContextExecutor
from .emitter import AuditEmitter, CompositeCollector, new_turn_id
from .events import (
    AuditEvent,
    ErrorEvent,
    GenericAuditEvent,
    HookMutationEvent,
    SandboxDecisionEvent,
    ToolCallAttemptEvent,
    ToolCallCompleteEvent,
    ToolCallFailureEvent,
    ToolLoopBlockEvent,
    ToolLoopWarningEvent,
    ToolPolicyDecisionEvent,
    TurnEndEvent,
    TurnStartEvent,
    parse_event,
    parse_timestamp,
)
from .governance import normalize_decision
from .hooks import Audit, ToolCallDenied, ToolLoopBlocked
from .ingest import AuditSpanProcessor
from .policy import policy_input
from .records import build_record, encode_record, record_schema
from .redaction import CapturePolicy, Redactor
from .rules import PII_EXFILTRATION_RULE, BehaviourRule, RuleEngine, RuleMatch, load_rules
from .semantic_types import OperationType, parse_operation_type

__all__ = [
    "PII_EXFILTRATION_RULE",
    "Audit",
    "AuditEmitter",
    "AuditEvent",
    "AuditLogExportResult",
    "AuditLogExporter",
    "AuditLogStats",
    "AuditSpanHandle",
    "AuditSpanProcessor",
    "BehaviourRule",
    "CapturePolicy",
    "Classification",
    "ClassificationRule",
    "Classifier",
    "CollectorStats",
    "CompositeCollector",
    "ConfigurationError",
    "ContextExecutor",
    "DeterministicIds",
    "ErrorEvent",
    "GenericAuditEvent",
    "HookMutationEvent",
    "JsonLinesAuditLog",
    "OperationType",
    "RandomIds",
    "Redactor",
    "RuleEngine",
    "RuleMatch",
    "SandboxDecisionEvent",
    "SpanCollector",
    "ToolCallAttemptEvent",
    "ToolCallCompleteEvent",
    "ToolCallDenied",
    "ToolCallFailureEvent",
    "ToolLoopBlockEvent",
    "ToolLoopBlocked",
    "ToolLoopWarningEvent",
    "ToolPolicyDecisionEvent",
    "TurnEndEvent",
    "TurnStartEvent",
    "__version__",
    "build_record",
    "configure",
    "encode_record",
    "load_rules",
    "new_turn_id",
    "normalize_decision",
    "parse_event",
    "parse_operation_type",
    "parse_timestamp",
    "policy_input",
    "record_schema",
]

"""auditspan: AI-agent audit events as OpenTelemetry traces, beside a canonical audit log.

The pipeline, one module a stage::

    events          the audit event model (seed-compatible dataclasses, parser)
    emitter         AuditEmitter: one emit_* method per event type
    semantic_types  the operation types of seed 004, categories, risk levels
    classification  semantic operation types of tool calls (DATABASE_READ, ...)
    governance      policy decisions, their order, the governance envelope
    redaction       the capture policy: secrets out of previews, arguments, metadata
    rules           behavioural sequence rules (the PII-exfiltration rule built in)
    collector       SpanCollector: events -> spans, span events, log records, records
    records         the canonical audit record and its JSON Schema
    audit_log       exporters of the canonical audit log (JSON lines)
    configuration   configure(): providers, OTLP exporters, audit log, from OTEL_* settings
    ingest          AuditSpanProcessor: other instrumentations' agent/tool spans -> records

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

__version__ = "0.1.0"

from ._ids import DeterministicIds, RandomIds
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

"""Every attribute, span-event and log-event name that ``auditspan`` writes.

One place for the names, so that the README's mapping table, the collector,
the tests and the collector configurations cannot drift apart.

Two families:

* ``gen_ai.*`` -- the OpenTelemetry GenAI semantic conventions for agents and
  tools (``invoke_agent`` / ``execute_tool`` spans). Defined here as plain
  strings because the maintained Python constants moved between packages.
* ``auditspan.*`` -- this package's own prefix for the audit facts that have no
  convention yet: seed-event fields, decisions, outcomes, semantic types.
"""

from __future__ import annotations

from typing import Final

#: Instrumentation scope name for the tracer, the logger and the meter.
INSTRUMENTATION_SCOPE: Final = "auditspan"

# --- GenAI semantic conventions -------------------------------------------
GEN_AI_OPERATION_NAME: Final = "gen_ai.operation.name"
GEN_AI_AGENT_ID: Final = "gen_ai.agent.id"
GEN_AI_AGENT_NAME: Final = "gen_ai.agent.name"
GEN_AI_CONVERSATION_ID: Final = "gen_ai.conversation.id"
GEN_AI_PROVIDER_NAME: Final = "gen_ai.provider.name"
GEN_AI_TOOL_NAME: Final = "gen_ai.tool.name"
GEN_AI_TOOL_CALL_ID: Final = "gen_ai.tool.call.id"
GEN_AI_TOOL_TYPE: Final = "gen_ai.tool.type"
ERROR_TYPE: Final = "error.type"
#: Content (opt-in in the conventions; set under the capture policy, like the previews).
GEN_AI_TOOL_CALL_ARGUMENTS: Final = "gen_ai.tool.call.arguments"
GEN_AI_TOOL_CALL_RESULT: Final = "gen_ai.tool.call.result"
#: A turn's prompt and reply as the conventions' message JSON: ``[{"role": ..., "parts": [...]}]``.
GEN_AI_INPUT_MESSAGES: Final = "gen_ai.input.messages"
GEN_AI_OUTPUT_MESSAGES: Final = "gen_ai.output.messages"
#: OpenInference's input and output (Phoenix's input/output columns read these; same content).
INPUT_VALUE: Final = "input.value"
OUTPUT_VALUE: Final = "output.value"

OPERATION_INVOKE_AGENT: Final = "invoke_agent"
OPERATION_EXECUTE_TOOL: Final = "execute_tool"
TOOL_TYPE_FUNCTION: Final = "function"
#: ``error.type`` value when no low-cardinality class name is known.
ERROR_TYPE_OTHER: Final = "_OTHER"

# --- auditspan: the prefix every own attribute carries ----------------------
PREFIX: Final = "auditspan."

# Turn span
TURN_ID: Final = "auditspan.turn.id"
TURN_PROMPT_PREVIEW: Final = "auditspan.turn.prompt_preview"
TURN_CONTENT_PREVIEW: Final = "auditspan.turn.content_preview"
TURN_FUNCTION_CALLS_COUNT: Final = "auditspan.turn.function_calls_count"
#: Why a turn span ended without its ``turn_end`` event ("evicted", "stale", "shutdown").
TURN_INCOMPLETE: Final = "auditspan.turn.incomplete"
#: True when the turn span was opened for a turn id whose ``turn_start`` was never seen.
TURN_SYNTHETIC: Final = "auditspan.turn.synthetic"
SESSION_ID: Final = "auditspan.session.id"

# Tool-call span
TOOL_ARGUMENTS_PREVIEW: Final = "auditspan.tool.arguments_preview"
TOOL_RESULT_PREVIEW: Final = "auditspan.tool.result_preview"
TOOL_STATUS: Final = "auditspan.tool.status"
TOOL_DURATION_MS: Final = "auditspan.tool.duration_ms"
#: 1 for the first attempt of a call, 2 for its first retry, ...
TOOL_ATTEMPT: Final = "auditspan.tool.attempt"
#: One of the ``OUTCOME_*`` values below: what happened to the call, at a glance.
TOOL_OUTCOME: Final = "auditspan.tool.outcome"
TOOL_ERROR_MESSAGE: Final = "auditspan.tool.error_message"
#: Why a tool span ended without its completion or failure, when not with its turn ("evicted").
TOOL_INCOMPLETE: Final = "auditspan.tool.incomplete"
POLICY_DECISION: Final = "auditspan.policy.decision"
POLICY_SOURCE: Final = "auditspan.policy.source"
SANDBOX_BACKEND: Final = "auditspan.sandbox.backend"
SANDBOX_CONTEXT: Final = "auditspan.sandbox.context"
LOOP_STATUS: Final = "auditspan.loop.status"
#: Semantic operation type of the call (seed 004: ``DATABASE_READ``, ...).
OPERATION_TYPE: Final = "auditspan.operation.type"
OPERATION_CUSTOM_TYPE: Final = "auditspan.operation.custom_type"
OPERATION_RISK: Final = "auditspan.operation.risk"
OPERATION_CATEGORY: Final = "auditspan.operation.category"
OPERATION_TARGET: Final = "auditspan.operation.target"

#: Set on a tool span whose call completed a behavioural rule: the rule's action and name.
RULE_ACTION: Final = "auditspan.rule.action"
RULE_NAME: Final = "auditspan.rule.name"

OUTCOME_SUCCESS: Final = "success"
OUTCOME_FAILURE: Final = "failure"
OUTCOME_DENIED: Final = "denied"
OUTCOME_BLOCKED: Final = "blocked"
#: Governing events (policy allow, loop check) arrived but no attempt followed.
OUTCOME_NOT_ATTEMPTED: Final = "not_attempted"
#: The attempt was seen but neither completion nor failure before the turn ended.
OUTCOME_INCOMPLETE: Final = "incomplete"

# error.type values the collector sets itself (low cardinality)
ERROR_TYPE_DENIED: Final = "ToolCallDenied"
ERROR_TYPE_BLOCKED: Final = "ToolLoopBlocked"
ERROR_TYPE_TOOL_INCOMPLETE: Final = "ToolCallIncomplete"
ERROR_TYPE_TURN_INCOMPLETE: Final = "TurnIncomplete"

# --- span events and log events ------------------------------------------------
#: Span events and log records are named ``audit.<event_type>``.
EVENT_NAME_PREFIX: Final = "audit."
#: The event type of the records (and span events) a behavioural-rule match writes.
EVENT_TYPE_RULE_MATCH: Final = "behavior_rule_match"
#: Every span event / log record carries the record's id and severity ...
EVENT_ID: Final = "auditspan.event_id"
EVENT_SEVERITY: Final = "auditspan.severity"
EVENT_TYPE: Final = "auditspan.event_type"
#: ... its metadata as one JSON string (dict-valued attributes render poorly in UIs) ...
EVENT_METADATA: Final = "auditspan.metadata"
#: ... and each seed field ``f`` as ``auditspan.<f>`` (``auditspan.action``, ...).
EVENT_FIELD_PREFIX: Final = PREFIX

# --- the audit log's checkpoints, witnessed in the trace pipeline -------------------
#: The span each checkpoint of the audit log's hash chain is also sent as (a root span of its own).
CHECKPOINT_SPAN_NAME: Final = "auditspan.checkpoint"
CHECKPOINT_CHAIN: Final = "auditspan.checkpoint.chain"
CHECKPOINT_FIRST_SEQ: Final = "auditspan.checkpoint.first_seq"
CHECKPOINT_LAST_SEQ: Final = "auditspan.checkpoint.last_seq"
CHECKPOINT_HEAD: Final = "auditspan.checkpoint.head"
CHECKPOINT_REASON: Final = "auditspan.checkpoint.reason"
CHECKPOINT_TIMESTAMP: Final = "auditspan.checkpoint.timestamp"
CHECKPOINT_KEY_ID: Final = "auditspan.checkpoint.key_id"
CHECKPOINT_SIGNATURE: Final = "auditspan.checkpoint.signature"
#: The audit log's file name (no folder): which log the checkpoint is of.
CHECKPOINT_LOG: Final = "auditspan.checkpoint.log"

# --- read from other instrumentations' spans (``auditspan.ingest``) ------------------
# The GenAI conventions' names above, plus the older names still in use and the other
# dialects' names: auditspan reads these, it never writes them.
GEN_AI_SYSTEM: Final = "gen_ai.system"
GEN_AI_AGENT_CALL_ID: Final = "gen_ai.agent.call.id"
GEN_AI_PROMPT: Final = "gen_ai.prompt"
GEN_AI_COMPLETION: Final = "gen_ai.completion"
#: Pydantic AI's instrumentation format 2 (before the GenAI names): agent name, tool content.
LEGACY_AGENT_NAME: Final = "agent_name"
LEGACY_TOOL_ARGUMENTS: Final = "tool_arguments"
LEGACY_TOOL_RESPONSE: Final = "tool_response"
PYDANTIC_AI_FINAL_RESULT: Final = "final_result"
PYDANTIC_AI_ALL_MESSAGES: Final = "pydantic_ai.all_messages"
PYDANTIC_AI_NEW_MESSAGE_INDEX: Final = "pydantic_ai.new_message_index"
#: Pydantic AI: the control-flow exception a tool raised instead of a result (ApprovalRequired, CallDeferred).
PYDANTIC_AI_DEFERRAL_NAME: Final = "pydantic_ai.tool.deferral.name"
PYDANTIC_AI_FAILURE_STAGE: Final = "pydantic_ai.tool.failure_stage"
PYDANTIC_AI_RETRY_ATTEMPT: Final = "pydantic_ai.tool.retry.attempt"
#: MCP (Python SDK 2.x): every request span; ``tools/call`` is a tool call.
MCP_METHOD_NAME: Final = "mcp.method.name"
MCP_METHOD_TOOLS_CALL: Final = "tools/call"
JSONRPC_REQUEST_ID: Final = "jsonrpc.request.id"
#: The MCP server's ``error.type`` for a result with ``isError`` set.
MCP_TOOL_ERROR: Final = "tool_error"
#: Google ADK's tool content.
ADK_TOOL_CALL_ARGS: Final = "gcp.vertex.agent.tool_call_args"
ADK_TOOL_RESPONSE: Final = "gcp.vertex.agent.tool_response"
#: OpenInference.
OPENINFERENCE_SPAN_KIND: Final = "openinference.span.kind"
OPENINFERENCE_TOOL_NAME: Final = "tool.name"
OPENINFERENCE_TOOL_CALL_ID: Final = "tool_call.id"
OPENINFERENCE_AGENT_NAME: Final = "agent.name"
OPENINFERENCE_SESSION_ID: Final = "session.id"
#: OpenLLMetry (Traceloop).
TRACELOOP_SPAN_KIND: Final = "traceloop.span.kind"
TRACELOOP_ENTITY_NAME: Final = "traceloop.entity.name"
TRACELOOP_ENTITY_INPUT: Final = "traceloop.entity.input"
TRACELOOP_ENTITY_OUTPUT: Final = "traceloop.entity.output"
#: The exception span event of the OTel conventions.
EXCEPTION_EVENT: Final = "exception"
EXCEPTION_TYPE: Final = "exception.type"
EXCEPTION_MESSAGE: Final = "exception.message"
EXCEPTION_STACKTRACE: Final = "exception.stacktrace"

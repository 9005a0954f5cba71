"""What a span of another instrumentation says about agents and tools: pure functions, no tracer.

Four dialects name agent and tool spans, and each names their facts its own way:

=================  =====================================================  ==============================
dialect            agent / tool / guardrail span                           facts read
=================  =====================================================  ==============================
GenAI conventions  ``gen_ai.operation.name`` = ``invoke_agent`` /          ``gen_ai.agent.id`` / ``.name``,
                   ``execute_tool`` (Pydantic AI, ADK, Strands, AutoGen,    ``gen_ai.conversation.id``,
                   the ``opentelemetry-instrumentation-genai-*`` packages)  ``gen_ai.tool.name`` /
                                                                           ``.call.id`` / ``.call.arguments``
                                                                           / ``.call.result``, messages
MCP (Python SDK)   ``mcp.method.name`` = ``tools/call``: the server span    the tool from ``gen_ai.tool.name``
                   (``execute_tool`` too) and the client's request span     or the span name,
                   (``MCP send tools/call {tool}``)                        ``jsonrpc.request.id``,
                                                                           ``error.type=tool_error`` (isError)
OpenInference      ``openinference.span.kind`` = ``AGENT`` / ``TOOL`` /     ``tool.name``, ``tool_call.id``,
                   ``GUARDRAIL``                                            ``input.value``, ``output.value``
OpenLLMetry        ``traceloop.span.kind`` = ``agent`` / ``tool``          ``traceloop.entity.name`` /
                                                                           ``.input`` / ``.output``
=================  =====================================================  ==============================

Older names are read too: Pydantic AI's format 2 (``agent run`` with ``agent_name``,
``running tool`` with ``tool_arguments`` / ``tool_response``), ``gen_ai.system``,
``gen_ai.prompt`` / ``gen_ai.completion``, and Google ADK's
``gcp.vertex.agent.tool_call_args`` / ``tool_response``.

Every function here takes the span's name, attributes and (at its end) status and
events, and returns plain values, so each rule is tested without a tracer::

    >>> recognize("execute_tool get_weather", {"gen_ai.operation.name": "execute_tool"}).role
    'tool'
    >>> tool_facts("execute_tool get_weather", {"gen_ai.tool.name": "get_weather"}).tool_name
    'get_weather'

None of them raises on odd input: a value of the wrong type is read as text or ignored.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import orjson

from .. import attributes as attr
from ..governance import DECISION_PRIORITY, normalize_decision

__all__ = [
    "AGENT",
    "GUARDRAIL",
    "RECOGNITION_KEYS",
    "TOOL",
    "AgentFacts",
    "Outcome",
    "Recognized",
    "ToolFacts",
    "agent_facts",
    "guardrail_verdict",
    "is_own_scope",
    "outcome",
    "recognize",
    "text_of",
    "tool_facts",
]

AGENT: Final = "agent"
TOOL: Final = "tool"
GUARDRAIL: Final = "guardrail"

GEN_AI: Final = "gen_ai"
MCP: Final = "mcp"
OPENINFERENCE: Final = "openinference"
OPENLLMETRY: Final = "openllmetry"
#: Pydantic AI's instrumentation format 2: ``agent run`` / ``running tool`` without an operation name.
PYDANTIC_AI_V2: Final = "pydantic_ai_v2"

_OPENINFERENCE_ROLES: Final = {"AGENT": AGENT, "TOOL": TOOL, "GUARDRAIL": GUARDRAIL}
_TRACELOOP_ROLES: Final = {"agent": AGENT, "tool": TOOL}
_GEN_AI_ROLES: Final = {attr.OPERATION_INVOKE_AGENT: AGENT, attr.OPERATION_EXECUTE_TOOL: TOOL}
_MCP_CLIENT_PREFIX: Final = "MCP send "
#: Message JSON longer than this is not parsed for a prompt or reply (the attribute can hold a whole history).
_MAX_MESSAGES_JSON: Final = 1 << 20

#: Pydantic AI's deferrals: the tool asked for approval, or handed the call to someone else.
_DEFERRALS: Final = {"ApprovalRequired": "REQUIRE_APPROVAL", "CallDeferred": "DEFER"}


@dataclass(frozen=True, slots=True)
class Recognized:
    """A span recognised as an agent, tool or guardrail span.

    ``role`` is ``"agent"``, ``"tool"`` or ``"guardrail"``; ``convention`` the dialect
    that said so (``"gen_ai"``, ``"mcp"``, ``"openinference"``, ``"openllmetry"``,
    ``"pydantic_ai_v2"``). ``transport`` is True for an MCP client's request span: the
    call as it leaves for the server, not the execution.
    """

    role: str
    convention: str
    transport: bool = False


@dataclass(frozen=True, slots=True)
class ToolFacts:
    """What a tool span says about its call; ``None`` where it says nothing.

    ``agent_id`` / ``session_id``: what the tool span itself names (runtimes copy the agent
    and the conversation onto their tool spans), for a call with no agent span above it.
    """

    tool_name: str
    call_id: str | None
    arguments: str | None
    result: str | None
    agent_id: str | None = None
    session_id: str | None = None


@dataclass(frozen=True, slots=True)
class AgentFacts:
    """What an agent span says about its turn; ``None`` where it says nothing."""

    agent_id: str | None
    session_id: str | None
    prompt: str | None
    reply: str | None


@dataclass(frozen=True, slots=True)
class Outcome:
    """How an ended span went.

    ``failed`` with ``error_type`` and ``error_message`` when it failed; ``decision``
    (canonical, e.g. ``REQUIRE_APPROVAL``) and ``policy`` (who decided) when the span
    carries a refusal, deferral or approval request instead of a result.
    """

    failed: bool
    error_type: str
    error_message: str
    decision: str | None = None
    policy: str | None = None


_SUCCESS: Final = Outcome(False, "", "")


def is_own_scope(scope_name: object) -> bool:
    """True for auditspan's own instrumentation scopes (``auditspan``, ``auditspan.audit_log``).

    Their spans come from ``SpanCollector`` (which writes their records itself) or are the
    audit log's checkpoint witnesses: recording them again would write every record twice.
    """
    return isinstance(scope_name, str) and (
        scope_name == attr.INSTRUMENTATION_SCOPE or scope_name.startswith(attr.INSTRUMENTATION_SCOPE + ".")
    )


#: Attributes one of which every recognised span has: a span with none of them is no agent, tool
#: or guardrail span, which a set test tells without looking a single key up.
RECOGNITION_KEYS: Final = frozenset(
    {
        attr.OPENINFERENCE_SPAN_KIND,
        attr.GEN_AI_OPERATION_NAME,
        attr.MCP_METHOD_NAME,
        attr.TRACELOOP_SPAN_KIND,
        attr.GEN_AI_TOOL_NAME,
        attr.LEGACY_AGENT_NAME,
    }
)


def recognize(name: object, attributes: Mapping[str, Any] | None) -> Recognized | None:
    """The role of a span from its name and attributes, ``None`` for any other span.

    Usable at a span's start (what a sampler sees) and at its end. An explicit kind wins
    (OpenInference, then the GenAI operation name, then MCP's method, then OpenLLMetry);
    Pydantic AI's format-2 names come last. Only ``tools/call`` counts among MCP's methods.
    """
    if not attributes:
        return None
    try:
        kind = attributes.get(attr.OPENINFERENCE_SPAN_KIND)
        if type(kind) is str:
            role = _OPENINFERENCE_ROLES.get(kind.upper())
            if role is not None:
                return Recognized(role, OPENINFERENCE)
        operation = attributes.get(attr.GEN_AI_OPERATION_NAME)
        method = attributes.get(attr.MCP_METHOD_NAME)
        if type(operation) is str:
            role = _GEN_AI_ROLES.get(operation)
            if role is not None:
                return Recognized(role, MCP if method == attr.MCP_METHOD_TOOLS_CALL else GEN_AI)
        if method == attr.MCP_METHOD_TOOLS_CALL:
            # Without the operation name: the client's request span (the server's has both).
            return Recognized(TOOL, MCP, transport=True)
        kind = attributes.get(attr.TRACELOOP_SPAN_KIND)
        if type(kind) is str:
            role = _TRACELOOP_ROLES.get(kind.lower())
            if role is not None:
                return Recognized(role, OPENLLMETRY)
        if operation is None and type(name) is str:
            if name == "running tool" and attr.GEN_AI_TOOL_NAME in attributes:
                return Recognized(TOOL, PYDANTIC_AI_V2)
            if name == "agent run" and attr.LEGACY_AGENT_NAME in attributes:
                return Recognized(AGENT, PYDANTIC_AI_V2)
    except Exception:
        return None
    return None


def text_of(value: object) -> str | None:
    """An attribute value as text: a string as it is, a sequence as JSON, other values via ``str``."""
    if value is None:
        return None
    if type(value) is str:
        return value
    if isinstance(value, (bool, int, float)):
        return str(value)
    try:
        return orjson.dumps(list(value) if isinstance(value, Sequence) else value, default=str).decode()
    except Exception:
        try:
            return str(value)
        except Exception:
            return None


def _first(attributes: Mapping[str, Any], *names: str) -> str | None:
    for name in names:
        text = text_of(attributes.get(name))
        if text:
            return text
    return None


def _after(name: object, prefix: str) -> str | None:
    if type(name) is str and name.startswith(prefix) and len(name) > len(prefix):
        return name[len(prefix) :].strip() or None
    return None


def tool_facts(name: object, attributes: Mapping[str, Any]) -> ToolFacts:
    """The call a tool span records: tool name, call id, arguments and result as text.

    The tool name is the first of ``gen_ai.tool.name``, ``tool.name``,
    ``traceloop.entity.name``, the target in an MCP span name (``tools/call add``,
    ``MCP send tools/call add``), the rest of ``execute_tool {name}``, or the span name.
    """
    tool_name = _first(
        attributes, attr.GEN_AI_TOOL_NAME, attr.OPENINFERENCE_TOOL_NAME, attr.TRACELOOP_ENTITY_NAME
    )
    if tool_name is None:
        for prefix in (
            _MCP_CLIENT_PREFIX + attr.MCP_METHOD_TOOLS_CALL + " ",
            attr.MCP_METHOD_TOOLS_CALL + " ",
            attr.OPERATION_EXECUTE_TOOL + " ",
        ):
            tool_name = _after(name, prefix)
            if tool_name is not None:
                break
    if tool_name is None:
        tool_name = name if type(name) is str else (text_of(name) or "")
    return ToolFacts(
        tool_name=tool_name,
        call_id=_first(
            attributes, attr.GEN_AI_TOOL_CALL_ID, attr.OPENINFERENCE_TOOL_CALL_ID, attr.JSONRPC_REQUEST_ID
        ),
        arguments=_first(
            attributes,
            attr.GEN_AI_TOOL_CALL_ARGUMENTS,
            attr.LEGACY_TOOL_ARGUMENTS,
            attr.INPUT_VALUE,
            attr.TRACELOOP_ENTITY_INPUT,
            attr.ADK_TOOL_CALL_ARGS,
        ),
        result=_first(
            attributes,
            attr.GEN_AI_TOOL_CALL_RESULT,
            attr.LEGACY_TOOL_RESPONSE,
            attr.OUTPUT_VALUE,
            attr.TRACELOOP_ENTITY_OUTPUT,
            attr.ADK_TOOL_RESPONSE,
        ),
        agent_id=_first(
            attributes,
            attr.GEN_AI_AGENT_ID,
            attr.GEN_AI_AGENT_NAME,
            attr.LEGACY_AGENT_NAME,
            attr.OPENINFERENCE_AGENT_NAME,
        ),
        session_id=_first(attributes, attr.GEN_AI_CONVERSATION_ID, attr.OPENINFERENCE_SESSION_ID),
    )


def agent_facts(name: object, attributes: Mapping[str, Any]) -> AgentFacts:
    """The turn an agent span records: agent, session (only when the span has one), prompt, reply.

    The prompt is the last user message of ``gen_ai.input.messages`` (or of the messages
    Pydantic AI's run added, ``pydantic_ai.all_messages`` from ``pydantic_ai.new_message_index``),
    else ``input.value``, ``traceloop.entity.input`` or ``gen_ai.prompt``; the reply the
    last assistant message of ``gen_ai.output.messages``, else ``final_result``,
    ``output.value``, ``traceloop.entity.output`` or ``gen_ai.completion``.
    """
    agent_id = _first(
        attributes,
        attr.GEN_AI_AGENT_ID,
        attr.GEN_AI_AGENT_NAME,
        attr.LEGACY_AGENT_NAME,
        attr.OPENINFERENCE_AGENT_NAME,
        attr.TRACELOOP_ENTITY_NAME,
    )
    if agent_id is None:
        agent_id = _after(name, attr.OPERATION_INVOKE_AGENT + " ")
    if agent_id is None and type(name) is str and name:
        agent_id = name
    prompt = _message_text(attributes.get(attr.GEN_AI_INPUT_MESSAGES), "user", last=True)
    if prompt is None:
        index = attributes.get(attr.PYDANTIC_AI_NEW_MESSAGE_INDEX)
        start = index if type(index) is int and index > 0 else 0
        prompt = _message_text(attributes.get(attr.PYDANTIC_AI_ALL_MESSAGES), "user", last=False, start=start)
    if prompt is None:
        prompt = _first(attributes, attr.INPUT_VALUE, attr.TRACELOOP_ENTITY_INPUT, attr.GEN_AI_PROMPT)
    reply = _message_text(attributes.get(attr.GEN_AI_OUTPUT_MESSAGES), "assistant", last=True)
    if reply is None:
        reply = _first(
            attributes,
            attr.PYDANTIC_AI_FINAL_RESULT,
            attr.OUTPUT_VALUE,
            attr.TRACELOOP_ENTITY_OUTPUT,
            attr.GEN_AI_COMPLETION,
        )
    return AgentFacts(
        agent_id=agent_id,
        session_id=_first(attributes, attr.GEN_AI_CONVERSATION_ID, attr.OPENINFERENCE_SESSION_ID),
        prompt=prompt,
        reply=reply,
    )


def _message_text(raw: object, role: str, *, last: bool, start: int = 0) -> str | None:
    """The text parts of the first (or last) message of ``role`` in the conventions' message JSON."""
    if type(raw) is not str or not raw or len(raw) > _MAX_MESSAGES_JSON:
        return None
    try:
        messages = orjson.loads(raw)
    except Exception:
        return None
    if not isinstance(messages, list):
        return None
    candidates = messages[start:]
    for message in reversed(candidates) if last else candidates:
        if isinstance(message, dict) and message.get("role") == role:
            texts = [
                part["content"]
                for part in message.get("parts") or ()
                if isinstance(part, dict)
                and part.get("type") == "text"
                and isinstance(part.get("content"), str)
            ]
            if texts:
                return "\n".join(texts)
    return None


def outcome(
    attributes: Mapping[str, Any],
    *,
    is_error: bool,
    status_description: str | None,
    events: Sequence[Any] = (),
    convention: str | None = None,
) -> Outcome:
    """How an ended span went, from its attributes, status and ``exception`` events.

    * A Pydantic AI deferral (``pydantic_ai.tool.deferral.name``): ``ApprovalRequired`` is
      ``REQUIRE_APPROVAL``, ``CallDeferred`` is ``DEFER`` -- the call did not run to a
      result; the decision is Pydantic AI's (``policy`` ``pydantic_ai:<name>``).
    * MCP's ``isError`` (the server's ``error.type`` ``tool_error``): a failure, and the
      server's refusal: ``DENY`` by ``mcp:isError``.
    * Otherwise the span failed when its status is ERROR or it has an ``error.type``:
      ``error_type`` is ``error.type``, else the last exception event's ``exception.type``,
      else ``_OTHER``; ``error_message`` is that event's ``exception.message``, else the
      status description.
    """
    deferral = attributes.get(attr.PYDANTIC_AI_DEFERRAL_NAME)
    if type(deferral) is str and deferral:
        decision = _DEFERRALS.get(deferral) or normalize_decision(deferral)
        return Outcome(True, deferral, _exception(events)[1] or "", decision, f"pydantic_ai:{deferral}")
    error_type = text_of(attributes.get(attr.ERROR_TYPE)) or ""
    if not is_error and not error_type:
        return _SUCCESS
    event_type, event_message = _exception(events)
    message = event_message or (status_description if type(status_description) is str else "") or ""
    if convention == MCP and error_type == attr.MCP_TOOL_ERROR:
        return Outcome(True, error_type, message, "DENY", "mcp:isError")
    return Outcome(True, error_type or event_type or attr.ERROR_TYPE_OTHER, message)


def _exception(events: Sequence[Any]) -> tuple[str, str]:
    """``(exception.type, exception.message)`` of the last ``exception`` event, ``("", "")`` without one."""
    try:
        for event in reversed(events):
            if getattr(event, "name", None) == attr.EXCEPTION_EVENT:
                event_attributes = getattr(event, "attributes", None) or {}
                return (
                    text_of(event_attributes.get(attr.EXCEPTION_TYPE)) or "",
                    text_of(event_attributes.get(attr.EXCEPTION_MESSAGE)) or "",
                )
    except Exception:
        pass
    return "", ""


_VERDICT_KEYS: Final = ("decision", "action", "verdict", "result")
_TRIGGERED_KEYS: Final = ("triggered", "tripwire_triggered", "blocked", "flagged")


def guardrail_verdict(attributes: Mapping[str, Any], *, is_error: bool) -> str:
    """A guardrail span's verdict, canonical (``ALLOW``, ``DENY``, ``BLOCK``, ...).

    No convention names the verdict yet (proposals keep it apart from the action). So:
    ``output.value`` when it is a verdict word (``allow``, ``blocked``, ...) or a JSON
    object with ``decision`` / ``action`` / ``verdict`` / ``result``, or with a true
    ``triggered`` / ``tripwire_triggered`` / ``blocked`` / ``flagged`` (``DENY``; false:
    ``ALLOW``); else a span with status ERROR stopped the run (``BLOCK``); else ``ALLOW``.
    """
    output = attributes.get(attr.OUTPUT_VALUE)
    if type(output) is str and output:
        verdict = _verdict_from_text(output)
        if verdict is not None:
            return verdict
    return "BLOCK" if is_error else "ALLOW"


def _verdict_from_text(text: str) -> str | None:
    stripped = text.strip()
    if stripped.startswith("{") and len(stripped) <= _MAX_MESSAGES_JSON:
        try:
            data = orjson.loads(stripped)
        except Exception:
            data = None
        if isinstance(data, dict):
            for key in _VERDICT_KEYS:
                value = data.get(key)
                if isinstance(value, str):
                    found = _known_verdict(value)
                    if found is not None:
                        return found
            for key in _TRIGGERED_KEYS:
                value = data.get(key)
                if isinstance(value, bool):
                    return "DENY" if value else "ALLOW"
        return None
    return _known_verdict(stripped) if len(stripped) <= 32 else None


def _known_verdict(word: str) -> str | None:
    decision = normalize_decision(word)
    return decision if decision in DECISION_PRIORITY else None

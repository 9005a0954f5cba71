"""The turns and tool calls of an audit log as a tree for the terminal.

The log is fed through a ``SpanCollector`` (in-memory spans, deterministic
ids) so calls are reconstructed from the event order exactly as live tracing
does -- one source of truth for the mapping -- and the spans are rendered::

    session sess-01
    └── turn 0a1b2c3d4e5f  planner  "Email the newsletter to all cu..."  1.24 s
        ├── run_sql  DATABASE_READ  41.7 ms  success  ALLOW
        ├── send_email  EMAIL_SEND  denied  DENY by pii_exfiltration
        ├── fetch_rates  EXTERNAL_API_CALL  12.0 ms  failure  TimeoutError: upstream timed out
        └── fetch_rates  EXTERNAL_API_CALL  retry 2  8.0 ms  success

``render_tree(spans)`` takes SDK ``ReadableSpan`` objects or the span dicts of
``otlp_file.read_spans``; ``spans_of_logs(paths)`` gives the spans of logs.
Denials, blocks, failures and errors are red, warnings and unfinished calls
yellow, when ``color`` is on.
"""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from .. import attributes as attr
from .._ids import DeterministicIds
from ..collector import SpanCollector
from ..exporters.otlp_file import attribute_map
from ..redaction import Redactor
from ..rules import PII_EXFILTRATION_RULE, RuleEngine
from .replay import DEFAULT_MAX_LINE_BYTES, LineError, LogLine, ReplaySummary, replay_into

__all__ = [
    "SEVERITIES",
    "SHOW_BATCH_TURNS",
    "SHOW_MAX_PENDING_CALLS",
    "CallNode",
    "NoteNode",
    "ShowFilter",
    "ShowSummary",
    "TurnNode",
    "build_tree",
    "format_duration",
    "render_tree",
    "render_turns",
    "severity_rank",
    "show_logs",
    "spans_of_logs",
]

#: Severities from least to most severe (``--severity`` keeps this one and above).
SEVERITIES = ("debug", "info", "notice", "warning", "error", "critical")
_RANK = {name: i for i, name in enumerate(SEVERITIES)}
_RANK["warn"] = _RANK["warning"]
_REFUSED = (attr.OUTCOME_DENIED, attr.OUTCOME_BLOCKED)
_PROMPT_WIDTH = 48
_MESSAGE_WIDTH = 72
NO_SESSION = "(no session)"
_NOTHING = "(nothing to show)\n"
NO_TURN = "(no turn)"


def severity_rank(severity: str | None) -> int:
    """Position of ``severity`` in ``SEVERITIES`` (unknown -> that of ``info``)."""
    return _RANK.get((severity or "info").lower(), _RANK["info"])


# ---------------------------------------------------------------- span access
@dataclass
class _Event:
    name: str
    ts: int
    attributes: Mapping[str, Any]


@dataclass
class _Span:
    """The parts of a span the tree needs, from a ReadableSpan or an OTLP/JSON span dict."""

    name: str
    span_id: str
    parent_id: str | None
    start_ns: int
    end_ns: int
    attributes: Mapping[str, Any]
    error: bool
    status_message: str
    events: list[_Event]

    @classmethod
    def of(cls, span: ReadableSpan | Mapping[str, Any]) -> _Span:
        if isinstance(span, Mapping):
            status = span.get("status") or {}
            return cls(
                name=str(span.get("name", "")),
                span_id=str(span.get("spanId", "")),
                parent_id=str(span["parentSpanId"]) if span.get("parentSpanId") else None,
                start_ns=int(span.get("startTimeUnixNano", 0)),
                end_ns=int(span.get("endTimeUnixNano", 0)),
                attributes=span.get("attributeMap") or attribute_map(span.get("attributes", ())),
                error=status.get("code") in ("STATUS_CODE_ERROR", 2),
                status_message=str(status.get("message", "")),
                events=[
                    _Event(
                        str(e.get("name", "")),
                        int(e.get("timeUnixNano", 0)),
                        attribute_map(e.get("attributes", ())),
                    )
                    for e in span.get("events", ())
                ],
            )
        ctx = span.context
        return cls(
            name=span.name,
            span_id=f"{ctx.span_id:016x}" if ctx is not None else "",
            parent_id=f"{span.parent.span_id:016x}" if span.parent is not None else None,
            start_ns=span.start_time or 0,
            end_ns=span.end_time or 0,
            attributes=span.attributes or {},
            error=span.status.status_code is StatusCode.ERROR,
            status_message=span.status.description or "",
            events=[_Event(e.name, e.timestamp, e.attributes or {}) for e in span.events],
        )


# ------------------------------------------------------------------ the tree
@dataclass
class NoteNode:
    """An event of a turn that is not a tool call: an error, an unknown event type, ..."""

    event_type: str
    severity: str
    text: str
    ts: int


@dataclass
class CallNode:
    """One tool call attempt (one ``execute_tool`` span)."""

    tool: str
    operation_type: str | None
    start_ns: int
    end_ns: int
    outcome: str | None
    decision: str | None
    policy_source: str | None
    attempt: int
    error_type: str | None
    message: str
    sandbox: str | None
    hooks: list[str]
    severity: str
    span_id: str
    rule: str | None = None
    #: Where each rule match on the call came from, as text (one line each under the call).
    trigger_texts: list[str] = field(default_factory=list)

    @property
    def duration_ns(self) -> int:
        """How long the call took (0 for a call refused before it ran)."""
        return max(0, self.end_ns - self.start_ns)


@dataclass
class TurnNode:
    """One turn (one ``invoke_agent`` span), or the tool calls and events that had no turn."""

    session_id: str
    turn_id: str | None
    agent: str | None
    prompt: str
    start_ns: int
    end_ns: int
    incomplete: str | None
    synthetic: bool
    error: str | None
    calls: list[CallNode] = field(default_factory=list)
    notes: list[NoteNode] = field(default_factory=list)
    span_id: str | None = None

    @property
    def severity(self) -> str:
        """The most severe of the turn's own state, its calls and its notes."""
        ranks = [severity_rank(c.severity) for c in self.calls] + [
            severity_rank(n.severity) for n in self.notes
        ]
        if self.error or self.incomplete:
            ranks.append(severity_rank("error" if self.error else "warning"))
        return SEVERITIES[max(ranks, default=severity_rank("info"))]


@dataclass(frozen=True)
class ShowFilter:
    """Which turns and calls to show; ``None`` keeps everything.

    ``tool`` and ``operation_type`` are shell-style globs (``fetch_*``), case-insensitive;
    ``turn`` matches a turn id or its prefix; ``severity`` keeps calls and notes at that
    severity or above (a failed, denied or blocked call counts as ``error``).
    """

    session: str | None = None
    turn: str | None = None
    tool: str | None = None
    operation_type: str | None = None
    severity: str | None = None

    def keeps_turn(self, turn: TurnNode) -> bool:
        """Whether the turn itself passes the session and turn filters."""
        if self.session is not None and turn.session_id != self.session:
            return False
        return self.turn is None or (turn.turn_id or "").startswith(self.turn)

    def keeps_call(self, call: CallNode) -> bool:
        """Whether a call passes the tool, type and severity filters."""
        if self.tool is not None and not fnmatch.fnmatchcase(call.tool.lower(), self.tool.lower()):
            return False
        if self.operation_type is not None and not fnmatch.fnmatchcase(
            (call.operation_type or "").lower(), self.operation_type.lower()
        ):
            return False
        return self.severity is None or severity_rank(call.severity) >= severity_rank(self.severity)

    def keeps_note(self, note: NoteNode) -> bool:
        """Whether a turn-level event passes: the severity filter applies; tool and type filters hide it."""
        if self.tool is not None or self.operation_type is not None:
            return False
        return self.severity is None or severity_rank(note.severity) >= severity_rank(self.severity)

    @property
    def filters_calls(self) -> bool:
        """True when a call-level filter is set (turns left with no calls are then hidden)."""
        return self.tool is not None or self.operation_type is not None or self.severity is not None


def _event_severity(event: _Event) -> str:
    return str(event.attributes.get(attr.EVENT_SEVERITY) or "info")


def _event_type(event: _Event) -> str:
    name = event.name
    prefix = attr.EVENT_NAME_PREFIX
    return str(
        event.attributes.get(attr.EVENT_TYPE) or (name[len(prefix) :] if name.startswith(prefix) else name)
    )


def _call_node(span: _Span) -> CallNode:
    a = span.attributes
    outcome = _opt(a.get(attr.TOOL_OUTCOME))
    ranks = [severity_rank(_event_severity(e)) for e in span.events]
    if outcome in (attr.OUTCOME_FAILURE, *_REFUSED) or span.error:
        ranks.append(severity_rank("error"))
    elif (
        outcome in (attr.OUTCOME_INCOMPLETE, attr.OUTCOME_NOT_ATTEMPTED)
        or a.get(attr.LOOP_STATUS) == "warning"
    ):
        ranks.append(severity_rank("warning"))
    message = str(a.get(attr.TOOL_ERROR_MESSAGE) or "")
    if not message and span.error:
        message = span.status_message
    hooks = [
        f"{e.attributes.get(attr.EVENT_FIELD_PREFIX + 'hook_name', '?')}"
        f"->{e.attributes.get(attr.EVENT_FIELD_PREFIX + 'mutated_field', '?')}"
        for e in span.events
        if _event_type(e) == "hook_mutation"
    ]
    attempt = a.get(attr.TOOL_ATTEMPT, 1)
    turn_id = _opt(a.get(attr.TURN_ID))
    triggers = [
        _trigger_text(e.attributes, turn_id)
        for e in span.events
        if _event_type(e) == attr.EVENT_TYPE_RULE_MATCH
    ]
    return CallNode(
        tool=str(a.get(attr.GEN_AI_TOOL_NAME) or span.name.removeprefix(attr.OPERATION_EXECUTE_TOOL + " ")),
        operation_type=_opt(a.get(attr.OPERATION_TYPE)),
        start_ns=span.start_ns,
        end_ns=span.end_ns,
        outcome=outcome,
        decision=_opt(a.get(attr.POLICY_DECISION)),
        policy_source=_opt(a.get(attr.POLICY_SOURCE)),
        attempt=attempt if isinstance(attempt, int) else 1,
        error_type=_opt(a.get(attr.ERROR_TYPE)),
        message=message,
        sandbox=_opt(a.get(attr.SANDBOX_BACKEND) or a.get(attr.SANDBOX_CONTEXT)),
        hooks=hooks,
        severity=SEVERITIES[max(ranks, default=severity_rank("info"))],
        span_id=span.span_id,
        rule=f"{a[attr.RULE_NAME]} -> {a.get(attr.RULE_ACTION, '?')}" if a.get(attr.RULE_NAME) else None,
        trigger_texts=triggers,
    )


def _trigger_text(match: Mapping[str, Any], turn_id: str | None) -> str:
    """Where a rule match came from, e.g. ``trigger: run_sql DATABASE_READ customers.pii_emails
    41.7 ms before (record evt_…)``: the trigger's call, how long before, the record to look up."""

    def get(name: str) -> str:
        return str(match.get(attr.EVENT_FIELD_PREFIX + name) or "")

    what = " ".join(p for p in (get("trigger_tool_name"), get("trigger_type"), get("trigger_target")) if p)
    parts = [f"trigger: {what or '?'}"]
    elapsed = match.get(attr.EVENT_FIELD_PREFIX + "elapsed_s")
    if isinstance(elapsed, (int, float)) and not isinstance(elapsed, bool):
        parts.append(f"{format_duration(int(elapsed * 1e9))} before")
    trigger_turn = get("trigger_turn_id")
    if trigger_turn and trigger_turn != turn_id:
        parts.append(f"in an earlier turn ({trigger_turn})")
    if get("trigger_event_id"):
        parts.append(f"(record {get('trigger_event_id')})")
    return " ".join(parts)


def _note_of(event: _Event) -> NoteNode:
    a = event.attributes
    event_type = _event_type(event)
    if event_type == "error":
        error_type = a.get(attr.EVENT_FIELD_PREFIX + "error_type") or "error"
        text = f"{error_type}: {a.get(attr.EVENT_FIELD_PREFIX + 'error_message') or ''}"
        context = a.get(attr.EVENT_FIELD_PREFIX + "error_context")
        if context:
            text += f" ({context})"
    else:
        skip = {attr.EVENT_TYPE, attr.EVENT_ID, attr.EVENT_SEVERITY, attr.EVENT_METADATA}
        details = [f"{k.removeprefix(attr.EVENT_FIELD_PREFIX)}={v}" for k, v in a.items() if k not in skip]
        text = " ".join(details)
    return NoteNode(event_type, _event_severity(event), text.strip(), event.ts)


def _opt(value: Any) -> str | None:
    return str(value) if value not in (None, "") else None


def _turn_node(span: _Span) -> TurnNode:
    a = span.attributes
    incomplete = _opt(a.get(attr.TURN_INCOMPLETE))
    turn = TurnNode(
        session_id=str(a.get(attr.GEN_AI_CONVERSATION_ID) or NO_SESSION),
        turn_id=_opt(a.get(attr.TURN_ID)),
        agent=_opt(a.get(attr.GEN_AI_AGENT_NAME) or a.get(attr.GEN_AI_AGENT_ID)),
        prompt=str(a.get(attr.TURN_PROMPT_PREVIEW) or ""),
        start_ns=span.start_ns,
        end_ns=span.end_ns,
        incomplete=incomplete,
        synthetic=bool(a.get(attr.TURN_SYNTHETIC)),
        error=span.status_message if span.error and not incomplete else None,
        span_id=span.span_id,
    )
    turn.notes = [_note_of(e) for e in span.events if _event_type(e) != "turn_start"]
    return turn


def build_tree(spans: Iterable[ReadableSpan | Mapping[str, Any]]) -> list[TurnNode]:
    """Turns (with their calls and notes), ordered by session of first appearance, then start time."""
    views = [_Span.of(s) for s in spans]
    turns: dict[str, TurnNode] = {}
    loose: dict[str, TurnNode] = {}  # session -> calls and events that had no turn span
    for span in views:
        a = span.attributes
        if a.get(attr.GEN_AI_OPERATION_NAME) != attr.OPERATION_INVOKE_AGENT:
            continue
        turns[span.span_id] = _turn_node(span)

    def home(session: str, ts: int) -> TurnNode:
        node = loose.get(session)
        if node is None:
            node = TurnNode(session, None, None, "", ts, ts, None, False, None)
            loose[session] = node
        node.start_ns, node.end_ns = min(node.start_ns, ts), max(node.end_ns, ts)
        return node

    for span in views:
        a = span.attributes
        if a.get(attr.GEN_AI_OPERATION_NAME) == attr.OPERATION_INVOKE_AGENT:
            continue
        parent = turns.get(span.parent_id or "")
        if a.get(attr.GEN_AI_OPERATION_NAME) == attr.OPERATION_EXECUTE_TOOL:
            session = str(a.get(attr.GEN_AI_CONVERSATION_ID) or NO_SESSION)
            (parent or home(session, span.start_ns)).calls.append(_call_node(span))
        else:  # a lone event span: an event that had neither turn nor call
            node = parent or home(NO_SESSION, span.start_ns)
            node.notes.extend(_note_of(e) for e in span.events)

    return _in_show_order(list(turns.values()) + list(loose.values()))


def _in_show_order(every: list[TurnNode]) -> list[TurnNode]:
    """Calls and notes by time; turns by their session's first appearance, then start time."""
    for turn in every:
        turn.calls.sort(key=lambda c: (c.start_ns, c.end_ns, c.tool, c.span_id))
        turn.notes.sort(key=lambda n: n.ts)
    first_seen: dict[str, int] = {}
    for turn in every:
        first_seen[turn.session_id] = min(first_seen.get(turn.session_id, turn.start_ns), turn.start_ns)
    every.sort(key=lambda t: (first_seen[t.session_id], t.session_id, t.turn_id is None, t.start_ns))
    return every


# ------------------------------------------------------------------ rendering
_ANSI = {"red": "31", "yellow": "33", "green": "32", "dim": "2", "bold": "1", "cyan": "36"}


class _Style:
    def __init__(self, color: bool) -> None:
        self.color = color

    def __call__(self, text: str, *styles: str) -> str:
        if not self.color or not styles or not text:
            return text
        codes = ";".join(_ANSI[s] for s in styles)
        return f"\x1b[{codes}m{text}\x1b[0m"


def format_duration(ns: int) -> str:
    """A duration for people: ``0.4 ms``, ``41.7 ms``, ``1.24 s``, ``2 m 03 s``."""
    ms = ns / 1e6
    if ms < 1000:
        return f"{ms:.1f} ms"
    if ms < 60_000:
        return f"{ms / 1000:.2f} s"
    minutes, seconds = divmod(int(ms // 1000), 60)
    return f"{minutes} m {seconds:02d} s"


def _cut(text: str, width: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 3] + "..."


def _call_line(call: CallNode, style: _Style) -> str:
    parts = [style(call.tool, "bold")]
    if call.operation_type:
        parts.append(style(call.operation_type, "cyan"))
    if call.attempt > 1:
        parts.append(style(f"retry {call.attempt}", "yellow"))
    if call.outcome not in _REFUSED:
        parts.append(format_duration(call.duration_ns))
    outcome = call.outcome or "?"
    if call.outcome in (attr.OUTCOME_FAILURE, *_REFUSED):
        parts.append(style(outcome.upper(), "red", "bold"))
    elif call.outcome == attr.OUTCOME_SUCCESS:
        parts.append(style(outcome, "green"))
    else:
        parts.append(style(outcome, "yellow"))
    if call.decision:
        decision = call.decision + (f" by {call.policy_source}" if call.policy_source else "")
        refused = call.outcome in _REFUSED
        parts.append(style(decision, "red") if refused else decision)
    if call.outcome == attr.OUTCOME_BLOCKED and call.message:
        parts.append(style(_cut(call.message, _MESSAGE_WIDTH), "red"))
    if call.outcome == attr.OUTCOME_FAILURE:
        reason = f"{call.error_type}: {call.message}" if call.error_type and call.message else call.message
        parts.append(style(_cut(reason or (call.error_type or ""), _MESSAGE_WIDTH), "red"))
    if call.rule:
        parts.append(style(f"rule: {call.rule}", "yellow"))
    if call.sandbox:
        parts.append(style(f"sandbox={call.sandbox}", "dim"))
    if call.hooks:
        parts.append(style("hooks: " + ", ".join(call.hooks), "dim"))
    return "  ".join(p for p in parts if p)


def _note_line(note: NoteNode, style: _Style) -> str:
    rank = severity_rank(note.severity)
    colour = (
        "red" if rank >= severity_rank("error") else "yellow" if rank >= severity_rank("warning") else "dim"
    )
    label = style(f"{'!' if rank >= severity_rank('warning') else '*'} {note.event_type}", colour, "bold")
    return f"{label}  {style(_cut(note.text, _MESSAGE_WIDTH), colour)}" if note.text else label


def _turn_line(turn: TurnNode, style: _Style) -> str:
    if turn.turn_id is None and turn.span_id is None:
        return style(NO_TURN, "dim")
    parts = [style(f"turn {turn.turn_id or '?'}", "bold")]
    if turn.agent:
        parts.append(turn.agent)
    if turn.prompt:
        parts.append(style(f'"{_cut(turn.prompt, _PROMPT_WIDTH)}"', "dim"))
    parts.append(format_duration(max(0, turn.end_ns - turn.start_ns)))
    if turn.incomplete:
        parts.append(style(f"INCOMPLETE ({turn.incomplete})", "yellow"))
    if turn.synthetic:
        parts.append(style("no turn_start seen", "yellow"))
    if turn.error:
        parts.append(style(_cut(turn.error, _MESSAGE_WIDTH), "red"))
    return "  ".join(parts)


def render_tree(
    spans: Iterable[ReadableSpan | Mapping[str, Any]],
    *,
    filters: ShowFilter | None = None,
    color: bool = False,
    ascii_only: bool = False,
) -> str:
    """The tree as text: session > turn > tool calls and turn events, one line each.

    ``spans``: SDK ``ReadableSpan`` objects or span dicts of ``otlp_file.read_spans``
    (``render_turns`` takes the ``TurnNode`` list of ``build_tree``). ``color`` adds ANSI colours;
    ``ascii_only`` draws the tree with ``|--`` instead of box-drawing characters.
    Returns ``"(nothing to show)\\n"`` when the filters leave nothing.

    Example::

        print(render_tree(spans_of_logs(["audit.jsonl"])[0], filters=ShowFilter(tool="run_*")))
    """
    return render_turns(build_tree(spans), filters=filters, color=color, ascii_only=ascii_only)


def render_turns(
    turns: Sequence[TurnNode],
    *,
    filters: ShowFilter | None = None,
    color: bool = False,
    ascii_only: bool = False,
) -> str:
    """``render_tree`` for the turns ``build_tree`` made (filter and render them again cheaply)."""
    filters = filters or ShowFilter()
    style = _Style(color)
    tee, last, pipe, blank = (
        ("|-- ", "`-- ", "|   ", "    ") if ascii_only else ("├── ", "└── ", "│   ", "    ")
    )
    sessions: dict[str, list[tuple[TurnNode, list[CallNode | NoteNode]]]] = {}
    for turn in turns:
        if not filters.keeps_turn(turn):
            continue
        children: list[CallNode | NoteNode] = [c for c in turn.calls if filters.keeps_call(c)]
        children += [n for n in turn.notes if filters.keeps_note(n)]
        if not children and (filters.filters_calls or turn.span_id is None):
            continue
        children.sort(key=lambda c: c.start_ns if isinstance(c, CallNode) else c.ts)
        sessions.setdefault(turn.session_id, []).append((turn, children))
    if not sessions:
        return _NOTHING
    lines: list[str] = []
    for session_id, session_turns in sessions.items():
        count = sum(1 for t, _ in session_turns if t.span_id is not None)
        turns_text = f"({count} turn)" if count == 1 else f"({count} turns)"
        lines.append(f"{style('session ' + session_id, 'bold')}  {style(turns_text, 'dim')}")
        for i, (turn, children) in enumerate(session_turns):
            final = i == len(session_turns) - 1
            lines.append((last if final else tee) + _turn_line(turn, style))
            indent = blank if final else pipe
            for j, child in enumerate(children):
                branch = last if j == len(children) - 1 else tee
                text = _call_line(child, style) if isinstance(child, CallNode) else _note_line(child, style)
                lines.append(indent + branch + text)
                if isinstance(child, CallNode):  # a rule match points at its trigger, one line each
                    under = indent + (blank if j == len(children) - 1 else pipe)
                    arrow = "  -> " if ascii_only else "  ↳ "
                    lines.extend(under + style(arrow + t, "yellow") for t in child.trigger_texts)
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------- reading
def spans_of_logs(
    paths: Sequence[str | os.PathLike[str]],
    *,
    on_error: Callable[[LineError], None] | None = None,
    keep: Callable[[LogLine], bool] | None = None,
) -> tuple[list[ReadableSpan], ReplaySummary]:
    """The spans the collector makes of these audit logs (canonical or seed JSONL), and the read summary.

    Nothing is exported: the spans stay in memory. Bad lines are skipped and
    passed to ``on_error``. Rule matches are derived by the built-in rule
    (``rules.PII_EXFILTRATION_RULE``), as ``configure()`` does by default.
    Raises ``OSError`` when a file cannot be opened.
    """
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    # The built-in behavioural rules derive rule matches again (the log's own are not replayed).
    collector = SpanCollector(
        tracer_provider=provider, ids=DeterministicIds(), rules=RuleEngine([PII_EXFILTRATION_RULE])
    )
    try:
        summary = replay_into(collector, paths, on_error=on_error, keep=keep)
    finally:
        collector.shutdown()
        provider.shutdown()
    return list(exporter.get_finished_spans()), summary


#: ``show_logs`` prints once this many turns (or calls and events without a turn) are ready.
SHOW_BATCH_TURNS = 1_000
#: ``show_logs`` keeps at most this many calls of turns that have not ended yet; more are counted.
SHOW_MAX_PENDING_CALLS = 100_000


@dataclass
class ShowSummary:
    """What ``show_logs`` read and printed, beside the replay summary's line counts."""

    read: ReplaySummary
    calls_not_shown: int = 0


class _TurnStream(SpanExporter):
    """Finished spans become tree nodes at once; a turn is printed, in a batch, once its span has ended.

    The collector ends a turn's calls before the turn, so a finished turn has
    all its calls. Bounded: the calls of turns still open (at most
    ``max_pending`` of them; more are counted in ``hidden``), plus one batch.
    """

    def __init__(self, flush: Callable[[list[TurnNode]], None], batch_turns: int, max_pending: int) -> None:
        self._flush = flush
        self._batch_turns = batch_turns
        self._max_pending = max_pending
        self._pending: dict[str, list[CallNode]] = {}  # turn span id -> its calls so far
        self._pending_calls = 0
        self._ready: list[TurnNode] = []
        self._loose: dict[str, TurnNode] = {}  # session -> calls and events without a turn span
        self._loose_items = 0
        self.hidden = 0

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        for readable in spans:
            self._take(_Span.of(readable))
        return SpanExportResult.SUCCESS

    def _take(self, span: _Span) -> None:
        operation = span.attributes.get(attr.GEN_AI_OPERATION_NAME)
        if operation == attr.OPERATION_INVOKE_AGENT:
            turn = _turn_node(span)
            calls = self._pending.pop(span.span_id, [])
            self._pending_calls -= len(calls)
            turn.calls = calls
            self._ready.append(turn)
        elif operation == attr.OPERATION_EXECUTE_TOOL:
            if span.parent_id is not None:
                if self._pending_calls >= self._max_pending:
                    self.hidden += 1
                    return
                self._pending.setdefault(span.parent_id, []).append(_call_node(span))
                self._pending_calls += 1
                return
            session = str(span.attributes.get(attr.GEN_AI_CONVERSATION_ID) or NO_SESSION)
            self._home(session, span.start_ns).calls.append(_call_node(span))
            self._loose_items += 1
        else:  # a lone event span: an event that had neither turn nor call
            notes = [_note_of(e) for e in span.events]
            self._home(NO_SESSION, span.start_ns).notes.extend(notes)
            self._loose_items += len(notes)
        if len(self._ready) + self._loose_items >= self._batch_turns:
            self.drain()

    def _home(self, session: str, ts: int) -> TurnNode:
        node = self._loose.get(session)
        if node is None:
            node = self._loose[session] = TurnNode(session, None, None, "", ts, ts, None, False, None)
        node.start_ns, node.end_ns = min(node.start_ns, ts), max(node.end_ns, ts)
        return node

    def drain(self, *, final: bool = False) -> None:
        """Print what is ready (finished turns, calls and events without a turn); ``final``: all."""
        if final:  # calls whose parent was no turn (none in a log, but never lose one)
            for calls in self._pending.values():
                for call in calls:
                    self._home(NO_SESSION, call.start_ns).calls.append(call)
            self._pending, self._pending_calls = {}, 0
        ready = self._ready + list(self._loose.values())
        self._ready, self._loose, self._loose_items = [], {}, 0
        if ready:
            self._flush(_in_show_order(ready))

    def shutdown(self) -> None:
        """Nothing to release (the collector's shutdown ended every turn: ``drain`` prints the rest)."""


def show_logs(
    paths: Sequence[str | os.PathLike[str]],
    write: Callable[[str], object],
    *,
    filters: ShowFilter | None = None,
    color: bool = False,
    ascii_only: bool = False,
    on_error: Callable[[LineError], None] | None = None,
    redactor: Redactor | None = None,
    max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
    batch_turns: int = SHOW_BATCH_TURNS,
    max_pending_calls: int = SHOW_MAX_PENDING_CALLS,
) -> ShowSummary:
    """``render_tree`` of audit logs, streamed: memory does not grow with the file.

    Turns are printed (through ``write``) as they end, in batches of
    ``batch_turns``, each batch in ``render_tree``'s order -- so a session
    whose turns fall into two batches is headed twice. Cross-line state is
    bounded: the collector's open turns (``max_open_turns``, 10,000) and at
    most ``max_pending_calls`` calls of turns not yet ended (more are counted
    in ``calls_not_shown``, not shown). ``redactor`` applies the capture
    policy (default: redacted). Raises ``OSError`` when a file cannot be opened.

    Example::

        summary = show_logs(["audit.jsonl"], sys.stdout.write, filters=ShowFilter(severity="warning"))
    """
    printed = [False]

    def flush(turns: list[TurnNode]) -> None:
        text = render_turns(turns, filters=filters, color=color, ascii_only=ascii_only)
        if text != _NOTHING:
            write(text)
            printed[0] = True

    stream = _TurnStream(flush, batch_turns, max_pending_calls)
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(stream))
    collector = SpanCollector(
        tracer_provider=provider,
        ids=DeterministicIds(),
        rules=RuleEngine([PII_EXFILTRATION_RULE]),
        redactor=redactor,
    )
    try:
        read = replay_into(collector, paths, on_error=on_error, max_line_bytes=max_line_bytes)
    finally:
        collector.shutdown()
        provider.shutdown()
    stream.drain(final=True)
    if not printed[0]:
        write(_NOTHING)
    summary = ShowSummary(read, calls_not_shown=stream.hidden)
    return summary

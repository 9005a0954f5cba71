"""Behavioural sequence rules: "an operation of type X on target T, followed within N s by Y".

The seed's example, built in as ``PII_EXFILTRATION_RULE``::

    rule:
      name: "PII Exfiltration Pattern"
      trigger:
        type: DATABASE_READ
        target: "*.pii_*"
      condition:
        within: 60s
        followed_by:
          - type: EXTERNAL_API_CALL
          - type: WEBHOOK_SEND
          - type: EMAIL_SEND
      action: REQUIRE_APPROVAL

``load_rules`` reads that shape (one ``rule:``), a ``rules:`` list of them (each
item either ``{rule: {...}}`` or the bare mapping), or a top-level list.
``RuleEngine.observe(record)`` is fed the canonical records of tool-call
attempts in arrival order and returns the matches each record completes::

    engine = RuleEngine([PII_EXFILTRATION_RULE])
    engine.observe(read_record)       # [] -- remembered as a trigger
    engine.observe(email_record)      # [RuleMatch(rule='PII Exfiltration Pattern',
                                      #            action='REQUIRE_APPROVAL', ...)]

Semantics (decided here, tested in ``tests/unit/test_rules.py``):

* **Time** is the records' own ``timestamp``, not the wall clock: a follow-up
  matches when ``0 <= follow-up time - trigger time <= within`` (both ends
  inclusive). A follow-up whose timestamp is *earlier* than the trigger's does
  not match, even if it arrives later. A trigger must have been observed
  before its follow-up (arrival order); there is no retroactive matching.
* **Same session** is required. Records whose ``session_id`` is ``None`` are
  grouped by ``agent_id`` instead (one group for ``agent_id`` ``None`` too):
  a runtime without sessions still gets its rules, and two agents without
  sessions do not match each other. ``RuleMatch.session_id`` is then ``None``.
* **Turns do not matter**: a trigger in one turn matches a follow-up in a later
  turn of the same session, within the window.
* **One trigger, several follow-ups**: each follow-up within the window fires
  once; a follow-up after several triggers fires once per trigger. So a rule
  fires at most once per (trigger, follow-up) pair; a record observed twice
  (same ``event_id``) does not fire again, nor is it remembered twice as a
  trigger. Records without an ``event_id`` cannot be recognised as repeats.
* A record is never its own follow-up. When a type is both a rule's trigger and
  its follow-up, the record is matched against earlier triggers first, then
  remembered as a trigger.
* **Target globs** use ``fnmatch`` syntax (``*``, ``?``, ``[seq]``) over the whole
  target, **case-insensitively** (SQL identifiers and host names are
  case-insensitive; a missed exfiltration costs more than a false alarm). A
  rule with a target glob never triggers on a record without a target; a rule
  without one triggers on any target.
* **Memory is bounded**: at most ``max_sessions`` sessions are tracked (least
  recently used dropped first), each with at most ``max_triggers_per_session``
  pending triggers (oldest dropped first) and as many remembered event ids.
  What a bound drops is counted (``evictions()``: ``sessions_evicted``,
  ``triggers_dropped``, ``ids_forgotten``) and logged once per episode: a
  dropped trigger can no longer fire, a forgotten id lets a record observed
  again fire again.
  A trigger is dropped once a later record of its own session is past its
  window (never by another session's clock: sessions may lag one another), and
  sessions left with no pending trigger are swept periodically.
* ``observe`` never raises: a record it cannot read (no type, bad timestamp, not
  a mapping) matches nothing.
"""

from __future__ import annotations

import logging
import math
import os
import re
from collections import OrderedDict, deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from fnmatch import translate
from typing import Any, Final

from auditspan._bounded import BoundReport
from auditspan._config_files import ConfigDocument, ConfigError, _FieldError, read_config
from auditspan.events import BASE_FIELDS, timestamp_to_ns
from auditspan.governance import DECISION_PRIORITY, normalize_decision
from auditspan.semantic_types import OperationType, parse_operation_type

from ._fork import fork_safe_lock

__all__ = [
    "PII_EXFILTRATION_RULE",
    "BehaviourRule",
    "ConfigError",
    "RuleEngine",
    "RuleMatch",
    "load_rules",
    "parse_duration",
]


# --------------------------------------------------------------------------- rules


def _type_name(value: object) -> str:
    parsed = parse_operation_type(value)
    return parsed.value if isinstance(parsed, OperationType) else parsed


@dataclass(frozen=True)
class BehaviourRule:
    """A sequence rule: ``trigger_type`` on ``trigger_target``, then ``followed_by`` within ``within_s``.

    Types are normalised with ``parse_operation_type`` (unknown types are kept,
    so rules can name types from newer releases; ``load_rules`` is stricter),
    ``followed_by`` may be given as one type or any iterable, ``action`` is
    normalised with ``normalize_decision``. ``trigger_target`` is an ``fnmatch``
    glob, matched case-insensitively; ``None`` matches any target. Raises
    ``ValueError`` naming the field when a field is invalid.

    Example::

        BehaviourRule("bulk export", "DATABASE_READ", "*.customers", ("FILE_WRITE",), 30, "block")
    """

    name: str
    trigger_type: str
    trigger_target: str | None
    followed_by: tuple[str, ...]
    within_s: float
    action: str
    _target_re: re.Pattern[str] | None = field(init=False, repr=False, compare=False, default=None)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip():
            raise _FieldError("name", f"must be a non-empty string, got {self.name!r}")
        trigger = _type_name(self.trigger_type) if isinstance(self.trigger_type, str) else ""
        if not trigger:
            raise _FieldError("trigger.type", f"must be an operation type, got {self.trigger_type!r}")
        object.__setattr__(self, "trigger_type", trigger)
        target = self.trigger_target
        if target is not None:
            if not isinstance(target, str) or not target.strip():
                raise _FieldError("trigger.target", f"must be a glob string or null, got {target!r}")
            object.__setattr__(self, "_target_re", re.compile(translate(target.strip()), re.I))
        raw = self.followed_by
        items = (raw,) if isinstance(raw, str) else tuple(raw) if isinstance(raw, Iterable) else ()
        follow = tuple(_type_name(t) if isinstance(t, str) else "" for t in items)
        if not follow or not all(follow):
            raise _FieldError("condition.followed_by", f"must be a non-empty list of types, got {raw!r}")
        object.__setattr__(self, "followed_by", follow)
        within = self.within_s
        if isinstance(within, bool) or not isinstance(within, (int, float)) or not 0 < within < math.inf:
            raise _FieldError("condition.within", f"must be a positive number of seconds, got {within!r}")
        object.__setattr__(self, "within_s", float(within))
        action = normalize_decision(self.action)
        if action is None:
            raise _FieldError("action", f"must be a decision such as REQUIRE_APPROVAL, got {self.action!r}")
        object.__setattr__(self, "action", action)

    def target_matches(self, target: object) -> bool:
        """True when ``target`` satisfies the trigger's glob (always, without a glob)."""
        if self._target_re is None:
            return True
        return isinstance(target, str) and self._target_re.match(target) is not None


#: The seed's example rule: PII read, then data leaving within a minute -> ask a human.
PII_EXFILTRATION_RULE: Final = BehaviourRule(
    name="PII Exfiltration Pattern",
    trigger_type="DATABASE_READ",
    trigger_target="*.pii_*",
    followed_by=("EXTERNAL_API_CALL", "WEBHOOK_SEND", "EMAIL_SEND"),
    within_s=60.0,
    action="REQUIRE_APPROVAL",
)


@dataclass(frozen=True)
class RuleMatch:
    """A rule fired: which rule, its action, and the trigger and follow-up records that completed it.

    Ids and timestamps are copied from the records (``event_id``,
    ``telemetry.span_id``, ``timestamp``); ``elapsed_s`` is the time between them.
    """

    rule: str
    action: str
    session_id: str | None
    trigger_event_id: str | None
    trigger_span_id: str | None
    trigger_timestamp: str
    event_id: str | None
    span_id: str | None
    timestamp: str
    trigger_type: str
    type: str
    trigger_target: str | None = None
    target: str | None = None
    elapsed_s: float = 0.0
    #: The trigger record's ``tool_name`` and ``turn_id`` (so a match can name the call it followed).
    trigger_tool_name: str | None = None
    trigger_turn_id: str | None = None

    def event_fields(self, record: Mapping[str, Any], event_type: str) -> dict[str, Any]:
        """The fields of the event this match becomes: the matching record's envelope, then the match.

        ``record`` is the canonical record the rule fired on (the follow-up call's attempt);
        ``event_type`` the match event's tag (``behavior_rule_match``). The collector and the
        ingesting span processor both write a match through it, so its record is the same
        whichever way the calls came in.
        """
        fields: dict[str, Any] = {name: record[name] for name in BASE_FIELDS}
        fields.update(
            event_type=event_type,
            severity="warning",
            metadata={},
            rule_name=self.rule,
            action=self.action,
            trigger_event_id=self.trigger_event_id,
            trigger_span_id=self.trigger_span_id,
            trigger_type=self.trigger_type,
            trigger_target=self.trigger_target,
            match_event_id=self.event_id,
            match_type=self.type,
            match_target=self.target,
            elapsed_s=self.elapsed_s,
            trigger_tool_name=self.trigger_tool_name or "",
            trigger_turn_id=self.trigger_turn_id or "",
        )
        return fields


# --------------------------------------------------------------------------- durations

_DURATION_PART = re.compile(
    r"\s*(\d+(?:\.\d*)?|\.\d+)\s*"
    r"(msec|ms|seconds?|secs|sec|s|minutes?|mins|min|m|hours?|hrs|hr|h|days?|d)?(?![a-z])\s*",
    re.I,
)
_UNIT_SECONDS: Final = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration(value: object) -> float:
    """Seconds in a duration: ``500ms``, ``60s``, ``5m``, ``1h``, ``1d``, ``1m30s``, or a number of seconds.

    Raises ``ValueError`` for anything else, and for zero, negative or infinite
    durations.

    Example::

        parse_duration("1m30s")   # 90.0
    """
    if isinstance(value, bool):
        raise ValueError(f"invalid duration {value!r}")
    if isinstance(value, (int, float)):
        seconds = float(value)
    elif isinstance(value, str) and value.strip():
        seconds, pos, text = 0.0, 0, value.strip()
        while pos < len(text):
            m = _DURATION_PART.match(text, pos)
            if m is None or m.end() == pos:
                raise ValueError(f"invalid duration {value!r} (use e.g. 500ms, 60s, 5m, 1h)")
            unit = (m.group(2) or "s").lower()
            key = "ms" if unit.startswith("ms") else unit[0]
            if m.group(2) is None and m.end() < len(text):
                raise ValueError(f"invalid duration {value!r}: a unit is needed between parts")
            seconds += float(m.group(1)) * _UNIT_SECONDS[key]
            pos = m.end()
    else:
        raise ValueError(f"invalid duration {value!r} (use e.g. 500ms, 60s, 5m, 1h)")
    if not 0 < seconds < math.inf:
        raise ValueError(f"duration must be positive, got {value!r}")
    return seconds


# --------------------------------------------------------------------------- loading


_Path = tuple[str | int, ...]
_RULE_KEYS: Final = ("name", "trigger", "condition", "action")


def load_rules(path_or_text: str | os.PathLike[str] | Mapping[str, Any] | list[Any]) -> list[BehaviourRule]:
    """Behavioural rules from a YAML/JSON file, YAML/JSON text, or already-parsed data.

    Accepts the seed's shape exactly (``rule: {name, trigger: {type, target},
    condition: {within, followed_by: [{type}, ...]}, action}``), a ``rules:``
    list of those (items with or without the ``rule:`` wrapper), or a top-level
    list. ``within`` takes ``500ms`` / ``60s`` / ``5m`` / ``1h`` or seconds;
    ``followed_by`` items may also be plain type names. Types must be ones the
    seed lists; ``action`` a known decision. Raises ``ConfigError`` whose
    message names the file, the line (YAML), the rule and the field, e.g.
    ``rules.yaml:7: rules[1].condition.within: invalid duration '60 sec' ...``.
    """
    if isinstance(path_or_text, (Mapping, list)):
        doc = ConfigDocument(path_or_text, "<data>", {})
    else:
        doc = read_config(path_or_text)
    items, base = _rule_items(doc)
    rules: list[BehaviourRule] = []
    names: set[str] = set()
    for i, item in enumerate(items):
        path: _Path = (*base, i) if base != ("rule",) else base
        if isinstance(item, Mapping) and set(item) == {"rule"}:
            item, path = item["rule"], (*path, "rule")
        rule = _parse_rule(doc, item, path)
        if rule.name in names:
            raise doc.error((*path, "name"), f"duplicate rule name {rule.name!r}")
        names.add(rule.name)
        rules.append(rule)
    return rules


def _rule_items(doc: ConfigDocument) -> tuple[list[Any], _Path]:
    data = doc.data
    if isinstance(data, list):
        return data, ()
    if not isinstance(data, Mapping):
        raise doc.error((), "expected 'rule:', 'rules:' or a list of rules")
    for key, shape in (("rules", list), ("rule", Mapping)):
        if key in data:
            extra = sorted(str(k) for k in data if k != key)
            if extra:
                raise doc.error((extra[0],), f"unknown top-level key (expected only {key!r})")
            value = data[key]
            if not isinstance(value, shape):
                kind = "a list of rules" if shape is list else "a mapping"
                raise doc.error((key,), f"must be {kind}, got {type(value).__name__}")
            items: list[Any] = list(value) if key == "rules" else [value]
            return items, (key,)
    if "name" in data:  # a bare rule mapping
        return [data], ()
    raise doc.error((), "expected 'rule:', 'rules:' or a list of rules")


def _known_type(doc: ConfigDocument, value: object, path: _Path) -> str:
    parsed = parse_operation_type(value) if isinstance(value, str) else ""
    if not isinstance(parsed, OperationType):
        known = ", ".join(t.value for t in OperationType)
        raise doc.error(path, f"unknown operation type {value!r} (known: {known})")
    return parsed.value


def _mapping(doc: ConfigDocument, value: object, path: _Path, allowed: tuple[str, ...]) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise doc.error(path, f"must be a mapping with {', '.join(allowed)}, got {type(value).__name__}")
    for key in value:
        if key not in allowed:
            raise doc.error((*path, str(key)), f"unknown field (allowed: {', '.join(allowed)})")
    return value


def _parse_rule(doc: ConfigDocument, item: object, path: _Path) -> BehaviourRule:
    rule = _mapping(doc, item, path, _RULE_KEYS)
    for key in _RULE_KEYS:
        if key not in rule:
            raise doc.error(path, f"missing field {key!r}")
    name = rule["name"]
    if not isinstance(name, str) or not name.strip():
        raise doc.error((*path, "name"), f"must be a non-empty string, got {name!r}")
    trigger = _mapping(doc, rule["trigger"], (*path, "trigger"), ("type", "target"))
    if "type" not in trigger:
        raise doc.error((*path, "trigger"), "missing field 'type'")
    trigger_type = _known_type(doc, trigger["type"], (*path, "trigger", "type"))
    target = trigger.get("target")
    if target is not None and (not isinstance(target, str) or not target.strip()):
        raise doc.error((*path, "trigger", "target"), f"must be a glob string, got {target!r}")
    condition = _mapping(doc, rule["condition"], (*path, "condition"), ("within", "followed_by"))
    for key in ("within", "followed_by"):
        if key not in condition:
            raise doc.error((*path, "condition"), f"missing field {key!r}")
    try:
        within = parse_duration(condition["within"])
    except ValueError as exc:
        raise doc.error((*path, "condition", "within"), str(exc)) from None
    follow_raw = condition["followed_by"]
    follow_path = (*path, "condition", "followed_by")
    if not isinstance(follow_raw, list) or not follow_raw:
        raise doc.error(follow_path, "must be a non-empty list of {type: ...}")
    followed_by: list[str] = []
    for j, entry in enumerate(follow_raw):
        if isinstance(entry, Mapping):
            entry_map = _mapping(doc, entry, (*follow_path, j), ("type",))
            if "type" not in entry_map:
                raise doc.error((*follow_path, j), "missing field 'type'")
            followed_by.append(_known_type(doc, entry_map["type"], (*follow_path, j, "type")))
        else:
            followed_by.append(_known_type(doc, entry, (*follow_path, j)))
    action = normalize_decision(rule["action"]) if isinstance(rule["action"], str) else None
    if action is None or action not in DECISION_PRIORITY:
        known = ", ".join(DECISION_PRIORITY)
        raise doc.error((*path, "action"), f"unknown action {rule['action']!r} (known: {known})")
    try:
        return BehaviourRule(name.strip(), trigger_type, target, tuple(followed_by), within, action)
    except _FieldError as exc:  # pragma: no cover - the checks above come first
        raise doc.error((*path, *exc.field.split(".")), exc.reason) from None


# --------------------------------------------------------------------------- the engine


@dataclass(slots=True)
class _Trigger:
    rule: BehaviourRule
    rule_index: int
    ts_ns: int
    expires_ns: int
    event_id: str | None
    span_id: str | None
    timestamp: str
    type: str
    target: str | None
    tool_name: str | None = None
    turn_id: str | None = None


@dataclass(slots=True)
class _Session:
    triggers: deque[_Trigger]
    seen: OrderedDict[str, None]
    high_ns: int
    min_expiry_ns: int


def _opt_str(value: object) -> str | None:
    return value if isinstance(value, str) else None


_logger = logging.getLogger("auditspan.rules")

_SWEEP_EVERY: Final = 1024
_SWEEP_MAX: Final = 64


class RuleEngine:
    """Match behavioural rules over a stream of canonical records. Thread-safe; bounded memory.

    ``observe(record)`` reads ``type``, ``target``, ``session_id`` (``agent_id``
    when there is none), ``timestamp``, ``event_id`` and ``telemetry.span_id``
    and returns the ``RuleMatch`` es this record completes (usually none). The
    semantics are in the module docstring.

    Example::

        engine = RuleEngine([PII_EXFILTRATION_RULE])
        for record in records:
            for match in engine.observe(record):
                print(match.rule, match.action, match.trigger_event_id, "->", match.event_id)
    """

    def __init__(
        self, rules: Iterable[BehaviourRule], max_sessions: int = 10_000, max_triggers_per_session: int = 256
    ) -> None:
        self._rules = tuple(rules)
        if max_sessions < 1 or max_triggers_per_session < 1:
            raise ValueError("max_sessions and max_triggers_per_session must be at least 1")
        self._max_sessions = max_sessions
        self._max_triggers = max_triggers_per_session
        self._by_trigger: dict[str, list[tuple[int, BehaviourRule]]] = {}
        self._follow_types: set[str] = set()
        for index, rule in enumerate(self._rules):
            self._by_trigger.setdefault(rule.trigger_type, []).append((index, rule))
            self._follow_types.update(rule.followed_by)
        self._relevant = frozenset(self._by_trigger) | frozenset(self._follow_types)
        self._sessions: OrderedDict[object, _Session] = OrderedDict()
        self._lock = fork_safe_lock()
        self._observed = 0
        self._sessions_evicted = 0
        self._triggers_dropped = 0
        self._ids_forgotten = 0
        self._bounds = BoundReport(_logger)

    @property
    def rules(self) -> tuple[BehaviourRule, ...]:
        """The rules, in the order given."""
        return self._rules

    def stats(self) -> dict[str, int]:
        """Memory in use: ``{"sessions": ..., "triggers": pending triggers, "seen_ids": remembered ids}``.

        At most ``max_sessions`` sessions, each with at most ``max_triggers_per_session``
        triggers and as many ids (``evictions()`` counts what the bounds dropped).
        """
        with self._lock:
            return {
                "sessions": len(self._sessions),
                "triggers": sum(len(s.triggers) for s in self._sessions.values()),
                "seen_ids": sum(len(s.seen) for s in self._sessions.values()),
            }

    def evictions(self) -> dict[str, int]:
        """What the memory bounds dropped: ``sessions_evicted``, ``triggers_dropped``, ``ids_forgotten``."""
        with self._lock:
            return {
                "sessions_evicted": self._sessions_evicted,
                "triggers_dropped": self._triggers_dropped,
                "ids_forgotten": self._ids_forgotten,
            }

    def observe(self, record: Mapping[str, Any]) -> list[RuleMatch]:
        """The matches ``record`` completes, in rule order then trigger order.

        Never raises, except ``RecursionError`` (out of stack: the caller retries with room).
        """
        try:
            return self._observe(record)
        except RecursionError:
            raise  # the collector finishes the event on a fresh stack (auditspan._deep)
        except Exception:
            return []

    def _observe(self, record: Mapping[str, Any]) -> list[RuleMatch]:
        if not isinstance(record, Mapping):
            return []
        raw_type = record.get("type")
        if raw_type is None:
            return []
        rtype = raw_type if isinstance(raw_type, str) and raw_type in self._relevant else _type_name(raw_type)
        if rtype not in self._relevant:
            return []
        timestamp = record.get("timestamp")
        if not isinstance(timestamp, str):
            return []
        try:
            ts_ns = timestamp_to_ns(timestamp)
        except ValueError:
            return []
        session_id = record.get("session_id")
        session_str = None if session_id is None else str(session_id)
        key: object = (
            ("session", session_str) if session_str is not None else ("agent", record.get("agent_id"))
        )
        hash(key)  # an unhashable agent_id raises here, before any state changes
        target = _opt_str(record.get("target"))
        event_id = _opt_str(record.get("event_id"))
        telemetry = record.get("telemetry")
        span_id = _opt_str(telemetry.get("span_id")) if isinstance(telemetry, Mapping) else None
        triggers_for = self._by_trigger.get(rtype, ())
        new_triggers = [(i, r) for i, r in triggers_for if r.target_matches(target)]
        with self._lock:
            self._observed += 1
            if self._observed % _SWEEP_EVERY == 0:
                self._sweep()
            session = self._sessions.get(key)
            if session is not None:
                self._sessions.move_to_end(key)
                if event_id is not None:
                    if event_id in session.seen:
                        return []  # observed before: it already fired / was remembered
                    session.seen[event_id] = None
                    if len(session.seen) > self._max_triggers:
                        session.seen.popitem(last=False)
                        self._ids_forgotten += 1
                        self._bounds.hit(
                            "rule engine: event ids remembered per session",
                            f"max_triggers_per_session={self._max_triggers}: the oldest is forgotten",
                        )
                session.high_ns = max(session.high_ns, ts_ns)
                self._prune(session)
            matches: list[RuleMatch] = []
            if session is not None and rtype in self._follow_types:
                hits = sorted(
                    (
                        t
                        for t in session.triggers
                        if rtype in t.rule.followed_by and t.ts_ns <= ts_ns <= t.expires_ns
                    ),
                    key=lambda t: t.rule_index,  # stable: trigger order within a rule
                )
                for trig in hits:
                    matches.append(
                        RuleMatch(
                            rule=trig.rule.name,
                            action=trig.rule.action,
                            session_id=session_str,
                            trigger_event_id=trig.event_id,
                            trigger_span_id=trig.span_id,
                            trigger_timestamp=trig.timestamp,
                            event_id=event_id,
                            span_id=span_id,
                            timestamp=timestamp,
                            trigger_type=trig.type,
                            type=rtype,
                            trigger_target=trig.target,
                            target=target,
                            elapsed_s=(ts_ns - trig.ts_ns) / 1e9,
                            trigger_tool_name=trig.tool_name,
                            trigger_turn_id=trig.turn_id,
                        )
                    )
            for index, rule in new_triggers:
                expires = ts_ns + int(rule.within_s * 1e9)
                if session is not None and expires < session.high_ns:
                    continue  # already past its window: it could never match
                if session is None:
                    session = self._new_session(key, ts_ns, event_id)
                if len(session.triggers) >= self._max_triggers:  # the deque drops its oldest
                    self._triggers_dropped += 1
                    self._bounds.hit(
                        "rule engine: pending triggers per session",
                        f"max_triggers_per_session={self._max_triggers}: the oldest trigger is dropped",
                    )
                session.triggers.append(
                    _Trigger(
                        rule,
                        index,
                        ts_ns,
                        expires,
                        event_id,
                        span_id,
                        timestamp,
                        rtype,
                        target,
                        _opt_str(record.get("tool_name")),
                        _opt_str(record.get("turn_id")),
                    )
                )
                session.min_expiry_ns = min(session.min_expiry_ns, expires)
            return matches

    def _new_session(self, key: object, ts_ns: int, event_id: str | None) -> _Session:
        session = _Session(deque(maxlen=self._max_triggers), OrderedDict(), ts_ns, 2**63)
        if event_id is not None:
            session.seen[event_id] = None
        self._sessions[key] = session
        while len(self._sessions) > self._max_sessions:
            self._sessions.popitem(last=False)  # least recently used
            self._sessions_evicted += 1
            self._bounds.hit(
                "rule engine: sessions",
                f"max_sessions={self._max_sessions}: the least recently active session's triggers "
                "are dropped",
            )
        return session

    def _prune(self, session: _Session) -> None:
        if session.min_expiry_ns >= session.high_ns:
            return
        kept = [t for t in session.triggers if t.expires_ns >= session.high_ns]
        session.triggers.clear()
        session.triggers.extend(kept)
        session.min_expiry_ns = min((t.expires_ns for t in kept), default=2**63)

    def _sweep(self) -> None:
        """Drop up to a few least-recently-used sessions that hold no pending trigger.

        A session's triggers expire against its *own* newest timestamp (``_prune``),
        never against the newest of all sessions: one session may lag behind another
        (other threads, other logs) and its trigger is still live for it. Sessions
        with pending triggers leave only by the ``max_sessions`` bound.
        """
        for _ in range(_SWEEP_MAX):
            if not self._sessions:
                return
            key, session = next(iter(self._sessions.items()))
            if session.triggers:
                return
            del self._sessions[key]

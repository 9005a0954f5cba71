"""The classifier: explicit metadata, then user rules, then heuristics, then the fallback.

``Classifier.classify`` is on the collector's path for every tool call, so it
is built for the repeated call: results are memoised by ``(tool_name,
arguments_preview)`` in a bounded FIFO cache read without a lock, and a
``Classification`` is frozen, with read-only ``parameters``, so one result can
be shared by every call that hits it. A miss reads the call once
(``_arguments._Ctx``), asks the rules and then the heuristics for a type, and
the derivers for its target and parameters.

``classify`` never raises: a classifier bug must not cost the agent its audit
record, so any failure gives the fallback (``AGENT_ACTION`` with the tool name
as custom type).
"""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Final

from auditspan._fork import fork_safe_lock
from auditspan.semantic_types import OperationType, category_of, parse_operation_type, risk_of

from ._arguments import _MAX_NAME, _Ctx
from ._derivers import _derive
from ._heuristics import _heuristic
from ._rules import ClassificationRule, load_classification_rules

SOURCE_EXPLICIT: Final = "explicit"
SOURCE_RULE: Final = "rule"
SOURCE_HEURISTIC: Final = "heuristic"
SOURCE_FALLBACK: Final = "fallback"

_T = OperationType

_EMPTY: Final[Mapping[str, Any]] = MappingProxyType({})


# --------------------------------------------------------------------------- result


@dataclass(frozen=True, slots=True)
class Classification:
    """What a tool call is: semantic type, custom type, target, parameters, risk, category, source.

    ``type`` is the plain type name (``"DATABASE_READ"``; an unknown explicit
    type is kept as given, normalised). ``custom_type`` is set for
    ``AGENT_ACTION`` only, and is then also ``parameters["custom_type"]``.
    ``risk`` / ``category`` are the seed's, ``None`` for unknown types.
    ``source`` is ``"explicit"``, ``"rule"``, ``"heuristic"`` or ``"fallback"``.
    ``parameters`` is read-only: results are shared between calls.
    """

    type: str
    custom_type: str | None
    target: str | None
    parameters: Mapping[str, Any]
    risk: str | None
    category: str | None
    source: str

    def to_record_fields(self) -> dict[str, Any]:
        """``{"type", "target", "parameters"}`` for a canonical record, as fresh plain (JSON-ready) values."""
        return {"type": self.type, "target": self.target, "parameters": _plain(self.parameters)}


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    return value


_AGENT_ACTION: Final = _T.AGENT_ACTION.value  # (an enum's ``.value`` is a Python-level property)


def _make(
    type_: OperationType | str, custom: str | None, target: str | None, params: dict[str, Any], source: str
) -> Classification:
    name, risk, category = _type_info(type_)
    if name == _AGENT_ACTION:
        params["custom_type"] = custom
    else:
        custom = None
    return Classification(
        type=name,
        custom_type=custom,
        target=target,
        parameters=MappingProxyType(params) if params else _EMPTY,
        risk=risk,
        category=category,
        source=source,
    )


#: Operation type -> (name, risk, category); looked up once per type, not per call.
_TYPE_INFO: dict[OperationType | str, tuple[str, str | None, str | None]] = {}


def _type_info(type_: OperationType | str) -> tuple[str, str | None, str | None]:
    found = _TYPE_INFO.get(type_)
    if found is None:
        name = type_.value if isinstance(type_, OperationType) else type_
        found = (name, risk_of(type_), category_of(type_))
        if len(_TYPE_INFO) < 1024:  # explicit types are free text: bound what they can add
            _TYPE_INFO[type_] = found
    return found


def _safe_text(value: object) -> str:
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    try:
        return str(value)
    except Exception:
        return "<unprintable>"


def _fallback(tool_name: object) -> Classification:
    return _make(_T.AGENT_ACTION, _safe_text(tool_name), None, {}, SOURCE_FALLBACK)


# --------------------------------------------------------------------------- the classifier

_MAX_CACHED_PREVIEW: Final = 2048


class Classifier:
    """Classify tool calls: explicit metadata, then rules, then heuristics, then fallback.

    ``classify`` never raises and is deterministic. It memoises results by
    ``(tool_name, arguments_preview)`` -- plus the explicit type, custom type
    and target when the metadata declares a type -- in a cache of at most
    ``cache_size`` entries (the oldest entry goes first; 0 turns caching off), for
    tool names and targets of up to 256 characters and previews of up to 2,048. Safe to call
    from several threads. ``heuristics=False`` leaves only explicit types,
    rules and the fallback.

    Example::

        classifier = Classifier([ClassificationRule("crm_*", "EXTERNAL_API_CALL", target="crm")])
        classifier.classify("crm_lookup", "{'id': 7}").target   # 'crm'
    """

    def __init__(
        self, rules: Iterable[ClassificationRule] = (), *, heuristics: bool = True, cache_size: int = 4096
    ) -> None:
        self._rules = tuple(rules)
        self._heuristics = heuristics
        self._cache_size = max(0, int(cache_size))
        self._cache: OrderedDict[tuple[str | None, ...], Classification] = OrderedDict()
        self._evictions = 0
        self._lock = fork_safe_lock()

    @property
    def rules(self) -> tuple[ClassificationRule, ...]:
        """The user rules, in matching order."""
        return self._rules

    @classmethod
    def from_file(cls, path: str | os.PathLike[str], **kwargs: Any) -> Classifier:
        """A classifier with the rules of a YAML or JSON file (see ``load_classification_rules``)."""
        return cls(load_classification_rules(path), **kwargs)

    def classify(
        self, tool_name: str, arguments_preview: str = "", metadata: Mapping[str, Any] | None = None
    ) -> Classification:
        """Classify one call. Never raises; any input of any type gives a ``Classification``."""
        try:
            if isinstance(metadata, Mapping) and metadata:
                explicit = self._explicit(tool_name, arguments_preview, metadata)
                if explicit is not None:
                    return explicit
            if type(tool_name) is str and type(arguments_preview) is str:
                key = (tool_name, arguments_preview)
                hit = self._cache.get(key)
                if hit is not None:
                    return hit
                result = self._classify(tool_name, arguments_preview)
                if (
                    self._cache_size
                    and len(arguments_preview) <= _MAX_CACHED_PREVIEW
                    and len(tool_name) <= _MAX_NAME
                ):
                    self._remember(key, result)
                return result
            return self._classify(_safe_text(tool_name), _safe_text(arguments_preview))
        except Exception:
            return _fallback(tool_name)

    def cache_info(self) -> dict[str, int]:
        """``{"size": entries now, "max_size": the bound, "evictions": entries dropped for room}``.

        An eviction changes no result, only the cost of classifying that call
        again: counted here, not logged.
        """
        return {"size": len(self._cache), "max_size": self._cache_size, "evictions": self._evictions}

    def clear_cache(self) -> None:
        """Forget every memoised result."""
        with self._lock:
            self._cache.clear()

    def _remember(self, key: tuple[str | None, ...], result: Classification) -> None:
        with self._lock:
            if len(self._cache) >= self._cache_size:
                # Drop the oldest entry (FIFO keeps the hit path lock-free). Not a plain dict's
                # first key: with its front popped again and again, finding it costs a scan.
                self._cache.popitem(last=False)
                self._evictions += 1
            self._cache[key] = result

    def _explicit(
        self, tool_name: object, preview: object, metadata: Mapping[str, Any]
    ) -> Classification | None:
        raw_type = metadata.get("operation_type")
        raw_custom = metadata.get("custom_type")
        custom = raw_custom.strip() if isinstance(raw_custom, str) and raw_custom.strip() else None
        parsed = parse_operation_type(raw_type) if raw_type is not None else ""
        if not parsed:
            if custom is None:
                return None
            parsed = _T.AGENT_ACTION  # the seed's custom-event convention
        raw_target = metadata.get("target")
        fixed_target = raw_target.strip() if isinstance(raw_target, str) and raw_target.strip() else None
        key: tuple[str | None, ...] | None = None
        if (
            type(tool_name) is str
            and type(preview) is str
            and len(preview) <= _MAX_CACHED_PREVIEW
            and len(tool_name) <= _MAX_NAME
            and len(fixed_target or "") <= _MAX_NAME
        ):
            # Everything the result depends on; 6-tuples never collide with the 2-tuple keys.
            key = ("explicit", tool_name, preview, str(parsed), custom, fixed_target)
            hit = self._cache.get(key)
            if hit is not None:
                return hit
        name = _safe_text(tool_name)
        target, params = _derive(parsed, _Ctx(name, _safe_text(preview)))
        result = _make(parsed, custom or name, fixed_target or target, params, SOURCE_EXPLICIT)
        if key is not None and self._cache_size:
            self._remember(key, result)
        return result

    def _classify(self, tool_name: str, preview: str) -> Classification:
        ctx = _Ctx(tool_name, preview)
        for rule in self._rules:
            if rule.matches(tool_name, preview):
                t = parse_operation_type(rule.type)
                target, params = _derive(t, ctx)
                if rule.target is not None:
                    target = rule.target
                return _make(t, rule.custom_type or tool_name, target, params, SOURCE_RULE)
        if self._heuristics:
            found = _heuristic(ctx)
            if found is not None:
                target, params = _derive(found, ctx)
                return _make(found, tool_name, target, params, SOURCE_HEURISTIC)
        return _make(_T.AGENT_ACTION, tool_name, None, {}, SOURCE_FALLBACK)

"""Classification rules: the user's tool-name globs -> operation type, from code or a YAML/JSON file.

A rule names a tool-name glob (and optionally a regular expression searched in
the arguments preview) and the type such calls have; the first rule that
matches wins, before any heuristic. Rules come from code
(``ClassificationRule(...)``) or from a file::

    rules:
      - tool: "crm_*"             # glob on the tool name, case-insensitive
        type: EXTERNAL_API_CALL
        target: crm.example.com   # optional: fixed target
      - tool: "charge_card"
        type: AGENT_ACTION
        custom_type: payment_processing

A bad field raises ``ConfigurationError`` (``ConfigError``): from code,
``field 'type': unknown operation type ...``; from a file, with the file, the
line, the rule and the field (``rules.json: rules[0].type: ...``). Files are
read by the shared reader in ``auditspan._config_files``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from fnmatch import translate
from typing import Final

from auditspan._config_files import ConfigDocument, _FieldError, read_config
from auditspan.semantic_types import OperationType, parse_operation_type

_T = OperationType


@dataclass(frozen=True, slots=True)
class ClassificationRule:
    """A user rule: tool-name glob (and optional argument regex) -> operation type.

    ``tool`` is an ``fnmatch`` glob matched case-insensitively against the whole
    tool name; ``arguments`` (optional) a regular expression searched in the
    argument preview. ``type`` must be one of the seed's types (any spelling).
    ``custom_type`` (for ``AGENT_ACTION``; defaults to the tool name) and a fixed
    ``target`` are optional; without a target the heuristics derive one for the
    rule's type. Raises ``ConfigurationError`` (a ``ValueError``) naming the
    field when a field is invalid.

    Example::

        ClassificationRule("charge_*", "AGENT_ACTION", custom_type="payment_processing")
    """

    tool: str
    type: str
    custom_type: str | None = None
    target: str | None = None
    arguments: str | None = None
    _tool_re: re.Pattern[str] = field(init=False, repr=False, compare=False)
    _args_re: re.Pattern[str] | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.tool, str) or not self.tool.strip():
            raise _FieldError("tool", f"must be a non-empty glob string, got {self.tool!r}")
        parsed = parse_operation_type(self.type)
        if not isinstance(parsed, OperationType):
            known = ", ".join(t.value for t in OperationType)
            raise _FieldError("type", f"unknown operation type {self.type!r} (known: {known})")
        object.__setattr__(self, "type", parsed.value)
        for name in ("custom_type", "target"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, str) or not value.strip()):
                raise _FieldError(name, f"must be a non-empty string, got {value!r}")
        if self.custom_type is not None and parsed is not _T.AGENT_ACTION:
            raise _FieldError("custom_type", f"only applies to AGENT_ACTION, not {parsed.value}")
        object.__setattr__(self, "_tool_re", re.compile(translate(self.tool.strip()), re.I))
        args_re = None
        if self.arguments is not None:
            if not isinstance(self.arguments, str):
                raise _FieldError("arguments", f"must be a regular expression string, got {self.arguments!r}")
            try:
                args_re = re.compile(self.arguments)
            except re.error as exc:
                raise _FieldError("arguments", f"invalid regular expression: {exc}") from None
        object.__setattr__(self, "_args_re", args_re)

    def matches(self, tool_name: str, arguments_preview: str = "") -> bool:
        """True when the glob matches the tool name and the regex (if any) the preview."""
        if self._tool_re.match(tool_name) is None:
            return False
        return self._args_re is None or self._args_re.search(arguments_preview) is not None


_RULE_FIELDS: Final = ("tool", "type", "custom_type", "target", "arguments")


def rules_from_data(doc: ConfigDocument) -> list[ClassificationRule]:
    """Classification rules from a parsed document: ``{"rules": [...]}`` or a bare list."""
    data = doc.data
    base: tuple[str | int, ...] = ()
    if isinstance(data, Mapping):
        unknown = sorted(str(k) for k in data if k != "rules")
        if unknown:
            raise doc.error((unknown[0],), "unknown top-level key (expected 'rules')")
        data, base = data.get("rules"), ("rules",)
    if not isinstance(data, list):
        raise doc.error(base, "expected a list of rules")
    rules: list[ClassificationRule] = []
    for i, item in enumerate(data):
        path = (*base, i)
        if not isinstance(item, Mapping):
            raise doc.error(path, f"a rule must be a mapping, got {type(item).__name__}")
        for key in item:
            if key not in _RULE_FIELDS:
                raise doc.error((*path, str(key)), f"unknown field (allowed: {', '.join(_RULE_FIELDS)})")
        for required in ("tool", "type"):
            if required not in item:
                raise doc.error(path, f"missing field {required!r}")
        try:
            rules.append(ClassificationRule(**{k: item[k] for k in _RULE_FIELDS if k in item}))
        except _FieldError as exc:
            raise doc.error((*path, exc.field), exc.reason) from None
    return rules


def load_classification_rules(source: str | os.PathLike[str]) -> list[ClassificationRule]:
    """Classification rules from a YAML/JSON file or text.

    Raises ``ConfigurationError`` (``ConfigError``) naming the file, the line, the rule and the field.
    """
    return rules_from_data(read_config(source))

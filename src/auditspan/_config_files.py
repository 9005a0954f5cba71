"""Read YAML/JSON configuration files, and the one error type that bad configuration raises.

Two kinds of rules files share this reader: behavioural rules (``rules.py``)
and classification rules (``classification``). Both want the same things
from it -- a path or the text itself, JSON or YAML, and errors that name the
file, the line, the rule and the field -- so a user who mistypes a field gets
``rules.yaml:14: rules[1].condition.within: invalid duration '60 sek'``
rather than a bare parser message.

``read_config`` parses a document into a ``ConfigDocument``: the data plus
the line of every key and list item (YAML only; JSON decoders give no node
positions), so a loader that finds a bad value at ``("rules", 1, "name")``
can say which line it is on. PyYAML is optional (``auditspan[yaml]``) and
imported only when a YAML document is read, never at import.

``ConfigurationError`` is the one error of bad configuration, for settings
(``configure()``) and files alike; ``ConfigError`` is the same class under
the name the rules modules have always exported.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, overload

__all__ = ["ConfigDocument", "ConfigError", "ConfigurationError", "read_config"]


class ConfigurationError(ValueError):
    """A setting or a configuration file is wrong; the message says which, and where.

    One type, two forms:

    * ``ConfigurationError(message)`` -- a setting is wrong. The message starts
      with the setting's name: ``otlp_protocol: unknown protocol 'x'; ...``.
    * ``ConfigurationError(source, reason, path=..., line=...)`` -- a rules file
      (or text, or data) is wrong. The message names the file, the line, the
      rule and the field: ``rules.yaml:14: rules[1].condition.within: invalid
      duration '60 sek' ...``.

    Attributes: ``reason`` (what is wrong; the whole message for a setting),
    ``source`` (the file name, ``"<text>"`` or ``"<data>"``; ``None`` for a
    setting), ``path`` (e.g. ``"rules[2].condition.within"``, when known) and
    ``line`` (1-based, when known). It is a ``ValueError``.

    Example::

        try:
            load_rules("rules.yaml")
        except ConfigurationError as exc:
            print(exc.source, exc.line, exc.path, exc.reason)
    """

    source: str | None
    reason: str
    path: str | None
    line: int | None

    @overload
    def __init__(self, message: str, /) -> None: ...

    @overload
    def __init__(
        self, source: str, reason: str, *, path: str | None = None, line: int | None = None
    ) -> None: ...

    def __init__(
        self, source: str, reason: str | None = None, *, path: str | None = None, line: int | None = None
    ) -> None:
        if reason is None:  # a setting: the message is all there is
            super().__init__(source)
            self.source, self.reason = None, source
        else:
            where = source if line is None else f"{source}:{line}"
            super().__init__(f"{where}: {path}: {reason}" if path else f"{where}: {reason}")
            self.source, self.reason = source, reason
        self.path = path
        self.line = line


#: The name ``auditspan.classification`` and ``auditspan.rules`` export for file errors.
ConfigError = ConfigurationError


class _FieldError(ConfigurationError):
    """A field of one rule is invalid (``field 'tool': ...``), as its constructor says it.

    A rule built in code raises it as is; a loader reading a file re-raises it
    as ``ConfigurationError`` with the file, the line and the rule.
    """

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"field {field!r}: {reason}")
        self.field = field
        self.reason = reason


@dataclass(frozen=True)
class ConfigDocument:
    """A parsed YAML/JSON document with the line of each key and list item (YAML only)."""

    data: Any
    source: str
    lines: Mapping[tuple[str | int, ...], int]

    def line_of(self, path: tuple[str | int, ...]) -> int | None:
        """The 1-based line of ``path`` (or of its nearest known parent)."""
        while True:
            line = self.lines.get(path)
            if line is not None or not path:
                return line
            path = path[:-1]

    def error(self, path: tuple[str | int, ...], reason: str) -> ConfigurationError:
        """A ``ConfigurationError`` for the element at ``path``."""
        return ConfigurationError(
            self.source, reason, path=_format_path(path) if path else None, line=self.line_of(path)
        )


def _format_path(path: tuple[str | int, ...]) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out


def read_config(source: str | os.PathLike[str]) -> ConfigDocument:
    """Parse a YAML or JSON rules document: a file path, or the text itself.

    A ``str`` is the document itself when it has a newline, a ``": "`` or
    starts with ``{`` / ``[`` (one-line YAML or JSON) and names no existing
    file; otherwise it is a path. ``.json`` files are read as JSON; other files
    and text as YAML (needs PyYAML, imported only here), falling back to JSON
    for text that starts with ``{`` or ``[`` when PyYAML is missing. Raises
    ``ConfigurationError`` (with the file and line) when it cannot be read or parsed.
    """
    looks_like_text = isinstance(source, str) and (
        "\n" in source or ": " in source or source.lstrip().startswith(("{", "["))
    )
    if isinstance(source, str) and looks_like_text and ("\n" in source or not os.path.exists(source)):
        text, name, as_json = source, "<text>", False
    else:
        name = os.fspath(source)
        try:
            with open(name, encoding="utf-8") as handle:
                text = handle.read()
        except FileNotFoundError:
            raise ConfigurationError(name, "no such file") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigurationError(name, f"cannot read: {exc}") from None
        as_json = name.lower().endswith(".json")
    if as_json:
        return _parse_json(text, name)
    try:
        return _parse_yaml(text, name)
    except ImportError:
        if text.lstrip().startswith(("{", "[")):
            return _parse_json(text, name)
        raise ConfigurationError(
            name, "reading YAML needs PyYAML: pip install 'auditspan[yaml]' (or write the rules as JSON)"
        ) from None


def _parse_json(text: str, name: str) -> ConfigDocument:
    try:
        return ConfigDocument(json.loads(text), name, {})
    except json.JSONDecodeError as exc:
        raise ConfigurationError(
            name, f"invalid JSON: {exc.msg} (column {exc.colno})", line=exc.lineno
        ) from None


def _parse_yaml(text: str, name: str) -> ConfigDocument:
    import yaml  # lazily: only rule files need it

    lines: dict[tuple[str | int, ...], int] = {}
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigurationError(
            name, f"invalid YAML: {problem}", line=mark.line + 1 if mark else None
        ) from None
    finally:
        loader.dispose()
    if node is not None:
        lines[()] = node.start_mark.line + 1
        _node_lines(node, (), lines, 0)
    return ConfigDocument(data, name, lines)


def _node_lines(
    node: Any, path: tuple[str | int, ...], out: dict[tuple[str | int, ...], int], depth: int
) -> None:
    import yaml

    if depth > 16:
        return
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            if isinstance(key_node, yaml.ScalarNode):
                child = (*path, str(key_node.value))
                out[child] = key_node.start_mark.line + 1
                _node_lines(value_node, child, out, depth + 1)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            child = (*path, i)
            out[child] = item.start_mark.line + 1
            _node_lines(item, child, out, depth + 1)

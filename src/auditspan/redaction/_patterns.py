"""Patterns the user gives a ``Redactor``: extra detectors (``patterns``) and exemptions (``allow``).

Each is compiled once, at construction; a bad one raises ``ValueError`` naming it.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from ._policy import KIND_OK_RE, MARKER_PREFIX, MARKER_RE, marker

__all__ = [
    "Allow",
    "PatternLike",
    "UserPattern",
    "compile_allow",
    "compile_pattern",
    "compile_user_pattern",
    "redact_user",
]

PatternLike = str | re.Pattern[str]
UserPattern = PatternLike | tuple[str, PatternLike]
#: One entry of ``allow``: the literal (exact match), and the regex that must match a whole value.
Allow = tuple[str | None, re.Pattern[str] | None]


def compile_pattern(item: PatternLike, what: str, flags: int = 0) -> re.Pattern[str]:
    """``item`` compiled (a compiled ``str`` pattern as is); ``ValueError`` naming ``what`` otherwise."""
    if isinstance(item, re.Pattern):
        if not isinstance(item.pattern, str):
            raise ValueError(f"{what} pattern {item.pattern!r} must be a str pattern, not bytes")
        return item
    if not isinstance(item, str):
        raise ValueError(f"{what} pattern {item!r} must be a str or a compiled regex")
    try:
        return re.compile(item, flags)
    except re.error as exc:
        raise ValueError(f"invalid {what} pattern {item!r}: {exc}") from None


def compile_user_pattern(item: UserPattern) -> tuple[str, re.Pattern[str]]:
    """``(kind, regex)`` of one entry of ``patterns`` (kind ``custom`` unless the entry names one)."""
    kind = "custom"
    if isinstance(item, tuple):
        if len(item) != 2 or not isinstance(item[0], str):
            raise ValueError(f"redaction pattern {item!r} must be a regex or a (kind, regex) pair")
        kind, item = item[0].strip().lower(), item[1]
        if KIND_OK_RE.fullmatch(kind) is None:
            raise ValueError(f"redaction pattern kind {kind!r} must match [a-z0-9_.-]{{1,48}}")
    return kind, compile_pattern(item, "redaction")


def compile_allow(item: PatternLike) -> Allow:
    """One entry of ``allow``: a ``str`` is a literal and, when it compiles, a regex too."""
    if isinstance(item, re.Pattern):
        return None, compile_pattern(item, "allow")
    if not isinstance(item, str):
        raise ValueError(f"allow entry {item!r} must be a str or a compiled regex")
    try:
        return item, re.compile(item)
    except re.error:
        return item, None  # not a regex: a literal only


def redact_user(
    text: str, kind: str, pattern: re.Pattern[str], allowed: Callable[[str], bool]
) -> tuple[str, int]:
    """One pass of a user's ``pattern`` over ``text``: ``(result, replacements)``.

    A group named ``secret`` limits the replacement to it; a match that overlaps
    a marker swallows the marker whole (a marker is never cut), and one inside a
    marker is left alone.
    """
    spans = [m.span() for m in MARKER_RE.finditer(text)] if MARKER_PREFIX in text else []
    pieces: list[str] = []
    emitted = 0
    count = 0
    for found in pattern.finditer(text):
        start, end = _secret_span(found)
        if start >= end or start < emitted:
            continue
        inside = False
        for m_start, m_end in spans:  # never cut into an existing marker: swallow it whole
            if m_start <= start and end <= m_end:
                inside = True
                break
            if m_start < end and start < m_end:
                start, end = min(start, m_start), max(end, m_end)
        if inside or start < emitted or allowed(text[start:end]):
            continue
        pieces.append(text[emitted:start])
        pieces.append(marker(kind))
        emitted = end
        count += 1
    if not count:
        return text, 0
    pieces.append(text[emitted:])
    return "".join(pieces), count


def _secret_span(found: re.Match[str]) -> tuple[int, int]:
    if "secret" in found.re.groupindex and found.start("secret") >= 0:
        return found.span("secret")
    return found.span()

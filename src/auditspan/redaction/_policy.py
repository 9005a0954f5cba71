"""The capture policy and the redaction marker: what a field keeps, and what a secret becomes."""

from __future__ import annotations

import re
from enum import Enum
from typing import Final

__all__ = ["MARKER_PREFIX", "REDACTION_ERROR_MARKER", "CapturePolicy", "is_marker", "marker"]

#: Every redaction marker starts with this.
MARKER_PREFIX: Final = "[REDACTED:"
#: What a text becomes when redaction itself failed (fail closed: nothing of it is kept).
REDACTION_ERROR_MARKER: Final = "[REDACTED:error]"

#: One whole marker (kinds made by ``_kind_from_key`` or given by the user).
MARKER_RE: Final = re.compile(r"\[REDACTED:[a-z0-9_.\-]{1,64}\]")
#: What a user-given kind may be made of.
KIND_OK_RE: Final = re.compile(r"[a-z0-9_.\-]{1,48}")


def marker(kind: str) -> str:
    """The marker that replaces a secret of ``kind``: ``[REDACTED:kind]``."""
    return f"{MARKER_PREFIX}{kind}]"


def is_marker(text: str) -> bool:
    """True when ``text`` is exactly one redaction marker."""
    return MARKER_RE.fullmatch(text) is not None


class CapturePolicy(str, Enum):
    """How much of a *content* field (prompt/content/arguments/result preview) is kept.

    ``NONE`` drops the content (an empty string is recorded), ``REDACTED`` (the
    default) keeps it with secrets replaced, ``FULL`` keeps it verbatim.
    Non-content strings (error messages, reasons) are redacted under ``NONE``
    and ``REDACTED`` and kept verbatim under ``FULL``.

    Example::

        >>> CapturePolicy.parse(" Redacted ")
        <CapturePolicy.REDACTED: 'redacted'>
    """

    NONE = "none"
    REDACTED = "redacted"
    FULL = "full"

    @classmethod
    def parse(cls, value: str) -> CapturePolicy:
        """The policy named ``value`` (case and surrounding space ignored).

        Raises ``ValueError`` naming the allowed values otherwise.
        """
        if isinstance(value, CapturePolicy):
            return value
        if isinstance(value, str):
            wanted = value.strip().lower()
            for member in cls:
                if member.value == wanted:
                    return member
        allowed = ", ".join(repr(member.value) for member in cls)
        raise ValueError(f"invalid capture policy {value!r}: expected one of {allowed}")

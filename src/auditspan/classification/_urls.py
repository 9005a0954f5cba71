"""Find URLs in text and read what the classifier needs from them: host, path, HTTP method, webhook.

A target must never carry a secret, so a URL is reduced to ``host/path``:
no scheme, no ``user:password@``, no query string, no fragment. The HTTP
method is read from the text that holds the URL, as a person would: a
leading ``POST https://...``, curl's ``-X PUT`` or its data flags,
``requests.post(`` in code. These functions work on plain strings; reading a
call's arguments for URLs is the argument lexer's job (``_arguments``), and
choosing a target is the derivers' (``_derivers``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from ._words import _HTTP_METHODS

_URL_RE = re.compile(r"https?://([^/\s?#'\"<>\\]+)([^\s?#'\"<>\\]*)", re.I)
_METHOD_URL_RE = re.compile(r"(GET|POST|PUT|PATCH|DELETE|HEAD|OPTIONS)\s+https?://", re.I)
_CURL_METHOD = re.compile(r"(?:-X\s*|--request[\s=]+)([A-Za-z]+)")
_CURL_DATA = re.compile(r"\s(?:-d|--data(?:-raw|-binary|-urlencode)?|-F|--form|--json|-T|--upload-file)\b")
_CODE_METHOD = re.compile(
    r"\b(?:requests|httpx|session|client|axios)\.(get|post|put|patch|delete|head)\s*\(", re.I
)
#: A shell or code command that talks HTTP (``curl``, ``requests`` ...), when it also holds a URL.
_SHELL_HTTP = re.compile(
    r"\b(?:curl|wget|http|https|httpie|Invoke-WebRequest|iwr|requests|httpx|urllib|fetch)\b"
)


def _split_url(text: str) -> tuple[str, str] | None:
    """``(host, path)`` of the first URL in ``text``: lower-case host without user-info, no query."""
    m = _URL_RE.search(text)
    if m is None:
        return None
    host = m.group(1).rsplit("@", 1)[-1].lower()  # never keep user:password@
    path = m.group(2).rstrip("/.,;:)")
    return (host, path) if host else None


def _first_url(pairs: Iterable[tuple[str, str]]) -> tuple[str, str, str] | None:
    """``(target, host, the text holding it)`` for the first URL among ``(key, value)`` pairs."""
    for _key, val in pairs:
        parts = _split_url(val)
        if parts is not None:
            host, path = parts
            return host + path, host, val
    return None


def _is_webhook_url(target: str) -> bool:
    """True when a ``host/path`` target looks like a webhook (``hooks.`` host, ``/webhook`` path ...)."""
    host, _, path = target.partition("/")
    path = "/" + path.lower()
    return host.startswith("hooks.") or "webhook" in host or "/webhook" in path or "/hooks/" in path


def _method_in_text(text: str) -> str | None:
    """The HTTP method the text around a URL shows (``POST https://``, ``curl -X PUT``, ``requests.get(``)."""
    m = _METHOD_URL_RE.match(text.strip())
    if m is not None:
        return m.group(1).upper()
    c = _CURL_METHOD.search(text)
    if c is not None and c.group(1).upper() in _HTTP_METHODS:
        return c.group(1).upper()
    c2 = _CODE_METHOD.search(text)
    if c2 is not None:
        return c2.group(1).upper()
    if "curl" in text and _CURL_DATA.search(text) is not None:
        return "POST"
    return None

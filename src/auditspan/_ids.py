"""Trace, span and event ids chosen by the collector before a span exists.

The events that govern a tool call (loop check, policy decision, argument hook)
arrive before the call's attempt, and their canonical records must already
carry the span id of the tool span that is started later. So the collector
picks ids itself and hands them to the SDK through ``_InjectingIdGenerator``,
which wraps the tracer's own generator and returns the chosen id for the next
span started on this thread.

``RandomIds`` serves live runs; ``DeterministicIds`` derives every id from the
records' content so that replaying the same audit log twice yields the same
trace and span ids (backends de-duplicate instead of doubling the traces).
"""

from __future__ import annotations

import hashlib
import os
import random
import threading
from itertools import count
from typing import Any

from opentelemetry.sdk.trace.id_generator import IdGenerator
from opentelemetry.trace import INVALID_SPAN_ID, INVALID_TRACE_ID

from . import _fork


class RandomIds:
    """Random ids, as the SDK's ``RandomIdGenerator`` makes them; event ids unique per process."""

    deterministic = False

    def __init__(self) -> None:
        self._prefix = os.urandom(8).hex()
        self._counter = count(1)
        _fork.track(self, tier=0)

    def _fork_child(self) -> None:
        # A forked child would count on from the parent's prefix and number: ids twice in one log.
        self._prefix = os.urandom(8).hex()
        self._counter = count(1)

    def event_id(self, fields: dict[str, Any], position: int) -> str:
        """A new ``evt_`` id (unique: a random per-collector prefix and a counter)."""
        return f"evt_{self._prefix}{next(self._counter):016x}"

    def trace_id(self, key: str) -> int:
        """A random 128-bit trace id."""
        trace_id = random.getrandbits(128)
        while trace_id == INVALID_TRACE_ID:  # pragma: no cover - 2**-128
            trace_id = random.getrandbits(128)
        return trace_id

    def span_id(self, key: str) -> int:
        """A random 64-bit span id."""
        span_id = random.getrandbits(64)
        while span_id == INVALID_SPAN_ID:  # pragma: no cover - 2**-64
            span_id = random.getrandbits(64)
        return span_id


class DeterministicIds:
    """Ids derived from content: the same audit log always gives the same ids.

    ``key`` strings are built by the collector from stable fields (session,
    turn id, the first event's id and timestamp), and ``event_id`` hashes the
    event's own JSON with its position in the stream, so two identical lines
    still get distinct ids.
    """

    deterministic = True

    def __init__(self, namespace: str = "auditspan") -> None:
        self._namespace = namespace.encode()

    def _digest(self, *parts: str) -> bytes:
        h = hashlib.blake2b(self._namespace, digest_size=16)
        for part in parts:
            h.update(b"\x1f")
            h.update(part.encode("utf-8", "surrogatepass"))
        return h.digest()

    def event_id(self, fields: dict[str, Any], position: int) -> str:
        """``evt_`` + a hash of the event's fields and its position in the stream."""
        import orjson

        try:
            body = orjson.dumps(fields, default=str, option=orjson.OPT_SORT_KEYS).decode()
        except (TypeError, ValueError):
            body = repr(sorted(fields.items(), key=lambda kv: str(kv[0])))
        return "evt_" + self._digest("event", str(position), body).hex()

    def trace_id(self, key: str) -> int:
        """A 128-bit trace id hashed from ``key``."""
        return int.from_bytes(self._digest("trace", key), "big") or 1

    def span_id(self, key: str) -> int:
        """A 64-bit span id hashed from ``key``."""
        return int.from_bytes(self._digest("span", key)[:8], "big") or 1


IdStrategy = RandomIds | DeterministicIds


class _InjectingIdGenerator(IdGenerator):
    """Returns the ids the collector chose for the next span started on this thread."""

    def __init__(self, inner: IdGenerator) -> None:
        self._inner = inner
        self._next = threading.local()

    def set_next(self, trace_id: int, span_id: int) -> None:
        self._next.trace_id = trace_id
        self._next.span_id = span_id

    def clear(self) -> None:
        # A child span never asks for a trace id: drop what it did not use.
        self._next.trace_id = None
        self._next.span_id = None

    def generate_span_id(self) -> int:
        span_id: int | None = getattr(self._next, "span_id", None)
        if span_id is None:
            return self._inner.generate_span_id()
        self._next.span_id = None
        return span_id

    def generate_trace_id(self) -> int:
        trace_id: int | None = getattr(self._next, "trace_id", None)
        if trace_id is None:
            return self._inner.generate_trace_id()
        self._next.trace_id = None
        return trace_id

    def is_trace_id_random(self) -> bool:
        return False

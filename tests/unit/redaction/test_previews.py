"""A preview costs time and memory bounded by its length, whatever the value (issue 13, item 8).

Every way a preview is made -- ``@audit.tool`` and ``audit.tool_call`` (hooks),
``AuditEmitter``'s ``emit_*`` methods, the OpenAI Agents adapter, the
collector's text for a value of the wrong type or an object that is not an
event -- goes through ``_sanitize.preview``. Each is fed values whose full
``str()`` would be tens of megabytes (or would never finish, or raises); the
memory traced while the preview is made (``tracemalloc`` peak, the argument
itself allocated before tracing starts) must stay under 5 MB, and the preview
must still read as ``str(value)`` does, cut.
"""

from __future__ import annotations

import dataclasses
import tracemalloc
from collections import OrderedDict, deque, namedtuple
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from auditspan import AuditEmitter, SpanCollector
from auditspan._sanitize import PREVIEW_LIMIT, preview
from auditspan.hooks import Audit

from ...conftest import Harness, event_records

MB = 2**20
PEAK_LIMIT = 5 * MB


class _RaisingRepr:
    def __repr__(self) -> str:
        raise RuntimeError("no repr for you")

    __str__ = __repr__


class _CountingRepr:
    calls = 0

    def __repr__(self) -> str:
        type(self).calls += 1
        return "c"


@dataclasses.dataclass
class _Document:
    title: str
    body: str


def _nested(depth: int) -> list[Any]:
    value: list[Any] = []
    for _ in range(depth):
        value = [value]
    return value


def _huge_values() -> Iterator[tuple[str, Callable[[], Any]]]:
    """Values whose whole ``str()`` is huge, endless or raising (made lazily: one at a time in memory)."""
    yield "huge str", lambda: "s" * (30 * MB)
    yield "huge str in a dict", lambda: {"query": "q" * (30 * MB), "n": 1}
    yield "huge bytes", lambda: b"\x00" * (15 * MB)
    yield "huge bytearray in a tuple", lambda: (bytearray(b"\xff" * (15 * MB)),)
    yield "huge list", lambda: list(range(3_000_000))
    yield "huge dict", lambda: {f"k{i}": i for i in range(500_000)}
    yield "huge set", lambda: set(range(1_000_000))
    yield "deeply nested list", lambda: _nested(200_000)
    yield "huge OrderedDict", lambda: OrderedDict((i, i) for i in range(500_000))
    yield "huge deque", lambda: deque(range(2_000_000))
    yield "dataclass with a huge field", lambda: [_Document("t", "b" * (30 * MB))]
    yield "object whose repr raises", lambda: [_RaisingRepr(), "x" * (30 * MB)]


def _peak_of(make_preview: Callable[[], Any]) -> int:
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        make_preview()
        return tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("name", [name for name, _ in _huge_values()])
def test_a_preview_of_a_huge_value_costs_a_bounded_amount_of_memory(name: str) -> None:
    value = dict(_huge_values())[name]()
    out: list[str] = []
    peak = _peak_of(lambda: out.append(preview(value)))
    assert peak < PEAK_LIMIT, f"{name}: {peak / MB:.1f} MB traced"
    assert 0 < len(out[0]) <= PREVIEW_LIMIT


def test_previews_read_as_str_does_cut_to_the_limit() -> None:
    point = namedtuple("point", "x y")
    loop: list[Any] = [1]
    loop.append(loop)
    samples: list[Any] = [
        {"to": "LIS", "when": [2026, 11, 21], "pax": (1,), "ok": True, "none": None, "f": 1.5},
        [b"\x00bytes", bytearray(b"ba"), frozenset(), set(), {1, 2}, (), 10**30],
        point(1, "two"),
        _Document("title", "body"),
        [_Document("a", "b")],
        loop,
        deque([1, 2], maxlen=5),
        "plain text",
        ValueError("the message"),
        Path("/tmp/x"),
        {"k" * 300: "v"},
        [[[[["deep"]]]]],
        list(range(500)),
    ]
    for value in samples:
        assert preview(value) == str(value)[:PREVIEW_LIMIT], value
    assert preview("text", as_repr=True) == "'text'"
    assert preview(_nested(1_000)) == "[" * PREVIEW_LIMIT
    assert preview([_RaisingRepr()]) == "[<unrepresentable _RaisingRepr>]"
    assert preview(2**100_000) == "<int of 100001 bits>"


def test_a_user_repr_is_called_at_most_once_per_object_shown() -> None:
    """A slow ``__repr__`` is bounded by how many objects a preview can show: about ``limit / 2``."""
    _CountingRepr.calls = 0
    text = preview([_CountingRepr() for _ in range(100_000)])
    assert text.startswith("[c, c, c") and len(text) == PREVIEW_LIMIT
    assert _CountingRepr.calls <= PREVIEW_LIMIT // 2 + 1


def test_hooks_preview_huge_arguments_and_results_in_bounded_memory(harness: Harness) -> None:
    audit = Audit(harness.collector, session_id="s")
    big = {"payload": "p" * (30 * MB), "rows": list(range(1_000_000))}

    @audit.tool
    def store(document: dict[str, Any]) -> bytes:
        return b"r" * (15 * MB)

    with audit.turn(agent_id="a", prompt=big):
        peak = _peak_of(lambda: store(big))
    assert peak < PEAK_LIMIT + 15 * MB, f"{peak / MB:.1f} MB"  # the 15 MB result is the tool's own
    with audit.turn(agent_id="a"):
        peak = _peak_of(lambda: audit.tool_call("t", big).__enter__().__exit__(None, None, None))
    assert peak < PEAK_LIMIT, f"{peak / MB:.1f} MB"
    records = harness.records()
    attempts = [r for r in records if r["event_type"] == "tool_call_attempt"]
    assert attempts[0]["arguments_preview"] == str({"document": {"payload": "p" * 200}})[:PREVIEW_LIMIT]
    assert all(len(r["arguments_preview"]) <= PREVIEW_LIMIT for r in attempts)
    complete = next(r for r in records if r["event_type"] == "tool_call_complete")
    assert complete["result_preview"] == "b'" + "r" * (PREVIEW_LIMIT - 2)
    assert records[0]["prompt_preview"] == str({"payload": "p" * 200})[:PREVIEW_LIMIT]


def test_emitter_previews_huge_values_in_bounded_memory(harness: Harness) -> None:
    emitter = AuditEmitter(harness.collector, session_id="s")
    args = {"sql": "SELECT " + "x" * (30 * MB)}
    result = list(range(3_000_000))
    peak = _peak_of(lambda: emitter.emit_tool_call_attempt("run_sql", args=args, turn_id="t"))  # type: ignore[arg-type]
    assert peak < PEAK_LIMIT, f"{peak / MB:.1f} MB"
    peak = _peak_of(lambda: emitter.emit_tool_call_complete("run_sql", result=result, turn_id="t"))  # type: ignore[arg-type]
    assert peak < PEAK_LIMIT, f"{peak / MB:.1f} MB"
    attempt, complete = [r for r in harness.records() if r["tool_name"] == "run_sql"]
    assert attempt["arguments_preview"] == "{'sql': 'SELECT " + "x" * (PREVIEW_LIMIT - 16)
    assert complete["result_preview"] == str(list(range(100)))[:PREVIEW_LIMIT]


def test_collector_text_of_wrong_types_and_non_events_is_bounded(tmp_path: Path) -> None:
    from opentelemetry import trace

    collector = SpanCollector(trace.NoOpTracerProvider(), audit_log=tmp_path / "audit.jsonl")
    huge = ["item"] * 3_000_000
    event = {"event_type": "tool_call_attempt", "tool_name": huge, "arguments_preview": huge, "turn_id": "t"}
    peak = _peak_of(lambda: collector.emit(event))
    assert peak < PEAK_LIMIT, f"wrong types: {peak / MB:.1f} MB"
    peak = _peak_of(lambda: collector.emit(huge))  # not an event at all: recorded as evidence, bounded
    assert peak < PEAK_LIMIT, f"not an event: {peak / MB:.1f} MB"
    collector.shutdown()

    first, second = event_records((tmp_path / "audit.jsonl").read_text().splitlines())
    coerced = first["metadata"]["auditspan.coerced"]["tool_name"]
    assert coerced.startswith("['item', 'item'") and len(coerced) == 8_192 and coerced.endswith("…")
    assert second["metadata"]["auditspan.invalid_event"].startswith("['item', 'item'")


def test_openai_adapter_previews_through_the_same_function() -> None:
    from auditspan.integrations import openai_agents

    value = {"output": "o" * (30 * MB)}
    peak = _peak_of(lambda: openai_agents._preview_of(value))
    assert peak < PEAK_LIMIT, f"{peak / MB:.1f} MB"
    assert openai_agents._preview_of(value) == preview(value)

"""Previews and ids are made in one place, ``auditspan.emitter``, for every source of events.

``_preview_of`` (the preview an event carries: "" for None, else ``str(value)`` cut to 200
characters, at a bounded cost), ``new_turn_id`` and ``_new_call_id`` serve the emitter, the hooks and
the OpenAI Agents adapter alike; the emitter adds only the seed system's rule (an empty or zero
value previews as "").
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from auditspan import emitter
from auditspan._sanitize import PREVIEW_LIMIT, preview
from auditspan.emitter import _new_call_id, _preview_of, new_turn_id
from auditspan.hooks import Audit


class _UnprintableResult:
    def __str__(self) -> str:
        raise RuntimeError("no str")


VALUES: list[Any] = [
    None,
    0,
    "",
    [],
    "short",
    "x" * 500,
    {"query": "q" * 10**6, "n": 3},
    [1, 2.5, None],
    _UnprintableResult(),
]


def test_previews_come_from_one_function_in_every_source() -> None:
    from auditspan.hooks import _audit, _tool_call, _tools, _turn

    users = [_audit, _tool_call, _tools, _turn]
    try:
        from auditspan.integrations import openai_agents

        users.append(openai_agents)
    except ImportError:  # pragma: no cover - the SDK is in the test extras
        pass
    assert all(module._preview_of is emitter._preview_of for module in users)
    assert all(
        module._new_call_id is emitter._new_call_id for module in users if hasattr(module, "_new_call_id")
    )


@pytest.mark.parametrize("value", VALUES, ids=lambda v: type(v).__name__)
def test_the_one_preview_and_the_emitters_seed_rule(value: Any) -> None:
    expected = "" if value is None else preview(value, PREVIEW_LIMIT)
    assert _preview_of(value) == expected and len(expected) <= PREVIEW_LIMIT
    seed_empty = type(value) in (int, str, list) and not value
    assert emitter._preview(value) == ("" if seed_empty else expected)


@pytest.mark.parametrize("value", VALUES, ids=lambda v: type(v).__name__)
def test_hooks_records_carry_the_one_preview(harness: Any, value: Any) -> None:
    audit = Audit(harness.collector, session_id="sess-p")
    with audit.turn(agent_id="a", prompt=value) as turn:
        with audit.tool_call("t", value) as call:
            call.result = value
        turn.content = value
    start, attempt, complete, end = harness.records()
    assert (
        start["prompt_preview"] == end["content_preview"] == complete["result_preview"] == _preview_of(value)
    )
    expected_args = _preview_of(value if value is not None else {})  # no arguments: an empty mapping
    assert attempt["arguments_preview"] == expected_args


def test_ids_have_the_seed_systems_shape_and_do_not_repeat(harness: Any) -> None:
    turn_ids = {new_turn_id() for _ in range(1000)}
    call_ids = {_new_call_id() for _ in range(1000)}
    assert len(turn_ids) == len(call_ids) == 1000
    assert all(re.fullmatch(r"[0-9a-f]{12}", t) for t in turn_ids)
    assert all(re.fullmatch(r"[0-9a-f]{16}", c) for c in call_ids)
    audit = Audit(harness.collector, session_id="sess-i")
    with audit.turn(agent_id="a") as turn, audit.tool_call("t") as call:
        pass
    assert re.fullmatch(r"[0-9a-f]{12}", turn.turn_id or "") and re.fullmatch(
        r"[0-9a-f]{16}", call.tool_call_id
    )

"""``auditspan.hooks._tools``: one driver, ``_GeneratorRun``, for sync and async generator tools.

The driver is run here by hand on a sync and on an async generator with the same body, through the
same steps (next, send, throw, then exhaustion, a close, or a failure): the tool's generator sees the
same values and exceptions, and the call's records are the same.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Generator
from typing import Any

import pytest

from auditspan.hooks import Audit
from auditspan.hooks._tools import _GeneratorRun

#: A consumer's steps: ("send", value) or ("throw", exception), after a first ``next``.
Steps = list[tuple[str, Any]]


def _sync_echo(limit: int) -> Generator[str, Any, str]:
    received = yield "ready"
    for _ in range(limit):
        try:
            received = yield f"got {received}"
        except KeyError:
            received = yield "recovered"
        if received == "boom":
            raise ValueError("bad row")
    return "all done"


async def _async_echo(limit: int) -> AsyncGenerator[str, Any]:
    received = yield "ready"
    for _ in range(limit):
        await asyncio.sleep(0)
        try:
            received = yield f"got {received}"
        except KeyError:
            received = yield "recovered"
        if received == "boom":
            raise ValueError("bad row")


def _drive_sync(audit: Audit, steps: Steps, close: bool) -> tuple[list[str], str]:
    run = _GeneratorRun(audit.tool_call("echo", {"limit": 2}))
    inner = _sync_echo(2)
    seen: list[str] = []
    try:
        seen.append(run.passed(run.resume(inner.send, inner.throw)))
        for how, value in steps:
            if how == "throw":
                run.throw_next(value)
            else:
                run.sent = value
            seen.append(run.passed(run.resume(inner.send, inner.throw)))
        if close:
            inner.close()
            run.failed(GeneratorExit())
            return seen, "closed"
        run.sent = "last"
        seen.append(run.passed(run.resume(inner.send, inner.throw)))
    except StopIteration as stop:
        run.done(stop.value)
        return seen, "exhausted"
    except ValueError as exc:
        run.failed(exc)
        return seen, "failed"
    return seen, "open"


def _drive_async(audit: Audit, steps: Steps, close: bool) -> tuple[list[str], str]:
    async def drive() -> tuple[list[str], str]:
        run = _GeneratorRun(audit.tool_call("echo", {"limit": 2}))
        inner = _async_echo(2)
        seen: list[str] = []
        try:
            seen.append(run.passed(await run.resume(inner.asend, inner.athrow)))
            for how, value in steps:
                if how == "throw":
                    run.throw_next(value)
                else:
                    run.sent = value
                seen.append(run.passed(await run.resume(inner.asend, inner.athrow)))
            if close:
                await inner.aclose()
                run.failed(GeneratorExit())
                return seen, "closed"
            run.sent = "last"
            seen.append(run.passed(await run.resume(inner.asend, inner.athrow)))
        except StopAsyncIteration:
            run.done(None)
            return seen, "exhausted"
        except ValueError as exc:
            run.failed(exc)
            return seen, "failed"
        return seen, "open"

    return asyncio.run(drive())


def _call_records(records: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    """What a call's records say, without ids and times (each run has its own)."""
    return [
        (
            r["event_type"],
            r.get("status"),
            r.get("result_preview"),
            r.get("error_type"),
            r.get("error_message"),
        )
        for r in records
        if r["event_type"] != "turn_start" and r["event_type"] != "turn_end"
    ]


@pytest.mark.parametrize(
    ("steps", "close", "outcome", "items"),
    [
        ([("send", "x"), ("throw", KeyError("k")), ("send", "y")], False, "exhausted", 4),
        ([("send", "x")], True, "closed", 2),
        ([("send", "x"), ("send", "boom")], False, "failed", 2),
    ],
    ids=["exhausted", "closed", "failed"],
)
def test_one_run_drives_a_sync_and_an_async_generator_alike(
    make_harness: Any, steps: Steps, close: bool, outcome: str, items: int
) -> None:
    results = {}
    for kind, drive in (("sync", _drive_sync), ("async", _drive_async)):
        harness = make_harness()
        audit = Audit(harness.collector, session_id=f"sess-{kind}")
        with audit.turn(agent_id="a"):
            seen, how = drive(audit, steps, close)
        assert how == outcome
        assert seen == ["ready", "got x", "recovered", "got y"][:items]
        results[kind] = (seen, _call_records(harness.records()))
    assert results["sync"][0] == results["async"][0]
    sync_records, async_records = results["sync"][1], results["async"][1]
    end = sync_records[-1]
    if outcome == "exhausted":  # a sync generator's return value is its result; an async one has none
        assert end[:3] == ("tool_call_complete", "success", "all done")
        assert async_records[-1][:3] == (
            "tool_call_complete",
            "success",
            "[ready, got x, recovered, got y]",
        )
        sync_records, async_records = sync_records[:-1], async_records[:-1]
    elif outcome == "closed":
        assert end[:3] == ("tool_call_complete", "closed", "[ready, got x]")
    else:
        assert end == ("tool_call_failure", None, None, "ValueError", "bad row")
    assert sync_records == async_records
    assert sync_records[0] == ("tool_call_attempt", None, None, None, None)


def test_a_refused_call_raises_before_the_tools_generator_is_made(harness: Any) -> None:
    audit = Audit(harness.collector, session_id="sess-r", policy=lambda tool, args: False)
    with pytest.raises(PermissionError, match="refused"):
        _GeneratorRun(audit.tool_call("echo"))
    assert [r["event_type"] for r in harness.records()] == ["tool_policy_decision"]

"""Decorators and context managers: audit a runtime that has no audit events of its own.

    python examples/decorators.py [OUTPUT_DIR]

Writes ``traces.jsonl`` (OTLP/JSON lines) and ``audit.jsonl`` (the canonical audit log) to
OUTPUT_DIR (default: a new temporary folder). No network.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

from _show import summary

import auditspan
from auditspan.context import ContextExecutor
from auditspan.hooks import Audit, SandboxVerdict, ToolCallDenied


def policy(tool: str, arguments: object) -> bool:
    """The agent's policy: no deletions."""
    return not tool.startswith("delete")


def main(output_dir: Path) -> None:
    telemetry = auditspan.configure(service_name="decorators-example", output_dir=output_dir)
    audit = Audit(
        telemetry,
        session_id="sess-decorators",
        policy=policy,
        sandbox=lambda tool, args: SandboxVerdict("sandbox" if tool == "run_code" else "host"),
    )

    @audit.tool
    def web_search(query: str) -> str:
        return f"3 results for {query!r}"

    @audit.tool(name="delete_records", operation_type="DATABASE_DELETE")
    def delete_records(table: str) -> str:
        return f"deleted {table}"

    attempts = {"fetch_url": 0}

    @audit.tool
    def fetch_url(url: str) -> str:
        attempts["fetch_url"] += 1
        if attempts["fetch_url"] == 1:
            raise TimeoutError("upstream timed out")
        return "200 OK"

    @audit.tool
    async def get_weather(city: str) -> str:
        await asyncio.sleep(0)
        return f"sunny in {city}"

    @audit.tool
    def read_lines(path: str) -> Iterator[str]:
        yield from ("hotel A", "hotel B")

    with audit.turn(agent_id="planner", prompt="Plan a trip to Lisbon") as turn:
        web_search("flights to Lisbon")
        try:
            delete_records("users")
        except ToolCallDenied as refused:
            print(f"  refused: {refused}")
        for _ in range(2):  # the runtime retries a failing call once
            try:
                fetch_url("https://api.example.com/lisbon")
                break
            except TimeoutError:
                continue
        with audit.tool_call("run_code", {"code": "print(1)"}) as call:  # a call made without a decorator
            call.result = "1"
        turn.content = "Flights found; records kept."

    async def second_turn() -> None:
        async with audit.turn(agent_id="planner", prompt="Weather and hotels") as turn:
            weather = await get_weather("Lisbon")
            hotels = list(read_lines("/srv/hotels.txt"))  # a generator: one call, until exhausted
            # Tool work in threads keeps its turn only if the context goes along: ContextExecutor.
            with ContextExecutor(max_workers=2) as pool:
                list(pool.map(web_search, ["hotels in Lisbon", "museums in Lisbon"]))
            turn.content = f"{weather}; {len(hotels)} hotels"

    asyncio.run(second_turn())
    telemetry.shutdown()
    summary(output_dir)


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp(prefix="auditspan-decorators-")))

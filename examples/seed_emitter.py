"""The seed system's audit emitter, wired to auditspan in code.

    python examples/seed_emitter.py [OUTPUT_DIR]

A runtime with the seed system's audit API (``calute.audit`` / ``xerxes.audit``; here the stand-in
in ``tests/fixtures/seed_standin``, which has that API) keeps its own collector and gets
auditspan's ``SpanCollector`` beside it, through the seed's own ``CompositeCollector``. With the
successor runtime the same is ``RuntimeFeaturesConfig(audit_collector=CompositeCollector([...]))``.
For no code change at all, see ``zero_code.py``.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from _show import summary

import auditspan

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "seed_standin"))

from calute.audit import AuditEmitter, CompositeCollector, JSONLSinkCollector
from calute.runtime import MiniRuntime


class Tools:
    def __init__(self) -> None:
        self.fetches = 0

    def web_search(self, query: str) -> str:
        return f"3 results for {query!r}"

    def delete_records(self, table: str) -> str:
        raise AssertionError("denied by policy: never runs")

    def fetch_url(self, url: str) -> str:
        self.fetches += 1
        if self.fetches == 1:
            raise TimeoutError("upstream timed out")
        return "200 OK"

    def get_weather(self, city: str) -> str:
        return f"sunny in {city}"


def main(output_dir: Path) -> None:
    telemetry = auditspan.configure(service_name="seed-emitter-example", output_dir=output_dir)
    own_log = JSONLSinkCollector(output_dir / "seed-events.jsonl")  # the runtime's own audit log, as before
    emitter = AuditEmitter(
        collector=CompositeCollector([own_log, telemetry.collector]), session_id="sess-seed"
    )
    tools = Tools()
    runtime = MiniRuntime(
        emitter,
        {name: getattr(tools, name) for name in ("web_search", "delete_records", "fetch_url", "get_weather")},
        denied=frozenset({"delete_records"}),
    )
    runtime.run_turn(
        "planner",
        "Plan a trip to Lisbon",
        [
            [("web_search", {"query": "flights to Lisbon"})],
            [("delete_records", {"table": "users"})],
            [("fetch_url", {"url": "https://api.example.com/lisbon"})],
        ],
    )
    runtime.run_turn(
        "planner",
        "Weather in Lisbon and Porto",
        [[("get_weather", {"city": "Lisbon"}), ("get_weather", {"city": "Porto"})]],  # in parallel threads
    )
    emitter.flush()
    own_log.close()
    telemetry.shutdown()
    summary(output_dir)


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp(prefix="auditspan-seed-")))

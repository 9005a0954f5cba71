"""An agent on a runtime with the seed system's audit API, without a line of auditspan.

Run it through ``zero_code.py``, or by hand::

    export PYTHONPATH=tests/fixtures/seed_standin AUDITSPAN_OUTPUT_DIR=/tmp/zero-code
    opentelemetry-instrument python examples/zero_code_agent.py

The runtime (the stand-in of ``calute``, with the seed's ``AuditEmitter``) writes its own audit log
to ``$AUDITSPAN_OUTPUT_DIR/seed-events.jsonl``; ``opentelemetry-instrument`` adds the traces and the
canonical audit log.
"""

from __future__ import annotations

import os
from pathlib import Path

from calute.audit import AuditEmitter, JSONLSinkCollector
from calute.runtime import MiniRuntime


def web_search(query: str) -> str:
    return f"3 results for {query!r}"


def send_email(to: str, subject: str) -> str:
    raise AssertionError("denied by policy: never runs")


def read_file(path: str) -> str:
    return "hotel A\nhotel B"


def main() -> None:
    folder = Path(os.environ.get("AUDITSPAN_OUTPUT_DIR", "auditspan-output"))
    folder.mkdir(parents=True, exist_ok=True)
    own_log = JSONLSinkCollector(folder / "seed-events.jsonl")
    emitter = AuditEmitter(collector=own_log, session_id="sess-zero-code")
    runtime = MiniRuntime(
        emitter,
        {"web_search": web_search, "send_email": send_email, "read_file": read_file},
        denied=frozenset({"send_email"}),
    )
    runtime.run_turn(
        "concierge",
        "Find hotels and mail the list",
        [
            [("web_search", {"query": "hotels in Lisbon"}), ("read_file", {"path": "/srv/hotels.txt"})],
            [("send_email", {"to": "all@example.com", "subject": "Hotels"})],
        ],
    )
    emitter.flush()
    own_log.close()
    print(f"own collector: {type(emitter.collector).__name__}")


if __name__ == "__main__":
    main()

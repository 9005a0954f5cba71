"""``auditspan replay`` into a real Arize Phoenix over OTLP: a second replay adds no duplicates.

The replay runs as a subprocess of the console script, configured only through the standard
environment (``OTEL_EXPORTER_OTLP_ENDPOINT``, ``OTEL_EXPORTER_OTLP_PROTOCOL``,
``OTEL_RESOURCE_ATTRIBUTES`` naming the Phoenix project), as a user would run it.

Phoenix drops a span whose id it already holds -- in any project -- so each test replays in
an id namespace of its own (``--id-namespace``, the project name); otherwise the second test
would send only spans Phoenix already has and its project would stay empty.

Phoenix ingests asynchronously, so "nothing more arrived" cannot be observed directly. The
second replay therefore also replays a small *sentinel* log after the seed log: once the
sentinel's spans are visible, the second replay's spans have been processed too, and the
project must hold exactly the first count plus the sentinel's.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from auditspan.events import ToolCallAttemptEvent, ToolCallCompleteEvent, TurnEndEvent, TurnStartEvent
from auditspan.otlp_file import read_spans

from .servers import PHOENIX_PROJECT_ATTRIBUTE, Phoenix

SEED = Path(__file__).resolve().parents[1] / "data" / "logs" / "seed-run.jsonl"
CONSOLE_SCRIPT = Path(sys.executable).parent / "auditspan"


def _sentinel(path: Path) -> Path:
    """A one-turn seed-format log in a session of its own (2 spans)."""
    common: dict[str, Any] = {
        "agent_id": "sentinel",
        "turn_id": "5e971ne15e97",
        "session_id": "sess-sentinel",
    }
    events = [
        TurnStartEvent(timestamp="2026-03-02T10:00:00.000000+00:00", prompt_preview="ping", **common),
        ToolCallAttemptEvent(timestamp="2026-03-02T10:00:00.100000+00:00", tool_name="ping", **common),
        ToolCallCompleteEvent(
            timestamp="2026-03-02T10:00:00.200000+00:00", tool_name="ping", duration_ms=100.0, **common
        ),
        TurnEndEvent(timestamp="2026-03-02T10:00:00.300000+00:00", function_calls_count=1, **common),
    ]
    path.write_text("".join(e.to_json() + "\n" for e in events), encoding="utf-8")
    return path


def _replay(phoenix: Phoenix, project: str, cwd: Path, *files: Path, protocol: str) -> int:
    """Run ``auditspan replay`` against Phoenix; return the number of spans it exported."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "AUDITSPAN_"))}
    env.update(
        OTEL_EXPORTER_OTLP_ENDPOINT=phoenix.http_endpoint
        if protocol == "http/protobuf"
        else phoenix.grpc_endpoint,
        OTEL_EXPORTER_OTLP_PROTOCOL=protocol,
        OTEL_RESOURCE_ATTRIBUTES=f"{PHOENIX_PROJECT_ATTRIBUTE}={project}",
    )
    done = subprocess.run(
        [str(CONSOLE_SCRIPT), "replay", *map(str, files), "--id-namespace", project],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert done.returncode == 0, f"stdout:\n{done.stdout}\nstderr:\n{done.stderr}"
    match = re.search(r"spans: (\d+) exported, 0 failed", done.stdout)
    assert match, done.stdout
    assert not (cwd / "auditspan-output").exists()  # everything went over OTLP
    return int(match.group(1))


def _local_spans(tmp_path: Path, project: str, *files: Path) -> list[dict[str, Any]]:
    """The same replay into the embedded default, for the expected names and links."""
    out = tmp_path / "local"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "AUDITSPAN_"))}
    done = subprocess.run(
        [
            str(CONSOLE_SCRIPT),
            "replay",
            *map(str, files),
            "--output-dir",
            str(out),
            "--id-namespace",
            project,
        ],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return list(read_spans(out / "traces.jsonl"))


def _links(spans: list[dict[str, Any]]) -> set[tuple[str, str, str | None]]:
    """(name, span id, parent span id) of Phoenix spans."""
    return {(s["name"], s["context"]["span_id"], s.get("parent_id")) for s in spans}


@pytest.mark.parametrize("protocol", ["http/protobuf", "grpc"])
def test_replaying_twice_adds_no_duplicates(
    phoenix: Phoenix, phoenix_project: str, tmp_path: Path, protocol: str
) -> None:
    sentinel = _sentinel(tmp_path / "sentinel.jsonl")
    expected = _local_spans(tmp_path, phoenix_project, SEED)
    expected_links = {(s["name"], s["spanId"], s.get("parentSpanId") or None) for s in expected}

    exported = _replay(phoenix, phoenix_project, tmp_path, SEED, protocol=protocol)
    assert exported == len(expected)
    first = phoenix.wait_for_spans(phoenix_project, exported, timeout=60)
    assert len(first) == exported
    # Names and parent links as the local replay made them: same ids, same tree.
    assert _links(first) == expected_links
    roots = {s["name"] for s in first if s.get("parent_id") is None}
    assert roots == {"invoke_agent support-agent", "invoke_agent ops-agent", "audit.error"}
    traces = {s["context"]["trace_id"] for s in first}
    assert traces == {s["traceId"] for s in expected}

    again = _replay(phoenix, phoenix_project, tmp_path, SEED, sentinel, protocol=protocol)
    assert again == exported + 2
    second = phoenix.wait_for_spans(phoenix_project, exported + 2, timeout=60)
    sentinel_spans = [s for s in second if s["context"]["trace_id"] not in traces]
    assert sorted(s["name"] for s in sentinel_spans) == ["execute_tool ping", "invoke_agent sentinel"]
    # The sentinel arrived after the seed's second copy: any duplicate would be visible by now.
    assert len(second) == exported + 2, json.dumps(sorted(s["name"] for s in second))
    assert _links([s for s in second if s["context"]["trace_id"] in traces]) == expected_links

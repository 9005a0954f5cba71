"""Replay keeps the ids a canonical log carries, says where its spans went, and appends only when told."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from auditspan.cli import main
from auditspan.configuration import ConfigurationError, configure
from auditspan.demo import run_demo_agent
from auditspan.otlp_file import read_spans
from auditspan.replay import replay_files

from ..conftest import event_records, event_spans

pytestmark = pytest.mark.usefixtures("clean_environment")


def _live_demo(out: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The demo, live (random ids), into ``out``: its records and spans."""
    handle = configure(service_name="live", output_dir=out, set_global=False, environ={})
    run_demo_agent(handle.emitter, latency_scale=0, run_id="ids")
    handle.shutdown()
    records = event_records((out / "audit.jsonl").read_text(encoding="utf-8").splitlines())
    return records, event_spans(read_spans(out / "traces.jsonl"))


def _ids(spans: list[dict[str, Any]]) -> set[tuple[str, str, str | None, str]]:
    return {(s["traceId"], s["spanId"], s.get("parentSpanId") or None, s["name"]) for s in spans}


def test_a_canonical_log_replays_under_its_own_trace_and_span_ids(tmp_path: Path) -> None:
    records, live = _live_demo(tmp_path / "live")
    summary = replay_files([tmp_path / "live" / "audit.jsonl"], output_dir=tmp_path / "restored", environ={})
    assert summary.lines_skipped == 0
    restored = event_spans(read_spans(tmp_path / "restored" / "traces.jsonl"))
    assert _ids(restored) == _ids(live)  # same trace ids, span ids, parents: the backend is restored
    by_id = {(s["traceId"], s["spanId"]) for s in restored}
    for record in records:
        assert (record["telemetry"]["trace_id"], record["telemetry"]["span_id"]) in by_id
    # Still idempotent: a second replay gives the very same ids (a backend keeps one copy).
    replay_files([tmp_path / "live" / "audit.jsonl"], output_dir=tmp_path / "again", environ={})
    assert _ids(event_spans(read_spans(tmp_path / "again" / "traces.jsonl"))) == _ids(restored)


def test_another_namespace_derives_new_ids_for_a_canonical_log(tmp_path: Path) -> None:
    _, live = _live_demo(tmp_path / "live")
    replay_files(
        [tmp_path / "live" / "audit.jsonl"], output_dir=tmp_path / "copy", environ={}, id_namespace="copy"
    )
    copy = event_spans(read_spans(tmp_path / "copy" / "traces.jsonl"))
    assert len(copy) == len(live)
    assert not {s["spanId"] for s in copy} & {s["spanId"] for s in live}


def test_replay_refuses_a_traces_file_of_another_run_unless_told_to_append(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "live"
    _, live = _live_demo(out)
    log = out / "audit.jsonl"
    before = (out / "traces.jsonl").read_bytes()
    with pytest.raises(ConfigurationError, match="already holds spans"):
        replay_files([log], output_dir=out, environ={})
    status = main(["replay", str(log), "--output-dir", str(out), "--no-progress"])
    assert status == 2
    err = capsys.readouterr().err
    assert "already holds spans" in err and "--append" in err and str(out / "traces.jsonl") in err
    assert (out / "traces.jsonl").read_bytes() == before
    assert main(["replay", str(log), "--output-dir", str(out), "--append", "--no-progress"]) == 0
    assert len(event_spans(read_spans(out / "traces.jsonl"))) == 2 * len(live)


def test_replay_says_where_its_spans_went_and_which_ids_they_have(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _live_demo(tmp_path / "live")
    capsys.readouterr()
    status = main(["replay", str(tmp_path / "live" / "audit.jsonl"), "--output-dir", str(tmp_path / "r")])
    assert status == 0
    out = capsys.readouterr().out
    assert "where they went:" in out
    assert f"traces:      {(tmp_path / 'r' / 'traces.jsonl').resolve()}" in out
    assert "canonical records keep their own" in out

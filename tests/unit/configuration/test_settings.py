"""configure()'s settings table: every read goes through ``environ``, one exit hook, the README agrees."""

from __future__ import annotations

import atexit
import gc
import re
import subprocess
import sys
import textwrap
import weakref
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import auditspan
from auditspan.configuration import ConfigurationError
from auditspan.configuration._settings import SETTINGS

from ...conftest import event_records

README = Path(__file__).resolve().parents[3] / "README.md"

pytestmark = pytest.mark.usefixtures("clean_environment")


def _turn(handle: auditspan.AuditSpanHandle, prompt: str = "hi") -> None:
    audit = handle.emitter(session_id="s1")
    turn = audit.emit_turn_start(agent_id="planner", prompt=prompt)
    audit.emit_tool_call_attempt("lookup", args=prompt, turn_id=turn, agent_id="planner")
    audit.emit_tool_call_complete("lookup", result=prompt, turn_id=turn, agent_id="planner")
    audit.emit_turn_end(agent_id="planner", turn_id=turn, fc_count=1)


def _longest_span_string(spans: InMemorySpanExporter) -> int:
    values = [v for span in spans.get_finished_spans() for v in (span.attributes or {}).values()]
    return max(len(v) for v in values if isinstance(v, str))


# --- every read goes through environ ------------------------------------------------------
def test_the_attribute_length_limit_is_read_from_the_given_environ(tmp_path: Path) -> None:
    long_text = "x" * 180
    spans = InMemorySpanExporter()
    env = {"OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT": "64"}
    handle = auditspan.configure(
        audit_log=tmp_path / "a.jsonl", span_exporter=spans, environ=env, set_global=False, capture="full"
    )
    _turn(handle, long_text)
    handle.shutdown()
    assert _longest_span_string(spans) <= 64


def test_the_batch_settings_of_the_given_environ_reach_the_sdk(tmp_path: Path) -> None:
    env = {"OTEL_BSP_MAX_QUEUE_SIZE": "0"}
    with pytest.raises(ConfigurationError, match=r"^OTEL_BSP_\*: max_queue_size must be a positive integer"):
        auditspan.configure(
            audit_log=tmp_path / "a.jsonl",
            span_exporter=InMemorySpanExporter(),
            environ=env,
            set_global=False,
        )


def test_a_batch_setting_that_is_not_a_number_is_named(tmp_path: Path) -> None:
    env = {"OTEL_BSP_SCHEDULE_DELAY": "soon"}
    with pytest.raises(
        ConfigurationError, match=r"^OTEL_BSP_SCHEDULE_DELAY: must be a whole number, got 'soon'"
    ):
        auditspan.configure(
            audit_log=tmp_path / "a.jsonl",
            span_exporter=InMemorySpanExporter(),
            environ=env,
            set_global=False,
        )


def test_a_small_queue_in_the_given_environ_gets_a_batch_that_fits(tmp_path: Path) -> None:
    spans = InMemorySpanExporter()
    env = {"OTEL_BSP_MAX_QUEUE_SIZE": "64"}  # the SDK's default batch (512) would not fit
    handle = auditspan.configure(
        audit_log=tmp_path / "a.jsonl", span_exporter=spans, environ=env, set_global=False
    )
    _turn(handle)
    handle.shutdown()
    assert len(spans.get_finished_spans()) == handle.span_stats.exported >= 2


# --- one exit hook --------------------------------------------------------------------------
def test_the_exit_hook_is_registered_once_and_lets_go_of_shut_down_handles(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    registered: list[Any] = []
    register = atexit.register

    def counting(function: Any, *args: Any, **kwargs: Any) -> Any:
        registered.append(function)
        return register(function, *args, **kwargs)

    monkeypatch.setattr(atexit, "register", counting)
    refs: list[weakref.ref[Any]] = []
    for index in range(3):
        handle = auditspan.configure(
            output_dir=tmp_path / str(index), environ={}, set_global=False, flush_on_signal=False
        )
        _turn(handle)
        handle.shutdown()
        refs.append(weakref.ref(handle))
        del handle
    gc.collect()
    assert len(registered) <= 1, registered  # none when an earlier configure() of this process did it
    assert [ref() for ref in refs] == [None, None, None]


LIVE_AT_EXIT = """
import sys
import auditspan

out = sys.argv[1]
for name in ("first", "second"):
    handle = auditspan.configure(
        service_name=name, output_dir=f"{out}/{name}", environ={}, set_global=False, rules="none"
    )
    audit = handle.emitter("sess")
    turn = audit.emit_turn_start(agent_id="planner", prompt="left open")
    audit.emit_tool_call_attempt("lookup", args="{}", turn_id=turn, agent_id="planner")
# no shutdown: the exit hook ends both open turns and flushes both pipelines
"""


def test_every_handle_left_open_is_shut_down_at_exit(tmp_path: Path) -> None:
    script = tmp_path / "live.py"
    script.write_text(textwrap.dedent(LIVE_AT_EXIT))
    done = subprocess.run(
        [sys.executable, str(script), str(tmp_path)], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    for name in ("first", "second"):
        records = event_records((tmp_path / name / "audit.jsonl").read_text().splitlines())
        assert [r["event_type"] for r in records][:2] == ["turn_start", "tool_call_attempt"]
        traces = (tmp_path / name / "traces.jsonl").read_text()
        assert "execute_tool lookup" in traces and "invoke_agent planner" in traces


# --- the README's table is the settings table ---------------------------------------------
def _readme_settings() -> dict[str, str]:
    """``AUDITSPAN_*`` variable -> its ``configure()`` keyword column, from the README's table."""
    rows: dict[str, str] = {}
    for line in README.read_text(encoding="utf-8").splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) == 3:
            for name in re.findall(r"`(AUDITSPAN_[A-Z_]+)`", cells[0]):
                rows[name] = cells[1]
    return rows


def test_the_readme_documents_every_auditspan_setting_and_no_other() -> None:
    table = {
        name: setting for setting in SETTINGS for name in setting.env_vars if name.startswith("AUDITSPAN_")
    }
    readme = _readme_settings()
    assert sorted(readme) == sorted(table)
    for name, keywords in readme.items():
        argument = table[name].argument
        if argument is None:
            assert not re.match(r"`[a-z_]+`", keywords), (
                f"{name}: the README names a keyword it does not have"
            )
        else:
            assert keywords.startswith(f"`{argument}`"), f"{name}: the README's keyword is not {argument}"

"""The native-runtime benchmark (benchmarks/native.py) on a tiny size: it runs and its counts are right.

No timing is asserted: what is asserted is that both cases ran the same Pydantic AI turns, every
span produced was exported, and the processor wrote one record per turn start and end and per
tool call attempt and outcome, with no internal error -- also for the same spans made without the
runtime (``spans_only``).
"""

from __future__ import annotations

from benchmarks import native


def test_native_benchmark_counts_are_right() -> None:
    result = native.measure(turns=2, reps=1)
    assert result["mismatches"] == []
    # A turn: invoke_agent, three chat spans (two tool steps and the answer), four execute_tool.
    assert result["spans_per_turn"] == 8
    assert result["spans_per_run"] == 16
    assert set(result["cases"]) == {"bare_sdk", "auditspan"}
    assert result["in_processor_us_per_span"] > 0
    assert native.records_per_turn() == 10
    assert set(result["spans_only"]["cases"]) == {"bare_sdk", "auditspan"}

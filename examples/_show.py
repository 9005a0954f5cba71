"""Prints what an example produced: the span tree of ``traces.jsonl`` and the audit log's size."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from auditspan.otlp_file import read_spans


def summary(output_dir: Path) -> dict[str, Any]:
    """The spans (name, parent name, outcome) and records of an output folder, printed as a tree."""
    spans = list(read_spans(output_dir / "traces.jsonl"))
    by_id = {s["spanId"]: s for s in spans}
    children: dict[str | None, list[dict[str, Any]]] = {}
    for span in sorted(spans, key=lambda s: int(s["startTimeUnixNano"])):
        parent = span.get("parentSpanId")
        children.setdefault(parent if parent in by_id else None, []).append(span)

    def show(span: dict[str, Any], depth: int) -> None:
        a = span["attributeMap"]
        facts = [a.get("auditspan.operation.type"), a.get("auditspan.tool.outcome")]
        status = (span.get("status") or {}).get("code", "").replace("STATUS_CODE_", "")
        print("  " * depth + span["name"], *[f for f in facts if f], status if status == "ERROR" else "")
        for child in children.get(span["spanId"], ()):
            show(child, depth + 1)

    for root in children.get(None, ()):
        show(root, 1)
    with (output_dir / "audit.jsonl").open(encoding="utf-8") as f:
        records = [json.loads(line) for line in f if line.strip()]
    print(f"  {len(spans)} spans in {output_dir / 'traces.jsonl'}")
    print(f"  {len(records)} audit records in {output_dir / 'audit.jsonl'}")
    return {"spans": len(spans), "records": len(records)}

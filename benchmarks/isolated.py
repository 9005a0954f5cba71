"""Run one benchmark module in a fresh interpreter and read back the JSON line it prints.

Memory growth and end-to-end runs must not share a heap, a provider or gRPC
threads with the benchmarks before them::

    result = run_module("benchmarks.memory", ["stream", "auditspan", "50000", tmp])
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["REPO", "run_module"]

#: The repository root (the parent of ``benchmarks/``), put on the child's ``PYTHONPATH``.
REPO = Path(__file__).resolve().parent.parent


def run_module(module: str, args: Sequence[str], *, timeout: float) -> dict[str, Any]:
    """``python -m module *args`` with the repo importable and no ``OTEL_*`` settings; its last stdout line.

    Raises ``RuntimeError`` with the end of the child's stderr when it fails.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    done = subprocess.run(
        [sys.executable, "-m", module, *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        check=False,
        timeout=timeout,
    )
    if done.returncode != 0:
        raise RuntimeError(f"{module} {' '.join(args)} failed:\n{done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result

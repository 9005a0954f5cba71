"""Zero code: ``zero_code_agent.py`` run under ``opentelemetry-instrument``.

    python examples/zero_code.py [OUTPUT_DIR]

does the same as::

    export PYTHONPATH=tests/fixtures/seed_standin AUDITSPAN_OUTPUT_DIR=OUTPUT_DIR
    export OTEL_SERVICE_NAME=zero-code-example
    opentelemetry-instrument python examples/zero_code_agent.py

auditspan's ``opentelemetry_instrumentor`` entry point attaches a ``SpanCollector`` to the emitter
the runtime creates; with no OTLP endpoint set, spans go to ``OUTPUT_DIR/traces.jsonl`` and the
audit log to ``OUTPUT_DIR/audit.jsonl`` (set ``OTEL_EXPORTER_OTLP_ENDPOINT`` to send spans to a
collector instead).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

from _show import summary

HERE = Path(__file__).resolve().parent
STANDIN = HERE.parent / "tests" / "fixtures" / "seed_standin"


def main(output_dir: Path) -> int:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(STANDIN), env.get("PYTHONPATH", "")) if p)
    env["AUDITSPAN_OUTPUT_DIR"] = str(output_dir)
    env.setdefault("OTEL_SERVICE_NAME", "zero-code-example")
    instrument = Path(sys.executable).parent / "opentelemetry-instrument"
    done = subprocess.run(
        [str(instrument), sys.executable, str(HERE / "zero_code_agent.py")], env=env, check=False
    )
    if done.returncode != 0:
        return done.returncode
    if not (output_dir / "audit.jsonl").exists():
        print("no audit log was written: is auditspan installed with its entry points (pip install -e .)?")
        return 1
    summary(output_dir)
    return 0


if __name__ == "__main__":
    sys.exit(
        main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp(prefix="auditspan-zero-")))
    )

"""The one command: ``python benchmarks/run.py [--quick] [--json OUT]`` (see benchmarks/README.md).

Prints a table of medians and ratios against baselines measured in the same
run, PASS/FAIL per target, and writes everything to a JSON file. The exit
status is 0 when the run completed, whatever the verdicts (they are findings).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.suite import FULL, QUICK, run_suite


def main(argv: list[str] | None = None) -> int:
    """Parse the command line and run the suite."""
    parser = argparse.ArgumentParser(
        description="auditspan benchmarks: cost against the bare OpenTelemetry SDK"
    )
    parser.add_argument("--quick", action="store_true", help="small sizes and 3 s end-to-end runs (~2 min)")
    parser.add_argument(
        "--json",
        type=Path,
        default=Path(".benchmarks/results.json"),
        metavar="OUT",
        help="where to write the JSON report (default: %(default)s)",
    )
    args = parser.parse_args(argv)
    run_suite(QUICK if args.quick else FULL, json_path=args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())

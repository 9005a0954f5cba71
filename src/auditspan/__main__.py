"""``python -m auditspan``: the same command as the ``auditspan`` console script."""

from __future__ import annotations

from .cli import main

if __name__ == "__main__":
    raise SystemExit(main())

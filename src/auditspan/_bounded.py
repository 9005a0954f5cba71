"""Bounded waits and bounded state.

``run_bounded``: run a possibly slow call (a provider's flush or shutdown) for at most a bounded time.

The SDK's ``BatchSpanProcessor.force_flush`` ignores its timeout and exports
synchronously; with a collector that is down, each batch can take the
exporter's whole retry budget. The agent must not wait for that: the call runs
in a daemon thread and the caller waits at most ``timeout_s``; an overrun is
reported, and the call finishes (or not) in the background.

``BoundReport``: what a structure that reached its bound says -- one warning
line per episode, never silence (the caller counts every eviction in its stats).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

_logger = logging.getLogger("auditspan")


def run_bounded(call: Callable[[], Any], timeout_s: float, what: str) -> bool:
    """Run ``call()``; True when it returned a truthy value (or None) within ``timeout_s``."""
    outcome: list[Any] = []

    def target() -> None:
        try:
            outcome.append(call())
        except Exception:
            _logger.exception("auditspan: %s failed", what)
            outcome.append(False)

    thread = threading.Thread(target=target, name=f"auditspan-{what}", daemon=True)
    thread.start()
    thread.join(timeout_s)
    if thread.is_alive():
        _logger.warning(
            "auditspan: %s did not finish within %.1f s; continuing without waiting", what, timeout_s
        )
        return False
    return outcome[0] is not False


class BoundReport:
    """One warning line per *episode* of evictions from a bounded structure.

    An episode is a run of evictions from one structure (``what``) with less
    than ``quiet_s`` seconds between them: a steady overflow logs once, a new
    burst after a quiet minute logs again. Every eviction is counted by the
    caller (in its ``stats``); this only decides when to say so. Never raises,
    even when logging itself fails.

    Example::

        report = BoundReport(logging.getLogger("auditspan"))
        report.hit("open turns", "max_open_turns=10000: the least recently active turn was ended")
    """

    def __init__(self, logger: logging.Logger, quiet_s: float = 60.0) -> None:
        self._logger = logger
        self._quiet_s = quiet_s
        #: Last eviction time per structure: keyed by a fixed set of names, so bounded itself.
        self._last: dict[str, float] = {}

    def hit(self, what: str, detail: str) -> None:
        """Note one eviction from ``what``; log a warning if it starts an episode."""
        try:
            now = time.monotonic()
            last = self._last.get(what)
            self._last[what] = now
            if last is None or now - last >= self._quiet_s:
                self._logger.warning(
                    "auditspan: bound reached: %s -- %s (every eviction is counted in stats; "
                    "no audit record is lost; further evictions of this episode are only counted)",
                    what,
                    detail,
                )
        except Exception:  # a failing log handler must not turn an eviction into an error
            pass

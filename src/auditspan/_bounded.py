"""Run a possibly slow call (a provider's flush or shutdown) for at most a bounded time.

The SDK's ``BatchSpanProcessor.force_flush`` ignores its timeout and exports
synchronously; with a collector that is down, each batch can take the
exporter's whole retry budget. The agent must not wait for that: the call runs
in a daemon thread and the caller waits at most ``timeout_s``; an overrun is
reported, and the call finishes (or not) in the background.
"""

from __future__ import annotations

import logging
import threading
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

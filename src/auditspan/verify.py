"""Kept import path: this module is :mod:`auditspan.audit_log.verify` (the same module object)."""

import sys

from .audit_log import verify as _moved
from .audit_log.verify import *  # noqa: F403  (its public names, for type checkers)

sys.modules[__name__] = _moved

"""Kept import path: this module is :mod:`auditspan.audit_log.signing` (the same module object)."""

import sys

from .audit_log import signing as _moved
from .audit_log.signing import *  # noqa: F403  (its public names, for type checkers)

sys.modules[__name__] = _moved

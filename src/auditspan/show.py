"""Kept import path: this module is :mod:`auditspan.cli.show` (the same module object)."""

import sys

from .cli import show as _moved
from .cli.show import *  # noqa: F403  (its public names, for type checkers)

sys.modules[__name__] = _moved

"""Kept import path: this module is :mod:`auditspan.cli.demo` (the same module object)."""

import sys

from .cli import demo as _moved
from .cli.demo import *  # noqa: F403  (its public names, for type checkers)

sys.modules[__name__] = _moved

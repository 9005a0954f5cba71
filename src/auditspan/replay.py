"""Kept import path: this module is :mod:`auditspan.cli.replay` (the same module object)."""

import sys

from .cli import replay as _moved
from .cli.replay import *  # noqa: F403  (its public names, for type checkers)

sys.modules[__name__] = _moved

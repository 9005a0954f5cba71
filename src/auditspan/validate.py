"""Kept import path: this module is :mod:`auditspan.cli.validate` (the same module object)."""

import sys

from .cli import validate as _moved
from .cli.validate import *  # noqa: F403  (its public names, for type checkers)

sys.modules[__name__] = _moved

"""Kept import path: this module is :mod:`auditspan.exporters.otlp_file` (the same module object)."""

import sys

from .exporters import otlp_file as _moved
from .exporters.otlp_file import *  # noqa: F403  (its public names, for type checkers)

sys.modules[__name__] = _moved

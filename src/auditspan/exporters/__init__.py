"""Exporters auditspan adds to the SDK's: the OTLP/JSON-lines files of the embedded default.

``otlp_file``: ``OtlpJsonFileSpanExporter`` and ``OtlpJsonFileLogExporter`` append
each batch as one OTLP/JSON line (``traces.jsonl``, ``logs.jsonl``), and
``read_spans`` reads such a file back. ``_counting`` and ``_fan_out`` hold the
wrappers of the span pipeline ``configure()`` builds.

``otlp_file`` (and the OTLP protobuf encoders it needs) is imported on first use
of one of its names: ``configure()`` imports the wrappers on every
``import auditspan``, and most processes never write an OTLP/JSON file.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .otlp_file import OtlpJsonFileLogExporter, OtlpJsonFileSpanExporter, read_spans

__all__ = ["OtlpJsonFileLogExporter", "OtlpJsonFileSpanExporter", "read_spans"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from . import otlp_file  # the protobuf encoders: heavy, and often not needed

        return getattr(otlp_file, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

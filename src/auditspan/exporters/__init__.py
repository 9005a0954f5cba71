"""Exporters auditspan adds to the SDK's: the OTLP/JSON-lines files of the embedded default.

``otlp_file``: ``OtlpJsonFileSpanExporter`` and ``OtlpJsonFileLogExporter`` append
each batch as one OTLP/JSON line (``traces.jsonl``, ``logs.jsonl``), and
``read_spans`` reads such a file back.
"""

from .otlp_file import OtlpJsonFileLogExporter, OtlpJsonFileSpanExporter, read_spans

__all__ = ["OtlpJsonFileLogExporter", "OtlpJsonFileSpanExporter", "read_spans"]

"""The canonical audit log: where the records are written, sealed and checked.

* ``_writer``: ``JsonLinesAuditLog``, the exporter that appends one JSON line per
  record (bounded queue, writer thread, fsync policy, rotation, several processes
  on one path, fork and signal safety);
* ``_chain``: the hash chain each writer splices onto its lines, and its checkpoints;
* ``signing``: Ed25519 keys that sign the checkpoints (the optional ``signing`` extra);
* ``verify``: reads a log back and reports every break in its chains.
"""

from ._writer import (
    FSYNC_POLICIES,
    AuditLogExporter,
    AuditLogExportResult,
    AuditLogStats,
    JsonLinesAuditLog,
    open_audit_log,
)

__all__ = [
    "FSYNC_POLICIES",
    "AuditLogExportResult",
    "AuditLogExporter",
    "AuditLogStats",
    "JsonLinesAuditLog",
    "open_audit_log",
]

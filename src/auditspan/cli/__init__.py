"""The ``auditspan`` command and the tools behind it (the pipeline's last stage).

* ``_main``: argument parsing and the commands (``main(argv)`` is the console script);
* ``demo``: the scripted agent of ``auditspan demo``;
* ``replay``: old audit logs -> spans and canonical records (``replay_files``);
* ``show``: a log as a tree of turns and calls in the terminal;
* ``validate``: a log checked line by line against the event model and the record schema;
* ``_verify``: ``auditspan verify`` and ``auditspan keygen`` (the audit log's chain).
"""

from ._main import (
    EXIT_DATA_ERRORS,
    EXIT_EXPORT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    build_parser,
    main,
)

__all__ = [
    "EXIT_DATA_ERRORS",
    "EXIT_EXPORT_FAILED",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_USAGE",
    "build_parser",
    "main",
]

"""The ``verify`` and ``keygen`` sub-commands (kept here so that ``cli.py`` only registers them)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from typing import Any

__all__ = ["add_commands"]

_OK, _TAMPERED, _USAGE = 0, 1, 2


def add_commands(commands: Any, command: Callable[..., argparse.ArgumentParser]) -> None:
    """Register ``verify`` and ``keygen`` on the sub-command set ``commands``."""
    verify = command(
        commands,
        "verify",
        help="check that chained audit logs are intact (hash chains, signed checkpoints, witness)",
        description=(
            "Read each audit log (with its rotated files FILE.N ... FILE.1, oldest first) once, in constant "
            "memory, and check every writer's hash chain, every checkpoint (its signature with --public-key) "
            "and, with --witness, the checkpoints the trace backend holds. Prints FILE:LINE: KIND: what for "
            "each problem (modified, missing, inserted, reordered, truncated, signature invalid, "
            "unknown key, "
            "missing rotated file). A torn last line left by a crash is a note, not a problem. "
            "Exit 0 when intact, 1 when tampered with, 2 on a usage error."
        ),
    )
    verify.add_argument("files", nargs="+", metavar="FILE", help="chained audit log(s)")
    verify.add_argument(
        "--witness",
        metavar="TRACES",
        help="OTLP/JSON-lines traces file holding the checkpoint spans "
        "(embedded default, Collector file exporter)",
    )
    verify.add_argument(
        "--public-key",
        action="append",
        metavar="KEY",
        help="public key file (auditspan keygen's .pub) that checkpoints must be signed with (repeatable)",
    )
    verify.add_argument(
        "--json", metavar="REPORT", help="also write the report as JSON to this file ('-': stdout)"
    )
    verify.set_defaults(handler=_cmd_verify)

    keygen = command(
        commands,
        "keygen",
        help="make an Ed25519 key pair that signs the audit log's checkpoints",
        description=(
            "Write DIR/NAME.key (the private key, mode 0600, never printed: give it to the writer as "
            "AUDITSPAN_SIGNING_KEY) and DIR/NAME.pub (the public key: give it to 'auditspan verify "
            "--public-key'). Refuses to overwrite a key. Needs the auditspan[signing] extra."
        ),
    )
    keygen.add_argument("folder", nargs="?", default=".", metavar="DIR", help="where to write (default .)")
    keygen.add_argument("--name", default="audit-signing", help="file name stem (default audit-signing)")
    keygen.set_defaults(handler=_cmd_keygen)


def _err(message: str) -> None:
    print(message, file=sys.stderr)


def _cmd_verify(args: argparse.Namespace) -> int:
    from ..audit_log.signing import SigningError, load_public_keys
    from ..audit_log.verify import read_witness, verify_logs

    for path in args.files:
        if not os.path.isfile(path):
            _err(f"auditspan verify: {path}: no such file")
            return _USAGE
    keys = None
    if args.public_key:
        try:
            keys = load_public_keys(args.public_key)
        except SigningError as exc:
            _err(f"auditspan verify: --public-key: {exc}")
            return _USAGE
    witness = None
    if args.witness:
        try:
            witness = read_witness(args.witness)
        except OSError as exc:
            _err(f"auditspan verify: --witness: cannot read {args.witness}: {exc.strerror or exc}")
            return _USAGE
    report = verify_logs(args.files, public_keys=keys, witness=witness)
    out = sys.stdout
    for problem in report.problems:
        print(problem, file=out)
    if report.problems_not_kept:
        print(f"... and {report.problems_not_kept} more problem(s)", file=out)
    for note in report.notes:
        print(f"note: {note}", file=out)
    signatures = (
        f"{report.signatures_verified} signature(s) verified"
        if keys is not None
        else f"{report.signatures_unchecked} signature(s) not checked (no --public-key)"
    )
    witness_text = (
        f", {report.witness_matched}/{report.witness_checkpoints} witnessed checkpoint(s) matched"
        if witness is not None
        else ""
    )
    verdict = (
        "intact"
        if report.intact
        else f"TAMPERED: {len(report.problems) + report.problems_not_kept} problem(s)"
    )
    print(
        f"{verdict}: {report.records} chained line(s) in {len(report.files)} file(s), "
        f"{report.chains} chain(s), "
        f"{report.checkpoints} checkpoint(s), {signatures}{witness_text}",
        file=out,
    )
    if args.json:
        text = json.dumps(report.as_dict(), indent=2)
        if args.json == "-":
            print(text, file=out)
        else:
            with open(args.json, "w", encoding="utf-8") as f:
                f.write(text + "\n")
    return _OK if report.intact else _TAMPERED


def _cmd_keygen(args: argparse.Namespace) -> int:
    from ..audit_log.signing import SigningError, generate_key_pair

    try:
        private, public, key_id = generate_key_pair(args.folder, args.name)
    except SigningError as exc:
        _err(f"auditspan keygen: {exc}")
        return _USAGE
    except FileExistsError as exc:
        _err(f"auditspan keygen: {exc.filename} exists: a key is never overwritten")
        return _USAGE
    print(
        f"private key: {private} (mode 0600; keep it with the writer only: AUDITSPAN_SIGNING_KEY={private})"
    )
    print(f"public key:  {public} (for auditspan verify --public-key)")
    print(f"key id:      {key_id}")
    return _OK

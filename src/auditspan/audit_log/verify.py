"""``auditspan verify``: check the hash chains, checkpoints and witness of chained audit logs.

``verify_logs(paths)`` reads each log once, line by line, in constant memory
(per chain a few fields, whatever the file's size) and reports every problem
with its file, line and kind::

    report = verify_logs(["audit.jsonl"], public_keys=load_public_keys(["audit-signing.pub"]),
                         witness="auditspan-output/traces.jsonl")
    for problem in report.problems:
        print(problem)        # audit.jsonl.2:4711: missing: chain 3f.. seq 4700 is not in the log
    report.intact             # no problem found

A path that names a log also brings its rotated files (``audit.jsonl.N`` ...
``audit.jsonl.1``, oldest first, then the path itself); a gap in their numbers
is a ``missing rotated file``. The kinds (``KINDS``):

* ``modified``: a line's bytes are not those its chain's next line hashed,
  or a checkpoint does not match its chain or the witness's copy;
* ``missing``: sequence numbers that are in no line; a chain's first line
  whose link is not the line before it (lines deleted before it);
* ``inserted``: a line the chain already had (duplicate) or never had, or a
  line without a chain in a chained log;
* ``reordered``: a line that came after lines its chain wrote later;
* ``truncated``: the witness holds a checkpoint beyond the log's end;
* ``signature invalid`` / ``unknown key``: a checkpoint's signature does not
  verify / was made by a key not given with ``--public-key``;
* ``missing rotated file``: a numbered file, or the lines of a chain that
  went on in the next file, are gone.

A torn last line (a writer killed mid-write; the next writer ends it with a
newline and links its chain to it) is a crash, reported in ``notes``, not a
problem. What a chain proves, and what it does not, is in the README.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
from binascii import hexlify
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from .. import attributes as attr
from ._chain import CHAIN_KEY, CHECKPOINT_EVENT_TYPE, signed_message

__all__ = ["KINDS", "Problem", "VerifyReport", "log_files", "read_witness", "verify_logs"]

KINDS = (
    "modified",
    "missing",
    "inserted",
    "reordered",
    "truncated",
    "signature invalid",
    "unknown key",
    "missing rotated file",
)
#: At most this many problems are kept (the rest are counted): a wrecked file cannot exhaust memory.
_MAX_PROBLEMS = 10_000
#: Unexplained lines kept to explain a gap of their chain later (bounded, as above).
_MAX_PENDING = 1_000
_CHECKPOINT_PREFIX = b'{"event_type":"' + CHECKPOINT_EVENT_TYPE.encode() + b'"'
_CHAIN_TAIL = re.compile(
    rb',"chain":\{"id":"([0-9a-f]{32})","seq":(0|[1-9][0-9]{0,18}),"(prev|link)":(?:"([0-9a-f]{64})"|null)\}\}$'
)
_PREV_TAIL = b',"prev":"'
_ID_KEY = b',"chain":{"id":"'
_SEQ_KEY = b'","seq":'
_NUMBERED = re.compile(r"^(?P<base>.+)\.(?P<n>[1-9][0-9]*)$")


@dataclass(frozen=True)
class Problem:
    """One sign of tampering: where, what kind (one of ``KINDS``), and what was seen."""

    path: str
    line: int
    kind: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.kind}: {self.message}"

    def as_dict(self) -> dict[str, Any]:
        return {"file": self.path, "line": self.line, "kind": self.kind, "message": self.message}


@dataclass
class VerifyReport:
    """What ``verify_logs`` found. ``intact`` when no problem (notes are not problems)."""

    files: list[str] = field(default_factory=list)
    lines: int = 0
    records: int = 0
    checkpoints: int = 0
    chains: int = 0
    signatures_verified: int = 0
    signatures_unchecked: int = 0
    unsigned_checkpoints: int = 0
    witness_checkpoints: int = 0
    witness_matched: int = 0
    problems: list[Problem] = field(default_factory=list)
    problems_not_kept: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def intact(self) -> bool:
        """No problem was found."""
        return not self.problems and not self.problems_not_kept

    def as_dict(self) -> dict[str, Any]:
        """The JSON report of ``auditspan verify --json``."""
        return {
            "intact": self.intact,
            "files": self.files,
            "lines": self.lines,
            "records": self.records,
            "checkpoints": self.checkpoints,
            "chains": self.chains,
            "signatures": {
                "verified": self.signatures_verified,
                "unchecked": self.signatures_unchecked,
                "unsigned_checkpoints": self.unsigned_checkpoints,
            },
            "witness": {"checkpoints": self.witness_checkpoints, "matched": self.witness_matched},
            "problems": [p.as_dict() for p in self.problems],
            "problems_not_kept": self.problems_not_kept,
            "notes": self.notes,
        }


@dataclass(frozen=True)
class WitnessCheckpoint:
    """A checkpoint as the trace backend holds it."""

    chain: str
    first_seq: int
    last_seq: int
    head: str
    log: str
    timestamp: str


def log_files(paths: Sequence[str | os.PathLike[str]]) -> tuple[list[Path], list[tuple[Path, Path]]]:
    """The files to read, oldest first, and the numbered files missing between them.

    A path given is read with its rotated files (``path.N`` ... ``path.1``) found beside it;
    a missing number ``k`` between the highest and 1 is returned as ``(path.k, next file)``.
    """
    files: list[Path] = []
    missing: list[tuple[Path, Path]] = []
    for given in paths:
        path = Path(given)
        if _NUMBERED.match(path.name) or not path.parent.is_dir():
            files.append(path)
            continue
        numbers = sorted(
            (
                int(m.group("n"))
                for m in (_NUMBERED.match(p.name) for p in path.parent.iterdir())
                if m is not None and m.group("base") == path.name
            ),
            reverse=True,
        )
        previous: int | None = None
        for n in numbers:
            if previous is not None:
                for gap in range(previous - 1, n, -1):
                    missing.append((path.with_name(f"{path.name}.{gap}"), path.with_name(f"{path.name}.{n}")))
            files.append(path.with_name(f"{path.name}.{n}"))
            previous = n
        if previous is not None:
            for gap in range(previous - 1, 0, -1):
                missing.append((path.with_name(f"{path.name}.{gap}"), path))
        files.append(path)
    return files, missing


def read_witness(path: str | os.PathLike[str]) -> list[WitnessCheckpoint]:
    """The checkpoints in an OTLP/JSON-lines traces file (the embedded default, the Collector's
    ``file`` exporter): spans named ``auditspan.checkpoint``. Other lines are skipped unparsed."""
    found: list[WitnessCheckpoint] = []
    marker = attr.CHECKPOINT_CHAIN.encode()
    with open(path, "rb") as f:
        for raw in f:
            if marker not in raw:
                continue
            try:
                document = orjson.loads(raw)
            except orjson.JSONDecodeError:
                continue
            for resource in _list(document, "resourceSpans"):
                for scope in _list(resource, "scopeSpans"):
                    for span in _list(scope, "spans"):
                        values = _attributes(span.get("attributes"))
                        checkpoint = _witness_checkpoint(values)
                        if checkpoint is not None:
                            found.append(checkpoint)
    return found


def _list(value: Any, key: str) -> list[Any]:
    got = value.get(key) if isinstance(value, dict) else None
    return [item for item in got if isinstance(item, dict)] if isinstance(got, list) else []


def _attributes(items: Any) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for item in items if isinstance(items, list) else []:
        if not isinstance(item, dict) or not isinstance(item.get("value"), dict):
            continue
        value = item["value"]
        for kind in ("stringValue", "intValue", "doubleValue", "boolValue"):
            if kind in value:
                values[str(item.get("key"))] = value[kind]
    return values


def _witness_checkpoint(values: Mapping[str, Any]) -> WitnessCheckpoint | None:
    try:
        return WitnessCheckpoint(
            chain=str(values[attr.CHECKPOINT_CHAIN]),
            first_seq=int(values[attr.CHECKPOINT_FIRST_SEQ]),
            last_seq=int(values[attr.CHECKPOINT_LAST_SEQ]),
            head=str(values[attr.CHECKPOINT_HEAD]),
            log=str(values.get(attr.CHECKPOINT_LOG, "")),
            timestamp=str(values.get(attr.CHECKPOINT_TIMESTAMP, "")),
        )
    except (KeyError, TypeError, ValueError):
        return None


class _Chain:
    """What the verifier keeps of one chain: constant size."""

    __slots__ = (
        "checkpoints",
        "file",
        "first",
        "gaps",
        "head",
        "line",
        "next",
        "path",
        "rotation",
        "suspect",
        "witnessed",
    )

    def __init__(self, seq: int, head: bytes, path: str, line: int, file: int) -> None:
        self.first = seq
        self.next = seq + 1
        self.head = head
        self.path = path
        self.line = line
        self.file = file
        self.rotation = False  # the chain's last line is a checkpoint written at rotation
        self.checkpoints = 0
        self.witnessed = 0
        self.gaps: list[list[int]] = []  # [first missing seq, last, line that showed it, file]
        # A line whose prev is not the hash of the chain's line before: that line was changed, or
        # this line's own prev was. The next line tells: (earlier path, line, this path, line).
        self.suspect: tuple[str, int, str, int] | None = None


class _Verifier:
    def __init__(
        self,
        public_keys: Mapping[str, Any] | None,
        witness: Iterable[WitnessCheckpoint] | None,
        report: VerifyReport,
    ) -> None:
        self.keys = public_keys
        self.report = report
        self.chains: dict[str, _Chain] = {}
        self.by_id: dict[bytes, _Chain] = {}  # the same, by the id's bytes (the fast path)
        self.reported: set[tuple[str, int]] = set()
        self.pending: list[tuple[str, int, int, bool]] = []  # unexplained lines: path, line, file, torn
        self.witness: dict[tuple[str, int], WitnessCheckpoint] = {}
        self.witness_given = witness is not None
        for checkpoint in witness or ():
            self.witness[(checkpoint.chain, checkpoint.last_seq)] = checkpoint
            report.witness_checkpoints += 1
        # Numbers missing among the rotated files, by the index of the file after the gap. A crash in
        # the middle of a rotation's renames leaves one too: it is a missing file only when a chain
        # lost lines across it.
        self.numbering_gaps: dict[int, list[Path]] = {}
        self.gaps_shown: set[int] = set()
        self.files: list[str] = report.files

    def problem(self, path: str, line: int, kind: str, message: str) -> None:
        if (path, line) in self.reported and kind in ("modified", "missing", "inserted"):
            return  # one line, one problem: the first says what happened to it
        self.reported.add((path, line))
        if len(self.report.problems) < _MAX_PROBLEMS:
            self.report.problems.append(Problem(path, line, kind, message))
        else:
            self.report.problems_not_kept += 1

    # -- one file ------------------------------------------------------------------
    def read(self, path: Path, index: int) -> None:
        """Check one file (a chain's link is to a line of the same file: none before its first)."""
        name = os.fspath(path)
        before: bytes | None = None  # hash of the line before, for a chain's link
        by_id = self.by_id
        sha256 = hashlib.sha256
        tail = _CHAIN_TAIL.match
        line_no = records = 0
        with open(path, "rb") as f:
            for raw in f:
                line_no += 1
                line = raw[:-1] if raw[-1:] == b"\n" else raw
                digest = hexlify(sha256(line).digest())
                # The common case without a regular expression: the next line of a known chain,
                # '...,"chain":{"id":"<id>","seq":<n>,"prev":"<64 hex>"}}' in its fixed layout.
                if line[-76:-67] == _PREV_TAIL:
                    at = line.rfind(_ID_KEY, 0, len(line) - 76)
                    state = by_id.get(line[at + 16 : at + 48]) if at >= 0 else None
                    if state is not None and state.suspect is None and line[at + 48 : at + 56] == _SEQ_KEY:
                        number = line[at + 56 : -76]
                        if (
                            line[-67:-3] == state.head
                            and number.isdigit()
                            and int(number) == state.next
                            and line[-3:] == b'"}}'
                        ):
                            records += 1
                            state.next += 1
                            state.head = digest
                            state.line = line_no
                            if state.file != index:
                                state.file, state.path = index, name
                            if state.rotation:
                                state.rotation = False
                            if line.startswith(_CHECKPOINT_PREFIX):
                                seq = state.next - 1
                                chain_id = line[at + 16 : at + 48].decode()
                                self.checkpoint(name, line_no, line, chain_id, seq, line[-67:-3], state)
                            before = digest
                            continue
                at = line.rfind(CHAIN_KEY)
                found = tail(line, at) if at >= 0 else None
                if found is None:
                    self.unchained(name, line_no, index, line, raw)
                    before = digest
                    continue
                records += 1
                chain_id = found.group(1).decode()
                seq = int(found.group(2))
                claimed = found.group(4)
                chained = self.record(
                    name, line_no, index, chain_id, seq, found.group(3) == b"link", claimed, digest, before
                )
                if line.startswith(_CHECKPOINT_PREFIX) and chained is not None:
                    self.checkpoint(name, line_no, line, chain_id, seq, claimed, chained)
                before = digest
        self.report.records += records
        self.report.lines += line_no

    def unchained(self, name: str, line_no: int, index: int, line: bytes, raw: bytes) -> None:
        if not line.strip():
            return
        torn = not line.endswith(b"}}")
        if torn:
            if len(self.pending) >= _MAX_PENDING:
                old = self.pending.pop(0)
                self.report.notes.append(f"{old[0]}:{old[1]}: torn line (a writer stopped mid-write)")
            self.pending.append((name, line_no, index, True))
            return
        kind = "modified" if CHAIN_KEY in line else "inserted"
        what = (
            "its chain object is damaged" if kind == "modified" else "a line without a chain in a chained log"
        )
        self.problem(name, line_no, kind, what)
        if len(self.pending) < _MAX_PENDING:
            self.pending.append((name, line_no, index, False))

    def record(
        self,
        name: str,
        line_no: int,
        index: int,
        chain_id: str,
        seq: int,
        is_link: bool,
        claimed: bytes | None,
        digest: bytes,
        before: bytes | None,
    ) -> _Chain | None:
        state = self.chains.get(chain_id)
        short = chain_id[:8]
        if state is None and seq > 0 and not is_link:
            for other_id, other in self.chains.items():
                if other.next == seq and other.head == claimed:  # the next line of a chain, its id changed
                    self.problem(
                        name, line_no, "modified", f"chain {other_id[:8]} seq {seq}: chain id changed"
                    )
                    self.advance(other, seq, digest, name, line_no, index)
                    return other
        if state is None:
            if seq == 0:
                if not is_link:
                    self.problem(name, line_no, "modified", f"chain {short} seq 0 has no link")
                elif claimed != before:
                    if before is None:
                        self.problem(
                            name,
                            line_no,
                            "missing",
                            f"chain {short} starts linked to a line that is not in the file "
                            "(lines deleted before it)",
                        )
                    else:
                        self.problem(
                            name,
                            line_no,
                            "missing",
                            f"chain {short} starts linked to a line that is not the line before it "
                            "(lines deleted or changed before it)",
                        )
                        self.explain(chain_id, None, line_no, index)
            else:
                self.report.notes.append(
                    f"{name}:{line_no}: chain {short} starts at seq {seq}: its earlier lines are in files "
                    "not given (rotated away?)"
                )
            state = _Chain(seq, digest, name, line_no, index)
            self.chains[chain_id] = state
            self.by_id[chain_id.encode()] = state
            self.report.chains += 1
            return state
        expected = state.next
        if seq == expected:
            suspect, state.suspect = state.suspect, None
            if suspect is not None:
                if claimed == state.head:  # the line after the break is fine: the one before it changed
                    self.problem(
                        suspect[0],
                        suspect[1],
                        "modified",
                        f"chain {short} seq {seq - 2}: its bytes are not those the next line hashed",
                    )
                else:  # the line at the break changed (its own prev, or more)
                    self.problem(
                        suspect[2], suspect[3], "modified", f"chain {short} seq {seq - 1}: line changed"
                    )
            elif is_link:
                self.problem(name, line_no, "modified", f"chain {short} seq {seq} carries a link")
            elif claimed != state.head and not self.explain(chain_id, state, line_no, index):
                state.suspect = (state.path, state.line, name, line_no)
            self.advance(state, seq, digest, name, line_no, index)
            return state
        elif seq > expected:
            if claimed == state.head and not is_link:
                self.problem(name, line_no, "modified", f"chain {short}: seq {seq} where {expected} was due")
                self.advance(state, expected, digest, name, line_no, index)
                return state
            count = seq - expected
            if not self.explain(chain_id, state, line_no, index, count):
                crossed = [b for b in self.numbering_gaps if state.file < b <= index]
                if crossed:
                    for boundary in crossed:
                        if boundary not in self.gaps_shown:
                            self.gaps_shown.add(boundary)
                            for gone in self.numbering_gaps[boundary]:
                                self.problem(
                                    os.fspath(gone),
                                    0,
                                    "missing rotated file",
                                    f"{gone.name} is gone: chain {short} seq {expected}..{seq - 1} "
                                    "were in it",
                                )
                elif state.file != index and state.rotation:
                    self.problem(
                        name,
                        line_no,
                        "missing rotated file",
                        f"chain {short} seq {expected}..{seq - 1} went on in a file that is gone "
                        f"(the chain left {state.path} at a rotation)",
                    )
                else:
                    state.gaps.append([expected, seq - 1, line_no, index])
                    if len(state.gaps) > 64:  # a wrecked chain: report the oldest gap now
                        self.gap_problem(name, chain_id, state.gaps.pop(0))
            self.advance(state, seq, digest, name, line_no, index)
        elif claimed == state.head and not is_link:  # the next line, its seq changed
            self.problem(name, line_no, "modified", f"chain {short}: seq {seq} where {expected} was due")
            self.advance(state, expected, digest, name, line_no, index)
        else:
            for gap in state.gaps:
                if gap[0] <= seq <= gap[1]:
                    self.problem(
                        name,
                        line_no,
                        "reordered",
                        f"chain {short} seq {seq} comes after seq {expected - 1} (line moved)",
                    )
                    self.fill(state, gap, seq)
                    return None
            self.problem(
                name,
                line_no,
                "inserted",
                f"chain {short} seq {seq} again, after seq {expected - 1} (duplicated or replayed line)",
            )
            return None
        return state

    def advance(self, state: _Chain, seq: int, digest: bytes, name: str, line_no: int, index: int) -> None:
        if state.suspect is not None and state.suspect[3] != line_no:
            # a break followed by something other than the next line: report the earlier line
            suspect, state.suspect = state.suspect, None
            self.problem(suspect[0], suspect[1], "modified", "its bytes are not those the next line hashed")
        state.next = seq + 1
        state.head = digest
        state.path = name
        state.line = line_no
        state.file = index
        state.rotation = False

    def fill(self, state: _Chain, gap: list[int], seq: int) -> None:
        state.gaps.remove(gap)
        if gap[0] < seq:
            state.gaps.append([gap[0], seq - 1, gap[2], gap[3]])
        if seq < gap[1]:
            state.gaps.append([seq + 1, gap[1], gap[2], gap[3]])

    def explain(self, chain_id: str, state: _Chain | None, line_no: int, index: int, count: int = 1) -> bool:
        """A break in a chain right after lines without a chain: those lines were this chain's,
        changed. They are reported as modified; the break is not reported again."""
        if not self.pending:
            return False
        since = (state.file, state.line) if state is not None else (index, 0)
        mine = [p for p in self.pending if since < (p[2], p[1]) < (index, line_no)]
        if not mine:
            return False
        for entry in mine[:count]:
            self.pending.remove(entry)
            if entry[3]:  # held as a torn line: it was a changed one
                self.problem(entry[0], entry[1], "modified", f"chain {chain_id[:8]}: line damaged")
        return len(mine) >= count

    def gap_problem(self, name: str, chain_id: str, gap: list[int]) -> None:
        first, last = gap[0], gap[1]
        what = f"seq {first}" if first == last else f"seq {first}..{last}"
        self.problem(
            self.files[gap[3]] if gap[3] < len(self.files) else name,
            gap[2],
            "missing",
            f"chain {chain_id[:8]} {what} not in the log (deleted line)",
        )

    # -- checkpoints -----------------------------------------------------------------
    def checkpoint(
        self, name: str, line_no: int, line: bytes, chain_id: str, seq: int, head: bytes | None, state: _Chain
    ) -> None:
        self.report.checkpoints += 1
        state.checkpoints += 1
        try:
            record = orjson.loads(line)
            body = record["checkpoint"]
            first, last = int(body["first_seq"]), int(body["last_seq"])
            timestamp, reason = str(record["timestamp"]), str(body["reason"])
            cp_chain, cp_head = str(body["chain"]), str(body["head"])
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            self.problem(name, line_no, "modified", "checkpoint record is not well-formed")
            return
        if cp_chain != chain_id or last != seq - 1 or cp_head.encode() != head:
            self.problem(
                name, line_no, "modified", "checkpoint does not match its chain (chain, seq or head)"
            )
        state.rotation = reason == "rotation"
        signature, key_id = body.get("signature"), body.get("key_id")
        if signature is None:
            self.report.unsigned_checkpoints += 1
        elif self.keys is None:
            self.report.signatures_unchecked += 1
        elif key_id not in self.keys:
            self.problem(name, line_no, "unknown key", f"checkpoint signed by key {key_id}, not a key given")
        else:
            from .signing import verify_signature

            try:
                raw = base64.b64decode(str(signature), validate=True)
            except ValueError:
                raw = b""
            message = signed_message(cp_chain, first, last, cp_head, timestamp, reason)
            if verify_signature(self.keys[key_id], raw, message):
                self.report.signatures_verified += 1
            else:
                self.problem(
                    name,
                    line_no,
                    "signature invalid",
                    f"checkpoint of chain {chain_id[:8]} seq {first}..{last}: the signature does not verify "
                    "(a line it covers, or the checkpoint, was changed)",
                )
        seen = self.witness.pop((chain_id, last), None)
        if seen is not None:
            if seen.head != cp_head or seen.first_seq != first:
                self.problem(
                    name,
                    line_no,
                    "modified",
                    f"checkpoint of chain {chain_id[:8]} up to seq {last} differs from the witness's copy "
                    "(the log was rewritten)",
                )
            else:
                self.report.witness_matched += 1
                state.witnessed += 1

    # -- the end ---------------------------------------------------------------------
    def finish(self, log_names: set[str], earliest: str) -> None:
        for boundary, gone in self.numbering_gaps.items():
            if boundary not in self.gaps_shown:
                self.report.notes.append(
                    f"{', '.join(p.name for p in gone)} not found, but no chain lost a line there "
                    "(a rotation interrupted by a crash renames files one by one)"
                )
        if self.witness_given:
            for chain_id, state in self.chains.items():
                if state.checkpoints and not state.witnessed:
                    self.report.notes.append(
                        f"chain {chain_id[:8]} ({state.path}): none of its {state.checkpoints} checkpoint(s) "
                        "is in the witness (spans not exported, or the log was replaced)"
                    )
        for chain_id, state in self.chains.items():
            if state.suspect is not None:
                self.problem(
                    state.suspect[0],
                    state.suspect[1],
                    "modified",
                    f"chain {chain_id[:8]}: its bytes are not those the next line hashed",
                )
            for gap in state.gaps:
                self.gap_problem("", chain_id, gap)
        for name, line_no, _, torn in self.pending:
            if torn:
                self.report.notes.append(
                    f"{name}:{line_no}: torn line (a writer stopped mid-write: a crash, not tampering)"
                )
        beyond: dict[str, WitnessCheckpoint] = {}
        for (chain_id, last), seen in self.witness.items():
            known = self.chains.get(chain_id)
            if known is not None:
                if last >= known.next - 1 and (chain_id not in beyond or beyond[chain_id].last_seq < last):
                    beyond[chain_id] = seen
            elif (
                seen.log in log_names
                and seen.timestamp >= earliest
                and (chain_id not in beyond or beyond[chain_id].last_seq < last)
            ):
                beyond[chain_id] = seen
        for chain_id, seen in beyond.items():
            ended = self.chains.get(chain_id)
            if ended is None:
                # Not a problem by itself: another log of the same name (another host) reports to the
                # same backend. Said, so that a log replaced whole (new chains) is not silent.
                self.report.notes.append(
                    f"the witness holds chain {chain_id[:8]} of a log named {seen.log!r} (up to seq "
                    f"{seen.last_seq}, {seen.timestamp}) that is in none of the files"
                )
            else:
                self.problem(
                    ended.path,
                    ended.line,
                    "truncated",
                    f"chain {chain_id[:8]} ends at seq {ended.next - 1}; the witness holds a checkpoint "
                    f"up to seq {seen.last_seq} (the log's tail was cut)",
                )


def verify_logs(
    paths: Sequence[str | os.PathLike[str]],
    *,
    public_keys: Mapping[str, Any] | None = None,
    witness: str | os.PathLike[str] | Iterable[WitnessCheckpoint] | None = None,
) -> VerifyReport:
    """Verify chained audit logs (see the module doc); raises ``OSError`` for a file that cannot be read.

    ``public_keys`` (``signing.load_public_keys``) checks signatures; without it signed
    checkpoints are counted as unchecked. ``witness`` is an OTLP/JSON traces file or checkpoints.
    """
    files, missing = log_files(paths)
    report = VerifyReport(files=[os.fspath(p) for p in files])
    witnessed: Iterable[WitnessCheckpoint] | None
    witnessed = read_witness(witness) if isinstance(witness, (str, os.PathLike)) else witness
    verifier = _Verifier(public_keys, witnessed, report)
    for gone, following in missing:
        verifier.numbering_gaps.setdefault(files.index(following), []).append(gone)
    for index, path in enumerate(files):
        verifier.read(path, index)
    verifier.finish({p.name for p in map(Path, paths)}, _first_timestamp(files))
    return report


def _first_timestamp(files: Sequence[Path]) -> str:
    """The timestamp of the oldest file's first line ("" when it has none): witness checkpoints older
    than it are of lines rotated away."""
    for path in files:
        try:
            with open(path, "rb") as f:
                first = f.readline()
        except OSError:
            continue
        try:
            value = orjson.loads(first).get("timestamp")
        except (orjson.JSONDecodeError, AttributeError):
            continue
        return str(value) if value else ""
    return ""

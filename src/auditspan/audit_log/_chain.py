"""The hash chain of the audit log: what the writer splices onto each line, and what the verifier reads.

Every line a writer (one ``JsonLinesAuditLog`` in one process) writes ends in
its place in that writer's chain, spliced on by the writer before the line's
final ``}``::

    {...the record...,"chain":{"id":"<32 hex>","seq":41,"prev":"<sha256 hex of seq 40's line>"}}

* ``id`` is random per writer (a forked child gets a new one); ``seq`` counts
  from 0 without gaps, across rotations; ``prev`` is the SHA-256 of the exact
  bytes of the chain's previous line, without its newline.
* The chain's first line carries ``"link"`` instead of ``"prev"``: the hash of
  the line just before it in the file when it was written (read under the
  cross-process lock), or ``null`` in an empty file. A chain deleted from the
  middle of a file breaks the link of the chain written after it.
* Every ``checkpoint_every`` lines, every ``checkpoint_interval_s`` seconds,
  at rotation and at shutdown the writer appends a checkpoint record (itself a
  link of the chain)::

      {"event_type":"audit_checkpoint","timestamp":"...","checkpoint":{"chain":"<id>",
       "first_seq":0,"last_seq":999,"head":"<hash of seq 999>","reason":"count",
       "key_id":"<fingerprint>"|null,"signature":"<base64 Ed25519>"|null},"chain":{...}}

  The signature covers ``signed_message(...)``: chain, range, head, time and reason.

The chain object is always the line's last key, in this fixed layout, so the
verifier finds it with one ``rfind`` and one regular-expression match instead
of parsing the line.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import orjson

from .. import attributes as attr

__all__ = [
    "CHECKPOINT_EVENT_TYPE",
    "DEFAULT_CHECKPOINT_EVERY",
    "DEFAULT_CHECKPOINT_INTERVAL_S",
    "Checkpoint",
    "WriterChain",
    "line_hash",
    "parse_chain",
    "signed_message",
    "span_witness",
]

#: ``event_type`` of a checkpoint record.
CHECKPOINT_EVENT_TYPE = "audit_checkpoint"
#: A checkpoint every this many records: about 0.05% more bytes for records of ~600 bytes, one
#: signature (~60 us) per 1,000 records, one witness span per 1,000 records.
DEFAULT_CHECKPOINT_EVERY = 1_000
#: ... or this many seconds after the first record it does not cover yet: what a cut tail can
#: remove unwitnessed is at most this long. An idle writer writes none.
DEFAULT_CHECKPOINT_INTERVAL_S = 10.0

#: The key of the chain object (the line's last key).
CHAIN_KEY = b',"chain":{'
_CHAIN_TAIL = re.compile(
    rb',"chain":\{"id":"([0-9a-f]{32})","seq":(0|[1-9][0-9]{0,18}),"(prev|link)":(?:"([0-9a-f]{64})"|null)\}\}$'
)


def line_hash(line: bytes) -> str:
    """SHA-256 hex of a line's exact bytes, without its newline (the chain's ``prev``)."""
    if line.endswith(b"\n"):
        line = line[:-1]
    return hashlib.sha256(line).hexdigest()


def parse_chain(line: bytes) -> tuple[str, int, bool, str | None] | None:
    """``(chain id, seq, is_link, hash)`` of a line's chain object (``line`` without its newline),
    or None when the line does not end in a well-formed one."""
    at = line.rfind(CHAIN_KEY)
    if at < 0:
        return None
    found = _CHAIN_TAIL.match(line, at)
    if found is None:
        return None
    digest = found.group(4)
    return (
        found.group(1).decode(),
        int(found.group(2)),
        found.group(3) == b"link",
        None if digest is None else digest.decode(),
    )


def signed_message(chain: str, first: int, last: int, head: str, timestamp: str, reason: str) -> bytes:
    """The bytes a checkpoint's signature covers."""
    return f"auditspan-checkpoint/1\n{chain}\n{first}\n{last}\n{head}\n{timestamp}\n{reason}".encode()


@dataclass(frozen=True)
class Checkpoint:
    """A checkpoint as written: what the witness repeats into the trace pipeline."""

    chain: str
    first_seq: int
    last_seq: int
    head: str
    timestamp: str
    reason: str
    key_id: str | None
    signature: str | None
    log: str  # the log's file name (no folder): which log the witness speaks of

    def fields(self) -> dict[str, Any]:
        """The record's ``checkpoint`` object."""
        return {
            "chain": self.chain,
            "first_seq": self.first_seq,
            "last_seq": self.last_seq,
            "head": self.head,
            "reason": self.reason,
            "key_id": self.key_id,
            "signature": self.signature,
        }


#: ``(message) -> (key id, signature bytes)``: a configured signing key.
Signer = Callable[[bytes], tuple[str, bytes]]


def _splice(line: bytes, chain_id: str, seq: int, key: str, digest: str | None) -> bytes:
    """The line with its chain object spliced before the final ``}`` (the line ends in ``}\\n``)."""
    value = "null" if digest is None else f'"{digest}"'
    comma = b"" if line[-3:-2] == b"{" else b","
    return b'%s%s"chain":{"id":"%s","seq":%d,"%s":%s}}\n' % (
        line[:-2],
        comma,
        chain_id.encode(),
        seq,
        key.encode(),
        value.encode(),
    )


class WriterChain:
    """One writer's chain: seals lines and makes checkpoints (the caller holds the I/O lock).

    Sealing is tentative until ``commit(n)``: a write that failed part-way commits only the
    lines that reached the file, and the rest are sealed again (same seq) when retried.
    """

    def __init__(
        self,
        *,
        log_name: str,
        signer: Signer | None = None,
        every: int = DEFAULT_CHECKPOINT_EVERY,
        interval_s: float = DEFAULT_CHECKPOINT_INTERVAL_S,
    ) -> None:
        if every < 1:
            raise ValueError(f"checkpoint_every must be positive, got {every}")
        if not interval_s > 0:
            raise ValueError(f"checkpoint_interval_s must be positive, got {interval_s}")
        self.log_name = log_name
        self.signer = signer
        self.every = every
        self.interval_s = interval_s
        self._new_chain()

    def _new_chain(self) -> None:
        self.id = os.urandom(16).hex()
        self.started = False
        self.link: str | None = None
        self.seq = 0  # the next line's seq
        self.head: str | None = None  # hash of the last line committed
        self.covered = 0  # the first seq no checkpoint covers yet
        self.uncovered_since = 0.0  # monotonic time of the first line not covered
        self._tentative: list[tuple[int, int, str]] = []

    def after_fork(self) -> None:
        """A forked child writes a chain of its own."""
        self._new_chain()

    def start(self, last_line: bytes | None) -> None:
        """Begin the chain after ``last_line``, the file's last line (under the file lock)."""
        self.started = True
        self.link = None if last_line is None else line_hash(last_line)

    # -- records -------------------------------------------------------------
    def seal(self, lines: Sequence[bytes]) -> list[bytes]:
        """The lines with their chain objects, tentatively (``commit`` makes them final)."""
        out: list[bytes] = []
        tentative: list[tuple[int, int, str]] = []
        seq, head = self.seq, self.head
        for index, line in enumerate(lines):
            if not line.endswith(b"}\n"):
                out.append(line)  # not a JSON object: written as it is (verify reports it)
                continue
            if seq == 0:
                sealed = _splice(line, self.id, 0, "link", self.link)
            else:
                sealed = _splice(line, self.id, seq, "prev", head)
            head = line_hash(sealed)
            tentative.append((index, seq, head))
            seq += 1
            out.append(sealed)
        self._tentative = tentative
        return out

    def commit(self, count: int) -> None:
        """The first ``count`` sealed lines are in the file."""
        chained = [(seq, head) for index, seq, head in self._tentative if index < count]
        if not chained:
            return
        if self.seq == self.covered:
            self.uncovered_since = time.monotonic()
        self.seq, self.head = chained[-1][0] + 1, chained[-1][1]

    def room(self) -> int:
        """Lines that may be sealed before a checkpoint is due (count-based)."""
        return max(1, self.covered + self.every - self.seq)

    # -- checkpoints -----------------------------------------------------------
    def pending(self) -> bool:
        """Lines were written that no checkpoint covers yet."""
        return self.seq > self.covered and self.head is not None

    def due(self, now: float | None = None) -> bool:
        """A checkpoint is due: ``every`` lines, or ``interval_s`` since the first uncovered one."""
        if not self.pending():
            return False
        if self.seq - self.covered >= self.every:
            return True
        return (time.monotonic() if now is None else now) - self.uncovered_since >= self.interval_s

    def seconds_to_due(self) -> float | None:
        """How long until the time-based checkpoint (None: nothing pending)."""
        if not self.pending():
            return None
        return max(0.0, self.uncovered_since + self.interval_s - time.monotonic())

    def checkpoint_line(self, reason: str) -> tuple[bytes, Checkpoint]:
        """A checkpoint record covering the pending lines, sealed, not yet committed."""
        assert self.head is not None
        timestamp = datetime.now(timezone.utc).isoformat(timespec="microseconds")
        first, last, head = self.covered, self.seq - 1, self.head
        key_id = signature = None
        if self.signer is not None:
            key_id, raw = self.signer(signed_message(self.id, first, last, head, timestamp, reason))
            signature = base64.b64encode(raw).decode()
        checkpoint = Checkpoint(
            self.id, first, last, head, timestamp, reason, key_id, signature, self.log_name
        )
        record = {
            "event_type": CHECKPOINT_EVENT_TYPE,
            "timestamp": timestamp,
            "checkpoint": checkpoint.fields(),
        }
        line = orjson.dumps(record, option=orjson.OPT_APPEND_NEWLINE)
        return self.seal([line])[0], checkpoint

    def checkpoint_written(self) -> None:
        """The checkpoint line from ``checkpoint_line`` is in the file."""
        self.commit(1)
        self.covered = self.seq


def span_witness(tracer_provider: Any) -> Callable[[Checkpoint], None]:
    """A witness that sends each checkpoint as a small root span (``auditspan.checkpoint``).

    A span, not a span event or log record: every trace backend and the embedded default's
    OTLP/JSON traces file keep it, and it belongs to no turn's trace.
    """
    from opentelemetry.context import Context  # the verifier reads this module without the SDK

    tracer = tracer_provider.get_tracer("auditspan.audit_log")

    def witness(checkpoint: Checkpoint) -> None:
        values: dict[str, Any] = {
            attr.CHECKPOINT_CHAIN: checkpoint.chain,
            attr.CHECKPOINT_FIRST_SEQ: checkpoint.first_seq,
            attr.CHECKPOINT_LAST_SEQ: checkpoint.last_seq,
            attr.CHECKPOINT_HEAD: checkpoint.head,
            attr.CHECKPOINT_REASON: checkpoint.reason,
            attr.CHECKPOINT_TIMESTAMP: checkpoint.timestamp,
            attr.CHECKPOINT_LOG: checkpoint.log,
        }
        if checkpoint.key_id is not None and checkpoint.signature is not None:
            values[attr.CHECKPOINT_KEY_ID] = checkpoint.key_id
            values[attr.CHECKPOINT_SIGNATURE] = checkpoint.signature
        tracer.start_span(attr.CHECKPOINT_SPAN_NAME, context=Context(), attributes=values).end()

    return witness

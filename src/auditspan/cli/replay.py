"""Replay audit logs -- the seed system's JSONL or auditspan's canonical records -- as traces.

Two layers:

* ``iter_log(path)`` reads one log line by line (constant memory) and yields
  ``(line_no, LogLine | LineError)``: a well-formed line with its JSON object
  and parsed event, or the reason it is not one. ``show``, ``validate`` and
  ``policy-input`` read logs through it too, so every command reports a bad
  line the same way -- ``FILE:LINE: message``.
* ``replay_files(paths)`` feeds every well-formed line, in order, into a
  ``SpanCollector`` with ``DeterministicIds`` set up by ``configure()`` (OTLP
  when ``OTEL_EXPORTER_OTLP_ENDPOINT`` is set, else the embedded default), so
  spans get the events' own timestamps and a second replay of the same file
  yields the same trace and span ids -- backends de-duplicate it::

      summary = replay_files(["agent-audit.jsonl"], service_name="my-agent")
      print(summary.events_replayed, summary.spans_exported)

A canonical record is replayed as its event: the envelope keys
(``records.ENVELOPE_KEYS``) are dropped except ``event_id``, which the
collector keeps, so the replayed records keep their ids. Records the
collector derives itself rather than receives -- behavioural-rule matches
(``behavior_rule_match``) -- are not replayed: the rule engine of the replay
(``AUDITSPAN_RULES``, built in by default) derives them again from the
replayed calls, so they are neither doubled nor detached from their call.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from opentelemetry.sdk.trace.export import SpanExporter

from .. import attributes as attr
from .._ids import DeterministicIds
from ..audit_log._chain import CHECKPOINT_EVENT_TYPE
from ..collector import SpanCollector
from ..configuration import ConfigurationError, configure, embedded_traces_file
from ..events import AuditEvent, parse_event, timestamp_to_ns
from ..records import ENVELOPE_KEYS

__all__ = [
    "DEFAULT_ID_NAMESPACE",
    "DEFAULT_MAX_LINE_BYTES",
    "DEFAULT_REPLAY_SERVICE_NAME",
    "DERIVED_EVENT_TYPES",
    "MAX_NESTING_DEPTH",
    "LineError",
    "LogLine",
    "ReplaySummary",
    "iter_log",
    "replay_files",
    "replay_into",
]

#: ``service.name`` of replayed spans unless ``--service-name`` / ``OTEL_SERVICE_NAME`` say otherwise.
DEFAULT_REPLAY_SERVICE_NAME = "auditspan-replay"
#: Envelope keys a replay drops (``event_id`` stays: the collector keeps a record's own id).
_DROPPED_ENVELOPE = (frozenset(ENVELOPE_KEYS) - {"event_id"}) | {"chain"}  # chain: the log's, not the event's
#: Namespace of the deterministic ids (``DeterministicIds``' default): same log, same ids.
DEFAULT_ID_NAMESPACE = "auditspan"
#: Event types the collector derives itself: not replayed, derived again.
DERIVED_EVENT_TYPES = frozenset({attr.EVENT_TYPE_RULE_MATCH})
#: Records the audit log writes itself (its hash chain's checkpoints): never replayed as events.
LOG_OWN_EVENT_TYPES = frozenset({CHECKPOINT_EVENT_TYPE})
#: Spans are pushed out every this many lines, so the batch processor's queue never overflows.
_FLUSH_EVERY = 512
#: Longest line (bytes, without its newline) the readers accept: a longer one is reported and
#: skipped, read in 1 MiB pieces that are not kept. Decoding a line takes about four times its
#: size, so this bounds the memory a hostile line can take (``--max-line-bytes`` raises it).
DEFAULT_MAX_LINE_BYTES = 16 * 1024 * 1024
#: Deepest nesting of arrays and objects a line may have: deeper is reported and skipped
#: (Python's JSON decoder would raise RecursionError; auditspan keeps 250 levels of metadata).
MAX_NESTING_DEPTH = 512
_SKIP_CHUNK = 1 << 20
#: A JSON string, or one bracket (what the nesting check follows).
_JSON_NESTING = re.compile(rb'"(?:[^"\\]|\\.)*"|[\[\]{}]')
#: Metadata key of an event replayed without a usable timestamp of its own (the value says what it had).
UNTIMED_KEY = "auditspan.untimed"
#: Lines without a usable timestamp before the first one with: held to take its time, at most.
_MAX_LEADING_UNTIMED = 1_024


@dataclass(frozen=True)
class LineError:
    """A line that is not a usable audit event, and why.

    ``str(error)`` is the report line: ``audit.jsonl:17: field 'duration_ms' must be ...``.
    ``incomplete`` marks a last line cut off without its newline (a crash mid-write).
    """

    path: str
    line_no: int
    message: str
    incomplete: bool = False

    def __str__(self) -> str:
        return f"{self.path}:{self.line_no}: {self.message}"


@dataclass(frozen=True)
class LogLine:
    """A well-formed line: its JSON object as written and, when checked, the parsed event.

    Example::

        for line_no, item in iter_log("audit.jsonl"):
            if isinstance(item, LogLine) and item.is_canonical:
                print(item.data["telemetry"]["trace_id"])
    """

    path: str
    line_no: int
    data: dict[str, Any]
    event: AuditEvent | None

    @property
    def is_canonical(self) -> bool:
        """True for an auditspan canonical record (it carries the whole seed-004 envelope)."""
        return all(key in self.data for key in ENVELOPE_KEYS)

    def replay_fields(self, *, keep_ids: bool = True) -> dict[str, Any]:
        """The event to emit: the fields, minus a canonical record's envelope (but ``event_id``).

        With ``keep_ids`` a canonical record also keeps its ``telemetry`` trace
        and span id, which the collector then gives its span (the record's
        ``telemetry.trace_id`` finds its trace again after a backend is
        restored from the log).
        """
        if not self.is_canonical:
            return dict(self.data)
        fields = {k: v for k, v in self.data.items() if k not in _DROPPED_ENVELOPE}
        telemetry = self.data.get("telemetry")
        if keep_ids and isinstance(telemetry, dict):
            fields["telemetry"] = {"trace_id": telemetry.get("trace_id"), "span_id": telemetry.get("span_id")}
        return fields


class _DuplicateKey(ValueError):
    pass


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object, refused when a key repeats (readers disagree on which copy wins)."""
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                shown = key if len(key) <= 80 else key[:77] + "..."
                # Which of two values counts depends on the reader: none is used (the key last, so that
                # a secret cut short in it ends the message, where redaction finds it).
                raise _DuplicateKey(f"duplicate key {shown!r}")
            seen.add(key)
    return obj


def _nesting_depth(raw: bytes, limit: int) -> int:
    """How deep the arrays and objects of ``raw`` nest, counted up to just past ``limit``."""
    depth = deepest = 0
    for token in _JSON_NESTING.finditer(raw):
        char = token.group()
        if char in (b"[", b"{"):
            depth += 1
            if depth > deepest:
                deepest = depth
                if deepest > limit:
                    break
        elif char in (b"]", b"}"):
            depth -= 1
    return deepest


def _decode(raw: bytes) -> Any:
    # Cheap first: a line with fewer brackets than the limit cannot nest deeper than it.
    if raw.count(b"[") + raw.count(b"{") > MAX_NESTING_DEPTH and _nesting_depth(raw, MAX_NESTING_DEPTH) > (
        MAX_NESTING_DEPTH
    ):
        raise ValueError(f"arrays and objects nested more than {MAX_NESTING_DEPTH} deep: not an audit event")
    try:
        return json.loads(raw, object_pairs_hook=_unique_keys)
    except _DuplicateKey:
        raise
    except RecursionError:  # belt and braces: the depth check above should have caught it
        raise ValueError("arrays and objects nested too deep to decode: not an audit event") from None
    except ValueError:  # JSONDecodeError and UnicodeDecodeError; parse_event words the message
        try:
            parse_event(raw)
        except ValueError as exc:
            raise ValueError(str(exc)) from None
        raise  # pragma: no cover - parse_event accepted what json.loads refused


def iter_log(
    path: str | os.PathLike[str],
    *,
    check_event: bool = True,
    progress: Callable[[int], None] | None = None,
    max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
) -> Iterator[tuple[int, LogLine | LineError]]:
    """Yield ``(line_no, LogLine | LineError)`` for every non-blank line of an audit log, in order.

    Reads one line at a time (memory does not grow with the file, and a line
    is never held beyond ``max_line_bytes``). A line is an error, and the
    reading goes on, when it is longer than ``max_line_bytes`` (the rest of it
    is read in pieces and dropped), nests deeper than ``MAX_NESTING_DEPTH``,
    repeats a key in one of its objects, is not JSON, not a JSON object or --
    with ``check_event`` -- has a field of the wrong type (``parse_event``'s
    message, which names the field). A last line without its newline that does
    not parse is an error with ``incomplete=True``; a last line without newline
    that parses is fine. ``progress`` is called with the bytes read so far
    after each line.

    Messages name fields and may quote values: print them through the capture
    policy (the command line does).

    Raises ``OSError`` when the file cannot be opened (nothing is yielded then).
    """
    name = os.fspath(path)
    limit = max(1, int(max_line_bytes))
    with open(path, "rb") as f:
        read = 0
        line_no = 0
        while True:
            raw = f.readline(limit + 1)
            if not raw:
                break
            line_no += 1
            read += len(raw)
            if len(raw) > limit and not (len(raw) == limit + 1 and raw.endswith(b"\n")):
                length = len(raw)
                raw = b""
                while True:  # the rest of the line, in pieces that are not kept
                    piece = f.readline(_SKIP_CHUNK)
                    length += len(piece)
                    if not piece or piece.endswith(b"\n"):
                        break
                read += length - limit - 1
                if progress is not None:
                    progress(read)
                yield (
                    line_no,
                    LineError(
                        name,
                        line_no,
                        f"line too long: {length:,} bytes, more than the limit of {limit:,} "
                        "(--max-line-bytes raises it); skipped",
                    ),
                )
                continue
            if progress is not None:
                progress(read)
            if not raw.strip():
                continue
            complete = raw.endswith(b"\n")
            try:
                data = _decode(raw)
                if not isinstance(data, dict):
                    raise ValueError(f"an audit event must be a JSON object, got {_json_type(data)}")
                event = parse_event(data) if check_event else None
            except ValueError as exc:
                if complete:
                    yield line_no, LineError(name, line_no, str(exc))
                else:
                    yield (
                        line_no,
                        LineError(
                            name,
                            line_no,
                            f"incomplete last line ({len(raw)} bytes, no newline: the writer stopped "
                            f"mid-write?): {exc}",
                            incomplete=True,
                        ),
                    )
                continue
            yield line_no, LogLine(name, line_no, data, event)


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return type(value).__name__


@dataclass
class ReplaySummary:
    """What a replay did; every count is exact.

    ``errors`` keeps the first ``max_kept_errors`` bad lines (all are counted
    in ``lines_skipped`` and passed to ``on_error`` as they are found).
    ``aborted`` is True when ``strict`` found bad lines and nothing was replayed.
    ``derived_skipped`` counts well-formed records that were not replayed
    because the collector derives them (``DERIVED_EVENT_TYPES``).
    """

    files: int = 0
    lines_read: int = 0
    events_replayed: int = 0
    lines_skipped: int = 0
    derived_skipped: int = 0
    incomplete_last_lines: int = 0
    errors: list[LineError] = field(default_factory=list)
    spans_exported: int = 0
    spans_failed: int = 0
    spans_dropped: int = 0
    records_written: int = 0
    destinations: dict[str, str] = field(default_factory=dict)
    aborted: bool = False
    max_kept_errors: int = 100

    def add_error(self, error: LineError) -> None:
        """Count a bad line (and keep it, up to ``max_kept_errors``)."""
        self.lines_skipped += 1
        if error.incomplete:
            self.incomplete_last_lines += 1
        if len(self.errors) < self.max_kept_errors:
            self.errors.append(error)


def replay_into(
    collector: Any,
    paths: Sequence[str | os.PathLike[str]],
    *,
    summary: ReplaySummary | None = None,
    on_error: Callable[[LineError], None] | None = None,
    progress: Callable[[str, int], None] | None = None,
    keep: Callable[[LogLine], bool] | None = None,
    skip_event_types: frozenset[str] = DERIVED_EVENT_TYPES,
    flush_every: int = _FLUSH_EVERY,
    max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
    keep_ids: bool = True,
) -> ReplaySummary:
    """Emit every well-formed line of ``paths``, in order, into ``collector``; skip and report the rest.

    ``collector`` is anything with ``emit(event)`` (a ``SpanCollector``; its
    ``force_flush`` is called every ``flush_every`` lines when it has one, so
    a batch span processor is never overrun). ``keep`` filters lines (e.g. by
    session); lines whose ``event_type`` is in ``skip_event_types`` are
    counted in ``derived_skipped`` and not emitted. ``progress(path,
    bytes_read)`` follows the reading; ``max_line_bytes`` bounds a line
    (``iter_log``). ``keep_ids``: canonical records keep their trace and span
    ids (``LogLine.replay_fields``). The caller flushes / shuts down the
    collector afterwards.

    Raises ``OSError`` when a file cannot be opened.
    """
    summary = summary if summary is not None else ReplaySummary()
    # An event without a usable timestamp takes the time of the line before it (the first lines, of the
    # first line with one): the time of the replay would stretch its turn over months.
    last_stamp: str | None = None
    leading: list[dict[str, Any]] = []

    def emit(fields: dict[str, Any]) -> None:
        nonlocal last_stamp
        if _usable_timestamp(fields.get("timestamp")):
            last_stamp = fields["timestamp"]
            for waiting in leading:
                collector.emit(_timed(waiting, last_stamp))
            leading.clear()
            collector.emit(fields)
        elif last_stamp is not None:
            collector.emit(_timed(fields, last_stamp))
        elif len(leading) < _MAX_LEADING_UNTIMED:
            leading.append(fields)
        else:  # no time anywhere yet: the collector stamps it with the time it receives it
            collector.emit(fields)

    # Spans only: records held for a call's attempt stay held (a flush would fix their call's type early).
    flush: Callable[[int], bool] | None = getattr(collector, "flush_spans", None) or getattr(
        collector, "force_flush", None
    )
    since_flush = 0
    for path in paths:
        summary.files += 1
        name = os.fspath(path)
        on_bytes = (lambda n, _name=name: progress(_name, n)) if progress is not None else None
        for _, item in iter_log(path, progress=on_bytes, max_line_bytes=max_line_bytes):
            summary.lines_read += 1
            if isinstance(item, LineError):
                summary.add_error(item)
                if on_error is not None:
                    on_error(item)
                continue
            if item.data.get("event_type") in LOG_OWN_EVENT_TYPES:
                continue  # a checkpoint of the log's hash chain: not an event (verify reads it)
            if keep is not None and not keep(item):
                continue
            if item.data.get("event_type") in skip_event_types:
                summary.derived_skipped += 1
                continue
            emit(item.replay_fields(keep_ids=keep_ids))
            summary.events_replayed += 1
            since_flush += 1
            if flush is not None and since_flush >= flush_every:
                flush(30_000)
                since_flush = 0
    for waiting in leading:  # no line had a time at all
        collector.emit(waiting)
    return summary


def _usable_timestamp(stamp: Any) -> bool:
    if not isinstance(stamp, str):
        return False
    try:
        return 0 < timestamp_to_ns(stamp) < 2**63
    except (ValueError, OverflowError):
        return False


def _timed(fields: dict[str, Any], stamp: str) -> dict[str, Any]:
    """The event with the time of its neighbour, and a note of what it had in its metadata."""
    metadata = fields.get("metadata")
    original = fields.get("timestamp")
    note = "missing" if original is None else f"unusable: {str(original)[:100]}"
    return {
        **fields,
        "timestamp": stamp,
        "metadata": {**(metadata if isinstance(metadata, dict) else {}), UNTIMED_KEY: note},
    }


def check_files(
    paths: Sequence[str | os.PathLike[str]],
    *,
    on_error: Callable[[LineError], None] | None = None,
    progress: Callable[[str, int], None] | None = None,
    max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
) -> ReplaySummary:
    """Read ``paths`` like a replay would, without emitting anything: the strict pre-check."""

    class _Nothing:
        def emit(self, event: Any) -> None:
            pass

    summary = replay_into(
        _Nothing(), paths, on_error=on_error, progress=progress, max_line_bytes=max_line_bytes
    )
    summary.events_replayed = 0
    return summary


def replay_files(
    paths: Sequence[str | os.PathLike[str]],
    *,
    strict: bool = False,
    service_name: str | None = None,
    output_dir: str | os.PathLike[str] | None = None,
    audit_log: str | os.PathLike[str] | None = None,
    environ: Mapping[str, str] | None = None,
    span_exporter: SpanExporter | None = None,
    id_namespace: str = DEFAULT_ID_NAMESPACE,
    on_error: Callable[[LineError], None] | None = None,
    progress: Callable[[str, int], None] | None = None,
    capture: str | None = None,
    max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
    append: bool = False,
) -> ReplaySummary:
    """Replay audit logs through ``configure()``; return the summary (``destinations``: where things went).

    Canonical records are replayed under their own trace and span ids; seed
    logs, which carry none, under ids derived from their content. Either way a
    second replay of the same log gives the same ids.

    Args:
        paths: the logs, replayed in this order into one collector.
        strict: read every file first and replay nothing if any line is bad
            (``summary.aborted``); by default bad lines are reported and skipped.
        service_name: ``service.name`` (else ``OTEL_SERVICE_NAME``, else ``auditspan-replay``).
        output_dir: folder of the embedded default (``traces.jsonl``) when no
            OTLP endpoint is configured.
        audit_log: write the replayed events' canonical records here (else
            ``AUDITSPAN_AUDIT_LOG`` if set, else no audit log). It may not be
            one of ``paths``.
        environ: the settings to read instead of ``os.environ``.
        span_exporter: export spans here instead of what the settings say.
        id_namespace: ids are derived within this namespace; the same log
            replayed in another namespace gets other ids (a deliberate second
            copy: backends such as Phoenix drop a span whose id they already
            hold, even in another project). Another namespace than the default
            also derives new ids for canonical records instead of keeping theirs.
        append: add to an embedded-default ``traces.jsonl`` that already holds
            spans; without it such a file is refused (``ConfigurationError``):
            the spans of another run would be mixed with the replay's.
        on_error: called with each bad line as it is found (its message may
            quote a value: print it through the capture policy).
        progress: called with ``(path, bytes_read)`` while reading.
        capture: the capture policy of the replayed spans and records (else
            ``AUDITSPAN_CAPTURE``, else ``redacted``): a seed log's secrets are
            redacted exactly as live events' are.
        max_line_bytes: longest line accepted (``iter_log``).

    Raises:
        OSError: a file cannot be opened (checked for all files before anything is sent).
        ConfigurationError: a setting is wrong (the message names it), or the
            traces file already holds spans and ``append`` is false.

    Example::

        summary = replay_files(["run.jsonl"], output_dir="out")  # spans in out/traces.jsonl
        assert summary.lines_skipped == 0
    """
    for path in paths:
        with open(path, "rb"):
            pass
    env = dict(os.environ if environ is None else environ)
    summary = ReplaySummary()
    if strict:
        checked = check_files(paths, on_error=on_error, progress=progress, max_line_bytes=max_line_bytes)
        if checked.lines_skipped:
            checked.aborted = True
            return checked
        summary = ReplaySummary()
        on_error = None
        progress = None
    if audit_log is None and not env.get("AUDITSPAN_AUDIT_LOG", "").strip():
        env["AUDITSPAN_AUDIT_LOG"] = "none"
    target = audit_log if audit_log is not None else env.get("AUDITSPAN_AUDIT_LOG", "").strip()
    if target and str(target).lower() != "none":
        _refuse_same_file(Path(target), paths)
    if span_exporter is None and not append:
        _refuse_used_traces_file(env, output_dir)
    name = service_name or env.get("OTEL_SERVICE_NAME", "").strip() or DEFAULT_REPLAY_SERVICE_NAME
    handle = configure(
        service_name=name,
        audit_log=audit_log,
        output_dir=output_dir,
        span_exporter=span_exporter,
        environ=env,
        set_global=False,
        ids=DeterministicIds(id_namespace),
        capture=capture,
    )
    try:
        replay_into(
            handle.collector,
            paths,
            summary=summary,
            on_error=on_error,
            progress=progress,
            max_line_bytes=max_line_bytes,
            keep_ids=id_namespace == DEFAULT_ID_NAMESPACE,
        )
    finally:
        handle.shutdown()
    summary.destinations = dict(handle.destinations)
    summary.spans_exported = handle.span_stats.exported
    summary.spans_failed = handle.span_stats.failed
    summary.spans_dropped = int(getattr(handle.span_stats, "dropped", 0))
    summary.records_written = _records_written(handle.collector)
    return summary


def _refuse_same_file(target: Path, paths: Sequence[str | os.PathLike[str]]) -> None:
    # Appending to the log being read would feed the replay its own output, without end.
    for path in paths:
        try:
            same = target.exists() and os.path.samefile(target, path)
        except OSError:
            same = False
        if same:
            raise ConfigurationError(
                f"audit_log: {os.fspath(target)!r} is also an input file; "
                "write the replay's records elsewhere"
            )


def _refuse_used_traces_file(env: Mapping[str, str], output_dir: str | os.PathLike[str] | None) -> None:
    """Refuse to mix the replay's spans into a ``traces.jsonl`` that already holds some."""
    path = embedded_traces_file(env, output_dir)
    try:
        used = path is not None and path.stat().st_size > 0
    except OSError:
        used = False
    if used:
        assert path is not None
        raise ConfigurationError(
            f"traces file {os.fspath(path)!r} already holds spans (of another run or an earlier replay); "
            "replay into another --output-dir, or pass --append to add to it"
        )


def _records_written(collector: SpanCollector) -> int:
    """Records the audit log wrote (its own count when it keeps one, else the collector's)."""
    log = collector.audit_log
    stats = getattr(log, "stats", None)
    written = getattr(stats, "records_written", None)
    if isinstance(written, int):
        return written
    return collector.stats.records if log is not None else 0

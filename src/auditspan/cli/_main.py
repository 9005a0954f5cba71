"""The ``auditspan`` command: demo, replay, show, validate, policy-input.

``main(argv)`` parses the arguments, runs one command and returns its exit
status (it never raises for bad input or bad settings; ``python -m auditspan``
and the ``auditspan`` console script both call it)::

    $ auditspan demo                      # scripted agent -> ./auditspan-output
    $ auditspan replay agent-audit.jsonl  # old logs -> traces (OTLP or files)
    $ auditspan show agent-audit.jsonl --severity warning
    $ auditspan validate agent-audit.jsonl

argparse from the standard library: the commands need flags, help and exit
codes, nothing a terminal library would add enough to pay for a dependency.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from .. import __version__
from ..configuration import ConfigurationError
from ..redaction import CapturePolicy, Redactor

if TYPE_CHECKING:
    from .replay import LineError

__all__ = [
    "EXIT_DATA_ERRORS",
    "EXIT_EXPORT_FAILED",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_USAGE",
    "build_parser",
    "main",
]

EXIT_OK = 0
#: Malformed or invalid lines were found (replay/show/policy-input skipped them; validate reports them).
EXIT_DATA_ERRORS = 1
#: Bad command line, bad OTEL_* / AUDITSPAN_* setting, or an input file that cannot be read.
EXIT_USAGE = 2
#: Spans or audit records could not be delivered (e.g. the OTLP endpoint refused or was unreachable).
EXIT_EXPORT_FAILED = 3
#: Interrupted (Ctrl-C).
EXIT_INTERRUPTED = 130

_EPILOG = """\
exit status:
  0    success
  1    data errors: malformed or invalid lines were found (replay, show and
       policy-input skip them and go on; validate lists them)
  2    usage or configuration error: bad option, bad OTEL_*/AUDITSPAN_* setting,
       input file missing or unreadable
  3    export failure: spans or audit records could not be delivered
  130  interrupted

where things go (demo, replay):
  OTEL_EXPORTER_OTLP_ENDPOINT (or ..._TRACES_ENDPOINT) set: spans go there over
  OTLP (OTEL_EXPORTER_OTLP_PROTOCOL: http/protobuf or grpc; ..._HEADERS);
  otherwise to the embedded default, <output dir>/traces.jsonl (OTLP/JSON lines).
  OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES set the Resource.

Run 'auditspan COMMAND --help' for the options of a command.
"""


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors exit with EXIT_USAGE (argparse's own 2, kept explicit)."""

    def error(self, message: str) -> Any:
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _line_limit(text: str) -> int:
    value = _positive_int(text)
    if value > 1 << 40:
        raise argparse.ArgumentTypeError(f"at most {1 << 40} bytes, got {value}")
    return value


def _reading_options(parser: argparse.ArgumentParser, *, makes_spans: bool = False) -> None:
    """``--max-line-bytes`` and ``--capture`` (what is printed; for replay, its spans and records too)."""
    from .replay import DEFAULT_MAX_LINE_BYTES

    parser.add_argument(
        "--max-line-bytes",
        type=_line_limit,
        default=DEFAULT_MAX_LINE_BYTES,
        metavar="N",
        help=f"longest line accepted (default {DEFAULT_MAX_LINE_BYTES:,} bytes); a longer one is "
        "reported and skipped without being held in memory",
    )
    parser.add_argument(
        "--capture",
        choices=("redacted", "none", "full"),
        type=str.lower,
        help="capture policy of what is printed"
        + (" (and of the spans and records made)" if makes_spans else "")
        + ": redacted (secrets replaced), none (previews dropped, secrets replaced), full (verbatim); "
        "default $AUDITSPAN_CAPTURE or redacted",
    )


def _command(commands: Any, name: str, **options: Any) -> argparse.ArgumentParser:
    """A sub-command with the shared epilog (exit codes) and description layout."""
    parser: argparse.ArgumentParser = commands.add_parser(
        name, epilog=_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter, **options
    )
    return parser


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``auditspan`` and its sub-commands."""
    from .show import SEVERITIES

    parser = _Parser(
        prog="auditspan",
        description="AI-agent audit events as OpenTelemetry traces, beside a canonical JSON-lines audit log.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    demo = _command(
        commands,
        "demo",
        help="run a scripted agent (no LLM, no network) and show its traces",
        description=(
            "Run a scripted agent through auditspan.configure() + AuditEmitter, as an application would: "
            "an SQL read of customers.pii_emails, an external HTTP call, a file write, emails (one denied "
            "by policy), LLM calls, a failed call and its retry, a loop warning and block, an error, hook "
            "mutations, sandbox decisions and parallel tool calls. Spans go to the OTLP endpoint when "
            "OTEL_EXPORTER_OTLP_ENDPOINT is set, else to DIR/traces.jsonl; the audit log to DIR/audit.jsonl. "
            "Then prints where everything went and the trace tree."
        ),
    )
    demo.add_argument(
        "--output-dir",
        metavar="DIR",
        help="folder of the embedded default: traces.jsonl and audit.jsonl "
        "(default: $AUDITSPAN_OUTPUT_DIR or ./auditspan-output; files are appended to)",
    )
    demo.add_argument(
        "--turns",
        type=_positive_int,
        default=5,
        metavar="N",
        help="turns to play (default 5: the whole script)",
    )
    demo.add_argument("--no-tree", action="store_true", help="do not print the trace tree")
    demo.add_argument(
        "--service-name", metavar="NAME", help="service.name (default: $OTEL_SERVICE_NAME or auditspan-demo)"
    )
    demo.add_argument("--fast", action="store_true", help="no simulated tool latency")
    _color_options(demo)
    demo.set_defaults(handler=_cmd_demo)

    replay = _command(
        commands,
        "replay",
        help="turn audit logs (seed JSONL or canonical records) into traces",
        description=(
            "Read audit logs written by the seed system (one event per line) or by auditspan (canonical "
            "records), in order, and emit them as spans with the events' own timestamps. Canonical records "
            "keep their own trace and span ids (a record's telemetry.trace_id finds its trace again); seed "
            "events, which carry none, get ids derived from their content. Either way replaying the same "
            "file again gives the same ids, so backends de-duplicate. A traces.jsonl that already holds "
            "spans is refused unless --append is given. Malformed lines are reported as FILE:LINE: "
            "message and skipped."
        ),
    )
    replay.add_argument("files", nargs="+", metavar="FILE", help="audit log(s), JSON lines")
    replay.add_argument(
        "--strict",
        action="store_true",
        help="check every line first; replay nothing if any line is malformed (exit 1)",
    )
    replay.add_argument(
        "--service-name",
        metavar="NAME",
        help="service.name of the spans (default: $OTEL_SERVICE_NAME or auditspan-replay)",
    )
    replay.add_argument(
        "--output-dir",
        metavar="DIR",
        help="folder of the embedded default traces.jsonl when no OTLP endpoint is set "
        "(default: $AUDITSPAN_OUTPUT_DIR or ./auditspan-output)",
    )
    replay.add_argument(
        "--audit-log",
        metavar="PATH",
        help="also write the replayed events' canonical records (with trace ids) to PATH "
        "(default: $AUDITSPAN_AUDIT_LOG if set, else none)",
    )
    replay.add_argument(
        "--id-namespace",
        metavar="NAME",
        default="auditspan",
        help="derive trace and span ids within NAME (default: auditspan); the same log replayed with "
        "another NAME gets other ids (canonical records then do not keep theirs), e.g. to load it again "
        "where its spans already are",
    )
    replay.add_argument(
        "--append",
        action="store_true",
        help="add the spans to DIR/traces.jsonl even when it already holds spans (of another run)",
    )
    replay.add_argument(
        "--no-progress", action="store_true", help="no progress bar (shown only on a terminal)"
    )
    _reading_options(replay, makes_spans=True)
    replay.set_defaults(handler=_cmd_replay)

    show = _command(
        commands,
        "show",
        help="print the turns and tool calls of an audit log as a tree",
        description=(
            "Print session > turn > tool calls of audit logs (canonical records or seed JSONL): agent, "
            "prompt, durations, semantic types, outcomes and policy decisions, with denials, blocks, "
            "failures and errors highlighted. Calls are rebuilt from the event order exactly as live "
            "tracing does."
        ),
    )
    show.add_argument("files", nargs="+", metavar="FILE", help="audit log(s), JSON lines")
    show.add_argument("--session", metavar="S", help="only this session id")
    show.add_argument("--turn", metavar="T", help="only the turn with this id (or id prefix)")
    show.add_argument("--tool", metavar="NAME", help="only calls of this tool (glob: 'fetch_*')")
    show.add_argument(
        "--type", metavar="T", dest="operation_type", help="only calls of this semantic type (glob)"
    )
    show.add_argument(
        "--severity",
        metavar="S",
        choices=SEVERITIES,
        type=str.lower,
        help=f"only calls and events at this severity or above ({', '.join(SEVERITIES)}); "
        "failed, denied and blocked calls count as error",
    )
    _color_options(show)
    _reading_options(show)
    show.set_defaults(handler=_cmd_show)

    validate = _command(
        commands,
        "validate",
        help="check audit logs against the record schema and the seed format",
        description=(
            "Check every line: canonical records against the shipped JSON Schema and the event field "
            "types, seed events against the seed format. Prints FILE:LINE: field 'x': problem for each "
            "problem and a summary; exit 1 when any line is invalid."
        ),
    )
    validate.add_argument("files", nargs="+", metavar="FILE", help="audit log(s), JSON lines")
    validate.add_argument(
        "--schema-only",
        action="store_true",
        help="check every line against the canonical record schema alone (seed events then fail)",
    )
    _reading_options(validate)
    validate.set_defaults(handler=_cmd_validate)

    policy = _command(
        commands,
        "policy-input",
        help="print the OPA input document of every record",
        description=(
            "Print one JSON document per line: the OPA input (operation, agent, session, governance, ...) "
            "that policies written against input.operation.type are evaluated on."
        ),
    )
    policy.add_argument("files", nargs="+", metavar="FILE", help="canonical audit log(s), JSON lines")
    policy.add_argument(
        "--event-type",
        action="append",
        metavar="T",
        help="only records of this event_type (repeatable; e.g. tool_call_attempt)",
    )
    _reading_options(policy)
    policy.set_defaults(handler=_cmd_policy_input)

    from ._verify import add_commands

    add_commands(commands, _command)
    return parser


def _color_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--color", dest="color", action="store_true", default=None, help="always use colour")
    group.add_argument("--no-color", dest="color", action="store_false", help="never use colour")


# ------------------------------------------------------------------- helpers
def _out() -> IO[str]:
    return sys.stdout


def _err(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _scrubbed(error: LineError, scrub: Callable[[str], str]) -> str:
    """``FILE:LINE: message`` with the message (which may quote the value it found wrong) scrubbed."""
    return f"{error.path}:{error.line_no}: {scrub(error.message)}"


def _redactor(args: argparse.Namespace) -> Redactor:
    """The capture policy of what a command prints: ``--capture``, ``AUDITSPAN_CAPTURE``, or redacted."""
    from ..configuration._pipeline import _redactor as configured

    return configured(getattr(args, "capture", None), os.environ)


def _use_color(choice: bool | None, stream: IO[str]) -> bool:
    if choice is not None:
        return choice
    if os.environ.get("NO_COLOR"):
        return False
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


def _ascii_only(stream: IO[str]) -> bool:
    try:
        "├└│".encode(getattr(stream, "encoding", None) or "ascii")
    except (UnicodeEncodeError, LookupError):
        return True
    return False


def _plural(n: int, noun: str, suffix: str = "s") -> str:
    """``1 turn``, ``2 turns``; ``suffix`` for nouns such as ``match`` (``es``)."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}{suffix}"


def _auditspan_command() -> tuple[str, str]:
    """How the user can run ``auditspan`` from here, and a hint when it is not on PATH.

    ``scripts/demo`` installs into ``./.venv`` without activating it: ``auditspan``
    alone would not be found, so the command is the script's path.
    """
    here = Path(sys.executable).parent / "auditspan"
    found = shutil.which("auditspan")
    if not here.exists():
        return ("auditspan", "") if found else (f"{sys.executable} -m auditspan", "")
    if found is not None and os.path.samefile(found, here):
        return "auditspan", ""
    shown = _short_path(here)
    activate = here.parent / "activate"
    source = f", or first: source {_short_path(activate)}" if activate.exists() else ""
    return shown, f"(auditspan is not on PATH: run it as {shown}{source})"


def _short_path(path: Path) -> str:
    """``path`` relative to the working directory when it is below it, else absolute."""
    try:
        relative = os.path.relpath(path)
    except ValueError:  # another drive
        return str(path)
    return str(path) if relative.startswith("..") else relative


def _unreadable(command: str, paths: Sequence[str]) -> int | None:
    """Exit status 2 with one message per file that cannot be opened; None when all can."""
    bad = False
    for path in paths:
        try:
            with open(path, "rb"):
                pass
        except OSError as exc:
            _err(f"auditspan {command}: cannot read {path}: {exc.strerror or exc}")
            bad = True
    return EXIT_USAGE if bad else None


class _Progress:
    """A one-line progress bar on stderr: bytes read of all files, lines, rate. Only on a terminal."""

    def __init__(self, paths: Sequence[str], stream: IO[str]) -> None:
        self.stream = stream
        self.total = sum(os.path.getsize(p) for p in paths) or 1
        self.done_before = 0
        self.current: str | None = None
        self.current_bytes = 0
        self.last = 0.0
        self.started = time.monotonic()

    def __call__(self, path: str, read: int) -> None:
        if path != self.current:
            if self.current is not None:
                self.done_before += self.current_bytes
            self.current = path
        self.current_bytes = read
        now = time.monotonic()
        if now - self.last < 0.1:
            return
        self.last = now
        done = self.done_before + read
        width = 30
        filled = int(width * min(1.0, done / self.total))
        rate = done / max(now - self.started, 1e-6) / 1e6
        self.stream.write(
            f"\r[{'#' * filled}{'.' * (width - filled)}] {100 * done / self.total:5.1f}%  "
            f"{rate:.1f} MB/s  {os.path.basename(path)[:30]}\x1b[K"
        )
        self.stream.flush()

    def finish(self) -> None:
        self.stream.write("\r\x1b[K")
        self.stream.flush()


# ------------------------------------------------------------------ commands
def _cmd_demo(args: argparse.Namespace) -> int:
    from ..configuration import configure
    from .demo import run_demo_agent
    from .show import ShowFilter, render_tree, spans_of_logs

    out = _out()
    service = args.service_name or os.environ.get("OTEL_SERVICE_NAME", "").strip() or "auditspan-demo"
    handle = configure(service_name=service, output_dir=args.output_dir, set_global=False)
    try:
        run = run_demo_agent(handle.emitter, turns=args.turns, latency_scale=0.0 if args.fast else 1.0)
    finally:
        handle.shutdown()
    collector = handle.collector
    log = collector.audit_log
    log_stats = getattr(log, "stats", None)
    records_written = getattr(log_stats, "records_written", collector.stats.records)
    records_failed = getattr(log_stats, "records_failed", 0)
    print(
        f"auditspan demo: {_plural(len(run.turns), 'turn')} in {_plural(len(run.sessions), 'session')}, "
        f"{_plural(run.tool_calls, 'tool call')}, {_plural(run.events, 'audit event')} (run {run.run_id})",
        file=out,
    )
    print("where everything went:", file=out)
    for what, where in handle.destinations.items():
        print(f"  {what + ':':<12} {where}", file=out)
    stats = handle.span_stats
    dropped = int(getattr(stats, "dropped", 0))
    print(
        f"spans:        {stats.exported} exported, {stats.failed} failed"
        + (f", {dropped} dropped (batch queue full)" if dropped else ""),
        file=out,
    )
    derived = collector.stats.rule_matches
    print(
        f"audit records: {records_written} written"
        + (
            f" ({_plural(run.events, 'event')} + {_plural(derived, 'behavioural-rule match', 'es')})"
            if derived
            else ""
        )
        + (f", {records_failed} failed" if records_failed else ""),
        file=out,
    )
    log_path = getattr(log, "path", None)
    if not args.no_tree:
        if isinstance(log_path, Path):
            sessions = set(run.sessions)
            spans, _ = spans_of_logs([log_path], keep=lambda line: line.data.get("session_id") in sessions)
            print("", file=out)
            print(
                render_tree(
                    spans,
                    filters=ShowFilter(),
                    color=_use_color(args.color, out),
                    ascii_only=_ascii_only(out),
                ),
                end="",
                file=out,
            )
        else:
            print("(no audit log file: no tree; AUDITSPAN_AUDIT_LOG=none?)", file=out)
    if isinstance(log_path, Path):
        command, hint = _auditspan_command()
        print(f"\nexplore: {command} show {log_path} --severity warning", file=out)
        if hint:
            print(hint, file=out)
    if stats.failed or dropped or records_failed:
        _err("auditspan demo: some spans or records could not be delivered (see above)")
        return EXIT_EXPORT_FAILED
    return EXIT_OK


def _cmd_replay(args: argparse.Namespace) -> int:
    from .replay import replay_files

    status = _unreadable("replay", args.files)
    if status is not None:
        return status
    scrub = _redactor(args).scrub
    progress: _Progress | None = None
    if not args.no_progress and sys.stderr.isatty():
        progress = _Progress(args.files, sys.stderr)

    def report(error: LineError) -> None:
        if progress is not None:
            progress.finish()
        _err(_scrubbed(error, scrub))

    try:
        summary = replay_files(
            args.files,
            strict=args.strict,
            service_name=args.service_name,
            output_dir=args.output_dir,
            audit_log=args.audit_log,
            id_namespace=args.id_namespace,
            on_error=report,
            progress=progress,
            capture=args.capture,
            max_line_bytes=args.max_line_bytes,
            append=args.append,
        )
    finally:
        if progress is not None:
            progress.finish()
    out = _out()
    if summary.aborted:
        _err(
            f"auditspan replay: --strict: {summary.lines_skipped} malformed line(s) in "
            f"{summary.files} file(s); nothing was replayed"
        )
        return EXIT_DATA_ERRORS
    print(
        f"replayed {summary.events_replayed} events from {summary.files} file(s): "
        f"{summary.lines_read} lines read, {summary.lines_skipped} skipped"
        + (
            f" (incomplete last line: {summary.incomplete_last_lines})"
            if summary.incomplete_last_lines
            else ""
        ),
        file=out,
    )
    if summary.derived_skipped:
        print(
            f"{summary.derived_skipped} behavioural-rule match record(s) not replayed: "
            "the rule engine derives them again",
            file=out,
        )
    dropped = f", {summary.spans_dropped} dropped (batch queue full)" if summary.spans_dropped else ""
    print(f"spans: {summary.spans_exported} exported, {summary.spans_failed} failed{dropped}", file=out)
    print("where they went:", file=out)
    for what, where in summary.destinations.items():
        print(f"  {what + ':':<12} {where}", file=out)
    ids = (
        "canonical records keep their own; seed events get ids derived from their content"
        if args.id_namespace == "auditspan"
        else f"derived from the content in namespace {args.id_namespace!r}"
    )
    print(f"  {'ids:':<12} {ids}", file=out)
    if summary.destinations.get("audit log"):
        print(f"audit records: {summary.records_written} written", file=out)
    if summary.spans_failed or summary.spans_dropped:
        return EXIT_EXPORT_FAILED
    return EXIT_DATA_ERRORS if summary.lines_skipped else EXIT_OK


def _cmd_show(args: argparse.Namespace) -> int:
    from .show import ShowFilter, show_logs

    status = _unreadable("show", args.files)
    if status is not None:
        return status
    redactor = _redactor(args)

    def report(error: LineError) -> None:
        _err(_scrubbed(error, redactor.scrub))

    out = _out()
    # Ids are redacted as they are read: a filter on an id that holds a secret is redacted alike.
    filters = ShowFilter(
        session=redactor.scrub_name(args.session) if args.session else args.session,
        turn=redactor.scrub_name(args.turn) if args.turn else args.turn,
        tool=args.tool,
        operation_type=args.operation_type,
        severity=args.severity,
    )
    summary = show_logs(
        args.files,
        out.write,
        filters=filters,
        color=_use_color(args.color, out),
        ascii_only=_ascii_only(out),
        on_error=report,
        redactor=redactor,
        max_line_bytes=args.max_line_bytes,
    )
    if summary.calls_not_shown:
        _err(
            f"auditspan show: {summary.calls_not_shown} call(s) of turns that had not ended were not shown "
            "(show keeps at most 100,000 of them)"
        )
    if summary.read.lines_skipped:
        _err(f"auditspan show: {summary.read.lines_skipped} malformed line(s) skipped")
        return EXIT_DATA_ERRORS
    return EXIT_OK


def _cmd_validate(args: argparse.Namespace) -> int:
    from .validate import validate_files

    status = _unreadable("validate", args.files)
    if status is not None:
        return status
    out = _out()
    summary = validate_files(
        args.files,
        schema_only=args.schema_only,
        on_problem=lambda m: print(m, file=out),
        max_line_bytes=args.max_line_bytes,
        redact=_redactor(args).scrub,  # a problem may quote the value it found wrong
    )
    kinds = f"{summary.canonical} canonical record(s), {summary.seed} seed event(s)"
    print(
        f"{summary.lines} line(s) in {summary.files} file(s): {summary.valid} valid ({kinds}), "
        f"{summary.invalid} invalid ({summary.problems} problem(s))",
        file=out,
    )
    return EXIT_OK if summary.ok else EXIT_DATA_ERRORS


def _cmd_policy_input(args: argparse.Namespace) -> int:
    from ..policy import policy_input
    from .replay import LOG_OWN_EVENT_TYPES, LineError, iter_log

    status = _unreadable("policy-input", args.files)
    if status is not None:
        return status
    out = _out()
    redactor = _redactor(args)
    wanted = set(args.event_type) if args.event_type else None
    bad = 0
    warned = False
    for path in args.files:
        for _, item in iter_log(path, max_line_bytes=args.max_line_bytes):
            if isinstance(item, LineError):
                _err(_scrubbed(item, redactor.scrub))
                bad += 1
                continue
            if item.data.get("event_type") in LOG_OWN_EVENT_TYPES:
                continue  # the chain's checkpoint: the log's own record, no event to decide on
            if wanted is not None and item.data.get("event_type") not in wanted:
                continue
            if not item.is_canonical and not warned:
                _err(
                    f"{item.path}:{item.line_no}: a seed event, not a canonical record: it has no "
                    "semantic type (get canonical records with 'auditspan replay --audit-log PATH')"
                )
                warned = True
            # A log written with capture=full, or by another tool, holds what it was given.
            document = policy_input(item.data)
            if redactor.policy is not CapturePolicy.FULL:
                document = redactor.redact_value(document)
            out.write(json.dumps(document, ensure_ascii=False) + "\n")
    return EXIT_DATA_ERRORS if bad else EXIT_OK


# ---------------------------------------------------------------------- main
def main(argv: Sequence[str] | None = None) -> int:
    """Run ``auditspan`` with ``argv`` (default ``sys.argv[1:]``); return the exit status.

    Example::

        status = main(["validate", "audit.jsonl"])   # 0 when every line is valid
    """
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version and usage errors
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    handler: Callable[[argparse.Namespace], int] | None = getattr(args, "handler", None)
    if handler is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        return handler(args)
    except ConfigurationError as exc:
        _err(f"auditspan {args.command}: configuration error: {exc}")
        return EXIT_USAGE
    except OSError as exc:
        if isinstance(exc, BrokenPipeError):
            return _broken_pipe()
        where = f" {exc.filename}" if exc.filename else ""
        _err(f"auditspan {args.command}: cannot access{where}: {exc.strerror or exc}")
        return EXIT_USAGE
    except KeyboardInterrupt:
        _err(f"auditspan {args.command}: interrupted")
        return EXIT_INTERRUPTED


def _broken_pipe() -> int:
    # The reader went away (``auditspan show log | head``): stop quietly, and keep Python
    # from complaining again when it flushes stdout at exit.
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass
    return EXIT_OK

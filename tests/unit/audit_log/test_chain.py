"""The tamper-evident audit log: chains, signed checkpoints, the witness, and ``auditspan verify``.

A tamper corpus (chained logs of 10,000 records, built once per module and tampered with in
copies at seeded random positions) must be caught and named; untouched logs -- including logs
cut by a SIGKILL mid-write and logs several processes wrote at once with rotation -- must not.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import re
import shutil
import signal
import stat
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from auditspan.audit_log import JsonLinesAuditLog
from auditspan.audit_log._chain import line_hash, span_witness
from auditspan.cli import main
from auditspan.configuration import ConfigurationError, configure
from auditspan.otlp_file import OtlpJsonFileSpanExporter
from auditspan.records import build_record, encode_record
from auditspan.signing import generate_key_pair, load_public_keys, load_signer
from auditspan.verify import VerifyReport, verify_logs

pytest.importorskip("cryptography")

RECORDS = 10_000
_TAIL = re.compile(
    rb',"chain":\{"id":"([0-9a-f]{32})","seq":(\d+),"(?:prev|link)":(?:"([0-9a-f]{64})"|null)\}\}$'
)
CHECKPOINT = b'{"event_type":"audit_checkpoint"'


def record_line(n: int, who: str = "agent") -> bytes:
    return encode_record(
        build_record(
            {
                "event_type": "tool_call_attempt",
                "timestamp": "2026-12-07T01:00:00+00:00",
                "agent_id": who,
                "turn_id": f"t{n // 10}",
                "session_id": "s1",
                "severity": "info",
                "metadata": {"n": n},
                "tool_name": "run_sql",
                "arguments_preview": f"select {n}",
            },
            event_id=f"evt_{who}_{n}",
            operation_type="DATABASE_READ",
        )
    )


@dataclass
class Corpus:
    folder: Path
    log: Path  # one file, signed, 10,000 records
    rotated: Path  # rotated into several files, signed
    witness: Path  # OTLP/JSON traces holding both logs' checkpoints
    key: Path
    public: Path
    other_public: Path


def write_log(
    path: Path,
    count: int,
    *,
    witness_provider: TracerProvider | None = None,
    signer: Any = None,
    **options: Any,
) -> None:
    log = JsonLinesAuditLog(
        path,
        chain=True,
        fsync="none",
        signer=signer,
        witness=span_witness(witness_provider) if witness_provider is not None else None,
        **options,
    )
    for start in range(0, count, 100):
        log.export_lines([record_line(n) for n in range(start, min(count, start + 100))])
    log.shutdown()


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Corpus:
    folder = tmp_path_factory.mktemp("corpus")
    key, public, _ = generate_key_pair(folder / "keys")
    _, other_public, _ = generate_key_pair(folder / "keys", "other")
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(OtlpJsonFileSpanExporter(folder / "traces.jsonl")))
    signer = load_signer(key)
    (folder / "one").mkdir()
    (folder / "rotated").mkdir()
    write_log(folder / "one" / "audit.jsonl", RECORDS, witness_provider=provider, signer=signer)
    write_log(
        folder / "rotated" / "audit.jsonl",
        RECORDS,
        witness_provider=provider,
        signer=signer,
        rotate_bytes=1_000_000,
        retain=20,
    )
    provider.shutdown()
    return Corpus(
        folder,
        folder / "one" / "audit.jsonl",
        folder / "rotated" / "audit.jsonl",
        folder / "traces.jsonl",
        key,
        public,
        other_public,
    )


def tampered_copy(corpus: Corpus, tmp_path: Path, change: Callable[[list[bytes]], list[bytes]]) -> Path:
    lines = corpus.log.read_bytes().splitlines(keepends=True)
    out = tmp_path / "audit.jsonl"
    out.write_bytes(b"".join(change(lines)))
    return out


def check(path: Path, corpus: Corpus, *, witness: bool = True, key: bool = True) -> VerifyReport:
    return verify_logs(
        [path],
        public_keys=load_public_keys([corpus.public]) if key else None,
        witness=corpus.witness if witness else None,
    )


def record_positions(lines: list[bytes]) -> list[int]:
    """Indexes of record lines (not checkpoints), the last line excluded (it has no successor)."""
    return [i for i, line in enumerate(lines[:-1]) if not line.startswith(CHECKPOINT)]


def found(report: VerifyReport) -> set[tuple[int, str]]:
    return {(p.line, p.kind) for p in report.problems}


SEEDS = range(5)


# ------------------------------------------------------------------- untouched corpus
def test_the_untouched_corpus_is_intact_with_key_and_witness(corpus: Corpus) -> None:
    for log in (corpus.log, corpus.rotated):
        report = verify_logs([log], public_keys=load_public_keys([corpus.public]), witness=corpus.witness)
        assert report.problems == [] and report.intact, report.problems[:5]
        assert report.records >= RECORDS and report.chains == 1
        assert report.checkpoints >= RECORDS // 1_000
        assert report.signatures_verified == report.checkpoints
        assert report.witness_matched == report.checkpoints
    assert len(verify_logs([corpus.rotated]).files) > 3  # the rotated files were found, oldest first


def test_the_chain_continues_across_rotations(corpus: Corpus) -> None:
    files = sorted(
        corpus.rotated.parent.iterdir(), key=lambda p: -int(p.suffix[1:]) if p.suffix[1:].isdigit() else 0
    )
    seqs: list[int] = []
    for file in files:
        for line in file.read_bytes().splitlines():
            match = _TAIL.search(line)
            assert match is not None
            seqs.append(int(match.group(2)))
    assert seqs == list(range(len(seqs)))  # one chain, contiguous over every file
    reasons = [
        json.loads(line)["checkpoint"]["reason"]
        for f in files
        for line in f.read_bytes().splitlines()
        if line.startswith(CHECKPOINT)
    ]
    assert "rotation" in reasons and reasons[-1] == "shutdown" and "count" in reasons


# ------------------------------------------------------------------- the tampers
@pytest.mark.parametrize("seed", SEEDS)
def test_a_flipped_byte_is_named_modified_at_its_line(corpus: Corpus, tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    lines = corpus.log.read_bytes().splitlines(keepends=True)
    index = rng.choice(record_positions(lines))
    offset = rng.randrange(len(lines[index]) - 1)  # within the line (its newline would merge two)

    def flip(lines: list[bytes]) -> list[bytes]:
        changed = bytearray(lines[index])
        changed[offset] ^= 0x01
        return [*lines[:index], bytes(changed), *lines[index + 1 :]]

    report = check(tampered_copy(corpus, tmp_path, flip), corpus)
    assert found(report) == {(index + 1, "modified")}, (offset, report.problems)


def test_a_flipped_newline_is_caught(corpus: Corpus, tmp_path: Path) -> None:
    lines = corpus.log.read_bytes().splitlines(keepends=True)
    index = record_positions(lines)[1234]

    def merge(lines: list[bytes]) -> list[bytes]:
        return [*lines[:index], lines[index][:-1] + b"\x0b", *lines[index + 1 :]]

    report = check(tampered_copy(corpus, tmp_path, merge), corpus)
    assert not report.intact
    assert {line for line, _ in found(report)} <= {index + 1, index + 2}


@pytest.mark.parametrize("seed", SEEDS)
def test_a_deleted_line_is_named_missing(corpus: Corpus, tmp_path: Path, seed: int) -> None:
    lines = corpus.log.read_bytes().splitlines(keepends=True)
    index = random.Random(seed).choice(record_positions(lines))
    report = check(tampered_copy(corpus, tmp_path, lambda ls: ls[:index] + ls[index + 1 :]), corpus)
    assert found(report) == {(index + 1, "missing")}, report.problems


@pytest.mark.parametrize("seed", SEEDS)
def test_a_duplicated_line_is_named_inserted(corpus: Corpus, tmp_path: Path, seed: int) -> None:
    lines = corpus.log.read_bytes().splitlines(keepends=True)
    index = random.Random(seed).choice(record_positions(lines))
    report = check(tampered_copy(corpus, tmp_path, lambda ls: ls[: index + 1] + ls[index:]), corpus)
    assert found(report) == {(index + 2, "inserted")}, report.problems


@pytest.mark.parametrize("seed", SEEDS)
def test_two_swapped_lines_are_named_reordered(corpus: Corpus, tmp_path: Path, seed: int) -> None:
    lines = corpus.log.read_bytes().splitlines(keepends=True)
    index = random.Random(seed).choice(record_positions(lines)[:-1])

    def swap(ls: list[bytes]) -> list[bytes]:
        return [*ls[:index], ls[index + 1], ls[index], *ls[index + 2 :]]

    report = check(tampered_copy(corpus, tmp_path, swap), corpus)
    assert found(report) == {(index + 2, "reordered")}, report.problems


def forge(lines: list[bytes], index: int, new_line: bytes) -> list[bytes]:
    """Replace line ``index`` and recompute the chain after it, as an attacker without the key would:
    every later prev, and every checkpoint's head, made to match (the signatures cannot be).
    (A line names only the hash of the line before it: its prev, and a checkpoint's head.)"""
    out = lines[:index]
    old, new = line_hash(lines[index]).encode(), line_hash(new_line).encode()
    out.append(new_line)
    for line in lines[index + 1 :]:
        body = line.replace(old, new)
        old, new = line_hash(line).encode(), line_hash(body).encode()
        out.append(body)
    return out


@pytest.mark.parametrize("seed", SEEDS)
def test_a_forged_line_with_its_chain_recomputed_is_caught_by_the_next_signature(
    corpus: Corpus, tmp_path: Path, seed: int
) -> None:
    lines = corpus.log.read_bytes().splitlines(keepends=True)
    index = random.Random(seed).choice(record_positions(lines))
    forged = lines[index].replace(b'"run_sql"', b'"run_ok!"', 1)
    assert forged != lines[index]
    path = tampered_copy(corpus, tmp_path, lambda ls: forge(ls, index, forged))
    next_checkpoint = next(i for i in range(index, len(lines)) if lines[i].startswith(CHECKPOINT))
    report = check(path, corpus, witness=False)
    assert report.problems[0].kind == "signature invalid"
    assert report.problems[0].line == next_checkpoint + 1
    assert {p.kind for p in report.problems} == {"signature invalid"}
    # Unsigned and unwitnessed, such a forgery is not visible: what a key adds.
    assert check(path, corpus, witness=False, key=False).intact


def test_a_tail_cut_after_the_last_checkpoint_is_caught_with_the_witness(
    corpus: Corpus, tmp_path: Path
) -> None:
    lines = corpus.log.read_bytes().splitlines(keepends=True)
    checkpoints = [i for i, line in enumerate(lines) if line.startswith(CHECKPOINT)]
    keep = random.Random(7).randrange(checkpoints[-2] + 1, checkpoints[-1])  # cut after the last-but-one
    path = tampered_copy(corpus, tmp_path, lambda ls: ls[:keep])
    assert check(path, corpus, witness=False).intact  # a chain alone cannot see a clean cut
    report = check(path, corpus)
    assert found(report) == {(keep, "truncated")}, report.problems


def test_a_whole_unsigned_log_rewritten_after_a_checkpoint_is_caught_with_the_witness(tmp_path: Path) -> None:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(OtlpJsonFileSpanExporter(tmp_path / "traces.jsonl")))
    path = tmp_path / "audit.jsonl"
    write_log(path, 3_000, witness_provider=provider)
    provider.shutdown()
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(b"".join(forge(lines, 5, lines[5].replace(b"select 5", b"select 6"))))
    assert verify_logs([path]).intact  # rewritten consistently: unsigned, the file alone cannot tell
    report = verify_logs([path], witness=tmp_path / "traces.jsonl")
    assert {p.kind for p in report.problems} == {"modified"}
    first = next(i for i, line in enumerate(lines) if line.startswith(CHECKPOINT))
    assert report.problems[0].line == first + 1


@pytest.mark.parametrize("number", [1, 2, 4])
def test_a_removed_rotated_file_is_named(corpus: Corpus, tmp_path: Path, number: int) -> None:
    folder = tmp_path / "logs"
    shutil.copytree(corpus.rotated.parent, folder)
    (folder / f"audit.jsonl.{number}").unlink()
    report = verify_logs([folder / "audit.jsonl"], public_keys=load_public_keys([corpus.public]))
    assert [(Path(p.path).name, p.kind) for p in report.problems] == [
        (f"audit.jsonl.{number}", "missing rotated file")
    ]


def test_a_rotated_file_removed_and_the_rest_renumbered_is_named(corpus: Corpus, tmp_path: Path) -> None:
    folder = tmp_path / "logs"
    shutil.copytree(corpus.rotated.parent, folder)
    (folder / "audit.jsonl.1").unlink()
    numbers = sorted(int(p.suffix[1:]) for p in folder.iterdir() if p.suffix[1:].isdigit())
    for n in numbers:
        (folder / f"audit.jsonl.{n}").rename(folder / f"audit.jsonl.{n - 1}")
    report = verify_logs([folder / "audit.jsonl"])
    assert [(Path(p.path).name, p.line, p.kind) for p in report.problems] == [
        ("audit.jsonl", 1, "missing rotated file")
    ]


def test_a_key_not_given_is_named_unknown_key(corpus: Corpus) -> None:
    report = verify_logs([corpus.log], public_keys=load_public_keys([corpus.other_public]))
    assert {p.kind for p in report.problems} == {"unknown key"}
    assert len(report.problems) == report.checkpoints


def test_a_whole_chain_deleted_from_the_middle_is_named_missing(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    for _ in range(3):  # three writers, one after the other: each links to the one before
        write_log(path, 50)
    lines = path.read_bytes().splitlines(keepends=True)
    starts = [i for i, line in enumerate(lines) if b'"seq":0,' in line]
    assert len(starts) == 3
    path.write_bytes(b"".join(lines[: starts[1]] + lines[starts[2] :]))
    report = verify_logs([path])
    assert found(report) == {(starts[1] + 1, "missing")}, report.problems


# ------------------------------------------------------------------- no false alarm
def test_no_false_alarm_on_88_small_logs_written_in_process(tmp_path: Path) -> None:
    rng = random.Random(18)
    signer = load_signer(generate_key_pair(tmp_path / "keys")[0])
    keys = load_public_keys([tmp_path / "keys" / "audit-signing.pub"])
    for n in range(88):
        folder = tmp_path / f"log{n}"
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(OtlpJsonFileSpanExporter(folder / "traces.jsonl")))
        options: dict[str, Any] = {
            "checkpoint_every": rng.choice([1, 7, 50, 1_000]),
            "signer": signer if n % 2 else None,
        }
        if n % 3 == 0:
            options.update(rotate_bytes=rng.choice([3_000, 20_000]), retain=400)
        writers = rng.randint(1, 3)  # writers one after the other on the same file
        for _ in range(writers):
            write_log(folder / "audit.jsonl", rng.randint(1, 300), witness_provider=provider, **options)
        provider.shutdown()
        report = verify_logs([folder / "audit.jsonl"], public_keys=keys, witness=folder / "traces.jsonl")
        assert report.intact and report.chains == writers, (n, options, report.problems[:3])
        assert report.witness_matched == report.checkpoints


WRITER = textwrap.dedent(
    """
    import os, sys, time
    sys.path.insert(0, {tests!r})
    from test_chain import record_line
    from auditspan.audit_log import JsonLinesAuditLog
    path, who, count, rotate = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    log = JsonLinesAuditLog(path, chain=True, fsync="none", batch_size=7, checkpoint_every=40,
                            rotate_bytes=rotate or None, retain=500)
    print("ready", flush=True)
    n = 0
    while count < 0 or n < count:
        log.export_lines([record_line(n, who)])
        n += 1
        if count < 0 and n % 50 == 0:
            time.sleep(0.001)
    log.shutdown()
    """
).format(tests=str(Path(__file__).parent))


def start_writer(path: Path, who: str, count: int, rotate: int = 0) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(path), who, str(count), str(rotate)],
        stdout=subprocess.PIPE,
        text=True,
        env={k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "AUDITSPAN_"))},
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "ready"
    return proc


def written(folder: Path) -> int:
    total = 0
    for file in folder.glob("audit.jsonl*"):
        with contextlib.suppress(FileNotFoundError):  # renamed by a rotation meanwhile
            total += file.stat().st_size
    return total


@pytest.mark.parametrize("run", range(6))
def test_no_false_alarm_on_a_log_cut_by_sigkill_mid_write(tmp_path: Path, run: int) -> None:
    path = tmp_path / "audit.jsonl"
    proc = start_writer(path, "killed", -1, rotate=[0, 40_000][run % 2])
    deadline = time.monotonic() + 10
    while written(tmp_path) < 30_000 + run * 7_919 and time.monotonic() < deadline:
        time.sleep(0.005)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(10)
    if run >= 3:  # a later writer appends after the crash: it links its chain to what is there
        writer = start_writer(path, "after", 120)
        assert writer.wait(30) == 0
    status = main(["verify", str(path), "--json", str(tmp_path / "report.json")])
    report = json.loads((tmp_path / "report.json").read_text())
    assert status == 0 and report["intact"], report["problems"][:3]
    assert report["records"] > 50


@pytest.mark.parametrize("run", range(6))
def test_no_false_alarm_on_a_log_several_processes_wrote_at_once_with_rotation(
    tmp_path: Path, run: int
) -> None:
    path = tmp_path / "audit.jsonl"
    writers = [start_writer(path, f"p{i}", 600, rotate=[8_000, 30_000][run % 2]) for i in range(3)]
    assert [w.wait(60) for w in writers] == [0, 0, 0]
    report = verify_logs([path])
    assert report.intact, report.problems[:3]
    assert report.chains == 3 and report.records == 3 * 600 + report.checkpoints
    assert len(report.files) > 3


def test_a_forked_child_writes_a_chain_of_its_own(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    log = JsonLinesAuditLog(path, chain=True, checkpoint_every=10)
    log.export_lines([record_line(n) for n in range(25)])
    assert log.force_flush(10_000)
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        log.export_lines([record_line(n, "child") for n in range(25)])
        log.shutdown()
        os._exit(0)
    log.export_lines([record_line(n, "parent") for n in range(25, 50)])
    _, status = os.waitpid(pid, 0)
    log.shutdown()
    assert status == 0
    report = verify_logs([path])
    assert report.intact and report.chains == 2, report.problems


# ------------------------------------------------------------------- the writer's side
def test_checkpoints_are_written_every_interval_when_idle(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    log = JsonLinesAuditLog(path, chain=True, checkpoint_interval_s=0.2)
    log.export_lines([record_line(1), record_line(2)])
    deadline = time.monotonic() + 10
    while CHECKPOINT not in path.read_bytes() and time.monotonic() < deadline:
        time.sleep(0.02)
    body = json.loads(path.read_bytes().splitlines()[-1])
    assert body["checkpoint"]["reason"] == "interval" and body["checkpoint"]["last_seq"] == 1
    log.shutdown()
    assert verify_logs([path]).intact


def test_a_writer_links_its_first_line_to_the_last_line_already_there(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    path.write_bytes(b'{"not":"chained"}\n{"event_type": "tur')  # and a torn line from a crash
    log = JsonLinesAuditLog(path, chain=True)
    log.export_lines([record_line(1)])
    log.shutdown()
    lines = path.read_bytes().splitlines()
    assert lines[1] == b'{"event_type": "tur'
    assert json.loads(lines[2])["chain"]["link"] == line_hash(b'{"event_type": "tur')


def test_configure_witnesses_checkpoints_in_the_embedded_traces_file(tmp_path: Path) -> None:
    key, public, _ = generate_key_pair(tmp_path / "keys")
    handle = configure(
        "chain-test",
        output_dir=tmp_path / "out",
        set_global=False,
        environ={"AUDITSPAN_CHAIN": "true", "AUDITSPAN_SIGNING_KEY": str(key)},
    )
    emitter = handle.emitter("s1")
    turn = emitter.emit_turn_start(agent_id="a", prompt="hi")
    emitter.emit_tool_call_attempt("run_sql", args="select 1", agent_id="a", turn_id=turn)
    emitter.emit_turn_end(agent_id="a", turn_id=turn, content="done")
    handle.shutdown()
    out = tmp_path / "out"
    assert b"auditspan.checkpoint" in (out / "traces.jsonl").read_bytes()
    status = main(
        [
            "verify",
            str(out / "audit.jsonl"),
            "--witness",
            str(out / "traces.jsonl"),
            "--public-key",
            str(public),
        ]
    )
    assert status == 0
    report = verify_logs(
        [out / "audit.jsonl"], public_keys=load_public_keys([public]), witness=out / "traces.jsonl"
    )
    assert report.signatures_verified == report.checkpoints == report.witness_matched == 1


def test_a_bad_signing_key_is_a_configuration_error_naming_the_setting(tmp_path: Path) -> None:
    bad = tmp_path / "bad.key"
    bad.write_text("-----BEGIN PRIVATE KEY-----\nc2VjcmV0IHN0dWZm\n-----END PRIVATE KEY-----\n")
    with pytest.raises(ConfigurationError, match=r"^AUDITSPAN_SIGNING_KEY: ") as caught:
        configure(
            output_dir=tmp_path / "out",
            set_global=False,
            environ={"AUDITSPAN_CHAIN": "true", "AUDITSPAN_SIGNING_KEY": str(bad)},
        )
    assert "c2VjcmV0" not in str(caught.value)
    with pytest.raises(ConfigurationError, match=r"^signing_key: .*cannot read"):
        configure(
            output_dir=tmp_path / "out", set_global=False, chain=True, signing_key=tmp_path / "nope.key"
        )


def test_the_chain_is_on_by_default_and_a_signing_key_refuses_it_turned_off(tmp_path: Path) -> None:
    key, _, _ = generate_key_pair(tmp_path / "keys")
    handle = configure(output_dir=tmp_path / "out", set_global=False, environ={})
    assert handle.collector.audit_log.chained  # on by default: the log is evidence
    handle.shutdown()
    for off in ({"AUDITSPAN_CHAIN": "false"}, None):
        handle = configure(
            output_dir=tmp_path / "off",
            set_global=False,
            environ=off or {},
            chain=None if off else False,
        )
        handle.emitter("s1").emit_turn_start(agent_id="a", prompt="hi")
        handle.shutdown()
        assert not handle.collector.audit_log.chained
    plain = (tmp_path / "off" / "audit.jsonl").read_text().splitlines()
    assert len(plain) >= 2 and all('"chain"' not in line and "audit_checkpoint" not in line for line in plain)
    with pytest.raises(ConfigurationError, match=r"^AUDITSPAN_SIGNING_KEY / signing_key: .*AUDITSPAN_CHAIN"):
        configure(
            output_dir=tmp_path / "out2",
            set_global=False,
            environ={"AUDITSPAN_CHAIN": "false", "AUDITSPAN_SIGNING_KEY": str(key)},
        )
    handle = configure(output_dir=tmp_path / "out3", set_global=False, signing_key=key)
    emitter = handle.emitter("s1")
    emitter.emit_turn_start(agent_id="a", prompt="hi")
    handle.shutdown()
    report = verify_logs([tmp_path / "out3" / "audit.jsonl"])
    assert report.intact and report.chains == 1 and report.signatures_unchecked == 1


def test_keygen_writes_a_0600_private_key_it_never_prints(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["keygen", str(tmp_path)]) == 0
    private = tmp_path / "audit-signing.key"
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    text = capsys.readouterr().out
    secret_body = "".join(private.read_text().splitlines()[1:-1])
    assert secret_body not in text and "key id:" in text
    assert main(["keygen", str(tmp_path)]) == 2  # never overwritten


def test_verify_exit_codes_and_json_report(
    corpus: Corpus, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["verify", str(tmp_path / "nope.jsonl")]) == 2
    assert main(["verify", str(corpus.log), "--public-key", str(tmp_path / "nope.pub")]) == 2
    lines = corpus.log.read_bytes().splitlines(keepends=True)
    (tmp_path / "audit.jsonl").write_bytes(b"".join(lines[:100] + lines[101:]))
    capsys.readouterr()
    assert main(["verify", str(tmp_path / "audit.jsonl"), "--json", str(tmp_path / "r.json")]) == 1
    out = capsys.readouterr().out
    assert f"{tmp_path / 'audit.jsonl'}:101: missing:" in out
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["intact"] is False
    assert report["problems"] == [
        {
            "file": str(tmp_path / "audit.jsonl"),
            "line": 101,
            "kind": "missing",
            "message": report["problems"][0]["message"],
        }
    ]


def test_replay_show_and_validate_accept_chained_logs(corpus: Corpus, tmp_path: Path) -> None:
    from auditspan.replay import replay_into
    from auditspan.show import spans_of_logs
    from auditspan.validate import check_record, validate_files

    path = tmp_path / "audit.jsonl"
    path.write_bytes(b"".join(corpus.log.read_bytes().splitlines(keepends=True)[:2_100]))
    summary = validate_files([path])
    assert summary.invalid == 0 and summary.canonical == 2_100
    spans, read = spans_of_logs([path])
    assert read.events_replayed == 2_098 and read.errors == []
    assert spans and not any(span.name == "auditspan.checkpoint" for span in spans)
    emitted: list[dict[str, Any]] = []

    class Sink:
        def emit(self, event: Any) -> None:
            emitted.append(event)

    replay_into(Sink(), [path])  # type: ignore[arg-type]
    assert len(emitted) == 2_098  # the two checkpoints are not events
    assert all("chain" not in event and event.get("event_type") != "audit_checkpoint" for event in emitted)
    # validate checks the chain fields against the schema
    record = json.loads(path.read_bytes().splitlines()[5])
    record["chain"]["id"] = "not-hex"
    assert any(problem.startswith("field 'chain.id'") for problem in check_record(record)), check_record(
        record
    )
    checkpoint = json.loads(
        next(line for line in path.read_bytes().splitlines() if line.startswith(CHECKPOINT))
    )
    assert check_record(checkpoint) == []
    del checkpoint["checkpoint"]["head"]
    assert check_record(checkpoint) != []


def test_a_stream_target_is_chained_too(tmp_path: Path) -> None:
    import io

    stream = io.BytesIO()
    log = JsonLinesAuditLog(stream, chain=True, checkpoint_every=10)
    log.export_lines([record_line(n) for n in range(25)])
    log.shutdown()
    path = tmp_path / "from-stream.jsonl"
    path.write_bytes(stream.getvalue())
    report = verify_logs([path])
    assert report.intact and report.records == 25 + 3 and report.checkpoints == 3
    first = json.loads(stream.getvalue().splitlines()[0])
    assert first["chain"]["seq"] == 0 and first["chain"]["link"] is None


def test_sigterm_closes_the_chain_with_a_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    code = textwrap.dedent(
        """
        import sys, time
        sys.path.insert(0, {tests!r})
        from test_chain import record_line
        from auditspan import _signals
        from auditspan.audit_log import JsonLinesAuditLog
        log = JsonLinesAuditLog(sys.argv[1], chain=True)
        _signals.install()
        log.export_lines([record_line(n) for n in range(30)])
        print("ready", flush=True)
        time.sleep(30)
        """
    ).format(tests=str(Path(__file__).parent))
    proc = subprocess.Popen([sys.executable, "-c", code, str(path)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(10) == -signal.SIGTERM
    last = json.loads(path.read_bytes().splitlines()[-1])
    assert last["checkpoint"]["reason"] == "signal" and last["checkpoint"]["last_seq"] == 29
    assert verify_logs([path]).intact

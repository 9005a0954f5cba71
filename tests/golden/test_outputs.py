"""auditspan writes, byte for byte, what it wrote before the redesign (issue 16) for fixed inputs."""

from __future__ import annotations

from pathlib import Path

import pytest

from ..golden.generate import generate

EXPECTED = Path(__file__).parent / "expected"
FILES = sorted(path.relative_to(EXPECTED) for path in EXPECTED.rglob("*.jsonl"))


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("golden") / "out"
    generate(out)
    return out


def test_every_case_is_covered(written: Path) -> None:
    assert sorted(path.relative_to(written) for path in written.rglob("*.jsonl")) == FILES
    assert len(FILES) == 11


@pytest.mark.parametrize("name", FILES, ids=str)
def test_output_is_byte_identical_to_the_golden_file(written: Path, name: Path) -> None:
    expected = (EXPECTED / name).read_bytes()
    actual = (written / name).read_bytes()
    assert actual.count(b"\n") == expected.count(b"\n")
    assert actual == expected

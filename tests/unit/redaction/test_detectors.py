"""The detector table of auditspan.redaction: one row per family, and the scan it drives."""

from __future__ import annotations

import re

import pytest

from auditspan.redaction import Redactor
from auditspan.redaction._detectors import ALL_FAMILIES, FAMILIES, ascii_lower, combined_regex, trigger_mask

from ...secret_corpus import load_lookalikes, load_secrets

TEXTS = [s.value for s in load_secrets()] + [str(x) for x in load_lookalikes()]
WORDS = Redactor()._words


def _table_mask(text: str, words: tuple[str, ...] | None) -> int:
    """The rows' triggers read one by one (what the generated ``trigger_mask`` must agree with)."""
    lowered = ascii_lower(text)
    mask = 0
    for index, family in enumerate(FAMILIES):
        haystack = text if family.trigger.original else lowered
        triggered = (
            any(literal in haystack for literal in family.trigger.any_of) and family.trigger.also in lowered
        )
        keyed = not family.keyed or words is None or any(word in lowered for word in words)
        if triggered and keyed:
            mask |= 1 << index
    return mask


@pytest.mark.parametrize("words", [WORDS, None], ids=["key words", "any key"])
def test_the_generated_trigger_mask_is_the_tables(words: tuple[str, ...] | None) -> None:
    for text in [*TEXTS, "mysql -pX", "x IA", "a=b", "--flag v", "the token is: X", "http://h/bot1:x"]:
        assert trigger_mask(text, ascii_lower(text), words) == _table_mask(text, words), text


def test_each_row_names_its_alternative_and_has_a_validator() -> None:
    regex = combined_regex(ALL_FAMILIES, WORDS)
    assert [name for name in regex.groupindex if name in {f.name for f in FAMILIES}] == [
        f.name for f in FAMILIES
    ]
    assert all(callable(family.validate) for family in FAMILIES)
    assert all(re.fullmatch(r"[a-z_]+", family.name) for family in FAMILIES)

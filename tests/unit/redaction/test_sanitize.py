"""Tests for auditspan._sanitize: every output JSON-encodable, UTF-8-clean, bounded; nothing raises."""

from __future__ import annotations

import enum
import json
import logging
import math
from collections import OrderedDict, deque
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.attributes import BoundedAttributes

from auditspan._sanitize import (
    CYCLE_MARKER,
    INT64_MAX,
    INT64_MIN,
    KEEP,
    MAX_DEPTH_MARKER,
    TRUNCATED_KEY,
    attribute_value,
    clean_str,
    json_safe,
    truncate,
    truncation_suffix,
)

# --- helpers ------------------------------------------------------------------


class RaisingStr:
    """An object whose str() and repr() both raise."""

    def __str__(self) -> str:
        raise RuntimeError("no str for you")

    def __repr__(self) -> str:
        raise RuntimeError("no repr either")


class WeirdStr:
    """An object whose __str__ returns a non-str (str() then raises TypeError)."""

    def __str__(self) -> Any:
        return 42


class Plain:
    def __str__(self) -> str:
        return "plain-object"


class Color(enum.Enum):
    RED = "red"


class Level(enum.IntEnum):
    HIGH = 3


def encodes_everywhere(value: Any) -> None:
    """The two encoders the project uses accept the value, and strictly (no NaN literals)."""
    orjson.dumps(value)
    json.dumps(value, allow_nan=False).encode("utf-8")


def nested_list(levels: int) -> list[Any]:
    root: list[Any] = []
    node = root
    for _ in range(levels):
        child: list[Any] = []
        node.append(child)
        node = child
    return root


@contextmanager
def otel_warnings() -> Iterator[list[logging.LogRecord]]:
    """Collect what opentelemetry.attributes logs while the block runs."""
    records: list[logging.LogRecord] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    logger = logging.getLogger("opentelemetry.attributes")
    handler = Collect(level=logging.DEBUG)
    old_level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        yield records
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)


# --- strategies ---------------------------------------------------------------

texts = st.text(
    st.one_of(
        st.characters(),
        st.characters(categories=["Cs"]),  # lone surrogates: not encodable as UTF-8
        st.sampled_from(list("\x00\n\"'\\{}[]…😀")),
    ),
    max_size=40,
)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**200), max_value=2**200),
    st.floats(allow_nan=True, allow_infinity=True),
    texts,
    st.binary(max_size=30),
    st.sampled_from([Plain, RaisingStr, WeirdStr]).map(lambda cls: cls()),
    st.sampled_from([Color.RED, Level.HIGH, Decimal("1.5")]),
)
hashable_keys = st.one_of(
    texts,
    st.integers(min_value=-(2**100), max_value=2**100),
    st.none(),
    st.booleans(),
    st.floats(allow_nan=True),
    st.tuples(st.integers(), st.text(max_size=3)),
)
values = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=6),
        st.lists(children, max_size=6).map(tuple),
        st.dictionaries(hashable_keys, children, max_size=6),
        st.frozensets(st.one_of(st.integers(), st.text(max_size=5)), max_size=5),
    ),
    max_leaves=40,
)


# --- truncate -------------------------------------------------------------------


def test_truncate_keeps_short_text_untouched() -> None:
    assert truncate("hello", 5) == ("hello", False)
    assert truncate("", 0) == ("", False)


def test_truncate_marks_the_cut_and_counts_removed_characters() -> None:
    text = "x" * 100
    out, cut = truncate(text, 30)
    assert cut is True
    assert len(out) == 30
    kept = out.index("…")
    assert out == "x" * kept + truncation_suffix(100 - kept)


def test_truncate_without_room_for_the_marker_cuts_bare() -> None:
    assert truncate("abcdefghij", 4) == ("abcd", True)
    assert truncate("abcdefghij", 0) == ("", True)
    assert truncate("abcdefghij", -3) == ("", True)


def test_truncate_marker_digit_growth_still_fits() -> None:
    # 10_000 removed vs 9_999 removed: the marker grows a digit; the total must still fit.
    text = "y" * 10_020
    out, cut = truncate(text, 40)
    assert cut and len(out) <= 40
    removed = int(out.split("truncated ")[1].split(" ")[0])
    assert len(text) - removed == out.index("…")


@given(st.text(max_size=300), st.integers(min_value=-5, max_value=320))
def test_truncate_properties(text: str, limit: int) -> None:
    out, cut = truncate(text, limit)
    assert len(out) <= max(limit, 0)
    assert cut == (len(text) > max(limit, 0))
    if not cut:
        assert out == text
    else:
        head = out.split("…[truncated ")[0]
        assert text.startswith(head)


# --- clean_str ------------------------------------------------------------------


def test_clean_str_repairs_lone_surrogates_and_keeps_pairs() -> None:
    assert clean_str("a\ud800b") == "a\ufffdb"
    assert clean_str("\udc80") == "\ufffd"
    assert clean_str("\ud83d\ude00") == "😀"  # a pair held as two code points joins
    assert clean_str("plain ascii") == "plain ascii"


def test_clean_str_decodes_bytes_with_replacement() -> None:
    assert clean_str(b"caf\xc3\xa9 \xff") == "café \ufffd"
    assert clean_str(bytearray(b"ok")) == "ok"
    assert clean_str(memoryview(b"mv")) == "mv"


def test_clean_str_handles_objects_that_refuse_to_be_strings() -> None:
    assert clean_str(RaisingStr()) == "<unrepresentable RaisingStr>"
    assert clean_str(WeirdStr()) == "<unrepresentable WeirdStr>"
    assert clean_str(Plain()) == "plain-object"
    assert clean_str(None) == "None"
    assert clean_str(12) == "12"
    assert clean_str(10**5000).startswith("<int of ")


@given(values)
def test_clean_str_never_raises_and_encodes(value: Any) -> None:
    out = clean_str(value)
    assert type(out) is str
    out.encode("utf-8")


# --- json_safe ------------------------------------------------------------------


def test_json_safe_fast_path_returns_the_same_object() -> None:
    value = {"a": [1, 2.5, "x", None, True], "b": {"c": "d"}}
    assert json_safe(value) is value
    text = "s" * 10_000_000  # 10 MB string, plain: no copy either
    assert json_safe(text) is text


def test_json_safe_converts_every_special_value() -> None:
    value = {
        "nan": math.nan,
        "inf": math.inf,
        "ninf": -math.inf,
        "big": 2**64,
        "small": INT64_MIN - 1,
        "edge": INT64_MAX,
        "bytes": b"\xff\xfeok",
        "tuple": (1, (2, 3)),
        "set": {3, 1, 2},
        "deque": deque([1, 2]),
        "surrogate": "x\udc80",
        "obj": Plain(),
        "bad": RaisingStr(),
        "weird": WeirdStr(),
        "enum": Color.RED,
        "intenum": Level.HIGH,
        "decimal": Decimal("1.5"),
        "ordered": OrderedDict([("z", 1)]),
    }
    out = json_safe(value)
    assert out == {
        "nan": "NaN",
        "inf": "Infinity",
        "ninf": "-Infinity",
        "big": str(2**64),
        "small": str(INT64_MIN - 1),
        "edge": INT64_MAX,
        "bytes": "\ufffd\ufffdok",
        "tuple": [1, [2, 3]],
        "set": [1, 2, 3],
        "deque": [1, 2],
        "surrogate": "x\ufffd",
        "obj": "plain-object",
        "bad": "<unrepresentable RaisingStr>",
        "weird": "<unrepresentable WeirdStr>",
        "enum": "Color.RED",
        "intenum": 3,
        "decimal": "1.5",
        "ordered": {"z": 1},
    }
    assert type(out["ordered"]) is dict
    encodes_everywhere(out)


def test_json_safe_int_too_long_for_str() -> None:
    huge = 10**5000  # str() raises ValueError beyond sys.get_int_max_str_digits()
    out = json_safe({"n": huge})
    assert out["n"].startswith("<int of ") and out["n"].endswith(" bits>")
    encodes_everywhere(out)


def test_json_safe_dict_keys_become_strings_without_losing_entries() -> None:
    value = {1: "int", "1": "str", None: "none", False: "bool", 2.5: "float", (1, 2): "tuple", b"k": "bytes"}
    out = json_safe(value)
    assert out == {
        "1": "int",
        "1#2": "str",
        "null": "none",
        "false": "bool",
        "2.5": "float",
        "(1, 2)": "tuple",
        "k": "bytes",
    }
    encodes_everywhere(out)


def test_json_safe_marks_cycles_without_mistaking_shared_references() -> None:
    loop: list[Any] = [1]
    loop.append(loop)
    mapping: dict[str, Any] = {"x": 1}
    mapping["self"] = mapping
    shared = [1, 2]
    out = json_safe({"loop": loop, "map": mapping, "a": shared, "b": shared})
    assert out == {
        "loop": [1, CYCLE_MARKER],
        "map": {"x": 1, "self": CYCLE_MARKER},
        "a": [1, 2],
        "b": [1, 2],
    }
    encodes_everywhere(out)


def test_json_safe_caps_depth_on_10000_levels() -> None:
    deep = nested_list(10_000)
    out = json_safe(deep, max_depth=5)
    depth = 0
    node: Any = out
    while isinstance(node, list) and node:
        node = node[0]
        depth += 1
    assert node == MAX_DEPTH_MARKER
    assert depth == 5
    encodes_everywhere(json_safe(deep))  # default depth: still encodable


def test_json_safe_depth_is_clamped_to_what_orjson_accepts() -> None:
    out = json_safe(nested_list(1_000), max_depth=10_000)
    encodes_everywhere(out)


def test_json_safe_truncates_big_containers_with_a_marker() -> None:
    out = json_safe(list(range(10)), max_items=3)
    assert out == [0, 1, 2, "<truncated 7 items>"]
    out = json_safe({str(i): i for i in range(5)}, max_items=2)
    assert out == {"0": 0, "1": 1, TRUNCATED_KEY: 3}
    out = json_safe([list(range(5)) for _ in range(5)], max_total=8)
    encodes_everywhere(out)
    assert sum(len(x) if isinstance(x, list) else 1 for x in out) < 25


def test_json_safe_truncates_long_strings_only_when_asked() -> None:
    big = "é" * 10_000_000
    assert json_safe(big) is big
    out = json_safe({"s": big, "b": b"x" * 100}, max_string=50)
    assert len(out["s"]) <= 50 and out["s"].endswith("chars]")
    assert len(out["b"]) <= 50
    encodes_everywhere(out)


def test_json_safe_never_mutates_its_input() -> None:
    value = {"t": (1, 2), "n": math.nan, "s": {1}, "l": [b"x"]}
    before = repr(value)
    json_safe(value)
    assert repr(value) == before


def test_json_safe_hooks_transform_strings_and_pairs() -> None:
    def hide(key: str, item: Any) -> Any:
        return "***" if key == "pw" else KEEP

    out = json_safe({"pw": [1, 2], "name": "bob", "n": ("x",)}, pair_hook=hide)
    assert out == {"pw": "***", "name": "bob", "n": ["x"]}
    # keys go through str_hook first, so the pair hook sees the transformed key
    out = json_safe({"pw": [1, "a"], "name": "bob", "n": ("x",)}, str_hook=str.upper, pair_hook=hide)
    assert out == {"PW": [1, "A"], "NAME": "BOB", "N": ["X"]}


def test_json_safe_survives_a_mapping_that_raises_while_iterated() -> None:
    class Broken(dict):  # type: ignore[type-arg]
        def items(self) -> Any:
            raise RuntimeError("boom")

    out = json_safe({"ok": 1, "bad": Broken(a=1)})
    assert out["ok"] == 1
    encodes_everywhere(out)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(values)
def test_json_safe_output_always_encodes_and_is_stable(value: Any) -> None:
    out = json_safe(value)
    encodes_everywhere(out)
    again = json_safe(out)
    assert orjson.dumps(again) == orjson.dumps(out)


@given(values, st.integers(min_value=1, max_value=4), st.integers(min_value=0, max_value=20))
def test_json_safe_respects_limits(value: Any, max_depth: int, max_string: int) -> None:
    out = json_safe(value, max_depth=max_depth, max_string=max_string, max_items=3)
    encodes_everywhere(out)

    def check(node: Any, depth: int) -> None:
        if isinstance(node, str):
            assert len(node) <= max(max_string, len(MAX_DEPTH_MARKER), len(CYCLE_MARKER), 40)
        elif isinstance(node, list):
            assert depth < max_depth and len(node) <= 4
            for item in node:
                check(item, depth + 1)
        elif isinstance(node, dict):
            assert depth < max_depth and len(node) <= 4
            for item in node.values():
                check(item, depth + 1)

    check(out, 0)


@given(values)
def test_json_safe_with_cycles_around_generated_values(value: Any) -> None:
    holder: list[Any] = [value]
    holder.append(holder)
    box: dict[str, Any] = {"v": value, "h": holder}
    box["box"] = box
    out = json_safe(box)
    encodes_everywhere(out)
    assert out["box"] == CYCLE_MARKER and out["h"][1] == CYCLE_MARKER


# --- attribute_value ------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("text", "text"),
        ("bad\udc80", "bad\ufffd"),
        (True, True),
        (7, 7),
        (2.5, 2.5),
        (None, ""),
        (math.nan, "NaN"),
        (math.inf, "Infinity"),
        (-math.inf, "-Infinity"),
        (2**70, str(2**70)),
        (b"bytes\xff", "bytes\ufffd"),
        (["a", "b"], ("a", "b")),
        ((True, False), (True, False)),
        ([1, 2], (1, 2)),
        ([1.5, 2.5], (1.5, 2.5)),
        ([], ()),
        ([1, "b"], '[1,"b"]'),
        ([True, 1], "[true,1]"),
        ([1, 2**70], f'[1,"{2**70}"]'),
        ([1.0, math.nan], '[1.0,"NaN"]'),
        ([None, "x"], '[null,"x"]'),
        ({"a": 1, "b": [1, 2]}, '{"a":1,"b":[1,2]}'),
        ({1: {2}}, '{"1":[2]}'),
        (Level.HIGH, 3),
        (Plain(), "plain-object"),
        (RaisingStr(), "<unrepresentable RaisingStr>"),
    ],
)
def test_attribute_value_conversions(value: Any, expected: Any) -> None:
    out = attribute_value(value)
    assert out == expected
    assert type(out) is type(expected)


def test_attribute_value_truncates_within_max_length() -> None:
    out = attribute_value("x" * 5000, max_length=100)
    assert isinstance(out, str) and len(out) == 100 and out.endswith("…[truncated 4923 chars]")
    out = attribute_value({"k": "v" * 5000}, max_length=64)
    assert isinstance(out, str) and len(out) <= 64
    out = attribute_value(["y" * 300, "z"], max_length=50)
    assert out == (truncate("y" * 300, 50)[0], "z")


def test_attribute_value_long_homogeneous_list_becomes_bounded_json() -> None:
    out = attribute_value(list(range(5000)), max_items=10)
    assert isinstance(out, str) and out.endswith('"<truncated 4990 items>"]')


def test_attribute_value_of_a_cyclic_dict() -> None:
    loop: dict[str, Any] = {}
    loop["me"] = loop
    assert attribute_value(loop) == '{"me":"<cycle>"}'


def _valid_otel_type(value: Any) -> bool:
    if type(value) in (str, bool, int, float):
        return True
    if type(value) is tuple:
        return len({type(item) for item in value}) <= 1 and all(
            type(item) in (str, bool, int, float) for item in value
        )
    return False


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(values, st.one_of(st.none(), st.integers(min_value=0, max_value=80)))
def test_attribute_value_is_accepted_by_the_sdk_without_warnings(value: Any, max_length: int | None) -> None:
    out = attribute_value(value, max_length=max_length)
    assert _valid_otel_type(out)
    if isinstance(out, float):
        assert math.isfinite(out)
    if isinstance(out, int) and not isinstance(out, bool):
        assert INT64_MIN <= out <= INT64_MAX
    strings: list[str] = []
    if isinstance(out, str):
        strings = [out]
    elif isinstance(out, tuple):
        strings = [item for item in out if isinstance(item, str)]
    for text in strings:
        text.encode("utf-8")
        if max_length is not None:
            assert len(text) <= max_length
    with otel_warnings() as records:
        attributes = BoundedAttributes(maxlen=128, attributes={"k": out}, max_value_len=max_length)
    assert records == []
    assert attributes["k"] == out


def test_attribute_value_on_a_10_mb_string() -> None:
    big = "a" * 10_000_000
    out = attribute_value(big, max_length=1024)
    assert isinstance(out, str) and len(out) == 1024
    assert attribute_value(big) is big

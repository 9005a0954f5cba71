"""Keep every value that leaves ``auditspan`` valid: JSON-encodable, UTF-8-clean, bounded.

Audit events carry free-form data (``metadata``, previews, error messages) from
an agent runtime; any of it may be a NaN, a 70-digit int, bytes, a string with
a lone surrogate, a cycle, or an object whose ``__str__`` raises. The helpers
here turn such values into something the JSON audit log and the OpenTelemetry
SDK always accept, and never raise::

    >>> json_safe({"n": float("nan"), 1: b"ok", "big": 2**70})
    {'n': 'NaN', '1': 'ok', 'big': '1180591620717411303424'}
    >>> truncate("abcdefghijklmnopqrstuvwxyz" * 4, 40)
    ('abcdefghijklmnopqrs…[truncated 85 chars]', True)
    >>> attribute_value({"a": 1})
    '{"a":1}'

All helpers catch ``Exception`` (never ``BaseException``: Ctrl-C still works).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final

import orjson

__all__ = [
    "CYCLE_MARKER",
    "INT64_MAX",
    "INT64_MIN",
    "KEEP",
    "MAX_DEPTH_MARKER",
    "TRUNCATED_KEY",
    "AttributeValue",
    "attribute_value",
    "clean_str",
    "json_safe",
    "truncate",
    "truncation_suffix",
]

#: OpenTelemetry int attributes (and orjson's signed range) are 64-bit; larger ints become strings.
INT64_MIN: Final = -(2**63)
INT64_MAX: Final = 2**63 - 1

#: What a container that contains itself becomes.
CYCLE_MARKER: Final = "<cycle>"
#: What a container nested deeper than ``max_depth`` becomes.
MAX_DEPTH_MARKER: Final = "<max depth>"
#: Dict key under which a truncated dict records how many entries it lost.
TRUNCATED_KEY: Final = "<truncated>"

#: Hard ceiling for ``max_depth``: orjson refuses nesting deeper than 254.
_DEPTH_CEILING: Final = 250
#: The fast path (return the input unchanged) inspects at most this many nodes.
_FAST_PATH_NODES: Final = 256

_NON_FINITE: Final = {math.inf: "Infinity", -math.inf: "-Infinity"}

#: A valid OpenTelemetry attribute value as returned by ``attribute_value``.
AttributeValue = str | bool | int | float | Sequence[str] | Sequence[bool] | Sequence[int] | Sequence[float]


class _Keep:
    """Sentinel type for ``KEEP``."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "KEEP"


#: Returned by a ``pair_hook`` to say "walk this value normally".
KEEP: Final = _Keep()

StrHook = Callable[[str], str]
PairHook = Callable[[str, Any], Any]


def truncation_suffix(removed: int) -> str:
    """The marker appended to a cut string: ``…[truncated 12345 chars]``."""
    return f"…[truncated {removed} chars]"


def truncate(text: str, max_length: int) -> tuple[str, bool]:
    """Cut ``text`` to at most ``max_length`` characters, marking the cut.

    Returns ``(text, False)`` when it already fits, else the kept head plus
    ``…[truncated N chars]`` (N = characters removed) and ``True``; the total
    never exceeds ``max_length``. When ``max_length`` is too small to hold the
    marker the text is cut bare. Redact *before* truncating: a cut can hide a
    secret's prefix from the detector. Never raises.

    Example::

        >>> truncate("x" * 100, 30)
        ('xxxxxxxxx…[truncated 91 chars]', True)
    """
    try:
        limit = max(0, int(max_length))
        size = len(text)
        if size <= limit:
            return text, False
        removed = size - limit
        while True:
            suffix = truncation_suffix(removed)
            keep = limit - len(suffix)
            if keep <= 0:
                return text[:limit], True
            if size - keep == removed:
                return text[:keep] + suffix, True
            removed = size - keep  # the marker grew by a digit; cut a little more
    except Exception:
        return "", True


def _repair(text: str) -> str:
    """``text`` as an exact ``str`` that encodes to UTF-8: lone surrogates become U+FFFD."""
    if type(text) is not str:
        text = str.__str__(text)
    if text.isascii():
        return text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        # Through UTF-16 so that a high+low pair held as two code points joins into one
        # character, and only unpaired halves become U+FFFD.
        return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    return text


def _type_name(value: object) -> str:
    try:
        name = type(value).__name__
        return _repair(name) if isinstance(name, str) else "object"
    except Exception:
        return "object"


def _unrepresentable(value: object) -> str:
    return f"<unrepresentable {_type_name(value)}>"


def clean_str(value: object) -> str:
    """Any value as a ``str`` that encodes to UTF-8. Never raises.

    ``str`` is returned with lone surrogates replaced by U+FFFD, ``bytes`` are
    decoded as UTF-8 with replacement, anything else goes through ``str()``;
    when that raises the result is ``"<unrepresentable TYPE>"``.

    Example::

        >>> clean_str(b"caf\\xc3\\xa9 \\xff")
        'café �'
    """
    try:
        if isinstance(value, str):
            return _repair(value)
        if isinstance(value, (bytes, bytearray, memoryview)):
            return bytes(value).decode("utf-8", "replace")
        if type(value) is int:
            return _big_int_str(value)
        text = str(value)
        return _repair(text)
    except Exception:
        return _unrepresentable(value)


def _big_int_str(value: int) -> str:
    try:
        return str(value)
    except ValueError:  # beyond sys.get_int_max_str_digits()
        return f"<int of {value.bit_length()} bits>"


def _float_str(value: float) -> str:
    return "NaN" if value != value else _NON_FINITE[value]


def _fast_nodes(value: Any, depth: int, budget: int, max_items: int, max_string: int | None) -> int:
    """Nodes left of ``budget`` after checking that ``value`` is already plain JSON; -1 if not."""
    kind = type(value)
    if kind is str:
        if max_string is not None and len(value) > max_string:
            return -1
        if not value.isascii():
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                return -1
        return budget - 1
    if kind is int:
        return budget - 1 if INT64_MIN <= value <= INT64_MAX else -1
    if kind is float:
        return budget - 1 if value - value == 0.0 else -1  # false for NaN and ±inf
    if value is None or kind is bool:
        return budget - 1
    if kind is list:
        if depth <= 0 or len(value) > max_items:
            return -1
        budget -= 1
        for item in value:
            budget = _fast_nodes(item, depth - 1, budget, max_items, max_string)
            if budget < 0:
                return -1
        return budget
    if kind is dict:
        if depth <= 0 or len(value) > max_items:
            return -1
        budget -= 1
        for key, item in value.items():
            if type(key) is not str:
                return -1
            budget = _fast_nodes(key, depth, budget, max_items, max_string)
            if budget < 0:
                return -1
            budget = _fast_nodes(item, depth - 1, budget, max_items, max_string)
            if budget < 0:
                return -1
        return budget
    return -1


class _Walker:
    """One conversion of one value: tracks the containers on the current path and the node budget."""

    __slots__ = ("max_items", "max_string", "nodes_left", "on_path", "pair_hook", "str_hook")

    def __init__(
        self,
        max_items: int,
        max_string: int | None,
        max_total: int,
        str_hook: StrHook | None,
        pair_hook: PairHook | None,
    ) -> None:
        self.max_items = max_items
        self.max_string = max_string
        self.nodes_left = max_total
        self.on_path: set[int] = set()
        self.str_hook = str_hook
        self.pair_hook = pair_hook

    def text(self, value: str) -> str:
        text = _repair(value)
        if self.str_hook is not None:
            text = self.str_hook(text)
        if self.max_string is not None:
            text = truncate(text, self.max_string)[0]
        return text

    def key(self, key: Any) -> str:
        if isinstance(key, str):
            text = _repair(key)
        elif key is None:
            text = "null"
        elif key is True or key is False:
            text = "true" if key else "false"
        elif isinstance(key, int):
            text = _big_int_str(int(key))
        elif isinstance(key, float):
            text = repr(float(key)) if math.isfinite(key) else _float_str(key)
        else:
            text = clean_str(key)
        if self.str_hook is not None:
            text = self.str_hook(text)
        return text

    def walk(self, value: Any, depth: int) -> Any:
        self.nodes_left -= 1
        kind = type(value)
        if kind is str:
            return self.text(value)
        if value is None or kind is bool:
            return value
        if kind is int:
            return value if INT64_MIN <= value <= INT64_MAX else self.text(_big_int_str(value))
        if kind is float:
            return value if value - value == 0.0 else _float_str(value)
        if kind is dict or kind is list or kind is tuple:
            return self.container(value, depth)
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, (bytes, bytearray, memoryview)):
            return self.text(bytes(value).decode("utf-8", "replace"))
        if isinstance(value, int):  # IntEnum, numpy-free int subclasses
            return self.walk(int(value), depth)
        if isinstance(value, float):
            return self.walk(float(value), depth)
        if isinstance(value, (Mapping, list, tuple, set, frozenset, deque)):
            return self.container(value, depth)
        try:
            text = str(value)
        except Exception:
            return _unrepresentable(value)
        return self.text(text)

    def container(self, value: Any, depth: int) -> Any:
        if depth <= 0:
            return MAX_DEPTH_MARKER
        ident = id(value)
        if ident in self.on_path:
            return CYCLE_MARKER
        self.on_path.add(ident)
        try:
            if isinstance(value, Mapping):
                return self.mapping(value, depth)
            return self.sequence(value, depth)
        finally:
            self.on_path.discard(ident)

    def _room(self, taken: int) -> bool:
        return taken < self.max_items and self.nodes_left > 0

    def mapping(self, value: Mapping[Any, Any], depth: int) -> dict[str, Any]:
        out: dict[str, Any] = {}
        taken = 0
        try:
            total = len(value)
            for key, item in value.items():
                if not self._room(taken):
                    break
                taken += 1
                name = self.key(key)
                if name in out:  # distinct keys that render alike (1 and "1"): keep both
                    suffix = 2
                    while f"{name}#{suffix}" in out:
                        suffix += 1
                    name = f"{name}#{suffix}"
                replaced = KEEP if self.pair_hook is None else self.pair_hook(name, item)
                out[name] = self.walk(item, depth - 1) if replaced is KEEP else replaced
        except Exception:
            out.setdefault(TRUNCATED_KEY, "<error while reading mapping>")
            return out
        if taken < total:
            out[TRUNCATED_KEY if TRUNCATED_KEY not in out else TRUNCATED_KEY + "#2"] = total - taken
        return out

    def sequence(self, value: Any, depth: int) -> list[Any]:
        out: list[Any] = []
        try:
            total = len(value)
            items: Any = value
            if isinstance(value, (set, frozenset)):
                try:
                    items = sorted(value)  # stable output for the audit log
                except Exception:
                    items = list(value)
            for item in items:
                if not self._room(len(out)):
                    break
                out.append(self.walk(item, depth - 1))
        except Exception:
            out.append("<error while reading sequence>")
            return out
        if len(out) < total:
            out.append(f"<truncated {total - len(out)} items>")
        return out


def json_safe(
    value: Any,
    *,
    max_depth: int = 32,
    max_items: int = 1000,
    max_string: int | None = None,
    max_total: int = 100_000,
    str_hook: StrHook | None = None,
    pair_hook: PairHook | None = None,
) -> Any:
    """A version of ``value`` that ``orjson.dumps`` and ``json.dumps`` always encode. Never raises.

    * dicts (and other mappings) become dicts with ``str`` keys (``None`` ->
      ``"null"``, ``True`` -> ``"true"``, numbers as text, others via ``str()``);
      keys that render alike are kept apart as ``"1"``, ``"1#2"``;
    * tuples, lists, sets (sorted when possible) and deques become lists;
    * ``bytes`` are decoded as UTF-8 with replacement; strings with lone
      surrogates get U+FFFD;
    * NaN / +inf / -inf become ``"NaN"`` / ``"Infinity"`` / ``"-Infinity"``;
      ints outside the signed 64-bit range become decimal strings;
    * a container inside itself becomes ``"<cycle>"``; one nested deeper than
      ``max_depth`` (clamped to 250, orjson's limit) becomes ``"<max depth>"``;
    * a container with more than ``max_items`` entries keeps the first ones
      and records the rest: a list gets ``"<truncated N items>"`` appended, a
      dict a ``"<truncated>": N`` entry; after ``max_total`` nodes in all,
      every container is cut the same way;
    * strings longer than ``max_string`` are cut with ``truncate``;
    * anything else becomes ``str(obj)``, or ``"<unrepresentable TYPE>"``
      when ``str()`` raises.

    Fast path: when ``value`` is already plain JSON (exact dict/list/str/int/
    float/bool/None, small, no hooks) the very same object is returned, not a
    copy -- copy it yourself if you keep it while others may mutate it.

    ``str_hook`` is applied to every string and dict key (before truncation),
    ``pair_hook(key, value)`` may return a replacement for a dict entry's value
    or ``KEEP``; both are how ``redaction.Redactor.redact_value`` redacts, and
    force a full copy.

    Example::

        >>> loop = [1]; loop.append(loop)
        >>> json_safe({"t": (1, 2), "loop": loop, "inf": float("-inf")})
        {'t': [1, 2], 'loop': [1, '<cycle>'], 'inf': '-Infinity'}
    """
    try:
        depth = min(max(int(max_depth), 0), _DEPTH_CEILING)
        items = max(int(max_items), 0)
        if str_hook is None and pair_hook is None:
            nodes = _fast_nodes(value, depth, min(_FAST_PATH_NODES, max_total), items, max_string)
            if nodes >= 0:
                return value
        walker = _Walker(items, max_string, max(int(max_total), 1), str_hook, pair_hook)
        return walker.walk(value, depth)
    except Exception:
        return _unrepresentable(value)


def _limit(text: str, max_length: int | None) -> str:
    return text if max_length is None else truncate(text, max_length)[0]


def _homogeneous(items: Sequence[Any], max_length: int | None) -> tuple[Any, ...] | None:
    """``items`` as a tuple when it is a valid homogeneous OTel array, else None."""
    if not items:
        return ()
    first = type(items[0])
    if first is str:
        if all(type(item) is str for item in items):
            return tuple(_limit(_repair(item), max_length) for item in items)
        return None
    if first is bool:
        return tuple(items) if all(type(item) is bool for item in items) else None
    if first is int:
        ok = all(type(item) is int and INT64_MIN <= item <= INT64_MAX for item in items)
        return tuple(items) if ok else None
    if first is float:
        ok = all(type(item) is float and item - item == 0.0 for item in items)
        return tuple(items) if ok else None
    return None


def attribute_value(value: Any, *, max_length: int | None = None, max_items: int = 1000) -> AttributeValue:
    """``value`` as a valid OpenTelemetry attribute value. Never raises.

    * ``str`` -> itself (lone surrogates repaired); ``bool`` / ``int`` (64-bit)
      / finite ``float`` -> themselves;
    * ``None`` -> ``""`` (so a call never yields an invalid value; a caller that
      wants the attribute *absent* tests ``value is None`` before calling);
    * NaN / ±inf -> ``"NaN"`` / ``"Infinity"`` / ``"-Infinity"`` (valid OTel
      floats, but JSON exporters and UIs choke on them), and a too-big int ->
      its decimal string, as in ``json_safe``;
    * a list/tuple of up to ``max_items`` elements all ``str``, all ``bool``,
      all 64-bit ``int`` or all finite ``float`` -> a tuple (each string cut to
      ``max_length``);
    * dicts, mixed or nested sequences, sets -> a compact JSON string of
      ``json_safe(value)``;
    * ``bytes`` -> decoded UTF-8 with replacement; anything else -> ``str()``.

    String results longer than ``max_length`` end in ``…[truncated N chars]``
    and stay within ``max_length``.

    Example::

        >>> attribute_value(["a", "b"]), attribute_value([1, "b"]), attribute_value(None)
        (('a', 'b'), '[1,"b"]', '')
    """
    try:
        kind = type(value)
        if kind is str:
            return _limit(_repair(value), max_length)
        if kind is bool:
            return bool(value)
        if kind is int:
            return int(value) if INT64_MIN <= value <= INT64_MAX else _limit(_big_int_str(value), max_length)
        if kind is float:
            return float(value) if value - value == 0.0 else _limit(_float_str(value), max_length)
        if value is None:
            return ""
        if isinstance(value, str):
            return _limit(_repair(value), max_length)
        if isinstance(value, (bytes, bytearray, memoryview)):
            return _limit(bytes(value).decode("utf-8", "replace"), max_length)
        if isinstance(value, bool):
            return bool(value)
        if isinstance(value, int):
            return attribute_value(int(value), max_length=max_length)
        if isinstance(value, float):
            return attribute_value(float(value), max_length=max_length)
        if isinstance(value, (list, tuple)) and len(value) <= max_items:
            array = _homogeneous(value, max_length)
            if array is not None:
                return array
        if isinstance(value, (Mapping, list, tuple, set, frozenset, deque)):
            encoded = orjson.dumps(json_safe(value, max_items=max_items)).decode("utf-8")
            return _limit(encoded, max_length)
        return _limit(clean_str(value), max_length)
    except Exception:
        return _limit(_unrepresentable(value), max_length)

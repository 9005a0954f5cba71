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

import dataclasses
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
    "PREVIEW_LIMIT",
    "TRUNCATED_KEY",
    "AttributeValue",
    "attribute_value",
    "clean_str",
    "json_safe",
    "preview",
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


# --------------------------------------------------------------------------- previews

#: Previews (prompt, reply, arguments, result) are cut to this many characters, as in the seed system.
PREVIEW_LIMIT: Final = 200

#: Ints beyond this many bits are shown as ``<int of N bits>`` (Python refuses to print them anyway).
_PREVIEW_INT_BITS: Final = 14_000
#: Builtin types whose ``repr`` is short whatever the value.
_SHORT_REPR: Final = (float, complex, range, memoryview, type(None), type(Ellipsis), type(NotImplemented))
_EMPTY_SETS: Final = {set: "set()", frozenset: "frozenset()"}


def _dataclass_fields(value: object) -> tuple[str, ...] | None:
    """The fields a dataclass's generated ``__repr__`` shows, or None (not one, or its own ``__repr__``)."""
    kind = type(value)
    params = getattr(kind, "__dataclass_params__", None)
    if params is None or not params.repr or not hasattr(kind.__repr__, "__wrapped__"):
        return None  # the generated __repr__ is wrapped (recursion guard); a hand-written one is not
    return tuple(f.name for f in dataclasses.fields(value) if f.repr)  # type: ignore[arg-type]


def _namedtuple_fields(value: tuple[Any, ...]) -> tuple[str, ...] | None:
    """The fields of a namedtuple whose ``__repr__`` is the generated one, else None."""
    kind = type(value)
    for base in kind.__mro__:
        if "_fields" in base.__dict__:
            fields = base.__dict__["_fields"]
            ok = kind.__repr__ is base.__dict__.get("__repr__") and isinstance(fields, tuple)
            return fields if ok else None
    return None


class _Preview:
    """One preview: the text so far and a stack of what is still to show (no recursion: see ``preview``)."""

    __slots__ = ("limit", "on_path", "parts", "size", "stack")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.parts: list[str] = []
        self.size = 0
        self.on_path: set[int] = set()
        # Entries: ("t", text) to show, ("v", value) to render, ("i", items, first, key_value) the rest of a
        # container's items, ("x", id) a container that is finished (its id leaves the path).
        self.stack: list[tuple[Any, ...]] = []

    def put(self, text: str) -> None:
        room = self.limit - self.size
        if room > 0:
            piece = text[:room]
            self.parts.append(piece)
            self.size += len(piece)

    def run(self, value: Any, *, top_as_str: bool) -> str:
        if top_as_str and not _walkable(value) and not isinstance(value, (bytes, bytearray)):
            self.put(_own_text(value, str))
        else:
            self.stack.append(("v", value))
        steps = 0
        # Each step shows at least a separator or a bracket, so this ends long before the cap; the cap
        # only guards against containers whose iteration misbehaves.
        while self.stack and self.size < self.limit and steps < 8 * self.limit + 64:
            steps += 1
            entry = self.stack.pop()
            tag = entry[0]
            if tag == "t":
                self.put(entry[1])
            elif tag == "v":
                self.value(entry[1])
            elif tag == "x":
                self.on_path.discard(entry[1])
            else:
                self.items(entry)
        return "".join(self.parts)

    def items(self, entry: tuple[Any, ...]) -> None:
        _, items, first, key_value = entry
        try:
            item: Any = next(items, _END)
        except Exception:
            self.put("…")
            return
        if item is _END:
            return
        self.stack.append(("i", items, False, key_value))
        if key_value is None:
            self.stack.append(("v", item))
        elif key_value == "":  # a mapping's (key, value)
            self.stack += [("v", item[1]), ("t", ": "), ("v", item[0])]
        else:  # a field of a dataclass or namedtuple: (name, value)
            self.stack += [("v", item[1]), ("t", f"{item[0]}=")]
        if not first:
            self.stack.append(("t", ", "))

    def open(self, value: Any, head: str, tail: str, items: Any, key_value: str | None) -> None:
        ident = id(value)
        if ident in self.on_path:
            self.put(head + "..." + tail)
            return
        self.on_path.add(ident)
        self.put(head)
        self.stack += [("x", ident), ("t", tail), ("i", iter(items), True, key_value)]

    def value(self, value: Any) -> None:
        kind: Any = type(value)
        if kind is str:
            self.put(repr(value[: self.limit - self.size + 1]))  # cut before repr: bounded
        elif kind is int or kind is bool:
            small = kind is bool or value.bit_length() <= _PREVIEW_INT_BITS
            self.put(repr(value) if small else _int_bits(value))
        elif isinstance(value, _SHORT_REPR):
            self.put(_own_text(value, repr))
        elif isinstance(value, (bytes, bytearray)):
            cut = value[: self.limit - self.size + 1]
            if kind is bytes or kind is bytearray or kind.__repr__ in (bytes.__repr__, bytearray.__repr__):
                text = repr(bytes(cut))
                self.put(text if isinstance(value, bytes) else f"{kind.__name__}({text})")
            else:
                self.put(_own_text(value, repr))
        elif not self.container(value, kind):
            self.put(_own_text(value, repr))

    def container(self, value: Any, kind: Any) -> bool:
        """Render a builtin container (or a dataclass / namedtuple); False for anything else."""
        if isinstance(value, dict):
            if kind.__repr__ is dict.__repr__:
                self.open(value, "{", "}", dict.items(value), "")
            else:  # OrderedDict, defaultdict, Counter, ...: the type, then the items as a dict shows them
                self.put(kind.__name__ + "(")
                self.stack.append(("t", ")"))
                self.open(value, "{", "}", dict.items(value), "")
            return True
        if isinstance(value, list):
            head, tail = ("[", "]") if kind.__repr__ is list.__repr__ else (kind.__name__ + "([", "])")
            self.open(value, head, tail, list.__iter__(value), None)
            return True
        if isinstance(value, tuple):
            fields = _namedtuple_fields(value) if kind is not tuple else None
            if fields is not None:
                pairs = zip(fields, tuple.__iter__(value), strict=False)
                self.open(value, kind.__name__ + "(", ")", pairs, "=")
            elif kind is tuple or kind.__repr__ is tuple.__repr__:
                self.open(value, "(", ",)" if len(value) == 1 else ")", tuple.__iter__(value), None)
            else:
                self.put(_own_text(value, repr))
            return True
        if isinstance(value, (set, frozenset)):
            base: Any = set if isinstance(value, set) else frozenset
            name = "set" if kind is set else kind.__name__
            if kind.__repr__ is not base.__repr__:
                self.put(_own_text(value, repr))
            elif not value:
                self.put(_EMPTY_SETS[kind] if kind in _EMPTY_SETS else name + "()")
            elif kind is set:
                self.open(value, "{", "}", base.__iter__(value), None)
            else:
                self.open(value, name + "({", "})", base.__iter__(value), None)
            return True
        if isinstance(value, deque):
            maxlen = value.maxlen
            tail = "])" if maxlen is None else f"], maxlen={maxlen})"
            self.open(value, kind.__name__ + "([", tail, deque.__iter__(value), None)
            return True
        fields = _dataclass_fields(value) if not isinstance(value, type) else None
        if fields is not None:
            named = ((name, getattr(value, name, None)) for name in fields)
            self.open(value, kind.__qualname__ + "(", ")", named, "=")
            return True
        return False


_END: Final = object()


def _walkable(value: Any) -> bool:
    """Whether ``preview`` shows ``value`` itself rather than calling its ``__str__``."""
    kind: Any = type(value)
    if kind is str or kind is int or kind is bool or kind is float or value is None:
        return True
    if isinstance(value, (dict, list, tuple, set, frozenset, deque)):
        return kind.__str__ is object.__str__ or kind.__str__ in (
            dict.__str__,
            list.__str__,
            tuple.__str__,
            set.__str__,
            frozenset.__str__,
            deque.__str__,
        )
    return _dataclass_fields(value) is not None and kind.__str__ is object.__str__


def _small(value: Any, limit: int) -> bool:
    """Whether ``value`` is a few plain values whose whole ``str()`` is cheap (at most 64 nodes)."""
    todo = [value]
    nodes = 0
    while todo:
        item = todo.pop()
        nodes += 1
        if nodes > 64:
            return False
        kind = type(item)
        if kind is str or kind is bytes:
            if len(item) > limit:
                return False
        elif kind is int:
            if not INT64_MIN <= item <= INT64_MAX:
                return False
        elif kind is dict:
            if len(item) > 64:
                return False
            todo += item.keys()
            todo += item.values()
        elif kind is list or kind is tuple:
            if len(item) > 64:
                return False
            todo += item
        elif not (item is None or kind is bool or kind is float):
            return False
    return True


def _int_bits(value: int) -> str:
    return f"<int of {value.bit_length()} bits>"


def _own_text(value: Any, how: Callable[[Any], str]) -> str:
    """``str(value)`` / ``repr(value)``: the object's own method, guarded (its cost is its own)."""
    try:
        text = how(value)
    except Exception:  # RecursionError included
        return _unrepresentable(value)
    return text if type(text) is str else _unrepresentable(value)


def preview(value: Any, limit: int = PREVIEW_LIMIT, *, as_repr: bool = False) -> str:
    """``str(value)[:limit]`` (``repr`` with ``as_repr``), at a cost bounded by ``limit``. Never raises.

    The one function every preview goes through (arguments, results, prompts,
    replies, events that are not events). Like ``reprlib``, it walks only as
    much of a value as the preview shows:

    * a ``str`` is cut before anything else (``repr`` of a nested string is the
      ``repr`` of its cut head, so its quotes may differ from the whole string's);
      ``bytes`` / ``bytearray`` likewise;
    * ``dict``, ``list``, ``tuple``, ``set``, ``frozenset``, ``deque``, their
      subclasses, namedtuples and dataclasses (with the generated ``__repr__``)
      are walked item by item, without recursion (any depth, any size, cycles
      shown ``[...]`` as Python does), and the walk stops when the preview is full;
      what comes out is what ``str()`` would show, up to ``limit`` characters
      (a subclass that overrides ``__repr__`` shows as ``Name({...})``);
    * ints of more than 14,000 bits show as ``<int of N bits>``;
    * any other object's own ``__str__`` (at the top) or ``__repr__`` (inside a
      container) is called -- once per object shown, and at most about
      ``limit / 2`` objects are shown -- guarded (an exception, a recursion
      error or a non-string result gives ``<unrepresentable TYPE>``) and its
      result cut. Its own cost is its own: a user ``__repr__`` that is slow or
      builds a huge string costs what it costs, because for user types that is
      the only faithful text there is; builtin containers, which hold the
      arguments of almost every call, are never stringified whole.

    The result holds at most ``limit`` characters and encodes to UTF-8 (lone
    surrogates become U+FFFD).

    Example::

        >>> preview({"query": "x" * 10**8}, 20)       # walks one item, cuts its string first
        "{'query': 'xxxxxxxxx"
        >>> preview([[1, 2], {"k": (3,)}]) == str([[1, 2], {"k": (3,)}])
        True
    """
    try:
        limit = max(0, int(limit))
        if type(value) is str and not as_repr:
            return _repair(value[:limit])
        if value is None and not as_repr:
            return "None"[:limit]
        if _small(value, limit):  # the usual arguments: a few short values; the C repr is cheaper
            return _repair((repr(value) if as_repr else str(value))[:limit])
        return _repair(_Preview(limit).run(value, top_as_str=not as_repr)[:limit])
    except Exception:  # RecursionError included: nothing escapes
        try:
            return _unrepresentable(value)[: max(0, int(limit))]
        except Exception:
            return ""

"""``Redactor``: applies the detector table, the key rules and the user's patterns to texts and values."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Any, Final

from .._fork import fork_safe_lock
from .._sanitize import KEEP, clean_str, json_safe
from ._detectors import EMAIL, VALIDATORS, Validator, ascii_lower, combined_regex, trigger_mask
from ._keys import DEFAULT_NON_SENSITIVE_KEYS, DEFAULT_SENSITIVE_KEYS, KeyRules
from ._patterns import PatternLike, UserPattern, compile_allow, compile_user_pattern, redact_user
from ._policy import MARKER_PREFIX, REDACTION_ERROR_MARKER, CapturePolicy, is_marker, marker

__all__ = ["Redactor"]

#: Redaction passes at most (see ``Redactor._redact``); real texts need one or two.
_MAX_PASSES: Final = 8
#: ``scrub`` remembers the results of strings up to this long, at most this many of them.
_SCRUB_MEMO_LENGTH: Final = 256
_SCRUB_MEMO_SIZE: Final = 4096
#: ``scrub_name`` remembers this many names per generation (two generations: at most twice this).
_NAME_MEMO_SIZE: Final = 8192
#: Combined regexes an instance keeps at hand (one per set of families triggered).
_REGEX_MEMO_SIZE: Final = 1024


class Redactor:
    """Finds and replaces secrets; applies a ``CapturePolicy`` to content fields.

    Args:
        policy: the ``CapturePolicy`` (or its name) for ``capture`` / ``scrub``.
        patterns: extra regexes, each a ``str``, a compiled pattern, or a
            ``(kind, regex)`` pair (kind defaults to ``"custom"``); a group named
            ``secret`` limits the replacement to that group. A ``str`` that does
            not compile raises ``ValueError`` naming it. They run after the
            built-in detectors, one pass each, and must not match the marker
            syntax.
        allow: values never redacted: each a literal (exact match) or a regex
            that must match the whole secret value (``r".*@example\\.com"``).
        redact_emails: replace e-mail addresses by ``[REDACTED:email]``.
        sensitive_keys: key-name regexes (see ``DEFAULT_SENSITIVE_KEYS``) whose
            values are redacted in text and in ``redact_value``. Patterns that
            are plain words (``"ssn"``) keep the fast path; other custom
            patterns make every ``key: value`` pair in a text a candidate.
        non_sensitive_keys: key-name regexes that override ``sensitive_keys``.

    Threads: one instance may be shared. Its settings never change after
    construction; ``redaction_count`` (the redactions made, over all calls) is
    added to under a lock; the memos below are plain dictionaries whose single
    operations the GIL makes atomic (two threads may compute the same result
    twice, or lose an entry to a concurrent clear: never a wrong result).

    What an instance remembers (every memo is bounded; none holds a result of
    ``redact_text``, ``redact_value`` or ``capture``, which are computed each time):

    * ``scrub``: the result of each string of up to 256 characters, at most
      4,096 of them, all forgotten at once when full. Hit when the same error
      message, reason or policy text is scrubbed again.
    * ``scrub_name``: the result of each name of up to 256 characters, in two
      generations of at most 8,192 (when the newer is full it becomes the
      older and the oldest is forgotten; a name found in the older moves to
      the newer), so the last 8,192 to 16,384 distinct names are remembered.
      Hit for every repeated tool name, session, turn id or error type.
    * the key rules' answer for each key name of up to 256 characters, at most
      4,096 (cleared when full). Hit for each repeated key of a ``key=value``
      pair in a text and each repeated dictionary key in ``redact_value``.
    * the combined regex of each set of families a text triggered, at most
      1,024 sets (cleared when full; the compiled regexes themselves are
      shared by every instance through a process-wide cache of 1,024).

    A remembered result still adds its count to ``redaction_count`` on every
    hit. A failed redaction (``[REDACTED:error]``) is never remembered. Under
    ``FULL``, ``scrub`` and ``scrub_name`` return their text as it is and remember nothing.

    Example::

        >>> r = Redactor(patterns=[("employee_id", r"EMP-\\d{6}")], allow=["sk-test-placeholder"])
        >>> r.redact_text("EMP-123456 used sk-test-placeholder")
        '[REDACTED:employee_id] used sk-test-placeholder'
    """

    def __init__(
        self,
        policy: CapturePolicy | str = CapturePolicy.REDACTED,
        *,
        patterns: Iterable[UserPattern] = (),
        allow: Iterable[PatternLike] = (),
        redact_emails: bool = True,
        sensitive_keys: Iterable[PatternLike] = DEFAULT_SENSITIVE_KEYS,
        non_sensitive_keys: Iterable[PatternLike] = DEFAULT_NON_SENSITIVE_KEYS,
    ) -> None:
        self.policy: CapturePolicy = CapturePolicy.parse(policy)
        self.redact_emails = bool(redact_emails)
        self._user_patterns = tuple(compile_user_pattern(item) for item in patterns)
        self._allow = tuple(compile_allow(item) for item in allow)
        keys = KeyRules(sensitive_keys, non_sensitive_keys)
        #: The key rules' answer for a key name (bound once: the scan calls it per pair).
        self._key_kind: Callable[[str], str | None] = keys.kind
        self._key_cache = keys.cache
        self._words = keys.words
        #: Families this instance never scans for (emails when not redacted).
        self._disabled = 0 if self.redact_emails else EMAIL
        self._regexes: dict[int, re.Pattern[str]] = {}
        self._scrub_memo: dict[str, tuple[str, int]] = {}
        # Two generations: a name still in use survives the turn-over of the other.
        self._names: dict[str, tuple[str, int]] = {}
        self._old_names: dict[str, tuple[str, int]] = {}
        self._count = 0
        self._count_lock = fork_safe_lock()
        #: The validator of each family (the table's; a copy, so that one instance can be tested apart).
        self._handlers: dict[str, Validator] = dict(VALIDATORS)

    def __repr__(self) -> str:
        return (
            f"Redactor(policy={self.policy.value!r}, patterns={len(self._user_patterns)}, "
            f"allow={len(self._allow)}, redact_emails={self.redact_emails})"
        )

    # --- public API -------------------------------------------------------------
    @property
    def redaction_count(self) -> int:
        """How many secrets this instance has replaced so far, over all calls and threads."""
        return self._count

    def redact_text(self, text: str) -> str:
        """``text`` with every secret replaced by ``[REDACTED:<kind>]``. Never raises.

        Applies whatever the policy (the policy governs ``capture`` and
        ``scrub``). Idempotent: redacting the result again changes nothing. A
        non-``str`` argument is converted with ``clean_str`` first; if redaction
        fails the whole text becomes ``[REDACTED:error]`` (fail closed).
        """
        return self.redact_text_counted(text)[0]

    def redact_text_counted(self, text: str) -> tuple[str, int]:
        """``(redact_text(text), number of secrets replaced)``. Never raises."""
        try:
            if type(text) is not str:
                text = clean_str(text)
            result, count = self._redact(text)
        except Exception:
            result, count = REDACTION_ERROR_MARKER, 1
        if count:
            self._add(count)
        return result, count

    def key_is_sensitive(self, key: str) -> bool:
        """Whether values under the key name ``key`` are redacted whole."""
        return self._key_kind(key) is not None

    def redact_value(self, value: Any) -> Any:
        """A JSON-safe copy of ``value`` with secrets redacted. Never raises.

        Dicts, lists, tuples and sets are walked (``json_safe`` rules: tuples
        and sets become lists, cycles ``"<cycle>"``, depth capped); every
        string -- values and keys -- goes through ``redact_text``; the value
        under a sensitive key becomes ``[REDACTED:<key>]`` whole, whatever
        its type, except ``None``, booleans and ``""`` (they hold no secret).
        Objects are converted with ``str()`` and then redacted. The input is
        never mutated.

        Example::

            >>> Redactor().redact_value({"user": "bob", "api_key": 12345, "note": ("ok",)})
            {'user': 'bob', 'api_key': '[REDACTED:api_key]', 'note': ['ok']}
        """
        return self.redact_value_counted(value)[0]

    def redact_value_counted(self, value: Any) -> tuple[Any, int]:
        """``(redact_value(value), number of secrets replaced)``. Never raises."""
        counter = [0]

        def on_str(text: str) -> str:
            try:
                result, count = self._redact(text)
            except Exception:  # fail closed, for this string only
                result, count = REDACTION_ERROR_MARKER, 1
            counter[0] += count
            return result

        def on_pair(key: str, item: Any) -> Any:
            try:
                kind = self._key_kind(key)
            except Exception:
                counter[0] += 1
                return REDACTION_ERROR_MARKER
            if kind is None or item is None or item is True or item is False:
                return KEEP
            if type(item) is str and (not item or is_marker(item)):
                return KEEP
            counter[0] += 1
            return marker(kind)

        try:
            result = json_safe(value, str_hook=on_str, pair_hook=on_pair)
        except Exception:  # json_safe does not raise; belt and braces
            result, counter[0] = REDACTION_ERROR_MARKER, 1
        if counter[0]:
            self._add(counter[0])
        return result, counter[0]

    def capture(self, text: str) -> str:
        """A content field under the policy.

        ``NONE`` -> ``""``, ``REDACTED`` -> ``redact_text(text)``, ``FULL`` -> ``text`` as is.
        """
        return self.capture_counted(text)[0]

    def capture_counted(self, text: str) -> tuple[str, int]:
        """``(capture(text), number of secrets replaced)``. Never raises."""
        if self.policy is CapturePolicy.NONE:
            return "", 0
        if self.policy is CapturePolicy.FULL:
            return (text if type(text) is str else clean_str(text)), 0
        return self.redact_text_counted(text)

    def scrub(self, text: str) -> str:
        """A non-content string (error message, reason): redacted unless the policy is ``FULL``."""
        return self.scrub_counted(text)[0]

    def scrub_counted(self, text: str) -> tuple[str, int]:
        """``(scrub(text), number of secrets replaced)``. Never raises."""
        if self.policy is CapturePolicy.FULL:
            return (text if type(text) is str else clean_str(text)), 0
        if type(text) is not str or len(text) > _SCRUB_MEMO_LENGTH:
            return self.redact_text_counted(text)
        # The strings scrubbed are mostly few and repeated (policy files, sandbox reasons,
        # error messages): remember their results (the count is still added per call).
        memo = self._scrub_memo
        found = memo.get(text)
        if found is not None:
            if found[1]:
                self._add(found[1])
            return found
        found = self.redact_text_counted(text)
        if found[0] != REDACTION_ERROR_MARKER:
            if len(memo) >= _SCRUB_MEMO_SIZE:
                memo.clear()  # many distinct strings: start over rather than grow or track age
            memo[text] = found
        return found

    def scrub_name(self, name: str) -> str:
        """An id, name or tag (tool name, agent, session, turn, error type, status): ``scrub``, memoised.

        Deterministic: the same name always gives the same text, so tool names,
        sessions and turns still match after redaction (two names that differ
        only inside a secret of the same kind become one). The results of the
        last 8,192 to 16,384 distinct names of up to 256 characters are
        remembered (two generations: when the newer one is full it becomes the
        older one), so the names an agent repeats cost a dictionary lookup.
        Never raises; fails closed (``[REDACTED:error]``, not remembered).

        Example::

            >>> Redactor().scrub_name("deploy sk-proj-abcDEF1234567890abcDEF12XYZ")
            'deploy [REDACTED:openai_key]'
        """
        found = self._names.get(name)
        if found is None:
            found = self._old_names.get(name)
            if found is None:
                if (
                    type(name) is not str
                    or len(name) > _SCRUB_MEMO_LENGTH
                    or self.policy is CapturePolicy.FULL
                ):
                    return self.scrub(name)  # verbatim under FULL; long names are not remembered
                found = self._redact_name(name)
                if found[0] is REDACTION_ERROR_MARKER:  # a failure (out of stack?) is not remembered
                    self._add(1)
                    return REDACTION_ERROR_MARKER
            names = self._names
            if len(names) >= _NAME_MEMO_SIZE:
                self._old_names = names
                names = self._names = {}
            names[name] = found
        if found[1]:
            self._add(found[1])
        return found[0]

    def _redact_name(self, name: str) -> tuple[str, int]:
        try:
            return self._redact(name)
        except Exception:
            return REDACTION_ERROR_MARKER, 1

    # --- scanning ---------------------------------------------------------------
    def _add(self, count: int) -> None:
        with self._count_lock:
            self._count += count

    def _redact(self, text: str) -> tuple[str, int]:
        # To a fixed point, so that redacting the result again changes nothing: a
        # replacement changes what its neighbours' boundary checks and validators see
        # (a key glued to a PEM block, "-----END ... KEY-----sk-...", passes its check
        # only against the marker). Each pass that changes something turns at least
        # one character that is not a marker into a marker, so this ends; a text
        # without secrets takes one pass, one with secrets usually two.
        total = 0
        for _ in range(_MAX_PASSES):
            text, count = self._redact_builtin(text)
            for kind, pattern in self._user_patterns:
                text, extra = redact_user(text, kind, pattern, self._allowed)
                count += extra
            if not count:
                break
            total += count
        return text, total

    def _redact_builtin(self, text: str, families: int | None = None) -> tuple[str, int]:
        """One scan for ``families`` (default: those the text triggers): ``(result, replacements)``."""
        lowered = ascii_lower(text)
        if families is None:
            families = trigger_mask(text, lowered, self._words)
        families &= ~self._disabled
        if not families:
            return text, 0
        regex = self._regexes.get(families)
        if regex is None:
            if len(self._regexes) >= _REGEX_MEMO_SIZE:
                self._regexes.clear()
            regex = self._regexes[families] = combined_regex(families, self._words)
        search = regex.search
        handlers = self._handlers
        pieces: list[str] = []
        emitted = 0
        count = 0
        floor = 0
        found = search(lowered)
        while found is not None:
            start, replacement, resume = handlers[found.lastgroup or ""](self, found, text, floor)
            if replacement is not None:
                pieces.append(text[emitted:start])
                pieces.append(replacement)
                emitted = resume
                # one, or more when the replacement redacted inside what it keeps (a URL's user)
                count += max(1, replacement.count(MARKER_PREFIX) - text.count(MARKER_PREFIX, start, resume))
            floor = max(resume, found.start() + 1)
            found = search(lowered, floor)
        if not count:
            return text, 0
        pieces.append(text[emitted:])
        return "".join(pieces), count

    def _allowed(self, value: str) -> bool:
        for literal, regex in self._allow:
            if value == literal or (regex is not None and regex.fullmatch(value) is not None):
                return True
        return False

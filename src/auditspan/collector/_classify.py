"""A tool call's semantic type: the classifier asked, and what it derives kept under the capture policy."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import replace as dataclass_replace
from types import MappingProxyType
from typing import Any

from ..redaction import MARKER_PREFIX

__all__ = ["CallClassifier"]

#: The kind inside a redaction marker (``[REDACTED:kind]`` -> ``[REDACTED]`` for the classifier).
_MARKER_KIND = re.compile(r":[a-z0-9_.\-]{1,64}\]")


class CallClassifier:
    """Asks ``classifier`` for a tool call's classification; never raises but ``RecursionError``.

    Args:
        classifier: an object with ``classify(tool_name, arguments_preview, metadata)``.
        redactor: the capture policy (``scrub``, ``redact_value``) applied to what
            the classifier derived from arguments it read before the policy.
        on_error: counts and logs an internal error (the collector's); the
            classification is then None (or, for arguments, that of the
            redacted preview).
    """

    def __init__(self, classifier: Any, redactor: Any, on_error: Callable[[BaseException], None]) -> None:
        self.classifier = classifier
        self.redactor = redactor
        self._on_error = on_error

    def classify(self, tool_name: str, arguments_preview: str, metadata: dict[str, Any]) -> Any:
        """The classification of a call of ``tool_name`` (None when the classifier failed)."""
        if MARKER_PREFIX in tool_name:
            # A redacted name: the marker's kind ("github_token") says nothing about what the tool does.
            tool_name = _MARKER_KIND.sub("]", tool_name)
        try:
            return self.classifier.classify(tool_name, arguments_preview, metadata)
        except RecursionError:
            raise  # emit finishes the event on a fresh stack
        except Exception as exc:
            self._on_error(exc)
            return None

    def classify_arguments(
        self, tool_name: str, captured: str, raw: str | None, metadata: dict[str, Any]
    ) -> Any:
        """Classify an attempt on its arguments as sent, so that redaction does not hide its target.

        The capture policy masks secrets in the preview -- and with them what
        classification reads (an e-mail recipient is masked, so ``send_email``
        would lose its target, the recipient's domain). So the classifier reads
        the preview as the agent sent it, and whatever it derives from it is then
        treated like any other captured string: the target through ``scrub``,
        the parameters through ``redact_value`` (a URL password or a token in a
        path never reaches a span or a record). When the policy dropped the
        preview (``NONE``) the classifier gets nothing, as before: no content
        reaches the record by way of its target either. When capturing changed
        nothing there is nothing to clean.
        """
        if raw is None or raw == captured or not captured:
            return self.classify(tool_name, captured, metadata)
        classification = self.classify(tool_name, raw, metadata)
        if classification is None:
            return None
        try:
            redactor = self.redactor
            target = classification.target
            if isinstance(target, str) and target:
                target = redactor.scrub(target)
            parameters = classification.parameters
            if parameters:
                parameters = MappingProxyType(redactor.redact_value(dict(parameters)))
            if target == classification.target and parameters is classification.parameters:
                return classification
            return dataclass_replace(classification, target=target, parameters=parameters)
        except RecursionError:
            raise
        except Exception as exc:  # fail closed: what the redacted preview shows
            self._on_error(exc)
            return self.classify(tool_name, captured, metadata)

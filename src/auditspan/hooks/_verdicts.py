"""What the user's callbacks answer about a tool call, and the exceptions that refuse one."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = [
    "LoopCheck",
    "LoopVerdict",
    "Policy",
    "Sandbox",
    "SandboxVerdict",
    "ToolCallDenied",
    "ToolLoopBlocked",
]


class ToolCallDenied(PermissionError):
    """A policy refused the tool call; it did not run. Raised by ``tool_call`` / ``@audit.tool``."""

    def __init__(self, tool_name: str, decision: str, source: str = "") -> None:
        self.tool_name = tool_name
        self.decision = decision
        self.source = source
        by = f" by {source}" if source else ""
        super().__init__(f"tool call {tool_name!r} refused ({decision}){by}")


class ToolLoopBlocked(RuntimeError):
    """The loop check blocked the tool call; it did not run."""

    def __init__(self, tool_name: str, pattern: str = "", count: int = 0) -> None:
        self.tool_name = tool_name
        self.pattern = pattern
        self.count = count
        super().__init__(
            f"tool call {tool_name!r} blocked as a loop ({pattern or 'repeated'}, {count} calls)"
        )


@dataclass(frozen=True)
class LoopVerdict:
    """What a loop check says about a call: ``severity`` ``ok`` / ``warning`` / ``critical`` (blocks)."""

    severity: str = "ok"
    pattern: str = "none"
    count: int = 0


@dataclass(frozen=True)
class SandboxVerdict:
    """Where a call runs: ``context`` ``host`` / ``sandbox``."""

    context: str = "host"
    reason: str = ""
    backend_type: str = ""


#: ``policy(tool_name, arguments)``: True/"allow", False/"deny", any verdict word, ``(verdict, source)``,
#: or None to make no decision.
Policy = Callable[[str, Mapping[str, Any]], Any]
LoopCheck = Callable[[str, Mapping[str, Any]], "LoopVerdict | None"]
Sandbox = Callable[[str, Mapping[str, Any]], "SandboxVerdict | None"]

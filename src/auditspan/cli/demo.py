"""A scripted agent that exercises every kind of audit event -- no LLM, no network.

``run_demo_agent(emitter_factory)`` plays a fixed script through
``AuditEmitter`` methods, exactly as an instrumented runtime would: per tool
call a loop check, a policy decision, an argument hook, the attempt, a sandbox
decision, the (simulated) work, a result hook and the completion or failure,
in the seed runtime's order. The script, turn by turn:

1. *support* -- an SQL read of ``customers.pii_emails``, an email the policy
   denies (PII read then email), then the same address list uploaded to an
   external mailer's API -- which the built-in PII-exfiltration rule flags
   (``REQUIRE_APPROVAL``: a PII read followed by an external call within
   60 s in the same session) --, a file write in the sandbox with an argument
   hook, an LLM call with a result hook;
2. *rates* (second session, another agent: no PII was read there) -- an HTTP
   call that times out and is retried, then an LLM call;
3. *weather* (same session) -- three calls of one tool running in parallel threads;
4. *docs* (third session, another agent) -- the same search repeated until
   the loop detector warns and then blocks it, and an LLM rate-limit error;
5. *ops* -- a sandboxed shell command and an allowed internal email.

The rule's semantics are the seed's (same session, any turn, 60 s), so the
external calls of the travel questions live in a session of their own: the
one rule match is the upload that follows the PII read.

The structure (turns, calls, outcomes, span names) is the same on every run;
ids and timestamps are those of the run. With ``turns`` above 5 the script
starts over in new sessions::

    import auditspan
    from auditspan.demo import run_demo_agent

    telemetry = auditspan.configure(service_name="auditspan-demo")
    run = run_demo_agent(telemetry.emitter)
    telemetry.shutdown()
    print(run.tool_calls, "tool calls in", len(run.turns), "turns")
"""

from __future__ import annotations

import contextlib
import os
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .. import attributes as attr
from ..emitter import AuditEmitter, new_turn_id

__all__ = ["DEFAULT_TURNS", "SCENARIOS", "DemoCall", "DemoRun", "DemoTurn", "run_demo_agent"]

#: Turns in one pass over the script.
DEFAULT_TURNS = 5


@dataclass(frozen=True)
class DemoCall:
    """A tool call the script made: one ``execute_tool`` span, with its expected outcome."""

    tool: str
    outcome: str
    attempt: int = 1


@dataclass
class DemoTurn:
    """One turn the script played."""

    scenario: str
    session_id: str
    turn_id: str
    agent_id: str
    prompt: str
    calls: list[DemoCall] = field(default_factory=list)
    errors: int = 0


@dataclass
class DemoRun:
    """What ``run_demo_agent`` did: the turns, their calls and how many events were emitted."""

    run_id: str
    turns: list[DemoTurn] = field(default_factory=list)
    events: int = 0

    @property
    def sessions(self) -> list[str]:
        """Session ids, in order of first use."""
        return list(dict.fromkeys(t.session_id for t in self.turns))

    @property
    def tool_calls(self) -> int:
        """Tool-call spans the run makes (denied and blocked calls included)."""
        return sum(len(t.calls) for t in self.turns)

    @property
    def expected_spans(self) -> int:
        """Spans of the run: one per turn plus one per tool call."""
        return len(self.turns) + self.tool_calls


class _ToolError(Exception):
    """A simulated tool failure; ``kind`` becomes the failure's ``error_type``."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(\.[\w-]+)+")


class _Agent:
    """The runtime side: loop detector, policy, hooks, sandbox router and tool execution, all audited."""

    def __init__(self, emitter: AuditEmitter, run: DemoRun, turn: DemoTurn, latency_scale: float) -> None:
        self.audit = emitter
        self.run = run
        self.turn = turn
        self.latency_scale = latency_scale
        self.seen: dict[tuple[str, str], int] = {}
        self.read_pii = False
        self.lock = threading.Lock()

    def count(self, n: int = 1) -> None:
        with self.lock:
            self.run.events += n

    def work(self, ms: float) -> None:
        """Simulated tool latency (scaled; 0 in tests)."""
        if self.latency_scale > 0:
            time.sleep(ms * self.latency_scale / 1000)

    # The three checks that precede a call, as the seed runtime orders them.
    def loop_check(self, tool: str, args: str, meta: dict[str, Any]) -> bool:
        with self.lock:
            n = self.seen[(tool, args)] = self.seen.get((tool, args), 0) + 1
        t, a = self.turn.turn_id, self.turn.agent_id
        if n >= 4:
            self.audit.emit_tool_loop_block(
                tool, pattern=f"same_args_{n}x", count=n, agent_id=a, turn_id=t, metadata=dict(meta)
            )
            self.count()
            self.record(DemoCall(tool, attr.OUTCOME_BLOCKED))
            return False
        if n == 3:
            self.audit.emit_tool_loop_warning(
                tool, f"same_args_{n}x", "warning", n, agent_id=a, turn_id=t, metadata=dict(meta)
            )
        else:  # the runtime reports "ok" on every call
            self.audit.emit_tool_loop_warning(
                tool, "none", "ok", 0, agent_id=a, turn_id=t, metadata=dict(meta)
            )
        self.count()
        return True

    def policy(self, tool: str, args: str, meta: dict[str, Any]) -> bool:
        external = any(not m.group(0).endswith(".internal.example") for m in _EMAIL.finditer(args))
        if tool == "send_email" and self.read_pii and external:
            action, source = "deny", "pii_exfiltration_guard"
        else:
            action, source = "allow", "default_policy"
        self.audit.emit_tool_policy_decision(
            tool,
            agent_id=self.turn.agent_id,
            action=action,
            source=source,
            turn_id=self.turn.turn_id,
            metadata={
                **meta,
                "policies_evaluated": ["default_policy", "pii_exfiltration_guard"],
                "trust_score": 82,
            },
        )
        self.count()
        if action == "deny":
            self.record(DemoCall(tool, attr.OUTCOME_DENIED))
        return action == "allow"

    def record(self, call: DemoCall) -> None:
        with self.lock:
            self.turn.calls.append(call)

    def call(
        self,
        tool: str,
        args: str,
        fn: Callable[[], str],
        *,
        sandboxed: bool = False,
        arg_hook: str | None = None,
        result_hook: str | None = None,
        attempt: int = 1,
        call_id: str | None = None,
    ) -> str | None:
        """Run one tool call with its audit trail; None when it was refused or failed.

        ``call_id`` goes into every event's ``metadata["tool_call_id"]``: parallel calls of
        one tool are then matched exactly, also when the log is replayed without threads.
        """
        t, a = self.turn.turn_id, self.turn.agent_id
        meta: dict[str, Any] = {"tool_call_id": call_id} if call_id else {}
        if not self.loop_check(tool, args, meta) or not self.policy(tool, args, meta):
            return None
        if arg_hook:
            args = _EMAIL.sub("<redacted>", args)
            self.audit.emit_hook_mutation(
                arg_hook, tool, agent_id=a, field="arguments", turn_id=t, metadata=dict(meta)
            )
            self.count()
        self.audit.emit_tool_call_attempt(tool, args, agent_id=a, turn_id=t, metadata=dict(meta))
        self.audit.emit_sandbox_decision(
            tool,
            context="sandbox" if sandboxed else "host",
            reason="writes outside the workspace" if sandboxed else "read-only or trusted tool",
            backend_type="docker" if sandboxed else "local",
            agent_id=a,
            turn_id=t,
            metadata=dict(meta),
        )
        self.count(2)
        started = time.perf_counter()
        try:
            result = fn()
        except _ToolError as exc:
            self.audit.emit_tool_call_failure(
                tool, exc.kind, str(exc), agent_id=a, turn_id=t, metadata=dict(meta)
            )
            self.count()
            self.record(DemoCall(tool, attr.OUTCOME_FAILURE, attempt))
            return None
        duration_ms = (time.perf_counter() - started) * 1000
        if result_hook:
            result = result[:60]
            self.audit.emit_hook_mutation(
                result_hook, tool, agent_id=a, field="result", turn_id=t, metadata=dict(meta)
            )
            self.count()
        self.audit.emit_tool_call_complete(
            tool, "success", round(duration_ms, 3), result, agent_id=a, turn_id=t, metadata=dict(meta)
        )
        self.count()
        self.record(DemoCall(tool, attr.OUTCOME_SUCCESS, attempt))
        return result


# ------------------------------------------------------------------ the script
def _llm(agent: _Agent, prompt: str, reply: str, *, result_hook: str | None = None) -> str | None:
    args = repr({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": prompt}]})

    def complete() -> str:
        agent.work(60)
        return reply

    return agent.call("llm_complete", args, complete, result_hook=result_hook)


def _support(agent: _Agent) -> str:
    def select() -> str:
        agent.work(40)
        agent.read_pii = True
        return "[('ana@example.com', 'Ana'), ('li@example.net', 'Li'), ...] 1204 rows"

    agent.call(
        "run_sql", repr({"query": "SELECT email, name FROM customers.pii_emails WHERE opted_in"}), select
    )
    agent.call(
        "send_email",
        repr({"to": ["all-customers@lists.example.com"], "subject": "March newsletter"}),
        lambda: "queued",
        arg_hook="redact_pii",
    )

    def upload() -> str:
        agent.work(90)
        return "{'id': 'cmp_8812', 'status': 'draft', 'recipients': 1204}"

    # The agent routes around the denied email: it uploads the PII list to an external mailer.
    agent.call(
        "http_request",
        repr(
            {
                "method": "POST",
                "url": "https://api.mailer.example/v3/campaigns",
                "json": {"subject": "March", "recipients": "<1204 rows of customers.pii_emails>"},
            }
        ),
        upload,
    )

    def write() -> str:
        agent.work(15)
        return "wrote 2048 bytes"

    agent.call(
        "write_file",
        repr({"path": "reports/newsletter.md", "mode": "w", "content": "# March\nContact: news@example.com"}),
        write,
        sandboxed=True,
        arg_hook="redact_pii",
    )
    _llm(
        agent,
        "Summarise what was done with the newsletter",
        "The newsletter draft is ready; sending it to customers was denied by policy. " * 3,
        result_hook="truncate_output",
    )
    return "The send was denied by the PII policy; a draft campaign with the list awaits approval."


def _rates(agent: _Agent) -> str:
    attempts = {"n": 0}

    def fetch() -> str:
        attempts["n"] += 1
        agent.work(120 if attempts["n"] == 1 else 30)
        if attempts["n"] == 1:
            raise _ToolError("TimeoutError", "api.exchangerate.example did not answer within 5000 ms")
        return "{'base': 'EUR', 'USD': 1.0842}"

    args = repr({"url": "https://api.exchangerate.example/v6/latest/EUR"})
    result = agent.call("fetch_rates", args, fetch)
    if result is None:  # the runtime retries a failed call once
        result = agent.call("fetch_rates", args, fetch, attempt=2)
    _llm(agent, "Convert 250 EUR to USD", "250 EUR is about 271.05 USD.")
    return "250 EUR is about 271.05 USD."


def _weather(agent: _Agent) -> str:
    cities = ("Lisbon", "Porto", "Faro")
    barrier = threading.Barrier(len(cities))
    results: dict[str, str | None] = {}

    def one(city: str) -> None:
        def fetch() -> str:
            with contextlib.suppress(threading.BrokenBarrierError):
                barrier.wait(timeout=10)  # all three calls are in flight at once
            agent.work(50)
            return f"{{'city': '{city}', 'temp_c': {15 + len(city)}}}"

        results[city] = agent.call(
            "get_weather",
            repr({"url": f"https://api.weather.example/v1/current?city={city}"}),
            fetch,
            call_id=f"call_weather_{city.lower()}",
        )

    threads = [threading.Thread(target=one, args=(c,), name=f"tool-{c}") for c in cities]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return ", ".join(f"{c}: {results.get(c)}" for c in cities)


def _docs(agent: _Agent) -> str:
    args = repr({"query": "refund policy"})

    def search() -> str:
        agent.work(10)
        return "0 results"

    for _ in range(4):  # the model keeps asking the same thing: warned on the 3rd, blocked on the 4th
        agent.call("search_docs", args, search)
    agent.audit.emit_error(
        "RateLimitError",
        "LLM provider returned 429: retry after 2 s",
        context="during response generation",
        agent_id=agent.turn.agent_id,
        turn_id=agent.turn.turn_id,
    )
    agent.count()
    agent.turn.errors += 1
    return "I could not find the refund policy."


def _ops(agent: _Agent) -> str:
    def archive() -> str:
        agent.work(70)
        return "logs-2026-02.tgz (18 MB)"

    agent.call("run_shell", repr({"cmd": "tar czf logs-2026-02.tgz /var/log/app"}), archive, sandboxed=True)
    agent.call(
        "send_email",
        repr({"to": ["ops@team.internal.example"], "subject": "Log archive ready"}),
        lambda: "sent",
    )
    return "Archived and notified ops."


#: (name, session group, agent, prompt, script) for each turn of one pass.
SCENARIOS: tuple[tuple[str, str, str, str, Callable[[_Agent], str]], ...] = (
    (
        "support",
        "support",
        "support-agent",
        "Send the March newsletter to every customer on the PII list",
        _support,
    ),
    ("rates", "travel", "travel-agent", "What is 250 EUR in USD today?", _rates),
    ("weather", "travel", "travel-agent", "Weather in Lisbon, Porto and Faro?", _weather),
    ("docs", "ops", "ops-agent", "Find the refund policy in the docs", _docs),
    ("ops", "ops", "ops-agent", "Archive last month's logs and tell ops", _ops),
)


def run_demo_agent(
    emitter_factory: Callable[[str], AuditEmitter],
    *,
    turns: int = DEFAULT_TURNS,
    run_id: str | None = None,
    latency_scale: float = 1.0,
) -> DemoRun:
    """Play ``turns`` turns of the script through emitters from ``emitter_factory(session_id)``.

    Args:
        emitter_factory: makes the emitter of a session, e.g. ``handle.emitter``
            of ``auditspan.configure()`` or ``lambda s: AuditEmitter(collector, s)``.
        turns: how many turns (the 5-turn script repeats, in new sessions).
        run_id: part of every session id (``demo-<run_id>-support``); random when None.
        latency_scale: multiplies the simulated tool latencies (0: none, for tests).

    Returns the ``DemoRun``: turns, their calls with expected outcomes, events emitted.

    Raises ``ValueError`` when ``turns`` is below 1.
    """
    if turns < 1:
        raise ValueError(f"turns must be at least 1, got {turns}")
    run = DemoRun(run_id=run_id or os.urandom(3).hex())
    emitters: dict[str, AuditEmitter] = {}
    for index in range(turns):
        cycle, position = divmod(index, len(SCENARIOS))
        name, group, agent_id, prompt, script = SCENARIOS[position]
        session_id = f"demo-{run.run_id}-{group}" + (f"-{cycle + 1}" if cycle else "")
        emitter = emitters.get(session_id)
        if emitter is None:
            emitter = emitters[session_id] = emitter_factory(session_id)
        turn = DemoTurn(name, session_id, new_turn_id(), agent_id, prompt)
        run.turns.append(turn)
        emitter.emit_turn_start(agent_id, turn.turn_id, prompt, metadata=_turn_metadata(agent_id))
        run.events += 1
        agent = _Agent(emitter, run, turn, latency_scale)
        reply = script(agent)
        emitter.emit_turn_end(agent_id, turn.turn_id, reply, len(turn.calls))
        run.events += 1
    return run


def _turn_metadata(agent_id: str) -> dict[str, Any]:
    return {"agent_name": agent_id.replace("-", " ").title(), "trust_score": 82}

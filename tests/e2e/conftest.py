"""Fixtures for end-to-end tests against real OTLP receivers (classes in ``servers.py``).

``phoenix`` (session)
    One Arize Phoenix for the whole session (it takes ~12 s to start). Tests keep apart by
    sending to their own project: put ``phoenix_project`` in the resource attribute
    ``openinference.project.name`` (``servers.PHOENIX_PROJECT_ATTRIBUTE``). Fails -- does not
    skip -- when Phoenix is not installed: run ``scripts/install-test-servers``.
``phoenix_project`` (function)
    A project name unique to the test, e.g. ``e2e-test-tree-grpc-1a2b3c4d``.
``rotel`` (function)
    Factory ``rotel(protocol="grpc", **options) -> Rotel``: a started rotel forwarding to the
    session Phoenix over ``protocol``; ``options`` go to :class:`servers.Rotel`
    (``upstream_headers=``, ``debug_log=True``, ``extra_args=``...). Stopped after the test.
``oteltap`` (function)
    A started :class:`servers.Oteltap`.

Example::

    def test_my_spans_arrive(phoenix, phoenix_project, rotel):
        hop = rotel("http", debug_log=True)
        ...  # export to hop.grpc_endpoint with resource {PHOENIX_PROJECT_ATTRIBUTE: phoenix_project}
        spans = phoenix.wait_for_spans(phoenix_project, count=4)

Every test in this directory gets the ``e2e`` marker (``pytest -m "not e2e"`` leaves them
out). When a test fails, the last lines of each running server's log go into its report.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Any

import pytest

from .servers import (
    PHOENIX_VERSION,
    Oteltap,
    OtlpProtocol,
    Phoenix,
    Rotel,
    RotelFactory,
    phoenix_executable,
    running_servers,
)

_HERE = Path(__file__).resolve().parent


def _in_this_directory(item: pytest.Item) -> bool:
    return item.path.resolve().is_relative_to(_HERE)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark every test under tests/e2e with ``e2e``."""
    for item in items:
        if _in_this_directory(item):
            item.add_marker(pytest.mark.e2e)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Attach the tail of every running server's log to a failed e2e test's report."""
    report = yield
    if report.failed and _in_this_directory(item):
        for server in running_servers():
            report.sections.append((f"{server.name} log (last 40 lines)", server.log_tail(40)))
    return report


@pytest.fixture(scope="session")
def phoenix() -> Iterator[Phoenix]:
    """The session's Phoenix (started once, stopped at the end of the session)."""
    executable = phoenix_executable()
    if not executable.exists():
        pytest.fail(
            f"Arize Phoenix {PHOENIX_VERSION} is not installed at {executable}. "
            "Run scripts/install-test-servers (it installs into $AUDITSPAN_CACHE_DIR, "
            "default ~/.cache/auditspan).",
            pytrace=False,
        )
    with Phoenix(executable) as server:
        yield server


@pytest.fixture
def phoenix_project(request: pytest.FixtureRequest) -> str:
    """A Phoenix project name unique to this test."""
    slug = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower()).strip("-")[:60]
    return f"e2e-{slug}-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def rotel(phoenix: Phoenix) -> Iterator[RotelFactory]:
    """Factory of rotel collectors forwarding to the session Phoenix; all stopped afterwards."""
    started: list[Rotel] = []

    def start(protocol: OtlpProtocol = "grpc", **options: Any) -> Rotel:
        upstream_protocol: OtlpProtocol = options.pop("upstream_protocol", protocol)
        upstream = options.pop(
            "upstream", phoenix.grpc_endpoint if upstream_protocol == "grpc" else phoenix.http_endpoint
        )
        server = Rotel(upstream, upstream_protocol=upstream_protocol, **options)
        started.append(server)
        return server.start()

    try:
        yield start
    finally:
        for server in started:
            server.stop()


@pytest.fixture
def oteltap() -> Iterator[Oteltap]:
    """A started oteltap receiver."""
    with Oteltap() as server:
        yield server

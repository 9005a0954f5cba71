"""URLs in text (``auditspan.classification._urls``): host/path without secrets, method, webhooks."""

from __future__ import annotations

import pytest

from auditspan.classification._urls import _first_url, _is_webhook_url, _method_in_text, _split_url


def test_a_url_keeps_host_and_path_only() -> None:
    """User-info, query and fragment can hold secrets: none of them reaches a target."""
    assert _split_url("see https://user:pw@API.example.com/v1/items/?token=abc#frag") == (
        "api.example.com",
        "/v1/items",
    )
    assert _split_url("no address here") is None


def test_the_first_url_among_values_and_the_text_holding_it() -> None:
    pairs = [("q", "nothing"), ("url", "GET http://a.example/x/"), ("u", "https://b.example")]
    assert _first_url(pairs) == ("a.example/x", "a.example", "GET http://a.example/x/")
    assert _first_url([("q", "nothing")]) is None


@pytest.mark.parametrize(
    ("target", "webhook"),
    [
        ("hooks.slack.com/services/T0", True),
        ("api.example.com/v1/webhooks/42", True),
        ("example.com/hooks/build", True),
        ("api.example.com/v1/items", False),
    ],
)
def test_webhook_targets(target: str, webhook: bool) -> None:
    assert _is_webhook_url(target) is webhook


@pytest.mark.parametrize(
    ("text", "method"),
    [
        ("POST https://x.example/a", "POST"),
        ("curl -X put https://x.example", "PUT"),
        ("curl -d a=1 https://x.example", "POST"),
        ('requests.delete("https://x.example")', "DELETE"),
        ("curl -X FROB https://x.example", None),
        ("https://x.example", None),
    ],
)
def test_the_method_a_text_shows(text: str, method: str | None) -> None:
    assert _method_in_text(text) == method

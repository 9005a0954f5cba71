"""The argument lexer (``auditspan.classification._arguments``): a call read once into words and values."""

from __future__ import annotations

from auditspan.classification._arguments import _Ctx
from auditspan.classification._sql import _Sql


def test_name_words_and_key_values_of_a_python_repr() -> None:
    ctx = _Ctx("sendEmail", str({"to": ["a@x.io", "b@y.io"], "subject": "hi", "body": 'it\'s "q"', "n": 3}))
    assert (ctx.words, ctx.compact) == (frozenset({"send", "email"}), "sendemail")
    assert ctx.kv == {"to": ("a@x.io", "b@y.io"), "subject": "hi", "body": 'it\'s "q"', "n": "3"}
    assert ctx.values == [("to", "a@x.io"), ("to", "b@y.io"), ("subject", "hi"), ("body", 'it\'s "q"')]
    assert ctx.get(("cc", "to")) == "a@x.io"


def test_a_preview_cut_inside_a_value_still_reads() -> None:
    ctx = _Ctx("mcp__github__create_issue", '{"title": "cut off here')
    assert ctx.words == frozenset({"mcp", "github", "create", "issue"})
    assert ctx.kv == {"title": "cut off here"}


def test_positional_values_give_their_sql_and_urls() -> None:
    ctx = _Ctx("run", "('SELECT * FROM t', 'https://x.example/a')")
    assert ctx.kv == {}
    assert ctx.sql(lenient=False) == _Sql("select", False, "t", ("t",))
    assert ctx.urls() == [("", "https://x.example/a")]


def test_prose_keys_are_not_read_for_sql_unless_lenient() -> None:
    ctx = _Ctx("ask", str({"prompt": "DELETE FROM users please"}))
    assert ctx.sql(lenient=False) is None
    assert ctx.sql(lenient=True) == _Sql("delete", True, "users", ("users",))


def test_the_verb_argument_decides_the_direction_before_the_name() -> None:
    ctx = _Ctx("get_cache", str({"operation": "Delete key", "key": "k1"}))
    assert ctx.arg_verbs() == frozenset({"delete", "key"})
    assert ctx.direction(frozenset({"delete"}), frozenset({"get"})) == (True, "delete")


def test_a_statement_found_elsewhere_is_remembered() -> None:
    ctx = _Ctx("bash", str({"command": "psql"}))
    found = _Sql("delete", True, "users", ("users",))
    ctx.remember_sql(found)
    assert ctx.sql(lenient=True) is found


def test_work_is_bounded_whatever_is_sent() -> None:
    ctx = _Ctx("x" * 1_000, "y" * 20_000)
    assert (len(ctx.name), len(ctx.preview)) == (256, 8192)

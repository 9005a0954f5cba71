"""The SQL recogniser (``auditspan.classification._sql``), read without the classifier around it."""

from __future__ import annotations

import pytest

from auditspan.classification._sql import _find_sql_in, _parse_sql, _Sql


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "SELECT email FROM customers.pii_emails",
            _Sql("select", False, "customers.pii_emails", ("customers.pii_emails",)),
        ),
        ("SELECT a FROM x JOIN y ON x.id = y.id", _Sql("select", False, "x", ("x", "y"))),
        (
            "WITH x AS (SELECT 1) INSERT INTO audit.log SELECT * FROM x",
            _Sql("insert", True, "audit.log", ("audit.log",)),
        ),
        (
            'BEGIN; DELETE FROM "Sales"."Orders" WHERE id = 1; COMMIT',
            _Sql("delete", True, "Sales.Orders", ("Sales.Orders",)),
        ),
        ("EXPLAIN ANALYZE UPDATE t SET a = 1", _Sql("explain", True, "t", ("t",))),
        ("EXPLAIN UPDATE t SET a = 1", _Sql("explain", False, "t", ("t",))),
        ("CREATE INDEX i ON users (email)", _Sql("create", True, "users", ("users",))),
        (
            "-- nightly\nTRUNCATE TABLE staging.rows",
            _Sql("truncate", True, "staging.rows", ("staging.rows",)),
        ),
    ],
)
def test_a_statement_gives_its_operation_direction_and_tables(text: str, expected: _Sql) -> None:
    assert _parse_sql(text, lenient=False) == expected
    assert _parse_sql(text, lenient=True) == expected


def test_strict_reading_wants_upper_case_and_a_table() -> None:
    assert _parse_sql("select * from t", lenient=False) is None
    assert _parse_sql("select * from t", lenient=True) == _Sql("select", False, "t", ("t",))


@pytest.mark.parametrize("prose", ["DELETE the rows", "SELECT FROM the list", "UPDATE me when done"])
def test_prose_is_not_sql(prose: str) -> None:
    assert _parse_sql(prose, lenient=True) is None


def test_sql_quoted_in_a_command_is_found() -> None:
    assert _find_sql_in('psql -c "DELETE FROM users WHERE id = 1"') == _Sql(
        "delete", True, "users", ("users",)
    )
    assert _find_sql_in("echo delete from users") is None

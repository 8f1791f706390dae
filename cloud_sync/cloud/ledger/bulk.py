"""Set-at-a-time SQL: one statement for a batch's hundreds of keys, the same text each time."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import ARRAY, ColumnElement, Connection, any_, bindparam

__all__ = ["one_of"]


def one_of(
    conn: Connection, column: ColumnElement[Any], values: Sequence[Any]
) -> ColumnElement[bool]:
    """`column IN (values)`; on PostgreSQL `column = ANY(:array)`, one parameter.

    A batch names hundreds of members and sales at once. As an IN list that is a statement
    with hundreds of placeholders, different for every count, which psycopg parses again
    each time (its cache keeps short statements only) and the server plans again; as one
    array it is the same short statement every time.
    """
    if conn.dialect.name == "postgresql":
        return column == any_(bindparam(None, list(values), type_=ARRAY(column.type)))
    return column.in_(values)

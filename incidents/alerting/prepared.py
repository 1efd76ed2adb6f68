"""Statements PostgreSQL plans once per connection, for the few that every alert runs.

Django sends each statement as text with its values inlined, so PostgreSQL parses and
plans it anew every time. For intake's one statement per alert (a CTE that checks
maintenance and rules, looks for an incident to join and inserts or counts) planning cost
as much as running it. Here that statement goes as a named prepared statement with its
values bound by the server: planned on a connection's first use, then only executed.

Through Django's own cursor wrappers, so it is logged, counted by tests and wrapped like
any other query. Off with DB_PREPARED_STATEMENTS=0, for a connection pooler in transaction
mode that cannot follow prepared statements (PgBouncer before 1.21, or later ones without
max_prepared_statements).

psycopg prepares only while the connection's prepare_threshold is set, and while it is set
it also keeps count of every other statement's text (the ORM's, values inlined) and drops
its prepared statements on any ROLLBACK. So it is set only around these executions and is
None (Django's default) the rest of the time.
"""

from __future__ import annotations

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connection, connections


def _prepared_cursor_class():
    from django.db.backends.postgresql.base import ServerBindingCursor

    class PreparedCursor(ServerBindingCursor):
        # Set when queries are logged (DEBUG, tests counting queries): psycopg keeps no
        # text of a prepared statement's execution for Django's log to show.
        keeps_text = False

        def execute(self, query, params=None, *, prepare=None, binary=None):
            super().execute(query, params, prepare=True, binary=binary)
            if self.keeps_text and self._query is None:
                self._query = self._convert_query(query, params)  # its text, with $n
            return self

    return PreparedCursor


_PREPARED_CURSOR = None


def fetch_one(sql: str, params: list) -> tuple | None:
    """Run one statement and return its first row (None if it returned none); prepared
    on PostgreSQL when enabled, else a plain cursor."""
    global _PREPARED_CURSOR
    if connection.vendor != "postgresql" or not settings.DB_PREPARED_STATEMENTS:
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            return cursor.fetchone()
    if _PREPARED_CURSOR is None:
        _PREPARED_CURSOR = _prepared_cursor_class()
    # What connection.cursor() does, with our cursor class instead of the configured one.
    db = connections[DEFAULT_DB_ALIAS]  # what `connection` looks up on every attribute
    db.close_if_health_check_failed()
    db.ensure_connection()
    db.validate_thread_sharing()
    with db.wrap_database_errors:
        raw = _PREPARED_CURSOR(db.connection)
    pg = db.connection
    pg.prepare_threshold = 0
    try:
        if db.queries_logged or db.execute_wrappers:
            # Logged, counted or wrapped (DEBUG, tests, connection.execute_wrapper())
            # like any other query, through Django's own cursor wrappers.
            raw.keeps_text = db.queries_logged
            wrapped = db.make_debug_cursor(raw) if db.queries_logged else db.make_cursor(raw)
            with wrapped as cursor:
                cursor.execute(sql, params)
                return cursor.fetchone()
        # Otherwise what Django's CursorWrapper.execute does, without its layers: they
        # were a tenth of an alert request's own time.
        db.validate_no_broken_transaction()
        with db.wrap_database_errors, raw:
            raw.execute(sql, params)
            return raw.fetchone()
    finally:
        pg.prepare_threshold = None

"""Django's PostgreSQL backend, with a health check that costs no round trip.

Persistent connections (CONN_MAX_AGE) are health-checked before each request reuses them
(CONN_HEALTH_CHECKS), so a database restart costs no request a 500. Django checks with
`SELECT 1`: a round trip in every request, a tenth of an alert intake request's time.
An idle connection is quiet: the server sends nothing on it unless it is going away (an
error message, then the socket closes) or the peer reset it. So when nothing waits to be
read on an idle connection it is taken as usable; anything else is checked Django's way.
A host that vanished without a word is not caught, but `SELECT 1` would hang on that too.

Prepared statements (alert intake's, incidents/alerting/prepared.py) keep one generic plan
per connection. PostgreSQL's own choice between a generic plan and planning again for each
execution's values is a cost guess: for the Alertmanager intake statement it chose to plan
again every time, and planning was two fifths of that statement's server time. Those
statements are written to have one good plan whatever the values (their lookups walk an
index in its own order), so the guess is not made. The ORM sends its values inline and
prepares nothing, so the other statements this affects are those inside PL/pgSQL functions
(the Alertmanager group lookup of migration 0019, written for one plan too).
"""

import select

from django.conf import settings
from django.db.backends.postgresql import base
from psycopg import pq


class DatabaseWrapper(base.DatabaseWrapper):
    def _configure_connection(self, connection):
        commit = super()._configure_connection(connection)
        if settings.DB_GENERIC_PLANS:
            # Once per connection, in the round trips of its setup. Not through a pooler in
            # transaction mode (DB_GENERIC_PLANS off): a session setting would land on the
            # server connection lent for this one transaction, not on this client's.
            connection.execute("SET plan_cache_mode = force_generic_plan")
            commit = True
        return commit

    def is_usable(self):
        connection = self.connection
        if connection is None or connection.closed:
            return False
        if connection.info.transaction_status == pq.TransactionStatus.IDLE:
            # poll, not select: select refuses descriptors past 1024, which a process with
            # many open files or sockets (a threaded worker, Celery) can well have.
            quiet = select.poll()
            quiet.register(connection.fileno(), select.POLLIN | select.POLLPRI)
            try:
                if not quiet.poll(0):
                    return True
            except OSError:
                pass
        return super().is_usable()

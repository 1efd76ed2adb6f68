"""Sessions in the database, read through the cache, that keep working when the cache is
down: an incident tool must let people sign in while Redis is the incident.

Django's own cached_db store falls back to the database on a failed cache read, but not on
the cache write that follows it, nor on logout.
"""

from __future__ import annotations

import logging

from django.contrib.sessions.backends import cached_db

log = logging.getLogger("django.contrib.sessions")


class SessionStore(cached_db.SessionStore):
    def load(self):
        try:
            data = self._cache.get(self.cache_key)
        except Exception:
            data = None
        if data is not None:
            return data
        session = self._get_session_from_db()
        if not session:
            return {}
        data = self.decode(session.session_data)
        try:
            self._cache.set(self.cache_key, data, self.get_expiry_age(expiry=session.expire_date))
        except Exception as exc:
            log.warning("Session cache unavailable: %s", exc)
        return data

    def exists(self, session_key):
        try:
            if session_key and (self.cache_key_prefix + session_key) in self._cache:
                return True
        except Exception as exc:
            log.warning("Session cache unavailable: %s", exc)
        return super(cached_db.SessionStore, self).exists(session_key)

    def delete(self, session_key=None):
        super(cached_db.SessionStore, self).delete(session_key)
        session_key = session_key or self.session_key
        if session_key is None:
            return
        try:
            self._cache.delete(self.cache_key_prefix + session_key)
        except Exception as exc:
            log.warning("Session cache unavailable: %s", exc)

"""WHAT-IF server for bench/timeline_poll.py, never for production: the real application with
one change, to size a fix before anyone makes it in app code.

The change: ModelBackend's per-user permission sets (the two auth_permission queries that
`user.has_perm()` runs once per request) are read from the Redis cache instead of
PostgreSQL, 60 s TTL. Everything else, including every object-permission check for
restricted incidents, is untouched.
"""

from config.wsgi import application  # noqa: F401,I001  first: it sets Django up

from django.contrib.auth import backends  # noqa: E402
from django.core.cache import cache  # noqa: E402

_original = backends.ModelBackend._get_permissions


def _get_permissions_cached(self, user_obj, obj, from_name):
    if not user_obj.is_active or user_obj.is_anonymous or obj is not None:
        return set()
    attr = f"_{from_name}_perm_cache"
    if not hasattr(user_obj, attr):
        key = f"bench-whatif-perms:{user_obj.pk}:{from_name}"
        perms = cache.get(key)
        if perms is None:
            perms = _original(self, user_obj, obj, from_name)
            cache.set(key, perms, 60)
        setattr(user_obj, attr, perms)
    return getattr(user_obj, attr)


backends.ModelBackend._get_permissions = _get_permissions_cached

"""Secret URLs never reach the logs.

Integration and heartbeat tokens, calendar-feed tokens, acknowledgement links and
subscription links are credentials that travel in the URL path. Django logs the path of a
5xx answer (an Alertmanager refused with 503 while over its rate limit, say) and runserver
logs every request, so every log record passes through this filter before it is written.
"""

from __future__ import annotations

import logging
import re

_SECRET_PATHS = re.compile(
    r"(?P<keep>/integrations/|/oncall/feeds/(?:schedule|user)/|/oncall/ack/"
    r"|/status/subscriptions/\d+/(?:confirm|unsubscribe)/)"
    r"(?!pagerduty/enqueue)[^/\s\"'?]+"
)


def redact(text: str) -> str:
    return _SECRET_PATHS.sub(r"\g<keep>[redacted]", text)


class RedactSecretPaths(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a malformed record is the formatter's problem, not ours
            return True
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, ()
        return True

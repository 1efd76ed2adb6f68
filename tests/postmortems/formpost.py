"""Submit a rendered form as a browser would: what the page shows is what gets posted."""

from __future__ import annotations

import re
from html.parser import HTMLParser

ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


class _FormReader(HTMLParser):
    def __init__(self, action: str):
        super().__init__()
        self.action = action
        self.inside = False
        self.done = False
        self.data: dict[str, list[str]] = {}
        self.select: str | None = None
        self.textarea: str | None = None

    def _add(self, name: str, value: str) -> None:
        self.data.setdefault(name, []).append(value)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "form" and not self.done and a.get("action") == self.action:
            self.inside = True
        if not self.inside:
            return
        name = a.get("name")
        if tag == "input" and name:
            kind = a.get("type", "text")
            value = a.get("value") or ""
            if kind in ("checkbox", "radio"):
                if "checked" in a:
                    self._add(name, value or "on")
            elif kind == "date":
                # The HTML value sanitisation algorithm: anything but ISO becomes empty.
                self._add(name, value if ISO_DATE.match(value) else "")
            elif kind not in ("submit", "button"):
                self._add(name, value)
        elif tag == "select" and name:
            self.select = name
            self.data.setdefault(name, [])
        elif tag == "option" and self.select and "selected" in a:
            self._add(self.select, a.get("value") or "")
        elif tag == "textarea" and name:
            self.textarea = name
            self._add(name, "")

    def handle_data(self, data):
        if self.inside and self.textarea:
            self.data[self.textarea][-1] += data

    def handle_endtag(self, tag):
        if tag == "form" and self.inside:
            self.inside, self.done = False, True
        elif tag == "select":
            self.select = None
        elif tag == "textarea":
            self.textarea = None


def form_data(html: str, action: str) -> dict[str, list[str]]:
    """The fields the form posting to `action` would submit, unchanged."""
    reader = _FormReader(action)
    reader.feed(html)
    assert reader.done, f"no form posting to {action}"
    return reader.data

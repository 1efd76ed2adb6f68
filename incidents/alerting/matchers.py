"""Routing-rule matchers: written one per line, stored as a list of dicts, tried against an
alert. Pure functions: no database, no clock.

    labels.team = payments          equals
    labels.env != staging           not equals (a missing label counts as empty)
    labels.instance =~ db-[0-9]+    regular expression, matched against the whole value
    annotations.runbook exists      present and not empty

Fields: `title`, `severity`, `source`, `group_key`, `integration` (its kind),
`labels.<name>`, `annotations.<name>`.

A rule's regular expression runs on every alert a service receives, so patterns are short,
checked when saved, and refused when they nest repetition (`(a+)+`, `(a|aa)*`), the shapes
that make a backtracking engine take exponential time; the text they run on is cut to
MAX_SUBJECT.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

try:  # The parser behind `re`; its module name changed in 3.11.
    import re._parser as _sre_parse  # type: ignore[import-not-found]
except ImportError:  # pragma: no cover
    import sre_parse as _sre_parse  # type: ignore[no-redef]

EQUALS, NOT_EQUALS, REGEX, EXISTS = "equals", "not_equals", "regex", "exists"
OPERATORS = {"=": EQUALS, "!=": NOT_EQUALS, "=~": REGEX}
SYMBOLS = {EQUALS: "=", NOT_EQUALS: "!=", REGEX: "=~"}
PLAIN_FIELDS = ("title", "severity", "source", "group_key", "integration")
PREFIXED_FIELDS = ("labels.", "annotations.")
MAX_MATCHERS = 20
MAX_VALUE = 200
MAX_REGEX = 200
MAX_SUBJECT = 1024

_LINE = re.compile(r"^\s*(?P<field>[A-Za-z_][\w.\-/]*)\s*(?P<rest>.*?)\s*$")


class MatcherError(ValueError):
    """The matchers cannot be saved; `errors` says which line and why."""

    def __init__(self, errors: list[str]):
        super().__init__("; ".join(errors))
        self.errors = errors


def _field_ok(name: str) -> bool:
    if name in PLAIN_FIELDS:
        return True
    return any(name.startswith(p) and len(name) > len(p) for p in PREFIXED_FIELDS)


def _nested_repeat(parsed, inside_repeat: bool = False) -> bool:
    """Whether a repetition contains another repetition (the catastrophic shape)."""
    for op, arg in parsed:
        name = str(op)
        if name in ("MAX_REPEAT", "MIN_REPEAT", "POSSESSIVE_REPEAT"):
            low, high, sub = arg
            unbounded_or_many = high is _sre_parse.MAXREPEAT or high > 1
            if unbounded_or_many and inside_repeat:
                return True
            if _nested_repeat(sub, inside_repeat or unbounded_or_many):
                return True
        elif name == "SUBPATTERN":
            if _nested_repeat(arg[-1], inside_repeat):
                return True
        elif name == "BRANCH":
            # (a|aa)* backtracks exponentially too: inside a repetition, only alternatives
            # of one character each, like (a|b)*, are safe enough to allow.
            if inside_repeat and any(len(list(branch)) != 1 for branch in arg[1]):
                return True
            if any(_nested_repeat(branch, inside_repeat) for branch in arg[1]):
                return True
        elif name in ("ASSERT", "ASSERT_NOT") and _nested_repeat(arg[1], inside_repeat):
            return True
    return False


def regex_problem(pattern: str) -> str | None:
    """Why this pattern cannot be used, or None."""
    if len(pattern) > MAX_REGEX:
        return f"the regular expression is longer than {MAX_REGEX} characters"
    try:
        re.compile(pattern)
        parsed = _sre_parse.parse(pattern)
    except (re.error, RecursionError, OverflowError, ValueError) as error:
        return f"the regular expression is invalid ({error})"
    if _nested_repeat(list(parsed)):
        return (
            "the regular expression repeats a repetition or a choice of words, "
            "which can take very long to match"
        )
    return None


def parse_matchers(text: str) -> list[dict[str, str]]:
    """One matcher per non-empty line; raises MatcherError listing every bad line."""
    matchers: list[dict[str, str]] = []
    errors: list[str] = []
    lines = [line for line in text.splitlines() if line.strip()]
    if len(lines) > MAX_MATCHERS:
        raise MatcherError([f"A rule has at most {MAX_MATCHERS} matchers."])
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        found = _LINE.match(line)
        if found is None:
            errors.append(f"Line {number}: start with a field, e.g. labels.team = payments.")
            continue
        name, rest = found["field"], found["rest"]
        if not _field_ok(name):
            errors.append(
                f"Line {number}: “{name[:60]}” is not a field; use title, severity, source, "
                "group_key, integration, labels.<name> or annotations.<name>."
            )
            continue
        if rest == "exists":
            matchers.append({"field": name, "op": EXISTS, "value": ""})
            continue
        for symbol in ("=~", "!=", "="):  # longest first
            if rest.startswith(symbol):
                op, value = OPERATORS[symbol], rest[len(symbol) :].strip()
                break
        else:
            errors.append(f"Line {number}: use =, !=, =~ or exists after “{name[:60]}”.")
            continue
        if len(value) > MAX_VALUE:
            errors.append(f"Line {number}: the value is longer than {MAX_VALUE} characters.")
            continue
        if op == REGEX:
            problem = regex_problem(value)
            if problem:
                errors.append(f"Line {number}: {problem}.")
                continue
        matchers.append({"field": name, "op": op, "value": value})
    if errors:
        raise MatcherError(errors)
    return matchers


def format_matchers(matchers: list[dict[str, str]]) -> str:
    """The text a person edits, the inverse of parse_matchers."""
    lines = []
    for m in matchers:
        if m.get("op") == EXISTS:
            lines.append(f"{m.get('field')} exists")
        else:
            lines.append(f"{m.get('field')} {SYMBOLS.get(m.get('op', ''), '=')} {m.get('value')}")
    return "\n".join(lines)


@dataclass(frozen=True)
class AlertFacts:
    """What matchers can look at, taken from an alert or an incoming event."""

    title: str = ""
    severity: str = ""
    source: str = ""
    group_key: str = ""
    integration: str = ""
    labels: Any = None
    annotations: Any = None

    def value(self, name: str) -> str | None:
        if name in PLAIN_FIELDS:
            raw: Any = getattr(self, name)
        else:
            prefix, _, key = name.partition(".")
            mapping = getattr(self, prefix, None)
            raw = mapping.get(key) if isinstance(mapping, dict) else None
        if raw is None:
            return None
        return (raw if isinstance(raw, str) else str(raw))[:MAX_SUBJECT]


_compiled: dict[str, re.Pattern | None] = {}


def _pattern(source: str) -> re.Pattern | None:
    if source not in _compiled:
        if len(_compiled) > 1000:
            _compiled.clear()
        # Stored rules were checked when saved; anything odd (edited in the database by
        # hand) never matches rather than raising inside alert intake.
        _compiled[source] = None if regex_problem(source) else re.compile(source)
    return _compiled[source]


def matcher_holds(matcher: Any, facts: AlertFacts) -> bool:
    if not isinstance(matcher, dict):
        return False
    field, op, expected = matcher.get("field"), matcher.get("op"), matcher.get("value", "")
    if not isinstance(field, str) or not isinstance(expected, str) or not _field_ok(field):
        return False
    value = facts.value(field)
    if op == EXISTS:
        return bool(value)
    actual = value or ""  # as in Alertmanager, a missing label is the empty string
    if op == EQUALS:
        return actual == expected
    if op == NOT_EQUALS:
        return actual != expected
    if op == REGEX:
        pattern = _pattern(expected)
        return pattern is not None and pattern.fullmatch(actual) is not None
    return False


def all_hold(matchers: Any, facts: AlertFacts) -> bool:
    """Every matcher holds (an empty list matches every alert). Never raises."""
    if not isinstance(matchers, list):
        return False
    return all(matcher_holds(m, facts) for m in matchers)

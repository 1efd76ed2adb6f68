"""Routing-rule matchers: whatever a person types or an alert carries, parsing raises only
MatcherError (shown as field errors) and matching never raises."""

from __future__ import annotations

import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from incidents.alerting.matchers import (
    AlertFacts,
    MatcherError,
    all_hold,
    format_matchers,
    parse_matchers,
    regex_problem,
)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=30),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=8,
)
names = st.text(alphabet="abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=10)
fields = st.sampled_from(["title", "severity", "source", "group_key", "integration"]) | st.builds(
    lambda prefix, name: f"{prefix}.{name}", st.sampled_from(["labels", "annotations"]), names
)
values = st.text(alphabet=st.characters(blacklist_categories=["Cc", "Cs", "Zl", "Zp"]), max_size=40)
matcher_lines = st.builds(
    lambda field, op, value: (
        f"{field} {op} {value}".rstrip() if op != "exists" else f"{field} exists"
    ),
    fields,
    st.sampled_from(["=", "!=", "=~", "exists"]),
    values,
)
facts = st.builds(
    AlertFacts,
    title=st.text(max_size=50),
    severity=st.sampled_from(["critical", "error", "warning", "info", ""]),
    source=st.text(max_size=20),
    group_key=st.text(max_size=20),
    integration=st.sampled_from(["alertmanager", "pagerduty", "generic"]),
    labels=json_values,
    annotations=json_values,
)


@given(st.text(max_size=300))
@settings(max_examples=300, deadline=None)
def test_any_text_parses_or_gives_line_errors(text):
    try:
        matchers = parse_matchers(text)
    except MatcherError as error:
        assert error.errors and all(isinstance(e, str) for e in error.errors)
    else:
        assert isinstance(matchers, list)


@given(st.lists(matcher_lines, max_size=6), facts)
@settings(max_examples=300, deadline=None)
def test_parsed_matchers_round_trip_and_never_raise_on_any_alert(lines, alert):
    try:
        matchers = parse_matchers("\n".join(lines))
    except MatcherError:
        return
    assert parse_matchers(format_matchers(matchers)) == matchers
    assert all_hold(matchers, alert) in (True, False)


@given(json_values, facts)
@settings(max_examples=300, deadline=None)
def test_stored_matchers_of_any_shape_never_raise(stored, alert):
    assert all_hold(stored, alert) in (True, False)


def test_each_operator_means_what_it_says():
    alert = AlertFacts(title="Disk full", labels={"team": "db", "instance": "db-12", "n": 3})
    assert all_hold(parse_matchers("labels.team = db"), alert)
    assert not all_hold(parse_matchers("labels.team != db"), alert)
    assert all_hold(parse_matchers("labels.env != prod"), alert)  # missing counts as empty
    assert all_hold(parse_matchers("labels.instance =~ db-[0-9]+"), alert)
    assert not all_hold(parse_matchers("labels.instance =~ db"), alert)  # whole value
    assert all_hold(parse_matchers("labels.n = 3\ntitle =~ Disk.*"), alert)
    assert all_hold(parse_matchers("labels.team exists"), alert)
    assert not all_hold(parse_matchers("annotations.runbook exists"), alert)
    assert all_hold([], alert)


@pytest.mark.parametrize(
    "text, message",
    [
        ("labels.x =~ (a+)+$", "repeats"),
        ("labels.x =~ (a|aa)*", "repeats"),
        ("labels.x =~ [", "invalid"),
        ("labels.x =~ " + "a" * 201, "longer than 200"),
        ("colour = red", "not a field"),
        ("labels.x ~ red", "use =, !=, =~ or exists"),
        ("labels. = x", "not a field"),
    ],
)
def test_bad_lines_are_explained(text, message):
    with pytest.raises(MatcherError) as caught:
        parse_matchers("labels.ok = 1\n" + text)
    assert caught.value.errors[0].startswith("Line 2:") and message in caught.value.errors[0]


def test_allowed_patterns_run_fast_on_long_hostile_values():
    for pattern in ["(a|b)*c", "[a-z]+-[0-9]+", "db-.*-prod", ".*x.*y.*z"]:
        assert regex_problem(pattern) is None
        alert = AlertFacts(labels={"x": "a" * 50_000})
        started = time.perf_counter()
        all_hold([{"field": "labels.x", "op": "regex", "value": pattern}], alert)
        assert time.perf_counter() - started < 0.5

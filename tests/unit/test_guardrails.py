"""Guardrails as pure functions (no Spark): quarantine limits and their hints, header diagnosis,
night-over-night bounds, the population stability index, and what --force changes."""

from __future__ import annotations

import json
import math
from datetime import UTC, date, datetime

import numpy as np
import pytest

from hybridrec.config import ChangeBound, load_config
from hybridrec.errors import ConfigError
from hybridrec.quality import guardrails as G
from hybridrec.quality.quarantine import ReasonCount, quarantine_breaches, quarantine_message, timestamp_unit_hint
from hybridrec.sources.headers import header_problems

DS = date(2026, 11, 22)
EPOCH_S = int(datetime(2026, 11, 20, 12, tzinfo=UTC).timestamp())


def _example(ts) -> str:
    return json.dumps({"user_id": "u1", "item_id": "i1", "event_ts": str(ts), "weight": "1"})


def test_quarantine_breaches_total_and_per_reason_limits():
    reasons = [ReasonCount("bad_weight", 4, "{}"), ReasonCount("future_event_ts", 2, "{}")]
    assert quarantine_breaches(100, reasons, 0.10, {}) == []
    [total] = quarantine_breaches(100, reasons, 0.05, {})
    assert "6 of 100 rows (6.0%)" in total and "max_quarantined_share 5.0%" in total
    [per_reason] = quarantine_breaches(100, reasons, 0.10, {"future_event_ts": 0.01})
    assert "2 rows (2.0%) quarantined as future_event_ts" in per_reason
    assert quarantine_breaches(0, [], 0.0, {}) == []


@pytest.mark.parametrize("unit, value, expected", [
    ("s", EPOCH_S * 1000, "'ms'"),          # milliseconds read as seconds
    ("s", EPOCH_S * 1_000_000, "'us'"),     # microseconds read as seconds
    ("ms", EPOCH_S * 1_000_000, "'us'"),
    ("ms", EPOCH_S, "'s'"),                 # seconds read as milliseconds (January 1970)
    ("iso", EPOCH_S, "'s'"),                # numbers given to the ISO parser
    ("s", EPOCH_S, None),                   # right unit: no hint
    ("s", "yesterday", None),
])
def test_timestamp_unit_hint_names_the_unit_that_makes_sense(unit, value, expected):
    hint = timestamp_unit_hint(str(value), unit, DS)
    if expected is None:
        assert hint is None
    else:
        assert f"set files.timestamp_unit = {expected}" in hint and "2026-11-20 12:00:00" in hint


def test_message_gives_counts_top_reasons_examples_and_hints():
    ms = ReasonCount("future_event_ts", 240, _example(EPOCH_S * 1000), "2600-01-01 00:00:00")
    breaches = quarantine_breaches(240, [ms], 0.05, {})
    message = quarantine_message("interactions", 240, [ms], breaches, unit="s", ds=DS)
    assert message.startswith("interactions: 240 of 240 rows (100.0%) quarantined")
    assert "Nothing was written" in message and "--force" in message
    assert "future_event_ts: 240 rows, e.g. {" in message
    assert "epoch milliseconds" in message and "files.timestamp_unit = 'ms'" in message
    late = ReasonCount("future_event_ts", 10, _example("2026-12-01T08:00:00"), "2026-12-01 08:00:00")
    message = quarantine_message("interactions", 10, [late], ["x"], unit="iso", ds=DS)
    assert "lie after the run date 2026-11-22 (the earliest at 2026-12-01 08:00:00): is --ds right" in message
    many = [ReasonCount(f"r{i}", 10 - i, "{}") for i in range(5)]
    shown = quarantine_message("items", 100, many, ["x"], unit="iso", ds=DS)
    assert "r0:" in shown and "r2:" in shown and "r3:" not in shown  # the top three reasons only


@pytest.mark.parametrize("columns, expected", [
    (["user_id", "item_id", "event_ts", "weight3", "weight4"], "repeats column 'weight' (positions [4, 5]"),
    (["user_id", "item_id", "event_ts", "Weight3", "weight4"], "repeats column 'weight'"),
    (["user_id", "item_id", "_c2", "weight"], "column 3 of the header has no name"),
    (["\ufeffuser_id", "item_id", "event_ts"], "byte-order mark"),
    (["User_ID", "item_id", "event_ts"], "column 'User_ID' differs only by case; expected 'user_id'"),
    (["user_id", " item_id ", "event_ts"], "column ' item_id ' has spaces around it; expected 'item_id'"),
    (["user_id", "item_id", "event_ts", " Title"], "expected 'title'"),
])
def test_header_problems_name_the_cause(columns, expected):
    problems = header_problems(columns, ["user_id", "item_id", "event_ts", "weight", "title"])
    assert any(expected in p for p in problems), problems


def test_a_good_header_has_no_problems():
    assert header_problems(["user_id", "item_id", "event_ts", "weight", "q1x"], ["user_id", "item_id"]) == []


def test_change_check_bounds_and_statuses():
    fail = ChangeBound(max_drop_pct=30, max_rise_pct=100, on_breach="fail")
    r = G.change_check("interactions", 50.0, 100.0, fail)
    assert (r.status, r.lower_bound, r.upper_bound, r.baseline) == (G.FAILED, 70.0, 200.0, 100.0)
    assert "interactions 50 vs 100" in r.message and "-50.0%" in r.message
    assert G.change_check("interactions", 70.0, 100.0, fail).status == G.PASSED
    assert G.change_check("interactions", 201.0, 100.0, fail).status == G.FAILED
    warn = ChangeBound(max_drop_pct=5, max_rise_pct=math.inf, on_breach="warn")
    r = G.change_check("users_with_recommendations", 0.5, 1.0, warn)
    assert r.status == G.WARNED and r.upper_bound is None
    assert G.change_check("items", 10.0, None, fail).status == G.NO_BASELINE
    assert G.change_check("new_item_share", 0.1, 0.0, fail).status == G.FAILED  # from none to some: infinite rise


def test_population_stability_index():
    same = np.array([10, 10, 10, 10])
    assert G.population_stability_index(same, same * 3) == pytest.approx(0.0)
    shifted = G.population_stability_index(np.array([25, 25, 25, 25]), np.array([70, 10, 10, 10]))
    # sum((p - q) ln(p / q)) by hand: 0.45 ln 2.8 + 3 * (-0.15) ln 0.4
    assert shifted == pytest.approx(0.45 * math.log(2.8) + 3 * -0.15 * math.log(0.4))
    assert G.population_stability_index(np.array([10, 0]), np.array([0, 10])) > 1  # empty bins stay finite


def test_force_turns_failures_into_forced_and_keeps_the_reasons():
    results = [G.CheckResult("a", 1.0, G.FAILED, "a moved"), G.CheckResult("b", 1.0, G.WARNED, "b moved"),
               G.CheckResult("c", 1.0, G.PASSED, "c fine")]
    stored, failures = G.verdict(results, force=False)
    assert failures == ["a moved"] and [r.status for r in stored] == [G.FAILED, G.WARNED, G.PASSED]
    stored, failures = G.verdict(results, force=True)
    assert failures == ["a moved"] and [r.status for r in stored] == [G.FORCED, G.WARNED, G.PASSED]


def test_guardrail_config_is_validated():
    cfg = load_config(overrides=["guardrails.change.interactions.max_drop_pct=60",
                                 "guardrails.max_quarantined_share_by_reason={future_event_ts=0.01}"])
    assert cfg.guardrails.change["interactions"].max_drop_pct == 60
    assert cfg.guardrails.change["users"].max_drop_pct == 30  # the rest of the defaults stay
    assert cfg.guardrails.max_quarantined_share_by_reason == {"future_event_ts": 0.01}
    with pytest.raises(ConfigError, match="unknown key 'clicks'"):
        load_config(overrides=['guardrails.change.clicks={max_drop_pct=1, max_rise_pct=1, on_breach="fail"}'])
    with pytest.raises(ConfigError, match="must lie in"):
        load_config(overrides=["guardrails.max_quarantined_share_by_reason={bad_weight=2}"])

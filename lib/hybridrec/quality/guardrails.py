"""Night-over-night guardrails, pure: each check compares one figure of tonight's inputs or outputs
with the last published night's (or with a fixed limit) and says passed, warned or failed. The
steps/guardrails.py step computes the figures, stores every result in `data_quality` and refuses
to publish on a failure unless forced."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from hybridrec.config import ChangeBound

PASSED, WARNED, FAILED, FORCED, NO_BASELINE = "passed", "warned", "failed", "forced", "no_baseline"
SCORE_PSI = "score_psi"
PSI_FLOOR = 1e-4  # share given to an empty bin, so one empty bin does not make the index infinite


@dataclass(frozen=True)
class CheckResult:
    check: str
    value: float | None
    status: str
    message: str
    baseline: float | None = None
    lower_bound: float | None = None
    upper_bound: float | None = None


def _finite(x: float) -> float | None:
    return x if math.isfinite(x) else None


def change_check(check: str, value: float, baseline: float | None, bound: ChangeBound) -> CheckResult:
    """`value` within [-max_drop_pct, +max_rise_pct] of `baseline` (the last published night's)."""
    if baseline is None:
        return CheckResult(check, value, NO_BASELINE, f"{check} {value:g}: no earlier published night to compare")
    lower = baseline * (1 - bound.max_drop_pct / 100)
    upper = baseline * (1 + bound.max_rise_pct / 100)
    change = (value - baseline) / baseline * 100 if baseline else (0.0 if value == 0 else math.inf)
    inside = lower <= value <= upper
    status = PASSED if inside else (FAILED if bound.on_breach == "fail" else WARNED)
    message = (f"{check} {value:g} vs {baseline:g} on the last published night ({change:+.1f}%; allowed "
               f"-{bound.max_drop_pct:g}% .. +{bound.max_rise_pct:g}%)")
    return CheckResult(check, value, status, message, baseline, _finite(lower), _finite(upper))


def limit_check(check: str, value: float, upper: float, on_breach: str, what: str) -> CheckResult:
    """`value` at most `upper` (a fixed limit, named `what` in the message)."""
    status = PASSED if value <= upper else (FAILED if on_breach == "fail" else WARNED)
    return CheckResult(check, value, status, f"{check} {value:.4g} (limit {what} {upper:g})", upper_bound=upper)


def population_stability_index(baseline_counts: np.ndarray, counts: np.ndarray) -> float:
    """PSI between two histograms over the same bins: sum((p - q) * ln(p / q)). Above 0.25 is the
    usual reading of a large shift, 0.1-0.25 a moderate one."""
    q = np.maximum(baseline_counts / max(1, baseline_counts.sum()), PSI_FLOOR)
    p = np.maximum(counts / max(1, counts.sum()), PSI_FLOOR)
    return float(np.sum((p - q) * np.log(p / q)))


def verdict(results: list[CheckResult], force: bool) -> tuple[list[CheckResult], list[str]]:
    """(results as stored, the failures in words). Forced: failed checks are stored as forced."""
    failures = [r.message for r in results if r.status == FAILED]
    if force:
        results = [replace(r, status=FORCED) if r.status == FAILED else r for r in results]
    return results, failures

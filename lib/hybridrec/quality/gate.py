"""The nightly gate's verdict and the strategies every evaluation compares: pure functions of the
metrics (the gate step in steps/gate.py reads and writes)."""

from __future__ import annotations

import math

import pandas as pd

from hybridrec import schema as S
from hybridrec.config import Config
from hybridrec.errors import EvaluationError
from hybridrec.quality.metrics import SEGMENT_ALL
from hybridrec.scoring.params import Blend, blend_from_config

POPULARITY, ALS, CONTENT, HYBRID = S.POPULARITY_STRATEGY, S.ALS_STRATEGY, S.CONTENT_STRATEGY, S.HYBRID


def baseline_blends(cfg: Config) -> dict[str, Blend]:
    """The four strategies every evaluation compares; hybrid is the configured blend."""
    return {
        POPULARITY: Blend(als=0, recent=0, popularity=1, content=0, new_item_slots=0),
        ALS: Blend(als=1, recent=0, popularity=0, content=0, new_item_slots=0),
        CONTENT: Blend(als=0, recent=0, popularity=0, content=1, new_item_slots=0),
        HYBRID: blend_from_config(cfg.recommend),
    }


def variant_strategy(name: str) -> str:
    """The metrics' strategy name of an experiment arm's hybrid: hybrid for control, hybrid:<variant>."""
    return HYBRID if name == "control" else f"{HYBRID}:{name}"


def metric_value(metrics: pd.DataFrame, strategy: str, metric: str, k: int, segment: str = SEGMENT_ALL) -> float:
    rows = metrics[(metrics[S.STRATEGY] == strategy) & (metrics["segment"] == segment)
                   & (metrics["metric"] == metric) & (metrics["k"] == k)]
    if rows.empty:
        raise EvaluationError(f"expected metric {segment}/{metric}@{k} for {strategy!r}, found none")
    return float(rows["value"].iloc[0])


def gate_failures(metrics: pd.DataFrame, *, k: int, max_drop_pct: float, previous_ndcg: float | None,
                  als_margin_pct: float = 0.0, ease_margin_pct: float | None = None, strategy: str = HYBRID) -> list[str]:
    """Why the night must not be published (empty = publish). EASE is compared when its rows are in
    `metrics` and `ease_margin_pct` is given. `strategy`: the hybrid of an experiment's variant."""
    hybrid = metric_value(metrics, strategy, "ndcg", k)
    failures = []
    references = [(ALS, "ALS-only", als_margin_pct)]
    has_ease = ((metrics[S.STRATEGY] == S.EASE_STRATEGY) & (metrics["metric"] == "ndcg")).any()
    if ease_margin_pct is not None and has_ease:
        references.append((S.EASE_STRATEGY, "the EASE reference", ease_margin_pct))
    for reference_strategy, label, margin in references:
        reference = metric_value(metrics, reference_strategy, "ndcg", k)
        floor = reference * (1 - margin / 100)
        # Identical lists can differ in the last bits: Spark sums the per-user values in no fixed order.
        if hybrid < floor and not math.isclose(hybrid, floor, rel_tol=1e-9, abs_tol=1e-12):
            failures.append(f"{strategy} ndcg@{k} {hybrid:.4f} is below {label} {reference:.4f} by "
                            f"{reference - hybrid:.4f} ({100 * (reference - hybrid) / max(reference, 1e-12):.1f}%; "
                            f"allowed: {margin:.1f}%)")
    if previous_ndcg is not None and hybrid < previous_ndcg * (1 - max_drop_pct / 100):
        failures.append(f"{strategy} ndcg@{k} {hybrid:.4f} is {100 * (previous_ndcg - hybrid) / previous_ndcg:.1f}% below "
                        f"the last published night's {previous_ndcg:.4f} (allowed: {max_drop_pct:.1f}%)")
    return failures

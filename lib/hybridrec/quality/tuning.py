"""Tuning, pure: the blend grid, choosing the best trial, and the TOML the nightly run loads
(the search itself, which fits ALS and scores a validation split, is in steps/evaluation.py)."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import pandas as pd

from hybridrec.config import AlsConfig, Config, TuneConfig
from hybridrec.quality.gate import ALS, HYBRID
from hybridrec.scoring.params import Blend


def blend_grid(step: float, max_weight: float, new_item_slots: int) -> list[Blend]:
    """Every (als, recent, popularity, content) on the step grid summing to 1, each <= max_weight, content > 0."""
    n = round(1 / step)
    out = []
    for a, r, p in itertools.product(range(n + 1), repeat=3):
        c = n - a - r - p
        weights = [a / n, r / n, p / n, c / n]
        if c >= 1 and max(weights) <= max_weight + 1e-9:
            out.append(Blend(*weights, new_item_slots=new_item_slots))
    return out


@dataclass
class TuneResult:
    als_for_als: AlsConfig        # best ALS settings for the ALS-only strategy
    als_for_hybrid: AlsConfig     # best ALS settings for the hybrid, with...
    blend: Blend        # ...the best blend
    trials: pd.DataFrame          # one row per (ALS settings, blend): its validation NDCG@k


def tuned_config_toml(result: TuneResult, ndcg_key: str) -> str:
    """The [als] and [recommend] settings the nightly run should use (`--config FILE`)."""
    a, b = result.als_for_hybrid, result.blend
    best = result.trials[ndcg_key].max()
    return "\n".join([
        f"# Written by `hybridrec tune`: best validation {ndcg_key} {best:.4f} over {len(result.trials)} trials.",
        "[als]", f"rank = {a.rank}", f"reg_param = {a.reg_param}", f"alpha = {a.alpha}", f"max_iter = {a.max_iter}",
        "", "[recommend]", f"als_weight = {b.als}", f"recent_weight = {b.recent}",
        f"popularity_weight = {b.popularity}", f"content_weight = {b.content}", "",
    ])


def als_grid(cfg: Config) -> list[AlsConfig]:
    t: TuneConfig = cfg.tune
    return [cfg.als.model_copy(update={"rank": rank, "reg_param": reg, "alpha": alpha, "max_iter": iters})
            for rank, reg, alpha, iters in itertools.product(t.ranks, t.reg_params, t.alphas, t.max_iters)]


def choose(trials: pd.DataFrame, cfg: Config) -> TuneResult:
    """The best ALS settings for ALS alone, and the best (ALS settings, blend) for the hybrid."""
    metric = f"ndcg@{cfg.tune.k}"
    best_als = trials[trials["strategy"] == ALS].sort_values(metric, ascending=False, kind="stable").iloc[0]
    best_hybrid = trials[trials["strategy"] == HYBRID].sort_values(metric, ascending=False, kind="stable").iloc[0]

    def als_of(row: pd.Series) -> AlsConfig:
        return cfg.als.model_copy(update={"rank": int(row["rank"]), "reg_param": float(row["reg_param"]),
                                          "alpha": float(row["alpha"]), "max_iter": int(row["max_iter"])})

    blend = Blend(als=float(best_hybrid["als"]), recent=float(best_hybrid["recent"]),
                  popularity=float(best_hybrid["popularity"]), content=float(best_hybrid["content"]),
                  new_item_slots=cfg.recommend.new_item_slots)
    return TuneResult(als_of(best_als), als_of(best_hybrid), blend, trials)

"""Offline quality: `evaluate` (all strategies on a holdout), `tune` (grid search on a validation
split carved from training only) and the nightly `gate` step (evaluate before publishing).

Reads and writes happen here; splits and metrics are the pure functions in hybridrec.evaluate.
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
import math
from dataclasses import dataclass
from datetime import date

import pandas as pd
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from hybridrec import evaluate as ev
from hybridrec import recommend
from hybridrec import schema as S
from hybridrec.config import AlsConfig, Config
from hybridrec.context import RunContext, fit_factors, positive_min_weight, scoring_inputs
from hybridrec.embed import latest_embeddings
from hybridrec.errors import EvaluationError, QualityGateError
from hybridrec.io.delta import partitions, read_table
from hybridrec.runs import StepRecord

log = logging.getLogger(__name__)

POPULARITY, ALS, CONTENT, HYBRID = "popularity", "als", "content", "hybrid"


def baseline_blends(cfg: Config) -> dict[str, recommend.Blend]:
    """The four strategies every evaluation compares; hybrid is the configured blend."""
    return {
        POPULARITY: recommend.Blend(als=0, recent=0, popularity=1, content=0, new_item_slots=0),
        ALS: recommend.Blend(als=1, recent=0, popularity=0, content=0, new_item_slots=0),
        CONTENT: recommend.Blend(als=0, recent=0, popularity=0, content=1, new_item_slots=0),
        HYBRID: recommend.blend_from_config(cfg.recommend),
    }


@dataclass
class Holdout:
    train: DataFrame              # interactions used for training (persisted)
    relevant: DataFrame           # user_id, item_id, is_cold (persisted)
    users: DataFrame              # user_id, n_train, is_light: the evaluated users (persisted)
    n_users: int
    n_relevant: int

    def release(self) -> None:
        for df in (self.train, self.relevant, self.users):
            df.unpersist()


def make_holdout(interactions: DataFrame, cfg: Config, *, max_users: int | None = None) -> Holdout:
    """Splits `interactions` by the configured protocol; raises EvaluationError when nothing is testable."""
    e = cfg.evaluate
    if e.protocol == "per_user":
        split = ev.with_per_user_split(interactions, e.test_fraction)
    else:
        seconds = interactions.select(F.unix_timestamp(S.EVENT_TS).alias("t"))
        cutoff = seconds.approxQuantile("t", [1.0 - e.test_fraction], 0.001)[0]
        split = ev.with_time_split(interactions, cutoff)
    split = split.persist()
    train = ev.training_part(split).persist()
    relevant = ev.relevant_items(split, positive_min_weight(cfg))
    users = ev.evaluation_users(split, relevant, e.light_user_max_interactions)
    users = ev.sample_users(users, e.max_users if max_users is None else max_users, e.sample_seed).persist()
    relevant = relevant.join(users.select(S.USER_ID), S.USER_ID).persist()
    n_users, n_relevant = users.count(), relevant.count()
    train.count()
    split.unpersist()
    if n_users == 0:
        raise EvaluationError(
            f"protocol {e.protocol} with test_fraction {e.test_fraction}: expected users with a positive "
            f"(weight >= {positive_min_weight(cfg)}) test event on an unseen item, found none")
    log.info("holdout (%s): %d users, %d relevant items", e.protocol, n_users, n_relevant)
    return Holdout(train, relevant, users, n_users, n_relevant)


def validation_holdout(holdout: Holdout, cfg: Config) -> Holdout:
    """The same protocol applied to the training part only: tuning never sees the test events."""
    return make_holdout(holdout.train, cfg)


def score_holdout(ctx: RunContext, holdout: Holdout, als_cfg: AlsConfig,
                  blends: dict[str, recommend.Blend], top_n: int) -> DataFrame:
    """strategy, user_id, rank, item_id for every evaluated user and blend, from ALS fitted on holdout.train."""
    user_factors, item_factors = fit_factors(holdout.train, als_cfg, ctx.ds)
    params = recommend.scoring_params(ctx.cfg.recommend, positive_min_weight(ctx.cfg), ctx.ds,
                                      blends=tuple(blends.items()))
    params = dataclasses.replace(params, top_n=top_n, mark_new_items=False, explain=False)
    inputs = scoring_inputs(ctx, interactions=holdout.train, items=ctx.read(S.ITEMS), item_factors=item_factors,
                            user_factors=user_factors, params=params)
    histories = inputs.histories.join(holdout.users.select(S.USER_ID), S.USER_ID)
    recs = (recommend.with_hybrid_recommendations(histories, inputs.index_bc, params)
            .select(S.STRATEGY, S.USER_ID, S.RANK, S.ITEM_ID).persist())
    recs.count()
    inputs.release()
    user_factors.unpersist()
    item_factors.unpersist()
    return recs


def holdout_metrics(ctx: RunContext, holdout: Holdout, recs: DataFrame) -> pd.DataFrame:
    """All metrics (strategy, segment, metric, k, value) for `recs` on `holdout`, on the driver."""
    e = ctx.cfg.evaluate
    items = ctx.read(S.ITEMS)
    accuracy = ev.ranking_metrics(recs, holdout.relevant, holdout.users, e.ks, e.cold_k)
    embeddings = latest_embeddings(ctx.read(S.ITEM_EMBEDDINGS), items, model=ctx.cfg.embedding.model)
    beyond = ev.beyond_accuracy_metrics(recs, holdout.train, embeddings, catalogue_size=items.count(), ks=e.ks)
    return accuracy.unionByName(beyond).toPandas()


def run_evaluation(ctx: RunContext, als_by_strategy: dict[str, AlsConfig] | None = None,
                   blends: dict[str, recommend.Blend] | None = None) -> pd.DataFrame:
    """Evaluates every strategy on the holdout; strategies that share ALS settings share one fit."""
    cfg = ctx.cfg
    blends = blends or baseline_blends(cfg)
    als_by_strategy = als_by_strategy or {}
    holdout = make_holdout(ctx.read(S.INTERACTIONS), cfg)
    top_n = max([*cfg.evaluate.ks, cfg.evaluate.cold_k])
    groups: dict[AlsConfig, dict[str, recommend.Blend]] = {}
    for name, blend in blends.items():
        groups.setdefault(als_by_strategy.get(name, cfg.als), {})[name] = blend
    frames = []
    for als_cfg, group in groups.items():
        recs = score_holdout(ctx, holdout, als_cfg, group, top_n)
        frames.append(holdout_metrics(ctx, holdout, recs))
        recs.unpersist()
    holdout.release()
    metrics = pd.concat(frames, ignore_index=True)
    metrics.insert(0, S.RUN_ID, ctx.run_id)
    metrics.insert(0, S.DS, ctx.ds)
    return metrics.astype({"k": "int32", "value": "float64"})


def write_metrics(ctx: RunContext, metrics: pd.DataFrame) -> None:
    ctx.append(metrics[S.METRICS.columns].to_dict("records"), S.METRICS)


def metric_value(metrics: pd.DataFrame, strategy: str, metric: str, k: int, segment: str = ev.SEGMENT_ALL) -> float:
    rows = metrics[(metrics[S.STRATEGY] == strategy) & (metrics["segment"] == segment)
                   & (metrics["metric"] == metric) & (metrics["k"] == k)]
    if rows.empty:
        raise EvaluationError(f"expected metric {segment}/{metric}@{k} for {strategy!r}, found none")
    return float(rows["value"].iloc[0])


def gate_failures(metrics: pd.DataFrame, *, k: int, max_drop_pct: float, previous_ndcg: float | None) -> list[str]:
    """Why the night must not be published (empty = publish)."""
    hybrid, als_only = metric_value(metrics, HYBRID, "ndcg", k), metric_value(metrics, ALS, "ndcg", k)
    failures = []
    # Identical lists can differ in the last bits: Spark sums the per-user values in no fixed order.
    if hybrid < als_only and not math.isclose(hybrid, als_only, rel_tol=1e-9, abs_tol=1e-12):
        failures.append(f"hybrid ndcg@{k} {hybrid:.4f} is below ALS-only {als_only:.4f} "
                        f"by {als_only - hybrid:.4f} ({100 * (als_only - hybrid) / max(als_only, 1e-12):.1f}%)")
    if previous_ndcg is not None and hybrid < previous_ndcg * (1 - max_drop_pct / 100):
        failures.append(f"hybrid ndcg@{k} {hybrid:.4f} is {100 * (previous_ndcg - hybrid) / previous_ndcg:.1f}% below "
                        f"the last published night's {previous_ndcg:.4f} (allowed: {max_drop_pct:.1f}%)")
    return failures


def previous_published_ndcg(ctx: RunContext, k: int) -> tuple[date | None, float | None]:
    """hybrid ndcg@k measured by the run that published the newest ds before this one."""
    earlier = [d for d in partitions(ctx.spark, ctx.root, S.RECOMMENDATIONS) if d < ctx.ds]
    if not earlier:
        return None, None
    previous = earlier[-1]
    recs = read_table(ctx.spark, ctx.root, S.RECOMMENDATIONS, ds=previous)
    run_id = recs.select(S.RUN_ID).first()[S.RUN_ID]
    metrics = read_table(ctx.spark, ctx.root, S.METRICS, ds=previous, required=False)
    row = (metrics.filter((F.col(S.RUN_ID) == run_id) & (F.col(S.STRATEGY) == HYBRID)
                          & (F.col("segment") == ev.SEGMENT_ALL) & (F.col("metric") == "ndcg") & (F.col("k") == k))
           .select("value").first())
    return earlier[-1], (None if row is None else float(row["value"]))


def gate_step(ctx: RunContext, record: StepRecord) -> None:
    """Evaluate on the holdout; refuse to publish (raise) when the hybrid falls below the gate."""
    gate = ctx.cfg.gate
    if not gate.enabled:
        record.message = "gate disabled in config"
        return
    cfg = ctx.cfg
    evaluate = cfg.evaluate.model_copy(update={"ks": sorted({*cfg.evaluate.ks, gate.k}), "max_users": gate.max_users})
    cfg = cfg.model_copy(update={"evaluate": evaluate})
    metrics = run_evaluation(RunContext(ctx.spark, cfg, ctx.ds, ctx.run_id))
    write_metrics(ctx, metrics)
    print_metrics(metrics)
    previous_ds, previous = previous_published_ndcg(ctx, gate.k)
    failures = gate_failures(metrics, k=gate.k, max_drop_pct=gate.max_drop_pct, previous_ndcg=previous)
    record.row_counts.update({"metrics": len(metrics), "gate_failures": len(failures)})
    hybrid = metric_value(metrics, HYBRID, "ndcg", gate.k)
    last = "none earlier" if previous is None else f"{previous:.4f} on {previous_ds}"
    summary = f"hybrid ndcg@{gate.k} {hybrid:.4f} (ALS-only {metric_value(metrics, ALS, 'ndcg', gate.k):.4f}); " \
              f"last published night: {last}"
    if failures and ctx.force:
        record.row_counts["gate_forced"] = 1
        record.message = "FORCED past the quality gate: " + "; ".join(failures)
        log.warning("%s", record.message)
    elif failures:
        raise QualityGateError("quality gate failed, night not published: " + "; ".join(failures))
    else:
        record.message = "gate passed: " + summary
        log.info("%s", record.message)


# ---- presentation -------------------------------------------------------------------------------

def print_metrics(metrics: pd.DataFrame) -> None:
    table = metrics.assign(name=lambda m: m.apply(_metric_name, axis=1)).pivot_table(
        index="name", columns=S.STRATEGY, values="value", aggfunc="first", sort=False)
    print(table.to_string(float_format=lambda v: f"{v:.4f}"), flush=True)


def _metric_name(row: pd.Series) -> str:
    base = f"{row['metric']}@{row['k']}" if row["metric"] != "users" else "users"
    if row["segment"] == ev.SEGMENT_COLD:
        return f"cold_{base}" if row["metric"] != "users" else "cold_items/users"
    return base if row["segment"] == ev.SEGMENT_ALL else f"{row['segment']}/{base}"


def metrics_json(metrics: pd.DataFrame, cfg: Config, dataset: str) -> dict:
    strategies: dict[str, dict[str, float]] = {}
    for _, row in metrics.iterrows():
        strategies.setdefault(row[S.STRATEGY], {})[_metric_name(row)] = round(float(row["value"]), 6)
    return {"dataset": dataset, "protocol": cfg.evaluate.model_dump(), "strategies": strategies}


def write_chart(metrics: pd.DataFrame, path: str, k: int, cold_k: int) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shown = [f"ndcg@{k}", f"recall@{k}", f"cold_recall@{cold_k}", f"coverage@{k}"]
    table = metrics.assign(name=lambda m: m.apply(_metric_name, axis=1))
    table = table[table["name"].isin(shown)].pivot_table(index=S.STRATEGY, columns="name", values="value")
    fig, axes = plt.subplots(1, len(shown), figsize=(4 * len(shown), 3.5))
    for ax, name in zip(axes, shown, strict=True):
        values = table[name] if name in table else pd.Series(dtype=float)
        ax.bar(values.index, values.to_numpy(), color="#4c72b0")
        ax.set_title(name)
        ax.tick_params(axis="x", rotation=30)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


# ---- tuning -------------------------------------------------------------------------------------

def blend_grid(step: float, max_weight: float, new_item_slots: int) -> list[recommend.Blend]:
    """Every (als, recent, popularity, content) on the step grid summing to 1, each <= max_weight, content > 0."""
    n = round(1 / step)
    out = []
    for a, r, p in itertools.product(range(n + 1), repeat=3):
        c = n - a - r - p
        weights = [a / n, r / n, p / n, c / n]
        if c >= 1 and max(weights) <= max_weight + 1e-9:
            out.append(recommend.Blend(*weights, new_item_slots=new_item_slots))
    return out


@dataclass
class TuneResult:
    als_for_als: AlsConfig        # best ALS settings for the ALS-only strategy
    als_for_hybrid: AlsConfig     # best ALS settings for the hybrid, with...
    blend: recommend.Blend        # ...the best blend
    trials: pd.DataFrame          # one row per (ALS settings, blend): its validation NDCG@k


def run_tuning(ctx: RunContext) -> TuneResult:
    """Grid search on a validation split carved from the evaluation split's training part."""
    cfg, t = ctx.cfg, ctx.cfg.tune
    outer = make_holdout(ctx.read(S.INTERACTIONS), cfg)
    valid = validation_holdout(outer, cfg)
    outer.release()
    grid = {f"b{i:03d}": b for i, b in enumerate(blend_grid(t.weight_step, t.max_weight, 0))}
    grid[ALS] = recommend.Blend(als=1, recent=0, popularity=0, content=0, new_item_slots=0)
    rows = []
    for rank, reg, alpha, iters in itertools.product(t.ranks, t.reg_params, t.alphas, t.max_iters):
        als_cfg = cfg.als.model_copy(update={"rank": rank, "reg_param": reg, "alpha": alpha, "max_iter": iters})
        recs = score_holdout(ctx, valid, als_cfg, grid, t.k)
        ndcg = ev.ranking_metrics(recs, valid.relevant, valid.users, [t.k], t.k)
        ndcg = ndcg.filter((F.col("segment") == ev.SEGMENT_ALL) & (F.col("metric") == "ndcg")).toPandas()
        recs.unpersist()
        for _, m in ndcg.iterrows():
            blend = grid[m[S.STRATEGY]]
            rows.append({"rank": rank, "reg_param": reg, "alpha": alpha, "max_iter": iters,
                         "strategy": ALS if m[S.STRATEGY] == ALS else HYBRID, **blend.__dict__,
                         f"ndcg@{t.k}": m["value"]})
        best = max(r[f"ndcg@{t.k}"] for r in rows[-len(ndcg):])
        als_only = next(r[f"ndcg@{t.k}"] for r in rows[-len(ndcg):] if r["strategy"] == ALS)
        log.info("trial rank=%d reg_param=%g alpha=%g max_iter=%d: ALS ndcg@%d %.4f, best blend %.4f",
                 rank, reg, alpha, iters, t.k, als_only, best)
    valid.release()
    trials = pd.DataFrame(rows)
    metric = f"ndcg@{t.k}"
    best_als = trials[trials["strategy"] == ALS].sort_values(metric, ascending=False, kind="stable").iloc[0]
    best_hybrid = trials[trials["strategy"] == HYBRID].sort_values(metric, ascending=False, kind="stable").iloc[0]

    def als_of(row: pd.Series) -> AlsConfig:
        return cfg.als.model_copy(update={"rank": int(row["rank"]), "reg_param": float(row["reg_param"]),
                                          "alpha": float(row["alpha"]), "max_iter": int(row["max_iter"])})

    blend = recommend.Blend(als=float(best_hybrid["als"]), recent=float(best_hybrid["recent"]),
                            popularity=float(best_hybrid["popularity"]), content=float(best_hybrid["content"]),
                            new_item_slots=cfg.recommend.new_item_slots)
    return TuneResult(als_of(best_als), als_of(best_hybrid), blend, trials)


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

"""`python -m benchmarks.user_text --ds D`: how well users' own words stand in for a history.

On an ingested and embedded night whose users table carries text (the synthetic set writes it from
each user's latent tastes): a seeded sample of users who have both words and history have their whole
history hidden. ALS (and the ranker, when enabled) are fitted without them; they are then scored as
text-only newcomers, and their hidden positive items are the relevant ones. Strategies: popularity
(what a newcomer got before), content and the linear blend from the words, and the ranker; on the
synthetic set also the ceiling (the generator's own law with each user's true tastes). NDCG@k,
recall@k; a table and JSON.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import time
from datetime import date

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from hybridrec import schema as S
from hybridrec.cli import configure_logging
from hybridrec.config import dataset_kind, load_config, positive_min_weight
from hybridrec.io.encoders import with_night_encoder
from hybridrec.quality import metrics as qm
from hybridrec.quality import splits
from hybridrec.quality.gate import CONTENT, HYBRID, POPULARITY, baseline_blends
from hybridrec.scoring.arrow import with_hybrid_recommendations
from hybridrec.scoring.params import scoring_params
from hybridrec.session import build_spark_session
from hybridrec.sources.synthetic import latent_model
from hybridrec.steps import RunContext
from hybridrec.steps.context import scoring_inputs
from hybridrec.steps.evaluation import make_holdout
from hybridrec.steps.ranking import ranker_params, train_ranker
from hybridrec.transforms.als import fit_factors

log = logging.getLogger("benchmarks.user_text")
CEILING = "ceiling: true tastes"


def ceiling_lists(ctx: RunContext, users: DataFrame, n: int) -> DataFrame:
    """On the synthetic set: each user's n most probable next items under the generator's own law (their
    true latent tastes, which no recommender sees). No ranking can expect more; it bounds every target."""
    ids = sorted(r[S.USER_ID] for r in users.select(S.USER_ID).collect())
    top = latent_model(ctx.cfg.synthetic).most_probable_items(ids, n)
    rows = pd.DataFrame({S.STRATEGY: CEILING, S.USER_ID: np.repeat(ids, n), S.RANK: np.tile(np.arange(1, n + 1), len(ids)),
                         S.ITEM_ID: top.ravel().tolist()})
    return ctx.spark.createDataFrame(rows).selectExpr(
        S.STRATEGY, S.USER_ID, f"CAST({S.RANK} AS INT) AS {S.RANK}", S.ITEM_ID)


def text_only_table(ctx: RunContext, n_users: int, seed: int) -> pd.DataFrame:
    cfg, k = ctx.cfg, ctx.cfg.evaluate.ks[0]
    interactions = ctx.read(S.INTERACTIONS)
    writers = ctx.read(S.USERS).where(F.col(S.TEXT).isNotNull()).select(S.USER_ID)
    hidden = (writers.join(interactions.select(S.USER_ID).distinct(), S.USER_ID)
              .orderBy(F.xxhash64(S.USER_ID, F.lit(seed)), S.USER_ID).limit(n_users).persist())
    train = interactions.join(hidden, S.USER_ID, "left_anti").persist()
    relevant = (interactions.join(hidden, S.USER_ID).where(F.col(S.WEIGHT) >= positive_min_weight(cfg))
                .select(S.USER_ID, S.ITEM_ID).distinct().withColumn(splits.IS_COLD, F.lit(False)).persist())
    users = relevant.select(S.USER_ID).distinct().withColumns(
        {splits.N_TRAIN: F.lit(0), splits.IS_LIGHT: F.lit(True)}).persist()
    blends = {name: b for name, b in baseline_blends(cfg).items() if name in (POPULARITY, CONTENT, HYBRID)}
    blends = {POPULARITY: blends[POPULARITY], CONTENT: blends[CONTENT], S.BLEND_STRATEGY: blends[HYBRID]}
    ranker = train_ranker(ctx, holdout := make_holdout(train, cfg)) if cfg.ranker.enabled else None
    if ranker is not None:
        holdout.release()
        if ranker.model is not None:
            blends["ranker"] = dataclasses.replace(blends[S.BLEND_STRATEGY], ranked=True)
    user_factors, item_factors = fit_factors(train, cfg.als, ctx.ds)
    params = scoring_params(cfg.recommend, positive_min_weight(cfg), ctx.ds, blends=tuple(blends.items()))
    # As `evaluate` scores: lists of max(k, cold_k), so new-item places sit where the product puts them.
    params = dataclasses.replace(ranker_params(params, cfg, ranker.model if ranker else None),
                                 top_n=max(k, cfg.evaluate.cold_k), mark_new_items=False, explain=False)
    inputs = scoring_inputs(ctx, interactions=train, items=ctx.read(S.ITEMS), item_factors=item_factors,
                            user_factors=user_factors, params=params, neighbours=bool(ranker and ranker.model),
                            text_only_users=True)
    recs = with_hybrid_recommendations(inputs.histories.join(hidden, S.USER_ID), inputs.index_bc, params)
    lists = recs.select(S.STRATEGY, S.USER_ID, S.RANK, S.ITEM_ID)
    if dataset_kind(cfg) == "synthetic":
        lists = lists.unionByName(ceiling_lists(ctx, users, params.top_n))
    table = qm.ranking_metrics(lists, relevant, users, [k], k).toPandas()
    inputs.release()
    shown = table[(table["segment"] == qm.SEGMENT_ALL) & table["metric"].isin(["ndcg", "recall"])]
    out = shown.assign(name=shown["metric"] + "@" + shown["k"].astype(str)).pivot_table(
        index=S.STRATEGY, columns="name", values="value").reset_index()
    out["users"] = users.count()
    out[f"x popularity ndcg@{k}"] = out[f"ndcg@{k}"] / float(out.loc[out[S.STRATEGY] == POPULARITY, f"ndcg@{k}"].iloc[0])
    return out.sort_values(f"ndcg@{k}").reset_index(drop=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.user_text", description=__doc__)
    parser.add_argument("--ds", type=date.fromisoformat, required=True, help="an ingested and embedded night")
    parser.add_argument("--config")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--users", type=int, default=300, help="users whose history is hidden")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--json", help="also write the table here")
    args = parser.parse_args(argv)
    configure_logging()
    cfg = load_config(args.config, args.overrides)
    spark = build_spark_session(cfg)
    spark.sparkContext.setLogLevel("WARN")
    started = time.perf_counter()
    try:
        ctx = RunContext(spark=spark, cfg=with_night_encoder(spark, cfg, args.ds), ds=args.ds)
        table = text_only_table(ctx, args.users, args.seed)
    finally:
        spark.stop()
    print(table.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    print(f"{time.perf_counter() - started:.1f} s")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump({"ds": args.ds.isoformat(), "users": args.users, "seed": args.seed, "encoder": ctx.cfg.embedding.model,
                       "seconds": round(time.perf_counter() - started, 1), "table": table.to_dict("records")}, fh, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

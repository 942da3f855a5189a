"""`python -m benchmarks.diversity --ds D`: the MMR trade-off curve on an existing lakehouse. One
holdout of the configured protocol, one ALS fit and one ranker (trained on a validation split of the
holdout's training part, as `hybridrec evaluate` does), then the hybrid's lists for every lambda in
one scoring pass: NDCG@k, diversity@k (mean pairwise 1 - cosine of the embeddings), coverage and
novelty per lambda, as a table, JSON and a chart.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import time
from datetime import date

import pandas as pd

from hybridrec import schema as S
from hybridrec.cli import configure_logging
from hybridrec.config import load_config
from hybridrec.quality.gate import HYBRID, baseline_blends
from hybridrec.session import build_spark_session
from hybridrec.steps import RunContext
from hybridrec.steps.evaluation import holdout_metrics, make_holdout, score_holdout
from hybridrec.steps.ranking import train_ranker

log = logging.getLogger("benchmarks.diversity")


def curve(ctx: RunContext, lambdas: list[float]) -> pd.DataFrame:
    """lambda, and one column per metric at the first evaluate.ks cut-off, for the hybrid's lists."""
    cfg, k = ctx.cfg, ctx.cfg.evaluate.ks[0]
    holdout = make_holdout(ctx.read(S.INTERACTIONS), cfg)
    ranker = train_ranker(ctx, holdout)
    hybrid = dataclasses.replace(baseline_blends(cfg)[HYBRID], ranked=ranker.model is not None)
    blends = {f"mmr_{x:g}": dataclasses.replace(hybrid, diversity=x) for x in lambdas}
    recs = score_holdout(ctx, holdout, cfg.als, blends, max(k, cfg.evaluate.cold_k), ranker.model)
    metrics = holdout_metrics(ctx, holdout, recs)
    recs.unpersist()
    holdout.release()
    shown = metrics[(metrics["segment"] == "all") & (metrics["k"].isin([k, cfg.evaluate.cold_k]))]
    table = shown.assign(name=shown["metric"] + "@" + shown["k"].astype(str)).pivot_table(
        index=S.STRATEGY, columns="name", values="value")
    table.insert(0, "lambda", [float(s.removeprefix("mmr_")) for s in table.index])
    return table.sort_values("lambda").reset_index(drop=True)


def write_chart(table: pd.DataFrame, path: str, k: int) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 4))
    ax.plot(table[f"diversity@{k}"], table[f"ndcg@{k}"], marker="o")
    for _, row in table.iterrows():
        ax.annotate(f"λ={row['lambda']:g}", (row[f"diversity@{k}"], row[f"ndcg@{k}"]), textcoords="offset points",
                    xytext=(4, 4), fontsize=8)
    ax.set_xlabel(f"diversity@{k} (mean pairwise 1 - cosine)")
    ax.set_ylabel(f"NDCG@{k}")
    ax.set_title("MMR re-ranking: relevance vs diversity")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.diversity", description=__doc__)
    parser.add_argument("--ds", type=date.fromisoformat, required=True, help="the night whose lakehouse tables are evaluated")
    parser.add_argument("--config")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--lambdas", default="0,0.1,0.2,0.3,0.5,0.7")
    parser.add_argument("--json", help="also write the table here (and a PNG chart next to it)")
    args = parser.parse_args(argv)
    configure_logging()
    cfg = load_config(args.config, args.overrides)
    spark = build_spark_session(cfg)
    spark.sparkContext.setLogLevel("WARN")
    started = time.perf_counter()
    try:
        table = curve(RunContext(spark=spark, cfg=cfg, ds=args.ds), [float(x) for x in args.lambdas.split(",")])
    finally:
        spark.stop()
    print(table.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    print(f"protocol {cfg.evaluate.protocol}, {time.perf_counter() - started:.1f} s")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"protocol": cfg.evaluate.protocol, "rows": table.to_dict("records")}, f, indent=2)
        write_chart(table, args.json.removesuffix(".json") + ".png", cfg.evaluate.ks[0])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

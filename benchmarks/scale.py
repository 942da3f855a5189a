"""`python -m benchmarks --scale N`: the whole nightly on synthetic data with N interactions, timed per
step, with peak memory (resident memory of this process, its JVM and its Python workers together).

Users and items grow with N (20 interactions per user, 200 per item: 20M interactions is 1M users
and 100k items), so comparing two sizes shows which steps grow faster than the data.
"""

from __future__ import annotations

import dataclasses
import itertools
import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pyspark.sql import SparkSession

from benchmarks.bench import BENCH_DS, machine
from hybridrec import schema as S
from hybridrec.config import Config, positive_min_weight
from hybridrec.quality.splits import sample_users
from hybridrec.scoring.kernel import History, score_block
from hybridrec.scoring.params import scoring_params
from hybridrec.sources.synthetic import generate_synthetic
from hybridrec.steps import STEPS, RunContext, run_steps
from hybridrec.steps.context import scoring_inputs

INTERACTIONS_PER_USER = 20
INTERACTIONS_PER_ITEM = 200


def scale_config(cfg: Config, workdir: Path, n_interactions: int) -> Config:
    n_users = max(10, n_interactions // INTERACTIONS_PER_USER)
    synthetic = cfg.synthetic.model_copy(update={
        "n_users": n_users, "n_items": max(10, n_interactions // INTERACTIONS_PER_ITEM),
        "n_interactions": n_interactions, "n_users_without_history": n_users // 100,
        "end_date": (BENCH_DS - timedelta(days=1)).isoformat()})
    return cfg.model_copy(update={
        "lakehouse": cfg.lakehouse.model_copy(update={"root": str(workdir / f"scale-{n_interactions}")}),
        "dataset": cfg.dataset.model_copy(update={"kind": "synthetic"}),
        "synthetic": synthetic,
    })


class PeakMemory:
    """Samples the resident memory of this process tree (driver, JVM, Python workers) in a thread."""

    def __init__(self, interval_s: float = 0.25) -> None:
        import psutil

        self._root = psutil.Process()
        self._interval_s = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self.peak_bytes = 0
        self.window_peak_bytes = 0

    def current_bytes(self) -> int:
        import psutil

        total = 0
        for process in [self._root, *self._root.children(recursive=True)]:
            try:
                total += process.memory_info().rss
            except psutil.Error:  # a worker that exited between listing and reading
                pass
        return total

    def _sample(self) -> None:
        while not self._stop.is_set():
            now = self.current_bytes()
            self.peak_bytes = max(self.peak_bytes, now)
            self.window_peak_bytes = max(self.window_peak_bytes, now)
            self._stop.wait(self._interval_s)

    def new_window(self) -> None:
        self.window_peak_bytes = self.current_bytes()

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def _gib(n_bytes: int) -> float:
    return round(n_bytes / 2**30, 2)


def run_scale(spark: SparkSession, cfg: Config, workdir: Path, n_interactions: int, *,
              ivf: bool = False) -> dict[str, Any]:
    """Generates the data (untimed by the nightly), then runs every nightly step on it; with `ivf`,
    the recommend step again with IVF retrieval, compared with the exact lists."""
    scale_cfg = scale_config(cfg, workdir, n_interactions)
    start = time.perf_counter()
    generate_synthetic(scale_cfg.synthetic, scale_cfg.lakehouse.root)
    generate_s = time.perf_counter() - start
    # force: a gate verdict on synthetic data must not stop the timing (it is recorded either way)
    ctx = RunContext(spark=spark, cfg=scale_cfg, ds=BENCH_DS, force=True)
    steps: dict[str, Any] = {}
    with PeakMemory() as memory:
        for step in STEPS:
            memory.new_window()
            start = time.perf_counter()
            run_steps(ctx, (step,))
            steps[step] = {"seconds": time.perf_counter() - start, "peak_rss_gib": _gib(memory.window_peak_bytes),
                           "row_counts": dict(ctx.records[-1].row_counts), "message": ctx.records[-1].message}
        total_s, peak = sum(v["seconds"] for v in steps.values()), memory.peak_bytes
        if ivf:
            memory.new_window()
            ivf_recommend = {**compare_retrieval(spark, scale_cfg), "peak_rss_gib": _gib(memory.window_peak_bytes)}
    s = scale_cfg.synthetic
    return {"interactions": n_interactions, "users": s.n_users + s.n_users_without_history, "items": s.n_items,
            "generate_s": generate_s, "steps": steps, "total_s": total_s, "peak_rss_gib": _gib(peak),
            "driver_memory": scale_cfg.spark.driver_memory, **({"recommend_ivf": ivf_recommend} if ivf else {})}


def growth(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Time ratio per step between consecutive sizes, next to the data ratio (linear = equal)."""
    out = []
    for small, large in itertools.pairwise(runs):
        out.append({"from": small["interactions"], "to": large["interactions"],
                    "data_ratio": large["interactions"] / small["interactions"],
                    "step_time_ratio": {step: large["steps"][step]["seconds"] / small["steps"][step]["seconds"]
                                        for step in large["steps"] if small["steps"][step]["seconds"] > 0},
                    "total_time_ratio": large["total_s"] / small["total_s"]})
    return out


def scale_result(runs: list[dict[str, Any]], master: str) -> dict[str, Any]:
    return {"machine": machine(), "spark_master": master, "scale": runs, "growth": growth(runs)}


def compare_retrieval(spark: SparkSession, scale_cfg: Config, n_sample: int = 2000,
                      retrieval: str = "ivf") -> dict[str, Any]:
    """The recommend step again with approximate `retrieval` (ivf or rerank; timed), and on a seeded
    sample of users its lists against exact ones from the same factors (recall: the share of exact
    items it also lists)."""
    approx_cfg = scale_cfg.model_copy(update={"recommend": scale_cfg.recommend.model_copy(
        update={"retrieval": retrieval})})
    ctx = RunContext(spark=spark, cfg=approx_cfg, ds=BENCH_DS, force=True)
    start = time.perf_counter()
    run_steps(ctx, ("recommend",))
    seconds = time.perf_counter() - start
    params = scoring_params(approx_cfg.recommend, positive_min_weight(approx_cfg), ctx.ds)
    params = dataclasses.replace(params, explain=False, mark_new_items=False)
    inputs = scoring_inputs(ctx, interactions=ctx.read(S.INTERACTIONS), items=ctx.read(S.ITEMS),
                            item_factors=ctx.read(S.ITEM_FACTORS), user_factors=ctx.read(S.USER_FACTORS),
                            params=params)
    sample = sample_users(inputs.histories, n_sample, seed=7).toPandas()
    inputs.release()
    histories = [History(np.asarray(p, np.int64), np.asarray(w, np.float64), np.asarray(t, np.float64))
                 for p, w, t in zip(sample[S.HIST_POS], sample[S.HIST_WEIGHT],
                                    sample[S.HIST_TS], strict=True)]
    lists = {}
    block = max(1, params.block_bytes // (len(inputs.index.item_ids) * 16))  # as the workers do
    for mode in ("exact", retrieval):
        p = dataclasses.replace(params, retrieval=mode)
        scored = pd.concat([score_block(sample[S.USER_ID].iloc[i:i + block].tolist(),
                                                  sample[S.FEATURES].iloc[i:i + block].tolist(),
                                                  histories[i:i + block], inputs.index, p)
                            for i in range(0, len(sample), block)], ignore_index=True)
        lists[mode] = scored[scored[S.STRATEGY] == S.HYBRID]
    r = approx_cfg.recommend
    recall = {f"@{k}": _recall(lists["exact"], lists[retrieval], k) for k in (10, r.top_n)}
    settings = {"rerank_dims": r.rerank_dims, "rerank_candidates": r.rerank_candidates,
                **({"ivf_list_size": r.ivf_list_size, "ivf_probes": r.ivf_probes} if retrieval == "ivf" else {})}
    return {"retrieval": retrieval, "seconds": seconds, "row_counts": dict(ctx.records[-1].row_counts), **settings,
            "sample_users": len(sample), "recall_vs_exact": recall}


def _recall(exact: pd.DataFrame, approx: pd.DataFrame, k: int) -> float:
    """Mean over users of |approx top k & exact top k| / |exact top k| (rows ranked within a user)."""
    def top(df: pd.DataFrame) -> pd.Series:
        return df[df[S.RANK] <= k].groupby(S.USER_ID)[S.ITEM_ID].agg(set)

    exact_top, approx_top = top(exact), top(approx)
    return float(np.mean([len(items & approx_top.get(user, set())) / len(items) for user, items in exact_top.items()]))


def format_scale(result: dict[str, Any]) -> str:
    runs = result["scale"]
    header = f"{'step':<14}" + "".join(f"{r['interactions']:>14,} s  GiB" for r in runs)
    lines = [header]
    for step in STEPS:
        lines.append(f"{step:<14}" + "".join(
            f"{r['steps'][step]['seconds']:>16.1f}{r['steps'][step]['peak_rss_gib']:>5.1f}" for r in runs))
    lines.append(f"{'total':<14}" + "".join(f"{r['total_s']:>16.1f}{r['peak_rss_gib']:>5.1f}" for r in runs))
    for r in runs:
        if "recommend_ivf" in r:
            ivf = r["recommend_ivf"]
            recall = ", ".join(f"recall{k} {v:.3f}" for k, v in ivf["recall_vs_exact"].items())
            lines.append(f"{r['interactions']:,}: recommend with ivf retrieval {ivf['seconds']:.1f} s "
                         f"({ivf['peak_rss_gib']:.1f} GiB), lists vs exact: {recall}")
    for g in result["growth"]:
        ratios = ", ".join(f"{step} {ratio:.1f}x" for step, ratio in g["step_time_ratio"].items())
        lines.append(f"{g['from']:,} -> {g['to']:,} ({g['data_ratio']:.0f}x data): {ratios}; "
                     f"total {g['total_time_ratio']:.1f}x")
    return "\n".join(lines)

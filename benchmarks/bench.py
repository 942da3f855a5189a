"""`make bench` (python -m benchmarks.bench): each nightly stage timed next to the best single-process tool for the same work,
in one run on the same machine. ratio = ours_s / peer_s (below 1: ours is faster).

Stages: embedding (our embed_items step vs sentence-transformers `.encode`), incremental embedding
(1% of texts changed vs all), ALS training (our train_als step vs the `implicit` library) and top-N
scoring with seen items excluded (ours vs `ALSModel.recommendForAllUsers` and a numpy blocked
matmul + argpartition on the same factors). The bench builds its own synthetic lakehouse.
Peers need the `bench` extra (sentence-transformers, implicit).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import platform
import time
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from hybridrec import schema as S
from hybridrec.config import Config
from hybridrec.embedding.encoder import resolve_model_path
from hybridrec.io.delta import read_table
from hybridrec.scoring.arrow import with_hybrid_recommendations
from hybridrec.scoring.index import build_item_index
from hybridrec.scoring.params import Blend, scoring_params
from hybridrec.steps import RunContext, run_steps
from hybridrec.transforms import als
from hybridrec.transforms.embed import with_embedding

log = logging.getLogger(__name__)

BENCH_DS = date(2026, 11, 1)


@dataclass(frozen=True)
class BenchSizes:
    embed_items: int
    als_users: int
    als_interactions: int
    score_users: int
    score_items: int
    score_rank: int
    score_seen: int
    top_n: int


QUICK = BenchSizes(embed_items=2000, als_users=20_000, als_interactions=500_000, score_users=50_000,
                   score_items=10_000, score_rank=64, score_seen=20, top_n=50)
FULL = BenchSizes(embed_items=10_000, als_users=100_000, als_interactions=2_000_000, score_users=200_000,
                  score_items=20_000, score_rank=64, score_seen=20, top_n=50)


def machine() -> dict[str, Any]:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor()) if Path("/proc/cpuinfo").exists() else ""
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return {"cpu": cpu, "cores": os.cpu_count(), "memory_gib": round(memory, 1), "python": platform.python_version(),
            "platform": platform.platform()}


def _timed(fn) -> tuple[float, Any]:
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def _stage(ours_s: float, peer: str, peer_s: float, size: dict, **extra: Any) -> dict[str, Any]:
    # Unrounded: a peer can finish a toy size in well under a millisecond.
    return {"ours_s": ours_s, "peer": peer, "peer_s": peer_s, "ratio": ours_s / peer_s if peer_s > 0 else None,
            "size": size, **extra}


def bench_config(cfg: Config, workdir: Path, sizes: BenchSizes) -> Config:
    """`cfg` pointed at a synthetic lakehouse in `workdir` with the bench sizes (gate off: timing only)."""
    synthetic = cfg.synthetic.model_copy(update={
        "n_users": sizes.als_users, "n_items": sizes.embed_items, "n_interactions": sizes.als_interactions,
        "n_users_without_history": 0, "end_date": (BENCH_DS - timedelta(days=1)).isoformat()})
    return cfg.model_copy(update={
        "lakehouse": cfg.lakehouse.model_copy(update={"root": str(workdir / "lakehouse")}),
        "dataset": cfg.dataset.model_copy(update={"kind": "synthetic"}),
        "synthetic": synthetic,
        "gate": cfg.gate.model_copy(update={"enabled": False}),
    })


# ---- embedding ----------------------------------------------------------------------------------

def _warm_up_workers(spark: SparkSession, cfg: Config) -> None:
    """Load the model in every Python worker first: the peer's load is not timed either."""
    parallelism = spark.sparkContext.defaultParallelism
    texts = spark.createDataFrame([(str(i), "warm up") for i in range(parallelism * 2)], "item_id string, text string")
    e = cfg.embedding
    with_embedding(texts.repartition(parallelism), model_path=resolve_model_path(e.model_path),
                         batch_size=e.batch_size, max_length=e.max_length, runtime=e.runtime, onnx_path=e.onnx_path
                         ).write.format("noop").mode("overwrite").save()


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)).clip(min=1e-12)


def embedding_stage(ctx: RunContext) -> tuple[dict[str, Any], float]:
    from sentence_transformers import SentenceTransformer

    e = ctx.cfg.embedding
    items = ctx.read(S.ITEMS).select(S.ITEM_ID, S.TEXT).toPandas().sort_values(S.ITEM_ID)
    texts = items[S.TEXT].tolist()
    _warm_up_workers(ctx.spark, ctx.cfg)
    ours_s, _ = _timed(lambda: run_steps(ctx, ("embed_items",)))
    ours = read_table(ctx.spark, ctx.root, S.ITEM_EMBEDDINGS).select(S.ITEM_ID, S.EMBEDDING).toPandas()
    ours = np.stack(ours.set_index(S.ITEM_ID).loc[items[S.ITEM_ID], S.EMBEDDING].to_numpy())

    peer = SentenceTransformer(resolve_model_path(e.model_path), device="cpu")
    peer.max_seq_length = e.max_length
    peer.encode(texts[:64], batch_size=32)
    peer_s, reference = _timed(lambda: peer.encode(texts, batch_size=32, normalize_embeddings=True))
    cosine = _cosines(ours, reference)
    stage = _stage(ours_s, "sentence-transformers encode (fp32, batch 32, one process)", peer_s,
                   {"texts": len(texts)}, runtime=e.runtime,
                   ours_texts_per_s=round(len(texts) / ours_s, 1), peer_texts_per_s=round(len(texts) / peer_s, 1),
                   throughput_vs_peer=round(peer_s / ours_s, 3),
                   min_cosine_to_fp32=round(float(cosine.min()), 5), mean_cosine_to_fp32=round(float(cosine.mean()), 5))
    return stage, ours_s


def incremental_stage(ctx: RunContext, full_s: float, changed_fraction: float = 0.01) -> dict[str, Any]:
    """Re-embed time on the next nights: `changed_fraction` of the texts edited, then none."""
    items = ctx.read(S.ITEMS)
    n = items.count()
    changed = F.abs(F.hash(S.ITEM_ID)) % 10_000 < int(changed_fraction * 10_000)
    text = F.when(changed, F.concat(F.col(S.TEXT), F.lit(" (revised)"))).otherwise(F.col(S.TEXT))
    times: dict[str, float] = {"100%": full_s}
    for offset, label, edited in ((1, f"{changed_fraction:.0%}", True), (2, "0%", False)):
        night = RunContext(ctx.spark, ctx.cfg, ctx.ds + timedelta(days=offset))
        rows = items.withColumn(S.TEXT, text if edited else F.col(S.TEXT))
        rows = rows.withColumn(S.TEXT_HASH, F.sha2(S.TEXT, 256)).withColumn(S.DS, F.lit(night.ds))
        night.write(rows.select(*S.ITEMS.columns), S.ITEMS)
        seconds, _ = _timed(lambda night=night: run_steps(night, ("embed_items",)))
        times[label] = seconds
    n_changed = items.where(changed).count()
    one = f"{changed_fraction:.0%}"
    return _stage(times[one], "re-embedding every text (100%)", full_s, {"texts": n, "changed": n_changed},
                  embed_s=times)


# ---- ALS ------------------------------------------------------------------------------------------

def als_stage(ctx: RunContext) -> dict[str, Any]:
    import implicit
    import scipy.sparse as sp
    from threadpoolctl import threadpool_limits

    a = ctx.cfg.als
    ours_s, _ = _timed(lambda: run_steps(ctx, ("train_als",)))
    summed = (ctx.read(S.INTERACTIONS).groupBy(S.USER_ID, S.ITEM_ID).agg(F.sum(S.WEIGHT).alias(S.WEIGHT))
              .toPandas())
    users = summed[S.USER_ID].astype("category").cat.codes.to_numpy()
    items = summed[S.ITEM_ID].astype("category").cat.codes.to_numpy()
    matrix = sp.csr_matrix((summed[S.WEIGHT].to_numpy(np.float32), (users, items)))
    with threadpool_limits(1, "blas"):  # implicit parallelises itself; a threaded BLAS would oversubscribe
        model = implicit.cpu.als.AlternatingLeastSquares(
            factors=a.rank, regularization=a.reg_param, alpha=a.alpha, iterations=a.max_iter, use_cg=True,
            calculate_training_loss=False, random_state=a.seed)
        peer_s, _ = _timed(lambda: model.fit(matrix, show_progress=False))
    return _stage(ours_s, "implicit ALS (conjugate gradient, all cores)", peer_s,
                  {"users": matrix.shape[0], "items": matrix.shape[1], "pairs": matrix.nnz,
                   "rank": a.rank, "iterations": a.max_iter},
                  fit_only_s=round(_spark_fit_s(ctx, users, items, summed[S.WEIGHT].to_numpy(np.float32)), 3))


def _spark_fit_s(ctx: RunContext, users: np.ndarray, items: np.ndarray, weights: np.ndarray) -> float:
    """MLlib ALS fit alone on the peer's integer pairs, cached: the step minus reading, indexing and writing."""
    ratings = ctx.spark.createDataFrame(
        pd.DataFrame({als.USER_IDX: users.astype(np.int32), als.ITEM_IDX: items.astype(np.int32),
                      als.CONFIDENCE: weights}),
        f"{als.USER_IDX} int, {als.ITEM_IDX} int, {als.CONFIDENCE} float").persist()
    ratings.count()

    def fit() -> None:
        model = als.build_als(ctx.cfg.als, ctx.spark.sparkContext.defaultParallelism).fit(ratings)
        model.userFactors.count()

    seconds, _ = _timed(fit)
    ratings.unpersist()
    return seconds


# ---- top-N scoring --------------------------------------------------------------------------------

def synthetic_factors(sizes: BenchSizes, seed: int = 7) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    user_factors = rng.normal(size=(sizes.score_users, sizes.score_rank)).astype(np.float32)
    item_factors = rng.normal(size=(sizes.score_items, sizes.score_rank)).astype(np.float32)
    seen = rng.integers(0, sizes.score_items, size=(sizes.score_users, sizes.score_seen))
    return user_factors, item_factors, seen


def numpy_top_n(user_factors: np.ndarray, item_factors: np.ndarray, seen: np.ndarray, k: int,
                block: int = 4096) -> np.ndarray:
    """The single-process reference: blocked matmul, seen items masked, argpartition, sort."""
    out = np.empty((len(user_factors), k), dtype=np.int64)
    for start in range(0, len(user_factors), block):
        scores = user_factors[start:start + block] @ item_factors.T
        np.put_along_axis(scores, seen[start:start + block], -np.inf, axis=1)
        top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
        order = np.argsort(-np.take_along_axis(scores, top, axis=1), axis=1, kind="stable")
        out[start:start + block] = np.take_along_axis(top, order, axis=1)
    return out


def _item_ids(n: int) -> np.ndarray:
    return np.array([f"i{i:07d}" for i in range(n)])  # sorted = position order


def scoring_stage(spark: SparkSession, cfg: Config, sizes: BenchSizes) -> dict[str, Any]:
    from pyspark.ml.recommendation import ALSModel

    user_factors, item_factors, seen = synthetic_factors(sizes)
    k = sizes.top_n
    numpy_s, reference = _timed(lambda: numpy_top_n(user_factors, item_factors, seen, k))

    def frame(factors: np.ndarray):
        pdf = pd.DataFrame({"id": np.arange(len(factors), dtype=np.int32), "features": list(factors)})
        return spark.createDataFrame(pdf, "id int, features array<float>").persist()

    users_df, items_df = frame(user_factors), frame(item_factors)
    users_df.count(), items_df.count()
    java_model = spark._jvm.org.apache.spark.ml.recommendation.ALSModel(
        "bench", sizes.score_rank, users_df._jdf, items_df._jdf).setUserCol("user").setItemCol("item")
    als_model = ALSModel(java_model)
    rfau_s, _ = _timed(lambda: als_model.recommendForAllUsers(k).write.format("noop").mode("overwrite").save())

    item_ids = _item_ids(sizes.score_items)
    index = build_item_index(pd.DataFrame({
        S.ITEM_ID: item_ids, S.FEATURES: list(item_factors), S.EMBEDDING: [None] * len(item_ids),
        S.POPULARITY: np.ones(len(item_ids), np.float32)}))
    histories = spark.createDataFrame(pd.DataFrame({
        S.USER_ID: [f"u{i:08d}" for i in range(sizes.score_users)],
        S.HIST_POS: list(seen.astype(np.int64)),
        S.HIST_WEIGHT: list(np.ones(seen.shape)),
        S.HIST_TS: list(np.zeros(seen.shape)),
        S.FEATURES: list(user_factors)}),
        "user_id string, hist_pos array<bigint>, hist_weight array<double>, hist_ts array<double>, "
        "features array<float>").repartition(spark.sparkContext.defaultParallelism).persist()
    histories.count()
    index_bc = spark.sparkContext.broadcast(index)
    base = scoring_params(cfg.recommend.model_copy(update={"top_n": k, "new_item_slots": 0}), 1.0, BENCH_DS)
    als_only = Blend(als=1.0, recent=0.0, popularity=0.0, content=0.0, new_item_slots=0)
    params = dataclasses.replace(base, blends=(("als", als_only),), explain=False)
    scored = with_hybrid_recommendations(histories, index_bc, params)
    ours_s, _ = _timed(lambda: scored.write.format("noop").mode("overwrite").save())
    hybrid = with_hybrid_recommendations(histories, index_bc, base)
    hybrid_s, _ = _timed(lambda: hybrid.write.format("noop").mode("overwrite").save())

    # Same lists as numpy for a sample of users: the timing is of the same answer.
    sample = scored.where(F.col(S.USER_ID) < "u00000200").select(S.USER_ID, S.RANK, S.ITEM_ID).toPandas()
    got = sample.sort_values([S.USER_ID, S.RANK]).groupby(S.USER_ID)[S.ITEM_ID].apply(list)
    agree = np.mean([got[f"u{u:08d}"] == list(item_ids[reference[u]]) for u in range(min(200, len(reference)))])
    index_bc.unpersist()
    for df in (users_df, items_df, histories):
        df.unpersist()
    size = {"users": sizes.score_users, "items": sizes.score_items, "rank": sizes.score_rank, "top_n": k,
            "seen_per_user": sizes.score_seen}
    stage = _stage(ours_s, "ALSModel.recommendForAllUsers (same factors, seen items not excluded)", rfau_s, size,
                   numpy_s=round(numpy_s, 3), ratio_to_numpy=round(ours_s / numpy_s, 3),
                   speedup_vs_recommend_for_all_users=round(rfau_s / ours_s, 2),
                   ours_full_hybrid_s=round(hybrid_s, 3), same_lists_as_numpy=float(agree))
    return stage


def run_bench(spark: SparkSession, cfg: Config, workdir: Path, sizes: BenchSizes) -> dict[str, Any]:
    bench_cfg = bench_config(cfg, workdir, sizes)
    ctx = RunContext(spark=spark, cfg=bench_cfg, ds=BENCH_DS)
    stages: dict[str, Any] = {}
    ingest_s, _ = _timed(lambda: run_steps(ctx, ("ingest",)))
    log.info("bench: ingest %.1fs", ingest_s)
    stages["embedding"], full_s = embedding_stage(ctx)
    log.info("bench: embedding %s", stages["embedding"])
    stages["incremental_embedding"] = incremental_stage(ctx, full_s)
    log.info("bench: incremental %s", stages["incremental_embedding"])
    stages["als_training"] = als_stage(ctx)
    log.info("bench: ALS %s", stages["als_training"])
    stages["top_n_scoring"] = scoring_stage(spark, bench_cfg, sizes)
    log.info("bench: scoring %s", stages["top_n_scoring"])
    return {"machine": machine(), "spark_master": spark.sparkContext.master, "sizes": sizes.__dict__,
            "ingest_s": round(ingest_s, 3), "stages": stages}


def format_table(result: dict[str, Any]) -> str:
    lines = [f"{'stage':<24}{'ours s':>10}{'peer s':>10}{'ratio':>8}  peer"]
    for name, stage in result["stages"].items():
        lines.append(f"{name:<24}{stage['ours_s']:>10.2f}{stage['peer_s']:>10.2f}{stage['ratio']:>8.2f}  {stage['peer']}")
    fit = result["stages"].get("als_training", {}).get("fit_only_s")
    if fit:
        peer_s = result["stages"]["als_training"]["peer_s"]
        lines.append(f"{'  Spark ALS fit alone':<24}{fit:>10.2f}{peer_s:>10.2f}{fit / peer_s:>8.2f}"
                     "  the same fit on cached integer pairs")
    scoring = result["stages"].get("top_n_scoring")
    if scoring:
        lines.append(f"{'  numpy reference':<24}{'':>10}{scoring['numpy_s']:>10.2f}{scoring['ratio_to_numpy']:>8.2f}"
                     "  numpy blocked matmul + argpartition")
    return "\n".join(lines)

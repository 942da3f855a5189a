"""`python -m benchmarks` at toy sizes: every stage runs against its peer, the figures are consistent,
and the timed work is the same answer (same embeddings as sentence-transformers, same top-N as numpy)."""

from __future__ import annotations

import json
from datetime import timedelta

import numpy as np
import pytest
from pyspark.sql import functions as F

from benchmarks import bench
from conftest import REAL_MODEL, make_config
from hybridrec import schema as S
from hybridrec.io.delta import read_table

TINY = bench.BenchSizes(embed_items=40, als_users=60, als_interactions=1500, score_users=300, score_items=120,
                        score_rank=8, score_seen=5, top_n=10)


def test_numpy_reference_excludes_seen_items_and_sorts():
    users = np.array([[1.0, 0.0], [0.0, 1.0]], np.float32)
    items = np.array([[3.0, 0.0], [2.0, 1.0], [1.0, 2.0], [0.0, 3.0]], np.float32)
    seen = np.array([[0], [3]])
    assert bench.numpy_top_n(users, items, seen, 2).tolist() == [[1, 2], [2, 1]]


def test_bench_runs_every_stage_against_its_peer(spark, tmp_path):
    result = bench.run_bench(spark, make_config(tmp_path / "unused", *REAL_MODEL), tmp_path, TINY)
    stages = result["stages"]
    assert set(stages) == {"embedding", "incremental_embedding", "als_training", "top_n_scoring"}
    for stage in stages.values():
        assert stage["ours_s"] > 0 and stage["peer_s"] > 0 and stage["peer"]
        assert stage["ratio"] == pytest.approx(stage["ours_s"] / stage["peer_s"], rel=1e-9)
    assert stages["embedding"]["size"] == {"texts": 40}
    assert stages["embedding"]["min_cosine_to_fp32"] > 0.999  # fp32 both sides: the same vectors
    assert stages["top_n_scoring"]["same_lists_as_numpy"] == 1.0
    assert stages["als_training"]["size"]["pairs"] > 0
    assert 0 < stages["als_training"]["fit_only_s"] < stages["als_training"]["ours_s"]
    # The 1% night re-embedded exactly the changed texts, the 0% night none.
    incremental = stages["incremental_embedding"]
    assert set(incremental["embed_s"]) == {"100%", "1%", "0%"}
    root = str(tmp_path / "lakehouse")
    runs = read_table(spark, root, S.RUNS).where((F.col("step") == "embed_items") & (F.col("status") == "succeeded")
                                                 ).orderBy("ds").collect()
    assert [r["row_counts"]["embedded"] for r in runs] == [40, incremental["size"]["changed"], 0]
    assert runs[-1]["ds"] == bench.BENCH_DS + timedelta(days=2)
    assert "ours s" in bench.format_table(result) and json.dumps(result)


def test_scale_run_times_every_nightly_step_and_compares_ivf_with_exact_lists(spark, tmp_path):
    from benchmarks import scale
    from hybridrec.steps import STEPS

    cfg = make_config(tmp_path / "unused", "recommend.ivf_list_size=5", "recommend.ivf_probes=1",
                      "recommend.rerank_dims=4", "recommend.rerank_candidates=10")
    small, large = (scale.run_scale(spark, cfg, tmp_path, n, ivf=n == 8000) for n in (4000, 8000))
    assert (small["users"], small["items"]) == (200 + 2, 20) and (large["users"], large["items"]) == (400 + 4, 40)
    for run in (small, large):
        assert set(run["steps"]) == set(STEPS)
        assert all(step["seconds"] > 0 and step["peak_rss_gib"] > 0 for step in run["steps"].values())
        assert run["total_s"] == pytest.approx(sum(step["seconds"] for step in run["steps"].values()))
    ivf = large["recommend_ivf"]
    # Same users get lists; 1 of about 8 lists searched, so the lists are approximate but overlap.
    assert ivf["row_counts"]["recommendations"] == large["steps"]["recommend"]["row_counts"]["recommendations"]
    assert 0 < ivf["recall_vs_exact"]["@5"] < 1
    # The same comparison for rerank on the lakehouse that run left (bench --scale N --rerank-only).
    rerank = scale.compare_retrieval(spark, scale.scale_config(cfg, tmp_path, 8000), retrieval="rerank")
    assert (rerank["retrieval"], rerank["rerank_dims"], rerank["rerank_candidates"]) == ("rerank", 4, 10)
    assert rerank["row_counts"]["recommendations"] == ivf["row_counts"]["recommendations"]
    assert 0 < rerank["recall_vs_exact"]["@5"] <= 1
    result = scale.scale_result([small, large], "local[2]")
    [growth] = result["growth"]
    assert growth["data_ratio"] == 2 and set(growth["step_time_ratio"]) == set(STEPS)
    assert "recommend with ivf retrieval" in scale.format_scale(result) and json.dumps(result)

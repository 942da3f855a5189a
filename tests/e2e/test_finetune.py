"""Fine-tuning the encoder for real (torch, peft, all-MiniLM-L6-v2 on the CPU) on a small synthetic
night: a version is trained from co-occurrence pairs, stored with the lakehouse, judged, and the next
night embeds with it once; a version that did not pass is kept and never used."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import numpy as np
import pytest
from pyspark.sql import functions as F
from safetensors.numpy import load_file

from conftest import REAL_MODEL, make_config
from hybridrec import schema as S
from hybridrec.embedding.encoder import bundled_model_path, embed_texts
from hybridrec.embedding.finetune import ADAPTER_DIR, TRAINING_FILE
from hybridrec.io.delta import read_table
from hybridrec.io.encoders import with_night_encoder
from hybridrec.steps import RunContext, run_step, run_steps
from hybridrec.steps.finetune import finetune_step

NIGHT_1, NIGHT_2 = date(2026, 11, 21), date(2026, 11, 22)
SYNTHETIC = ['dataset.kind="synthetic"', "synthetic.n_users=300", "synthetic.n_items=120",
             "synthetic.n_interactions=6000", "synthetic.n_users_without_history=5", "ranker.enabled=false",
             "recommend.top_n=10", "recommend.new_item_slots=3", "evaluate.cold_k=10", "gate.enabled=false",
             *REAL_MODEL, "finetune.max_pairs=160", "finetune.batch_size=16", "finetune.epochs=2",
             "finetune.learning_rate=0.001", "finetune.max_length=24"]
ACCEPT = ["finetune.min_cold_gain_pct=-100", "finetune.max_ndcg_drop_pct=100"]  # this version is used, whatever it scores


def _versions(spark, root):
    return read_table(spark, root, S.ENCODER_VERSIONS).orderBy(S.DS).collect()


@pytest.fixture(scope="module")
def tuned(spark, tmp_path_factory):
    root = str(tmp_path_factory.mktemp("finetune") / "lakehouse")
    cfg = make_config(root, *SYNTHETIC, *ACCEPT)
    ctx = RunContext(spark=spark, cfg=cfg, ds=NIGHT_1)
    run_steps(ctx, ("ingest", "embed_items"))
    record = run_step(ctx, "finetune", finetune_step)
    return root, cfg, ctx, record


def test_a_version_is_trained_from_pairs_and_stored_with_its_numbers(spark, tuned):
    root, _, ctx, record = tuned
    [row] = _versions(spark, root)
    version = row[S.MODEL].split("+", 1)[1]
    assert row[S.MODEL] == f"all-MiniLM-L6-v2+ft-{ctx.run_id}" and row["base_model"] == "all-MiniLM-L6-v2"
    assert row["passed"] and row["reason"].startswith("passed: ") and row["reason"].endswith("trained on cpu")
    assert json.loads(row["params"])["max_pairs"] == 160
    m = row["metrics"]
    assert 50 <= m["pairs"] <= 160 and record.row_counts["pairs"] == m["pairs"]
    assert m["last_loss"] < m["first_loss"]  # the contrastive loss fell
    assert m["frozen_hybrid_ranked"] == m["tuned_hybrid_ranked"] == 0  # ranker.enabled=false: the blend publishes
    for name in ("content_ndcg@10", "content_cold_recall@10", "blend_ndcg@10", "hybrid_ndcg@10", "hybrid_cold_recall@10"):
        assert 0 <= m[f"frozen_{name}"] <= 1 and 0 <= m[f"tuned_{name}"] <= 1
    folder = Path(row["path"])
    assert folder == Path(root).resolve() / "_models" / "encoder" / version
    assert {p.name for p in folder.iterdir()} >= {"model.safetensors", "config.json", "tokenizer.json", ADAPTER_DIR,
                                                  TRAINING_FILE}
    assert (folder / ADAPTER_DIR / "adapter_model.safetensors").is_file()
    assert m["adapter_bytes"] < m["model_bytes"] / 50  # LoRA: the adapter is a small fraction of the model
    assert json.loads((folder / TRAINING_FILE).read_text())["report"]["pairs"] == m["pairs"]
    # Only the attention's query and value projections changed (LoRA's targets), and they did change.
    base, merged = load_file(f"{bundled_model_path()}/model.safetensors"), load_file(str(folder / "model.safetensors"))
    changed = {k for k in base if k in merged and not np.array_equal(base[k], merged[k])}
    assert changed and all(".attention.self.query." in k or ".attention.self.value." in k for k in changed)
    # The tuned folder is an ordinary model: ONNX Runtime (the executors' runtime) and torch agree on it.
    texts = ["a crew drifts beyond the edge of known space", "bakers perfect bread and pastry at home"]
    onnx = embed_texts(texts, model_path=str(folder), runtime="onnxruntime")
    torch_vectors = embed_texts(texts, model_path=str(folder), runtime="torch")
    assert (onnx * torch_vectors).sum(axis=1).min() > 0.9999
    frozen = embed_texts(texts, model_path=bundled_model_path(), runtime="onnxruntime")
    assert (onnx * frozen).sum(axis=1).max() < 0.9999


def test_the_tuned_encoder_pulls_items_liked_together_closer(spark, tuned):
    root, cfg, ctx, _ = tuned
    [row] = _versions(spark, root)
    vectors = {r[S.MODEL]: {e[S.ITEM_ID]: np.asarray(e[S.EMBEDDING]) for e in r["rows"]}
               for r in read_table(spark, root, S.ITEM_EMBEDDINGS).groupBy(S.MODEL)
               .agg(F.collect_list(F.struct(S.ITEM_ID, S.EMBEDDING)).alias("rows")).collect()}
    from hybridrec.steps.evaluation import make_holdout, validation_holdout
    from hybridrec.steps.finetune import training_pairs

    outer = make_holdout(ctx.read(S.INTERACTIONS), cfg)
    valid = validation_holdout(outer, cfg)
    pairs = training_pairs(ctx, valid.train)
    valid.release()
    outer.release()

    def mean_cosine(model: str) -> float:
        v = vectors[model]
        return float(np.mean([v[a] @ v[b] for a, b in zip(pairs["item_a"], pairs["item_b"], strict=True)]))

    # every item embedded once per model: the frozen cache was reused, the tuned version embedded all
    assert {m: len(v) for m, v in vectors.items()} == {"all-MiniLM-L6-v2": 120, row[S.MODEL]: 120}
    assert mean_cosine(row[S.MODEL]) > mean_cosine("all-MiniLM-L6-v2") + 0.05


def test_later_nights_embed_with_the_newest_passed_version_once_and_a_failed_one_is_kept_unused(spark, tuned):
    root = tuned[0]
    [first] = _versions(spark, root)
    night_cfg = with_night_encoder(spark, make_config(root, *SYNTHETIC), NIGHT_2)
    assert night_cfg.embedding.model == first[S.MODEL] and night_cfg.embedding.model_path == first["path"]
    assert with_night_encoder(spark, make_config(root, *SYNTHETIC), date(2026, 11, 20)).embedding.model == \
        "all-MiniLM-L6-v2"  # nights before the version keep the base
    assert with_night_encoder(spark, make_config(root, *SYNTHETIC, "finetune.use_tuned=false"), NIGHT_2) \
        .embedding.model == "all-MiniLM-L6-v2"

    night = RunContext(spark=spark, cfg=night_cfg, ds=NIGHT_2)
    run_steps(night, ("ingest", "embed_items"))
    assert night.records[1].row_counts["embedded"] == 0  # the finetune run already embedded the catalogue

    # A second version that cannot pass (cold-item recall would have to rise a millionfold): kept, not used.
    strict = make_config(root, *SYNTHETIC, "finetune.max_pairs=40", "finetune.epochs=1",
                         "finetune.min_cold_gain_pct=1000000")
    second = RunContext(spark=spark, cfg=strict, ds=NIGHT_2)
    run_step(second, "finetune", finetune_step)
    rows = _versions(spark, root)
    assert [(r["sequence"], r["passed"]) for r in rows] == [(0, True), (1, False)]
    assert rows[1]["reason"].startswith("not used: ")
    assert Path(rows[1]["path"], "model.safetensors").is_file()
    assert with_night_encoder(spark, make_config(root, *SYNTHETIC), NIGHT_2).embedding.model == first[S.MODEL]

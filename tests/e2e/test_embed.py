"""The real bundled all-MiniLM-L6-v2, directly and inside the Spark pandas UDF."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from pyspark.sql import functions as F

from hybridrec import schema as S
from hybridrec.embedding import encoder
from hybridrec.embedding.encoder import bundled_model_path, embed_texts, onnx_model
from hybridrec.errors import ConfigError
from hybridrec.transforms.embed import filter_needs_embedding, with_embedding

ANCHOR = "A man is playing a guitar on stage."
PARAPHRASE = "Someone performs music with a guitar in front of an audience."
UNRELATED = "The central bank raised interest rates to fight inflation."
REFERENCE = Path(__file__).parents[1] / "fixtures" / "minilm_reference.json"


def test_model_ranks_paraphrase_above_unrelated_sentence():
    vectors = embed_texts([ANCHOR, PARAPHRASE, UNRELATED], model_path=bundled_model_path())
    assert vectors.shape == (3, 384)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-5)
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2] + 0.3


def test_spark_udf_matches_direct_embedding_in_any_order(spark):
    texts = [UNRELATED, ANCHOR, "short", PARAPHRASE * 3]
    df = spark.createDataFrame([(str(i), t) for i, t in enumerate(texts)], "item_id string, text string")
    out = with_embedding(df.repartition(2), model_path=bundled_model_path(), batch_size=2, max_length=256)
    got = {r[S.ITEM_ID]: np.array(r[S.EMBEDDING]) for r in out.collect()}
    direct = embed_texts(texts, model_path=bundled_model_path())
    for i in range(len(texts)):
        np.testing.assert_allclose(got[str(i)], direct[i], atol=1e-5)


def test_only_new_or_changed_text_needs_embedding(spark):
    items = spark.createDataFrame([("a", "h1"), ("b", "h2-new"), ("c", "h3")], "item_id string, text_hash string")
    cached = spark.createDataFrame(
        [("a", "h1", "m"), ("b", "h2-old", "m"), ("c", "h3", "other-model")],
        "item_id string, text_hash string, model string")
    todo = filter_needs_embedding(items, cached, model="m").orderBy(S.ITEM_ID)
    assert [r.item_id for r in todo.select(F.col(S.ITEM_ID)).collect()] == ["b", "c"]


def test_the_onnx_graph_gives_sentence_transformers_vectors(tmp_path, monkeypatch):
    """The graph built from the safetensors weights (no torch) against the model's reference
    implementation's vectors (tests/fixtures/minilm_reference.json: padding, an empty text, accents
    and CJK, truncation at 256 tokens; checked against sentence-transformers in `make bench-test`)."""
    monkeypatch.setenv("HYBRIDREC_CACHE", str(tmp_path))  # a fresh build, not one cached earlier
    monkeypatch.setattr(encoder, "_ENCODERS", {})  # nor a model this process loaded before
    reference = json.loads(REFERENCE.read_text())
    vectors = embed_texts(reference["texts"], model_path=bundled_model_path(), runtime="onnxruntime", batch_size=3)
    assert list(tmp_path.glob("encoder-*.onnx"))
    expected = np.array(reference["vectors"], dtype=np.float32)
    assert (vectors * expected).sum(axis=1).min() > 0.99999
    np.testing.assert_allclose(vectors, expected, atol=2e-6)


def test_the_onnx_graph_is_built_only_from_safetensors(tmp_path):
    pickled = tmp_path / "pickled-model"  # a pickle (pytorch_model.bin) can run code when loaded
    shutil.copytree(bundled_model_path(), pickled, ignore=shutil.ignore_patterns("*.safetensors"))
    (pickled / "pytorch_model.bin").write_bytes(b"not loaded")
    with pytest.raises(ConfigError, match=r"expected the weights as model.safetensors, found .*pytorch_model.bin"):
        onnx_model(str(pickled))

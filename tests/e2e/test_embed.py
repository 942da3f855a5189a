"""The real bundled all-MiniLM-L6-v2, directly and inside the Spark pandas UDF."""

from __future__ import annotations

import numpy as np
from pyspark.sql import functions as F

from hybridrec import schema as S
from hybridrec.embedding.encoder import bundled_model_path, embed_texts
from hybridrec.transforms.embed import filter_needs_embedding, with_embedding

ANCHOR = "A man is playing a guitar on stage."
PARAPHRASE = "Someone performs music with a guitar in front of an audience."
UNRELATED = "The central bank raised interest rates to fight inflation."


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


def test_onnxruntime_gives_the_torch_vectors(tmp_path, monkeypatch):
    monkeypatch.setenv("HYBRIDREC_CACHE", str(tmp_path))  # a fresh export, not one cached earlier
    texts = [ANCHOR, PARAPHRASE, UNRELATED, "short", PARAPHRASE * 5]
    torch_vectors = embed_texts(texts, model_path=bundled_model_path(), runtime="torch", batch_size=2)
    onnx_vectors = embed_texts(texts, model_path=bundled_model_path(), runtime="onnxruntime", batch_size=2)
    assert list(tmp_path.glob("encoder-*.onnx"))
    assert (torch_vectors * onnx_vectors).sum(axis=1).min() > 0.99999

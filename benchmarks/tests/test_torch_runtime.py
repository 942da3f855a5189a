"""What needs torch (the `torch` and `bench` extras, not installed by `make test`): the torch runtime,
its safetensors-only loading, and the reference vectors the test suite checks the ONNX graph against."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from benchmarks import reference_vectors
from hybridrec.embedding import encoder

TEXTS = reference_vectors.TEXTS


def test_the_reference_file_holds_sentence_transformers_vectors():
    reference = json.loads(reference_vectors.REFERENCE.read_text())
    assert reference["texts"] == TEXTS
    np.testing.assert_allclose(np.array(reference["vectors"]), reference_vectors.sentence_transformers_vectors(TEXTS),
                               atol=1e-6)


def test_the_torch_runtime_gives_the_onnx_vectors(tmp_path, monkeypatch):
    monkeypatch.setenv("HYBRIDREC_CACHE", str(tmp_path))
    monkeypatch.setattr(encoder, "_ENCODERS", {})
    path = encoder.bundled_model_path()
    torch_vectors = encoder.embed_texts(TEXTS, model_path=path, runtime="torch", batch_size=2)
    onnx_vectors = encoder.embed_texts(TEXTS, model_path=path, runtime="onnxruntime", batch_size=2)
    assert (torch_vectors * onnx_vectors).sum(axis=1).min() > 0.99999


def test_the_torch_runtime_loads_weights_only_from_safetensors(tmp_path):
    import torch

    bundled = Path(encoder.bundled_model_path())
    _, model = encoder.load_model(str(bundled))
    pickled = tmp_path / "pickled-model"
    shutil.copytree(bundled, pickled, ignore=shutil.ignore_patterns("*.safetensors", "onnx", "openvino"))
    torch.save(model.state_dict(), pickled / "pytorch_model.bin")  # a pickle: must never be loaded
    with pytest.raises(OSError, match="safetensors"):
        encoder.load_model(str(pickled))

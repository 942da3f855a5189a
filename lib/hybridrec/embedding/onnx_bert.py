"""A BERT encoder (Hugging Face `BertModel` weights: all-MiniLM-L6-v2 and its family) as an ONNX graph,
built from the model folder's `config.json` and `model.safetensors` with numpy and `onnx` alone.

This is how the driver makes the executors' model file: no torch (PyPI's torch is a 4.7 GB CUDA
build) anywhere in the default install. The graph is the standard post-LayerNorm BERT encoder
(embeddings, then per layer: self-attention, residual + LayerNorm, GELU feed-forward, residual +
LayerNorm) with the same inputs and output as Hugging Face's model: input_ids, attention_mask,
token_type_ids -> last_hidden_state. Its vectors are checked against sentence-transformers' own
(tests/e2e/test_embed.py, tests/fixtures/minilm_reference.json).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from hybridrec.errors import ConfigError

OPSET = 17  # LayerNormalization is an operator from opset 17 on
INPUTS = ("input_ids", "attention_mask", "token_type_ids")
OUTPUT = "last_hidden_state"


def _bert_config(model_dir: Path) -> dict:
    config = json.loads((model_dir / "config.json").read_text())
    kind, act = config.get("model_type"), config.get("hidden_act", "gelu")
    if kind != "bert" or act != "gelu" or config.get("position_embedding_type", "absolute") != "absolute":
        raise ConfigError(f"{model_dir / 'config.json'}: expected a BERT encoder (model_type 'bert', hidden_act "
                          f"'gelu', absolute positions), found model_type {kind!r}, hidden_act {act!r}")
    return config


def _weights(model_dir: Path) -> dict[str, np.ndarray]:
    path = model_dir / "model.safetensors"
    if not path.is_file():  # never a pickle (pytorch_model.bin): loading one can run code
        raise ConfigError(f"{model_dir}: expected the weights as model.safetensors, found "
                          f"{sorted(p.name for p in model_dir.iterdir())}")
    from safetensors.numpy import load_file

    weights = load_file(str(path))
    # Some exports prefix every name with the architecture ("bert.embeddings...").
    return {name.removeprefix("bert."): value.astype(np.float32) if value.dtype != np.int64 else value
            for name, value in weights.items()}


class _Graph:
    """Nodes and initialisers, with fresh names: `op(...)` returns its output's name."""

    def __init__(self, weights: dict[str, np.ndarray]) -> None:
        self.weights, self.nodes, self.initializers, self._n = weights, [], {}, 0

    def const(self, value, name: str = "") -> str:
        from onnx import numpy_helper

        name = name or f"const_{len(self.initializers)}"
        self.initializers[name] = numpy_helper.from_array(np.asarray(value), name)
        return name

    def weight(self, name: str, transpose: bool = False) -> str:
        if name not in self.weights:
            raise ConfigError(f"model.safetensors has no tensor {name!r}: expected BertModel weights")
        key = f"{name}.T" if transpose else name
        if key not in self.initializers:
            self.const(self.weights[name].T.copy() if transpose else self.weights[name], key)
        return key

    def op(self, kind: str, *inputs: str, **attrs) -> str:
        from onnx import helper

        self._n += 1
        out = f"{kind.lower()}_{self._n}"
        self.nodes.append(helper.make_node(kind, list(inputs), [out], **attrs))
        return out

    def dense(self, x: str, prefix: str) -> str:
        """x @ W.T + b, as torch.nn.Linear stores W (out, in)."""
        return self.op("Add", self.op("MatMul", x, self.weight(f"{prefix}.weight", transpose=True)),
                       self.weight(f"{prefix}.bias"))

    def layer_norm(self, x: str, prefix: str, eps: float) -> str:
        return self.op("LayerNormalization", x, self.weight(f"{prefix}.weight"), self.weight(f"{prefix}.bias"),
                       axis=-1, epsilon=eps)

    def gelu(self, x: str) -> str:
        """The exact GELU BERT uses: 0.5 x (1 + erf(x / sqrt(2)))."""
        inner = self.op("Erf", self.op("Mul", x, self.const(np.float32(1 / math.sqrt(2)))))
        return self.op("Mul", self.op("Mul", x, self.const(np.float32(0.5))),
                       self.op("Add", inner, self.const(np.float32(1.0))))


def _attention(g: _Graph, x: str, mask_bias: str, prefix: str, heads: int, head_dim: int) -> str:
    split = g.const(np.array([0, 0, heads, head_dim], np.int64))  # 0: keep batch and tokens as they are

    def project(name: str, perm: list[int]) -> str:
        return g.op("Transpose", g.op("Reshape", g.dense(x, f"{prefix}.self.{name}"), split), perm=perm)

    q, k, v = project("query", [0, 2, 1, 3]), project("key", [0, 2, 3, 1]), project("value", [0, 2, 1, 3])
    scores = g.op("Add", g.op("Mul", g.op("MatMul", q, k), g.const(np.float32(1 / math.sqrt(head_dim)))), mask_bias)
    context = g.op("MatMul", g.op("Softmax", scores, axis=-1), v)
    merged = g.op("Reshape", g.op("Transpose", context, perm=[0, 2, 1, 3]),
                  g.const(np.array([0, 0, heads * head_dim], np.int64)))
    return g.dense(merged, f"{prefix}.output.dense")


def bert_onnx(model_dir: str | Path):
    """The encoder of `model_dir` as an onnx.ModelProto (checked by onnx.checker)."""
    import onnx
    from onnx import TensorProto, helper

    model_dir = Path(model_dir)
    config = _bert_config(model_dir)
    hidden, heads = config["hidden_size"], config["num_attention_heads"]
    eps = float(config.get("layer_norm_eps", 1e-12))
    g = _Graph(_weights(model_dir))

    # Embeddings: word + absolute position (0 .. tokens-1) + token type, then LayerNorm.
    tokens = g.op("Gather", g.op("Shape", "input_ids"), g.const(np.int64(1)), axis=0)
    positions = g.op("Range", g.const(np.int64(0)), tokens, g.const(np.int64(1)))
    x = g.op("Add", g.op("Add", g.op("Gather", g.weight("embeddings.word_embeddings.weight"), "input_ids"),
                         g.op("Gather", g.weight("embeddings.position_embeddings.weight"), positions)),
             g.op("Gather", g.weight("embeddings.token_type_embeddings.weight"), "token_type_ids"))
    x = g.layer_norm(x, "embeddings.LayerNorm", eps)

    # Padding is masked as Hugging Face does: the float32 minimum added to its attention scores.
    keep = g.op("Cast", "attention_mask", to=TensorProto.FLOAT)
    mask_bias = g.op("Unsqueeze", g.op("Mul", g.op("Sub", g.const(np.float32(1.0)), keep),
                                       g.const(np.float32(np.finfo(np.float32).min))),
                     g.const(np.array([1, 2], np.int64)))  # (batch, 1, 1, tokens)

    for layer in range(config["num_hidden_layers"]):
        prefix = f"encoder.layer.{layer}"
        attended = _attention(g, x, mask_bias, f"{prefix}.attention", heads, hidden // heads)
        x = g.layer_norm(g.op("Add", attended, x), f"{prefix}.attention.output.LayerNorm", eps)
        expanded = g.gelu(g.dense(x, f"{prefix}.intermediate.dense"))
        x = g.layer_norm(g.op("Add", g.dense(expanded, f"{prefix}.output.dense"), x), f"{prefix}.output.LayerNorm", eps)
    g.nodes.append(helper.make_node("Identity", [x], [OUTPUT]))

    graph = helper.make_graph(
        g.nodes, "bert_encoder",
        [helper.make_tensor_value_info(n, TensorProto.INT64, ["batch", "tokens"]) for n in INPUTS],
        [helper.make_tensor_value_info(OUTPUT, TensorProto.FLOAT, ["batch", "tokens", hidden])],
        initializer=list(g.initializers.values()))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="hybridrec")
    onnx.checker.check_model(model)
    return model

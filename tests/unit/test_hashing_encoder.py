"""The hashing stand-in for the text model: deterministic, normalised, and lexical (shared words
make texts similar), which is all the fast test lane needs from item vectors."""

import numpy as np

from hybridrec.embedding.encoder import HASHING_DIM, embed_texts, hashed_words


def test_vectors_are_unit_length_deterministic_and_lexical():
    texts = ["A starship crosses the galaxy", "the galaxy and a starship", "Bake sourdough bread", "!!!"]
    vectors = embed_texts(texts, model_path="unused", runtime="hashing")
    assert vectors.shape == (4, HASHING_DIM) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors[:3], axis=1), 1.0, rtol=1e-6)
    assert not vectors[3].any()  # no words, no direction
    np.testing.assert_array_equal(vectors, hashed_words(texts))
    space, space_again, bread = vectors[:3]
    assert space @ space_again > 0.5 > abs(space @ bread)
    assert hashed_words(["Galaxy galaxy"])[0] @ hashed_words(["galaxy"])[0] > 0.999  # case-blind counts

"""EASE against its definition: the closed form solves the constrained least squares, and the lists
exclude what a user touched."""

from __future__ import annotations

import numpy as np
import pytest

from hybridrec.scoring.ease import ease_top_n, ease_weights, interaction_matrix


def _x() -> np.ndarray:
    # Items 0 and 1 always go together, items 2 and 3 too; item 4 is on its own.
    return interaction_matrix(np.array([0, 0, 1, 1, 2, 2, 3, 4, 4]), np.array([0, 1, 0, 1, 2, 3, 2, 3, 4]), 5, 5)


def test_weights_solve_the_least_squares_with_a_zero_diagonal():
    x, lam = _x(), 2.0
    b = ease_weights(x, lam).astype(np.float64)
    assert np.allclose(np.diag(b), 0)
    # Stationarity of ||X - XB||^2 + lam ||B||^2 with diag(B) = 0: off the diagonal,
    # (X^T X + lam I) B - X^T X vanishes; on it, only the constraint's multiplier remains.
    gram = x.T.astype(np.float64) @ x
    residual = (gram + lam * np.eye(5)) @ b - gram
    off = ~np.eye(5, dtype=bool)
    assert np.abs(residual[off]).max() < 1e-5
    # Co-occurring items carry each other; items never seen together do not.
    assert b[0, 1] > 0.1 and b[2, 3] > 0.1 and b[0, 4] == pytest.approx(0, abs=1e-6)


def test_top_n_excludes_seen_items_and_ranks_the_partner_first():
    x = _x()
    order = ease_top_n(x, ease_weights(x, 1.0), 2)
    assert order[3, 0] == 3  # user 3 touched item 2 only: its partner, item 3, comes first
    for user in range(5):
        assert not set(order[user][order[user] >= 0]) & set(np.flatnonzero(x[user]))


def test_rows_with_fewer_unseen_items_are_padded():
    x = interaction_matrix(np.array([0, 0]), np.array([0, 1]), 1, 3)
    assert ease_top_n(x, ease_weights(x, 1.0), 3).tolist() == [[2, -1, -1]]


def test_lambda_must_be_positive():
    with pytest.raises(ValueError, match="lambda must be > 0"):
        ease_weights(_x(), 0.0)

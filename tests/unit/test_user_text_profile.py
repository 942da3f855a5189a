"""Users' own words in the content profile (pure numpy): all of it without history, a prior that
fades as history grows, and a list from words alone for a user with no history and no factors."""

from __future__ import annotations

import dataclasses

import numpy as np

from hybridrec.scoring.kernel import History, score_rows
from hybridrec.scoring.profiles import profiles_of
from scoring_data import CONTENT_ONLY, EMB, HYBRID, IDS, INDEX, hist, params

B_WORDS = np.array([0.05, 1.0], dtype=np.float32) / np.linalg.norm([0.05, 1.0])  # "I like topic B"


def _unit(v):
    return v / np.linalg.norm(v)


def _with_words(h: History, words=B_WORDS) -> History:
    return dataclasses.replace(h, text=words.astype(np.float32))


def test_the_profile_of_a_user_without_history_is_their_words_centred_like_the_items():
    p = params(text_prior_items=3.0)
    profiles, sources = profiles_of([_with_words(hist([]))], INDEX, p)
    expected = _unit(B_WORDS - EMB.mean(axis=0))
    np.testing.assert_allclose(profiles[0], expected, atol=1e-6)
    assert len(sources[0]) == 0
    assert not profiles_of([_with_words(hist([]))], INDEX, params(text_prior_items=0.0))[0].any()  # words ignored


def test_words_weigh_as_prior_items_and_fade_as_history_grows():
    p = params(text_prior_items=3.0)
    words = _unit(B_WORDS - EMB.mean(axis=0))
    for n in (1, 3, 9):
        h = hist([0] * n)  # n events on a0 (topic A), same time
        plain = profiles_of([h], INDEX, p)[0][0]
        mixed = profiles_of([_with_words(h)], INDEX, p)[0][0]
        np.testing.assert_allclose(mixed, _unit((n * plain + 3 * words) / (n + 3)), atol=1e-6)
    light = profiles_of([_with_words(hist([0]))], INDEX, p)[0][0] @ words
    heavy = profiles_of([_with_words(hist([0] * 9))], INDEX, p)[0][0] @ words
    assert light > heavy  # the more history, the less the words count


def test_a_user_with_only_words_gets_the_topic_they_wrote_about():
    rows = score_rows([np.zeros(0, np.float32)], [_with_words(hist([]))], INDEX,
                      params(("content", CONTENT_ONLY), ("hybrid", HYBRID), text_prior_items=3.0))
    for strategy in range(2):
        ranked = [IDS[i] for i, s in zip(rows.items, rows.strategy, strict=True) if s == strategy]
        assert ranked[0].startswith("b"), (strategy, ranked)


def test_a_newcomer_with_words_gets_als_factors_from_the_items_nearest_the_words():
    from hybridrec.scoring.profiles import user_factor_matrix, words_as_factors
    from scoring_data import ALS_ONLY

    p = params(text_prior_items=3.0, text_neighbours=2)
    histories = [_with_words(hist([])), hist([])]  # words about topic B; a newcomer who wrote nothing
    profiles, _ = profiles_of(histories, INDEX, p)
    factors, has = words_as_factors(*user_factor_matrix([None, None], 2), profiles, histories, INDEX, p)
    np.testing.assert_allclose(factors[0], INDEX.factors[[3, 4]].mean(axis=0))  # b0, b1: the warm B items
    assert has.tolist() == [True, False] and not factors[1].any()
    off = words_as_factors(*user_factor_matrix([None, None], 2), profiles, histories, INDEX, params(text_neighbours=0))
    assert not off[1].any()
    rows = score_rows([np.zeros(0, np.float32)], [_with_words(hist([]))], INDEX, params(("als", ALS_ONLY), **{
        "text_prior_items": 3.0, "text_neighbours": 2}))
    assert IDS[rows.items[0]] == "b0"  # the ALS signal alone now ranks topic B first


def test_a_newcomer_with_words_gets_the_factors_of_the_users_who_wrote_alike():
    """Three users with history wrote about topic B, two about topic A; their factors differ from any
    item's. A newcomer writing about B gets the mean of the two B writers nearest their words."""
    from hybridrec.scoring.profiles import user_factor_matrix, words_as_factors

    writers_text = np.array([[0.0, 1.0], [0.1, 0.99], [0.3, 0.95], [1.0, 0.0], [0.99, 0.1]], dtype=np.float32)
    writers_text /= np.linalg.norm(writers_text, axis=1, keepdims=True)
    writer_factors = np.array([[0.2, 2.0], [0.4, 1.6], [9.0, 9.0], [3.0, 0.1], [2.0, 0.3]], dtype=np.float32)
    index = dataclasses.replace(INDEX, writer_text=writers_text, writer_factors=writer_factors)
    histories = [_with_words(hist([])), hist([0]), hist([])]  # a B writer; a user with factors; a silent newcomer
    p = params(text_prior_items=3.0, text_neighbours=2, text_user_neighbours=2)
    profiles, _ = profiles_of(histories, index, p)
    own = np.array([0.5, 0.5], dtype=np.float32)
    factors, has = words_as_factors(*user_factor_matrix([None, own, None], 2), profiles, histories, index, p)
    np.testing.assert_allclose(factors[0], writer_factors[[0, 1]].mean(axis=0), rtol=1e-6)  # the two nearest B writers
    np.testing.assert_array_equal(factors[1], own)  # a user with factors keeps their own
    assert has.tolist() == [True, True, False] and not factors[2].any()
    # With the setting off, or fewer writers than it asks for, the items nearest the words are used.
    for k in (0, 6):
        items_only = words_as_factors(*user_factor_matrix([None, own, None], 2), profiles, histories, index,
                                      dataclasses.replace(p, text_user_neighbours=k))[0]
        np.testing.assert_allclose(items_only[0], INDEX.factors[[3, 4]].mean(axis=0))

"""A/B bucketing with known answers: stable per user, shares within 1% on 100k users."""

from __future__ import annotations

from collections import Counter

from hybridrec.transforms.variants import CONTROL, bucket, variant_of

ARMS = [("diverse", 0.2), ("short", 0.3)]


def test_a_user_keeps_their_variant_and_a_new_salt_reshuffles():
    users = [f"user-{i}" for i in range(2000)]
    first = [variant_of(u, "exp-1", ARMS) for u in users]
    assert first == [variant_of(u, "exp-1", ARMS) for u in users]  # night after night, re-run after re-run
    moved = sum(a != b for a, b in zip(first, (variant_of(u, "exp-2", ARMS) for u in users), strict=True))
    assert moved > 0.4 * len(users)  # independent draws: about 1 - (0.2² + 0.3² + 0.5²) = 62% move


def test_shares_hold_within_one_percent_on_100k_users():
    counts = Counter(variant_of(str(i), "exp-1", ARMS) for i in range(100_000))
    assert abs(counts["diverse"] / 100_000 - 0.2) < 0.01
    assert abs(counts["short"] / 100_000 - 0.3) < 0.01
    assert abs(counts[CONTROL] / 100_000 - 0.5) < 0.01


def test_arms_take_consecutive_ranges_of_the_hash():
    users = [str(i) for i in range(5000)]
    for u in users:
        position, arm = bucket(u, "s"), variant_of(u, "s", ARMS)
        assert arm == ("diverse" if position < 0.2 else "short" if position < 0.5 else CONTROL)
    assert all(variant_of(u, "s", []) == CONTROL for u in users[:50])

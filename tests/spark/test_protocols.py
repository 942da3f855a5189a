"""The `random` protocol's split and the EASE reference of `evaluate`, on tiny frames with known answers."""

from __future__ import annotations

import math
from datetime import datetime
from types import SimpleNamespace

import numpy as np
from pyspark.sql import functions as F

from conftest import make_config
from hybridrec import schema as S
from hybridrec.quality import splits
from hybridrec.scoring import ease
from hybridrec.steps.evaluation import Holdout, ease_holdout

COLUMNS = [S.USER_ID, S.ITEM_ID, S.EVENT_TS, S.WEIGHT]


def _frame(spark, rows):
    return spark.createDataFrame([(u, i, datetime(2026, 11, 1 + d), float(w)) for u, i, d, w in rows], COLUMNS)


def _test_items(df) -> dict[str, set[str]]:
    held = {}
    for row in df.filter(F.col(splits.IS_TEST)).collect():
        held.setdefault(row[S.USER_ID], set()).add(row[S.ITEM_ID])
    return held


def test_random_split_holds_out_a_seeded_share_of_each_user_not_the_latest(spark):
    # 30 users x 10 events on days 0..9, one user with a single event.
    rows = [(f"u{u:02d}", f"i{d}", d, 5) for u in range(30) for d in range(10)] + [("solo", "i0", 0, 5)]
    df = _frame(spark, rows).repartition(3)
    first = splits.with_random_split(df, 0.25, seed=7)
    held = _test_items(first)
    assert {u: len(items) for u, items in held.items()} == {f"u{u:02d}": math.ceil(10 * 0.25) for u in range(30)}
    assert "solo" not in held  # one event stays in training
    assert _test_items(splits.with_random_split(df.repartition(1), 0.25, seed=7)) == held  # same seed, same split
    assert _test_items(splits.with_random_split(df, 0.25, seed=8)) != held
    # Not the per_user protocol in disguise: most users hold out something other than their latest days.
    latest = {"i7", "i8", "i9"}
    assert sum(items != latest for items in held.values()) > 20


def test_ease_reference_recommends_the_co_liked_item_and_never_a_seen_one(spark):
    # a and b are liked together by four users, c and d by four others; u_a liked a only, u_c liked c only.
    rows = [(f"p{n}", item, 0, 5) for n in range(4) for item in ("a", "b")]
    rows += [(f"q{n}", item, 0, 5) for n in range(4) for item in ("c", "d")]
    rows += [("u_a", "a", 0, 5), ("u_c", "c", 0, 5)]
    train = _frame(spark, rows)
    users = spark.createDataFrame([("u_a", 1, True), ("u_c", 1, True)], f"{S.USER_ID} string, n_train long, is_light boolean")
    holdout = Holdout(train=train, relevant=None, users=users, n_users=2, n_relevant=2)
    items = spark.createDataFrame([(i,) for i in ("a", "b", "c", "d", "e")], f"{S.ITEM_ID} string")
    ctx = SimpleNamespace(spark=spark, cfg=make_config("unused", "evaluate.ease_lambda=1.0"),
                          read=lambda spec: items)
    recs = {(r[S.USER_ID], r[S.RANK]): r[S.ITEM_ID] for r in ease_holdout(ctx, holdout, top_n=4).collect()}
    assert (recs[("u_a", 1)], recs[("u_c", 1)]) == ("b", "d")
    assert "a" not in {v for (u, _), v in recs.items() if u == "u_a"} and len(recs) == 8
    assert {r[0] for r in ease_holdout(ctx, holdout, top_n=4).select(S.STRATEGY).distinct().collect()} == {"ease"}

    # B fitted on the same training part in another item order (score_holdout's, for the ranker) is
    # reused as it is: the same lists; and it is what ranks (a B that links a to e sends u_a to e).
    order = ["e", "d", "c", "b", "a"]
    people = sorted({u for u, *_ in rows})
    x = ease.interaction_matrix(np.array([people.index(u) for u, *_ in rows]), np.array([order.index(i) for _, i, *_ in rows]),
                                len(people), len(order))
    fitted = {"item_ids": order, "weights": ease.ease_weights(x, 1.0)}
    reused = {(r[S.USER_ID], r[S.RANK]): r[S.ITEM_ID] for r in ease_holdout(ctx, holdout, 4, weights=fitted).collect()}
    assert reused == recs
    fitted["weights"][order.index("a"), order.index("e")] = 10.0
    linked = {(r[S.USER_ID], r[S.RANK]): r[S.ITEM_ID] for r in ease_holdout(ctx, holdout, 4, weights=fitted).collect()}
    assert linked[("u_a", 1)] == "e" and linked[("u_c", 1)] == "d"

    ctx.cfg = make_config("unused", "evaluate.ease_max_items=4")  # 5 items: above the guard
    assert ease_holdout(ctx, holdout, top_n=4) is None

"""The mapInArrow adapter gives the numpy kernel's rows, block by block, with every null intact."""

from __future__ import annotations

import numpy as np
import pandas as pd

from hybridrec import schema as S
from hybridrec.scoring.arrow import with_hybrid_recommendations
from hybridrec.scoring.kernel import score_block
from scoring_data import A_FAN, ALS_ONLY, HYBRID, IDS, INDEX, hist, params


def test_spark_scoring_gives_score_blocks_rows_in_blocks_with_nulls_intact(spark):
    from chispa import assert_approx_df_equality

    users = ["u1", "u2", "u3", "u4", "u5"]
    factors = [A_FAN, None, np.array([0.0, 1.0]), np.array([0.5, 0.5]), A_FAN]
    histories = [hist([0, 1]), hist([3], ts=[999_000.0]), hist([4], weight=[0.5]), hist([0, 3, 4]),
                 hist(np.zeros(0, np.int64))]
    p = params(("als", ALS_ONLY), ("hybrid", HYBRID), top_n=3, block_bytes=2 * 16 * len(IDS))  # 2 users a block
    rows = pd.DataFrame({S.USER_ID: users, S.HIST_POS: [h.pos.tolist() for h in histories],
                         S.HIST_WEIGHT: [h.weight.tolist() for h in histories],
                         S.HIST_TS: [h.ts.tolist() for h in histories],
                         S.FEATURES: [None if f is None else f.tolist() for f in factors]})
    frame = spark.createDataFrame(rows, "user_id string, hist_pos array<bigint>, hist_weight array<double>, "
                                        "hist_ts array<double>, features array<float>").repartition(2)
    got = with_hybrid_recommendations(frame, spark.sparkContext.broadcast(INDEX), p)
    expected = score_block(users, factors, histories, INDEX, p)
    # Every kind of null the output has, so the Arrow path is checked on each of them.
    assert expected[S.ALS_SCORE].isna().any() and expected[S.CONTENT_SCORE].isna().any()
    assert expected[S.REASON_ITEM_ID].isna().any() and (expected[S.STRATEGY] == S.NEW_ITEM).any()
    order = [S.USER_ID, S.STRATEGY, S.RANK]
    assert_approx_df_equality(got.orderBy(*order), spark.createDataFrame(expected, S.SCORED_SCHEMA).orderBy(*order),
                              precision=1e-6, ignore_nullable=True)

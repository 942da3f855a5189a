"""Users' own words (the roster's description): a newcomer who writes about space gets space items from
the real model, not the popularity list; one who writes nothing still gets popularity."""

from __future__ import annotations

from datetime import date

import pytest
from pyspark.sql import functions as F

from conftest import REAL_MODEL, make_config
from hybridrec import schema as S
from hybridrec.io.delta import read_table
from hybridrec.steps import RunContext, run_steps
from topic_data import TOPICS, files_settings, item_id, write_topic_dataset

DS = date(2026, 11, 22)
WORDS = {"stargazer": "I love space: rockets, planets, stars and astronauts exploring the galaxy.",
         "cooking_fan_0": "Baking bread and cooking pasta at home."}


@pytest.fixture(scope="module")
def night(spark, tmp_path_factory):
    base = tmp_path_factory.mktemp("user_text")
    settings = [*files_settings(write_topic_dataset(base / "input", user_texts=WORDS)), *REAL_MODEL,
                "gate.enabled=false", "recommend.top_n=5", "recommend.new_item_slots=1", "ranker.enabled=false"]
    ctx = RunContext(spark=spark, cfg=make_config(base / "lakehouse", *settings), ds=DS)
    run_steps(ctx, ("ingest", "embed_items", "train_als", "recommend"))
    return ctx


def _list(spark, ctx, user):
    rows = read_table(spark, ctx.root, S.RECOMMENDATIONS, ds=DS).where(F.col(S.USER_ID) == user).orderBy(S.RANK)
    return [(r[S.ITEM_ID], r[S.STRATEGY]) for r in rows.collect()]


def test_users_keep_their_own_words_in_the_users_table(spark, night):
    users = {r[S.USER_ID]: r[S.TEXT] for r in read_table(spark, night.root, S.USERS, ds=DS).collect()}
    assert users["stargazer"] == WORDS["stargazer"] and users["cooking_fan_0"] == WORDS["cooking_fan_0"]
    assert users["newcomer"] is None and users["space_fan_0"] is None  # empty description: no text


def test_a_newcomer_who_writes_about_space_gets_space_items_and_a_silent_one_gets_popularity(spark, night):
    space = {item_id("space", i) for i in range(len(TOPICS["space"]))}
    stargazer = _list(spark, night, "stargazer")
    assert len(stargazer) == 5 and {s for _, s in stargazer} <= {"hybrid", "new_item"}
    assert [i for i, _ in stargazer[:4]] and all(i in space for i, _ in stargazer[:4])
    silent = _list(spark, night, "newcomer")
    assert {s for _, s in silent} == {S.POPULARITY_STRATEGY} and [i for i, _ in silent] != [i for i, _ in stargazer]

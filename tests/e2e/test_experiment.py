"""A/B variants on a copy of the published topic night: the night is re-published with two arms;
users are bucketed as the plain-Python hash says, each arm gets its own settings, all in one commit;
then `hybridrec experiment` compares the arms with bootstrap intervals."""

from __future__ import annotations

import shutil
from datetime import date

import pytest
from delta.tables import DeltaTable
from pyspark.sql import functions as F

from conftest import PUBLISHED_NIGHTS, make_config
from hybridrec import schema as S
from hybridrec.io.delta import read_table
from hybridrec.io.storage import table_path
from hybridrec.steps import RunContext, run_steps
from hybridrec.steps.experiment import run_experiment
from hybridrec.transforms.variants import variant_of

DS = PUBLISHED_NIGHTS[-1]
SALT = "exp-topic"
ARMS = [("short", 0.5)]


@pytest.fixture(scope="module")
def experiment(spark, published_lakehouse, tmp_path_factory):
    root, settings = published_lakehouse
    copy = tmp_path_factory.mktemp("experiment") / "lakehouse"
    shutil.copytree(root, copy)
    base = [s for s in settings if not s.startswith("lakehouse.root")]
    cfg = make_config(copy, *base, f'experiment.salt="{SALT}"',
                      'experiment.variants=[{name="short", share=0.5, settings={"recommend.top_n"=3}}]')
    path = table_path(str(copy), S.RECOMMENDATIONS.name)
    before = DeltaTable.forPath(spark, path).history(1).first()["version"]
    run_steps(RunContext(spark=spark, cfg=cfg, ds=date.fromisoformat(DS)), ("recommend",))
    after = DeltaTable.forPath(spark, path).history(1).first()["version"]
    rows = read_table(spark, str(copy), S.RECOMMENDATIONS, ds=DS).collect()
    return (copy, base), rows, after - before


def test_users_are_bucketed_as_the_stable_hash_says_and_arms_get_their_settings(experiment):
    _, rows, commits = experiment
    assert commits == 1  # every arm in one atomic publish
    arm = {r[S.USER_ID]: r[S.VARIANT] for r in rows}
    assert arm == {u: variant_of(u, SALT, ARMS) for u in arm}
    assert set(arm.values()) == {"control", "short"}
    lengths = {}
    for r in rows:
        lengths[r[S.USER_ID]] = max(lengths.get(r[S.USER_ID], 0), r[S.RANK])
    assert all(n == (3 if arm[u] == "short" else 5) for u, n in lengths.items())
    versions = {(r[S.VARIANT], r[S.MODEL_VERSION]) for r in rows}
    assert len(versions) == 2 and len({v for _, v in versions}) == 2  # each arm names its own settings


def test_the_experiment_report_compares_arms_on_one_holdout_with_intervals(spark, experiment):
    (copy, base), _, _ = experiment
    # "same" repeats control's settings; "two" keeps only the first two warm places of control's lists,
    # so each user's NDCG there is at most control's.
    arms = ('experiment.variants=[{name="same", share=0.3, settings={"recommend.top_n"=5}}, '
            '{name="two", share=0.3, settings={"recommend.top_n"=2, "recommend.new_item_slots"=0}}]')
    cfg = make_config(copy, *base, arms)
    table = run_experiment(RunContext(spark=spark, cfg=cfg, ds=date.fromisoformat(DS))).set_index("arm")
    assert list(table.index) == ["control", "same", "two"] and table["metric"].eq("ndcg@10").all()
    assert table["users"].nunique() == 1 and table.loc["control", "users"] > 0
    assert table.loc["same", ["diff_vs_control", "ci_low", "ci_high"]].tolist() == [0, 0, 0]
    two = table.loc["two"]
    assert two["diff_vs_control"] < 0 and two["ci_low"] <= two["diff_vs_control"] <= two["ci_high"] <= 0


def test_spark_buckets_like_plain_python(spark):
    from hybridrec.transforms.variants import with_variant

    users = spark.createDataFrame([(f"u{i}",) for i in range(500)], "user_id string")
    arms = [("a", 0.1), ("b", 0.25)]
    got = {r[S.USER_ID]: r[S.VARIANT] for r in with_variant(users, "s1", arms).collect()}
    assert got == {f"u{i}": variant_of(f"u{i}", "s1", arms) for i in range(500)}
    assert with_variant(users, "s1", arms).where(F.col(S.VARIANT).isNull()).count() == 0

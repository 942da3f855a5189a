"""Business rules at publish time, on a copy of the published topic night: the night is re-published
with an availability window, a global block list, a user's block list and a category cap; the plain
lists (published before, without rules) say exactly what each rule must remove."""

from __future__ import annotations

import shutil
from collections import Counter
from datetime import date

import pytest
from pyspark.sql import functions as F

from conftest import PUBLISHED_NIGHTS, make_config
from hybridrec import schema as S
from hybridrec.errors import BlockListError
from hybridrec.io.delta import read_table
from hybridrec.io.storage import table_path
from hybridrec.steps import RunContext, run_steps

DS = PUBLISHED_NIGHTS[-1]
TOP_N = 5
NOT_YET = "cold_space"      # available only from next year
BLOCKED = "space_0"         # on the global block list
FAN = "space_fan_0"         # has a block list of their own


def _lists(rows) -> dict[str, list[str]]:
    out: dict[str, list[tuple[int, str]]] = {}
    for r in rows:
        out.setdefault(r[S.USER_ID], []).append((r[S.RANK], r[S.ITEM_ID]))
    return {u: [i for _, i in sorted(v)] for u, v in out.items()}


@pytest.fixture(scope="module")
def ruled(spark, published_lakehouse, tmp_path_factory):
    """(plain lists, lists with rules, the recommend step's runs row, the item FAN blocked)."""
    root, settings = published_lakehouse
    base = tmp_path_factory.mktemp("rules")
    copy = base / "lakehouse"
    shutil.copytree(root, copy)
    plain = _lists(read_table(spark, str(copy), S.RECOMMENDATIONS, ds=DS).collect())
    fan_blocks = next(i for i in plain[FAN] if i not in (NOT_YET, BLOCKED))
    (base / "blocks.csv").write_text(f"user_id,item_id\n{FAN},{fan_blocks}\nsomeone_else,{plain[FAN][0]}\n")
    spark.sql(f"UPDATE delta.`{table_path(str(copy), S.ITEMS.name)}` SET {S.AVAILABLE_FROM} = "
              f"timestamp'2027-01-01 00:00:00' WHERE {S.ITEM_ID} = '{NOT_YET}'")
    cfg = make_config(copy, *(s for s in settings if not s.startswith("lakehouse.root")),
                      f'rules.blocked_items=["{BLOCKED}"]', f'rules.user_block_list="{base / "blocks.csv"}"',
                      "rules.category_cap=3", "guardrails.enabled=false")
    ctx = RunContext(spark=spark, cfg=cfg, ds=date.fromisoformat(DS))
    run_steps(ctx, ("recommend",))
    ruled_rows = read_table(spark, str(copy), S.RECOMMENDATIONS, ds=DS).collect()
    run = read_table(spark, str(copy), S.RUNS).where(
        (F.col(S.RUN_ID) == ctx.run_id) & (F.col("status") == "succeeded")).first()
    return plain, ruled_rows, run, fan_blocks, cfg


def test_no_list_holds_what_a_rule_forbids(ruled):
    plain, rows, _, fan_blocks, _ = ruled
    lists = _lists(rows)
    assert set(lists) == set(plain)  # every user still has a list
    assert all(NOT_YET not in items and BLOCKED not in items for items in lists.values())
    assert fan_blocks not in lists[FAN]
    assert any(fan_blocks in items for user, items in lists.items() if user != FAN)  # only FAN's list loses it
    topics = {r[S.ITEM_ID]: r[S.ITEM_ID].removeprefix("cold_").split("_")[0] for r in rows}
    assert all(max(Counter(topics[i] for i in items).values()) <= 3 for items in lists.values())


def test_lists_stay_full_and_ranked_without_holes(ruled):
    _, rows, _, _, _ = ruled
    for items in _lists(rows).values():
        assert len(items) == TOP_N
    ranks: dict[str, list[int]] = {}
    for r in rows:
        ranks.setdefault(r[S.USER_ID], []).append(r[S.RANK])
    assert all(sorted(v) == list(range(1, TOP_N + 1)) for v in ranks.values())


def test_runs_count_the_rows_each_rule_took_out_of_the_plain_lists(ruled):
    plain, _, run, _, _ = ruled
    counts = run["row_counts"]
    assert counts["removed_unavailable"] == sum(NOT_YET in items for items in plain.values())
    assert counts["removed_blocked"] == sum(BLOCKED in items for items in plain.values())
    assert counts["removed_user_blocked"] == 1
    assert counts["removed_unavailable"] > 0 and counts["removed_blocked"] > 0


def test_a_block_list_row_without_an_item_stops_the_night(spark, ruled, tmp_path):
    cfg = ruled[4]
    bad = tmp_path / "blocks.csv"
    bad.write_text(f"user_id,item_id\n{FAN},\n")
    ctx = RunContext(spark=spark, cfg=cfg.model_copy(update={"rules": cfg.rules.model_copy(
        update={"user_block_list": str(bad)})}), ds=date.fromisoformat(DS))
    with pytest.raises(BlockListError, match=r"blocks.csv: expected a user_id and an item_id on every row, found 1"):
        run_steps(ctx, ("recommend",))

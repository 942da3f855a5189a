"""The analysts' surface on a two-night topic lakehouse: contracts in the Delta log, the Spark
catalog (tables, latest views, history, time travel), DuckDB/pandas without Spark, `hybridrec show`
and `sql`, and the notebooks."""

from __future__ import annotations

import subprocess
import sys
from datetime import date
from pathlib import Path

import nbformat
import pytest
from chispa import assert_df_equality
from nbclient import NotebookClient

from hybridrec import analytics
from hybridrec import schema as S
from hybridrec.cli import main
from hybridrec.io.catalog import register_lakehouse
from hybridrec.io.delta import read_table
from hybridrec.steps import STEPS

NIGHTS = (date(2026, 11, 21), date(2026, 11, 22))
NOTEBOOKS = sorted((Path(__file__).parents[2] / "notebooks").glob("*.ipynb"))

# encoder_versions is written by the weekly finetune job, not by a night.
NIGHTLY_TABLES = [t for t in S.TABLES.values() if t is not S.ENCODER_VERSIONS]


@pytest.fixture(scope="module")
def lakehouse(published_lakehouse):
    """Two published nights, each evaluated (metrics rows); returns (root, settings)."""
    return published_lakehouse


def test_every_table_carries_its_contract_in_the_delta_log(lakehouse):
    root, _ = lakehouse
    for spec in NIGHTLY_TABLES:
        contract = analytics.table_contract(root, spec)
        assert contract["description"] == spec.description
        assert contract["partition_by"] == list(spec.partition_by)
        assert [(name, comment) for name, _, comment in contract["columns"]] == [
            (f.name, f.metadata["comment"]) for f in spec.schema.fields]


def test_the_catalog_holds_every_table_and_the_latest_views(spark, lakehouse):
    root, _ = lakehouse
    names = register_lakehouse(spark, root, "hybridrec")
    assert set(names) == {f"hybridrec.{t.name}" for t in NIGHTLY_TABLES} | {"hybridrec.recommendations_latest",
                                                                  "hybridrec.items_latest"}
    expected = read_table(spark, root, S.RECOMMENDATIONS, ds=NIGHTS[-1])
    assert_df_equality(spark.table("hybridrec.recommendations_latest"), expected, ignore_row_order=True)
    assert spark.table("hybridrec.recommendations").select(S.DS).distinct().count() == len(NIGHTS)
    assert spark.sql("SELECT count(*) AS n, count(DISTINCT item_id) AS d FROM hybridrec.items_latest").first() == (18, 18)
    assert {r[0] for r in spark.sql("SELECT DISTINCT ds FROM hybridrec.metrics").collect()} == set(NIGHTS)
    assert spark.sql("SELECT count(*) FROM hybridrec.runs WHERE status = 'succeeded'").first()[0] == 2 * len(STEPS)
    described = {r[0]: r for r in spark.sql("DESCRIBE TABLE EXTENDED hybridrec.recommendations").collect()}
    assert described["strategy"]["comment"] == S.RECOMMENDATIONS.schema["strategy"].metadata["comment"]
    assert described["Comment"]["data_type"] == S.RECOMMENDATIONS.description


def test_duckdb_and_pandas_read_the_same_rows_without_spark(spark, lakehouse):
    root, _ = lakehouse
    con = analytics.duckdb_connection(root)
    latest = con.execute("SELECT count(*), min(ds), max(ds) FROM recommendations_latest").fetchone()
    spark_latest = read_table(spark, root, S.RECOMMENDATIONS, ds=NIGHTS[-1]).count()
    assert latest == (spark_latest, NIGHTS[-1], NIGHTS[-1])
    assert con.execute("SELECT count(*) FROM recommendations").fetchone()[0] == 2 * spark_latest
    strategies = {r[0] for r in con.execute("SELECT DISTINCT strategy FROM metrics").fetchall()}
    assert strategies == {"popularity", "als", "content", "hybrid", "ease"}  # ease: the reference
    frame = analytics.read_pandas(root, S.RECOMMENDATIONS, ds=NIGHTS[0], user_id="space_fan_0")
    assert len(frame) == 5 and set(frame[S.DS]) == {NIGHTS[0]}


def test_show_prints_titles_scores_and_the_reason(lakehouse, capsys):
    root, _ = lakehouse
    rows = analytics.user_list(root, "space_fan_0")
    assert rows[S.RANK].tolist() == [1, 2, 3, 4, 5]
    assert rows[S.TITLE].notna().all()
    new_item = rows[rows[S.STRATEGY] == "new_item"].iloc[0]
    assert new_item[S.TITLE] == "Galaxy Drift" and new_item["because_you_liked"] in {
        "Starship Horizon", "Orbital Colony", "Alien Signal", "Comet Run", "Moon Base"}
    assert new_item[S.EXPLANATION] == f"new: similar to {new_item['because_you_liked']}"
    warm = rows[rows[S.STRATEGY] == "hybrid"]
    assert all(e.startswith(("because you liked ", "liked by people who liked ", "popular now")) for e in warm[S.EXPLANATION])
    assert main(["show", "--user", "space_fan_0", "--set", f'lakehouse.root="{root}"']) == 0
    out = capsys.readouterr().out
    assert "user space_fan_0, ds 2026-11-22" in out and "Galaxy Drift [cold_space]" in out
    assert f"new: similar to {new_item['because_you_liked']}" in out


def test_show_names_a_missing_user(lakehouse, caplog):
    root, _ = lakehouse
    assert main(["show", "--user", "nobody", "--set", f'lakehouse.root="{root}"']) == 1
    assert "no recommendations for user 'nobody'" in caplog.text


def test_sql_command_prints_the_query_result(lakehouse, cold_drivers):
    root, _ = lakehouse
    env = cold_drivers.environ()
    cmd = [sys.executable, "-m", "hybridrec.cli", "sql", "--set", f'lakehouse.root="{root}"',
           "--set", 'spark.master="local[2]"', "--set", "spark.shuffle_partitions=2",
           *[word for setting in cold_drivers.settings for word in ("--set", setting)],
           "SELECT strategy, count(*) AS n FROM recommendations_latest GROUP BY strategy ORDER BY strategy"]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "new_item" in done.stdout and "popularity" in done.stdout and "hybrid" in done.stdout
    assert "hybridrec.recommendations_latest" in done.stderr  # a fresh application registered the catalog


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_top_to_bottom_and_draws_a_chart(lakehouse, notebook, monkeypatch):
    root, _ = lakehouse
    monkeypatch.setenv("HYBRIDREC_LAKEHOUSE", root)
    book = nbformat.read(notebook, as_version=4)
    assert not any(c.get("outputs") for c in book.cells if c.cell_type == "code"), "commit notebooks without outputs"
    NotebookClient(book, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(notebook.parent)}}).execute()
    charts = [o for c in book.cells if c.cell_type == "code" for o in c.outputs if "image/png" in o.get("data", {})]
    assert charts, f"{notebook.name} drew no chart"


def test_there_are_three_notebooks():
    assert [p.stem for p in NOTEBOOKS] == ["01_explore_recommendations", "02_quality_over_time", "03_new_items"]


def test_docs_table_contracts_are_generated_from_the_schema():
    docs = (Path(__file__).parents[2] / "docs" / "tables.md").read_text(encoding="utf-8")
    assert docs == S.contracts_markdown(), "regenerate docs/tables.md from hybridrec.schema.contracts_markdown()"

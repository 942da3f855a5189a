"""`python -m benchmarks.user_text` at toy size: users whose history is hidden are scored from their words
alone, next to popularity and the ceiling of the synthetic generator's own law."""

from __future__ import annotations

from datetime import date

from benchmarks.user_text import CEILING, text_only_table
from conftest import make_config
from hybridrec.steps import RunContext, run_steps

TOY = ['dataset.kind="synthetic"', "synthetic.n_users=300", "synthetic.n_items=120", "synthetic.n_interactions=6000",
       "synthetic.n_users_without_history=5", "synthetic.user_text_share=0.5", "recommend.top_n=10",
       "evaluate.cold_k=10"]


def test_words_only_users_are_scored_next_to_popularity_and_the_ceiling(spark, tmp_path):
    ctx = RunContext(spark=spark, cfg=make_config(tmp_path / "lakehouse", *TOY), ds=date(2026, 11, 22))
    run_steps(ctx, ("ingest", "embed_items"))
    table = text_only_table(ctx, n_users=40, seed=7).set_index("strategy")
    assert set(table.index) == {"popularity", "content", "blend", CEILING}
    assert (table["users"] == 40).all()
    ndcg = table["ndcg@10"]
    # The generator's law with true tastes is the best ranking there is; popularity ignores the words.
    assert ndcg[CEILING] > ndcg["popularity"] and ndcg[CEILING] >= ndcg["blend"] - 0.02
    assert table.loc["popularity", "x popularity ndcg@10"] == 1.0

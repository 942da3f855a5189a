"""MovieLens small: ratings.csv (rating = weight) and item_text.csv (title, genres, tags, overview/plot)."""

from __future__ import annotations

from pathlib import Path

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from hybridrec.config import MovielensConfig
from hybridrec.schema import ITEM_ID, USER_ID
from hybridrec.sources import RawInputs
from hybridrec.sources.readers import read_source


def load_movielens(spark: SparkSession, cfg: MovielensConfig) -> RawInputs:
    root = Path(cfg.path)
    ratings = read_source(
        spark, str(root / "ratings.csv"), "csv", what="interactions",
        required=[USER_ID, ITEM_ID, "weight", "event_ts"],
        rename={"userId": USER_ID, "movieId": ITEM_ID, "rating": "weight", "timestamp": "event_ts"},
    )
    items = read_source(
        spark, str(root / "item_text.csv"), "csv", what="items",
        required=[ITEM_ID, "title", "genres", "user_tags", "tmdb_overview", "melu_plot"],
        rename={"movieId": ITEM_ID},
    )
    # Overview and plot together are the description; genres and user tags are tags.
    items = items.select(
        "*",
        F.concat_ws(" ", "tmdb_overview", "melu_plot").alias("description"),
        F.concat_ws("|", "genres", "user_tags").alias("tags"),
    )
    return RawInputs(ratings, items, None, "s", cfg.positive_min_weight, "movielens")

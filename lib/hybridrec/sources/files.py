"""Generic adapter: interactions, items and an optional user roster from configured paths."""

from __future__ import annotations

from pyspark.sql import SparkSession

from hybridrec.config import FilesConfig
from hybridrec.errors import ConfigError, MissingColumnError
from hybridrec.schema import ITEM_ID, USER_ID
from hybridrec.sources import RawInputs
from hybridrec.sources.readers import read_source

INTERACTION_COLUMNS = [USER_ID, ITEM_ID, "event_ts"]
ITEM_COLUMNS = [ITEM_ID]
INTERACTION_OPTIONAL = ("weight", "event_type")
ITEM_OPTIONAL = ("title", "description", "tags", "categories", "available_from", "available_to")


def load_files(spark: SparkSession, cfg: FilesConfig) -> RawInputs:
    if not cfg.interactions or not cfg.items:
        raise ConfigError("dataset.kind = 'files' needs files.interactions and files.items paths; found empty")
    interactions = read_source(spark, cfg.interactions, cfg.interactions_format,
                               what="interactions", required=INTERACTION_COLUMNS, optional=INTERACTION_OPTIONAL)
    if "weight" not in interactions.columns and "event_type" not in interactions.columns:
        raise MissingColumnError(f"interactions input {cfg.interactions}", ["weight or event_type"],
                                 interactions.columns)
    items = read_source(spark, cfg.items, cfg.items_format, what="items", required=ITEM_COLUMNS,
                        optional=ITEM_OPTIONAL)
    users = (read_source(spark, cfg.users, cfg.users_format, what="users", required=[USER_ID],
                         allow_empty=True)
             if cfg.users else None)
    return RawInputs(interactions, items, users, cfg.timestamp_unit, cfg.positive_min_weight, "files")

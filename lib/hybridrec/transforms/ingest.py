"""Ingest transforms: parse, validate, normalise and deduplicate raw inputs.

Each `with_*_reason` transform keeps every input row and adds typed columns plus `reason`
(null = usable). Splitting on `reason` gives the kept rows and the quarantine rows, so
rows read = rows kept + rows quarantined by construction; the ingest step also checks it
against the written tables.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from hybridrec import schema as S
from hybridrec.quality.quarantine import EPOCH_UNITS

# Interaction reason codes, in the order they are checked.
NULL_USER_ID = "null_user_id"
NULL_ITEM_ID = "null_item_id"
MISSING_EVENT_TS = "missing_event_ts"
BAD_EVENT_TS = "bad_event_ts"
FUTURE_EVENT_TS = "future_event_ts"
MISSING_WEIGHT = "missing_weight"
BAD_WEIGHT = "bad_weight"
NON_POSITIVE_WEIGHT = "non_positive_weight"
HUGE_WEIGHT = "huge_weight"
UNKNOWN_EVENT_TYPE = "unknown_event_type"
UNKNOWN_ITEM = "unknown_item"
DUPLICATE_EVENT = "duplicate_event"
NEAR_DUPLICATE_EVENT = "near_duplicate_event"
# Item reason codes.
EMPTY_TEXT = "empty_text"
INVALID_ENCODING = "invalid_encoding"
DUPLICATE_ITEM_ID = "duplicate_item_id"
BAD_AVAILABILITY = "bad_availability"  # available_from/available_to not ISO 8601, or the window is empty

TEXT_TRUNCATED = "text_truncated"  # kept items whose text was cut at ingest.max_text_chars
# ISO 8601 date, optionally with hh:mm[:ss[.f]] and a zone. A bare prefix such as "2026-11-01T1"
# (a truncated line) would otherwise parse as 01:00 and be kept at the wrong time.
_ISO_TS = r"^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?)?\s*(Z|[+-]\d{2}(:?\d{2})?)?$"
# Spark's CSV reader decodes invalid UTF-8 bytes as U+FFFD; such text would embed as noise.
_REPLACEMENT_CHAR = "\ufffd"

_RAW_RECORD = "_record"


def _blank_to_null(c: Column) -> Column:
    trimmed = F.trim(c)
    return F.when(trimmed == "", None).otherwise(trimmed)


def _parse_ts(raw: Column, unit: str) -> Column:
    if unit == "iso":
        return F.when(raw.rlike(_ISO_TS), F.try_to_timestamp(raw))
    seconds = raw.try_cast("double") / EPOCH_UNITS[unit]
    # try_cast keeps unparseable text null; timestamp_seconds needs a finite number
    return F.when(F.isnan(seconds), None).otherwise(F.timestamp_seconds(seconds))


def with_raw_record(raw_df: DataFrame) -> DataFrame:
    """Keep the row as read (JSON) so quarantine shows exactly what arrived."""
    cols = [c for c in raw_df.columns if c != S.SOURCE]
    return raw_df.withColumn(_RAW_RECORD, F.to_json(F.struct(*cols)))


def with_interaction_reason(
    raw_df: DataFrame,
    *,
    ds: date,
    timestamp_unit: str,
    event_weights: dict[str, float],
    max_weight: float,
) -> DataFrame:
    """Typed interaction columns plus `reason` for rows that cannot be used (row-level checks)."""
    df = with_raw_record(raw_df)
    has_weight = "weight" in raw_df.columns
    has_type = "event_type" in raw_df.columns
    raw_weight = _blank_to_null(F.col("weight")) if has_weight else F.lit(None).cast("string")
    event_type = F.lower(_blank_to_null(F.col("event_type"))) if has_type else F.lit(None).cast("string")
    pairs = [x for k, v in event_weights.items() for x in (F.lit(k.lower()), F.lit(float(v)))]
    # An empty create_map() has no key type; a typed empty map keeps the lookup valid.
    mapping = F.create_map(*pairs) if pairs else F.lit(None).cast("map<string,double>")
    df = df.select(
        _blank_to_null(F.col(S.USER_ID)).alias(S.USER_ID),
        _blank_to_null(F.col(S.ITEM_ID)).alias(S.ITEM_ID),
        _blank_to_null(F.col("event_ts")).alias("_raw_ts"),
        raw_weight.alias("_raw_weight"),
        event_type.alias(S.EVENT_TYPE),
        F.col(S.SOURCE),
        F.col(_RAW_RECORD),
    )
    df = df.withColumn(S.EVENT_TS, _parse_ts(F.col("_raw_ts"), timestamp_unit))
    explicit = F.col("_raw_weight").try_cast("double")
    weight = F.when(F.col("_raw_weight").isNotNull(), explicit).otherwise(mapping[F.col(S.EVENT_TYPE)])
    df = df.withColumn(S.WEIGHT, weight)
    end = F.lit(S.day_end(ds)).cast("timestamp")
    no_weight_given = F.col("_raw_weight").isNull()
    reason = (
        F.when(F.col(S.USER_ID).isNull(), NULL_USER_ID)
        .when(F.col(S.ITEM_ID).isNull(), NULL_ITEM_ID)
        .when(F.col("_raw_ts").isNull(), MISSING_EVENT_TS)
        .when(F.col(S.EVENT_TS).isNull(), BAD_EVENT_TS)
        .when(F.col(S.EVENT_TS) >= end, FUTURE_EVENT_TS)
        .when(no_weight_given & F.col(S.EVENT_TYPE).isNull(), MISSING_WEIGHT)
        .when(no_weight_given & F.col(S.WEIGHT).isNull(), UNKNOWN_EVENT_TYPE)
        .when(F.col(S.WEIGHT).isNull() | F.isnan(S.WEIGHT), BAD_WEIGHT)
        .when(F.col(S.WEIGHT) <= 0, NON_POSITIVE_WEIGHT)
        .when(F.col(S.WEIGHT) > max_weight, HUGE_WEIGHT)
    )
    return df.withColumn(S.REASON, reason).drop("_raw_ts", "_raw_weight")


def with_catalogue_reason(interactions_df: DataFrame, kept_items_df: DataFrame) -> DataFrame:
    """Interactions on items missing from the kept catalogue become `unknown_item`."""
    known = kept_items_df.select(F.col(S.ITEM_ID).alias("_known_item"), F.lit(True).alias("_is_known"))
    joined = interactions_df.join(known, interactions_df[S.ITEM_ID] == known["_known_item"], "left")
    reason = F.when(
        F.col(S.REASON).isNull() & F.col("_is_known").isNull(), F.lit(UNKNOWN_ITEM)
    ).otherwise(F.col(S.REASON))
    return joined.withColumn(S.REASON, reason).drop("_known_item", "_is_known")


def with_duplicate_event_reason(interactions_df: DataFrame, *, window_seconds: float) -> DataFrame:
    """Among usable rows: the same (user, item, time, type) more than once keeps the highest weight
    (`duplicate_event`); the same (user, item, type) again within `window_seconds` of its previous
    usable event (a double submit) is a `near_duplicate_event`."""
    exact_key = [S.USER_ID, S.ITEM_ID, S.EVENT_TS, S.EVENT_TYPE]
    order = Window.partitionBy(*exact_key).orderBy(F.col(S.WEIGHT).desc(), F.col(_RAW_RECORD), F.col(S.SOURCE))
    usable = F.col(S.REASON).isNull()
    position = F.when(usable, F.row_number().over(order))
    df = interactions_df.withColumn(
        S.REASON, F.when(usable & (position > 1), F.lit(DUPLICATE_EVENT)).otherwise(F.col(S.REASON)))
    if window_seconds <= 0:
        return df
    # Only usable rows take part, so a quarantined row never hides or causes a near duplicate.
    usable_ts = F.when(F.col(S.REASON).isNull(), F.col(S.EVENT_TS).cast("double"))
    series = Window.partitionBy(S.USER_ID, S.ITEM_ID, S.EVENT_TYPE).orderBy(S.EVENT_TS)
    previous = F.max(usable_ts).over(series.rowsBetween(Window.unboundedPreceding, -1))
    near = F.col(S.REASON).isNull() & (F.col(S.EVENT_TS).cast("double") - previous <= window_seconds)
    return df.withColumn(S.REASON, F.when(near, F.lit(NEAR_DUPLICATE_EVENT)).otherwise(F.col(S.REASON)))


def _tags(raw_df: DataFrame) -> Column:
    parts = [F.split(F.coalesce(F.col(c), F.lit("")), r"[|,;]") for c in ("tags", "categories") if c in raw_df.columns]
    if not parts:
        return F.array().cast("array<string>")
    merged = F.flatten(F.array(*parts)) if len(parts) > 1 else parts[0]
    cleaned = F.transform(merged, lambda t: F.lower(F.trim(t)))
    return F.array_distinct(F.filter(cleaned, lambda t: t != ""))


def item_text(title: Column, tags: Column, description: Column) -> Column:
    """Text for the embedding model: 'title. tag, tag. description' (missing parts skipped)."""
    tag_text = F.when(F.size(tags) > 0, F.array_join(tags, ", "))
    return F.concat_ws(". ", title, tag_text, description)


def with_item_reason(raw_df: DataFrame, *, max_text_chars: int) -> DataFrame:
    """Typed item columns, text (cut at `max_text_chars`, flagged in `text_truncated`) and its hash,
    the availability window (ISO 8601), plus `reason` (null id, empty text, invalid encoding, bad
    availability window, duplicate id)."""
    df = with_raw_record(raw_df)
    title = _blank_to_null(F.col("title")) if "title" in raw_df.columns else F.lit(None).cast("string")
    description = (_blank_to_null(F.col("description")) if "description" in raw_df.columns
                   else F.lit(None).cast("string"))
    df = df.select(
        _blank_to_null(F.col(S.ITEM_ID)).alias(S.ITEM_ID),
        title.alias(S.TITLE),
        description.alias(S.DESCRIPTION),
        _tags(raw_df).alias(S.TAGS),
        F.col(S.SOURCE),
        F.col(_RAW_RECORD),
        *[(_blank_to_null(F.col(c)) if c in raw_df.columns else F.lit(None).cast("string")).alias(f"_raw_{c}")
          for c in (S.AVAILABLE_FROM, S.AVAILABLE_TO)],
    )
    for c in (S.AVAILABLE_FROM, S.AVAILABLE_TO):
        df = df.withColumn(c, _parse_ts(F.col(f"_raw_{c}"), "iso"))
    bad_window = ((F.col(f"_raw_{S.AVAILABLE_FROM}").isNotNull() & F.col(S.AVAILABLE_FROM).isNull())
                  | (F.col(f"_raw_{S.AVAILABLE_TO}").isNotNull() & F.col(S.AVAILABLE_TO).isNull())
                  | (F.col(S.AVAILABLE_FROM) >= F.col(S.AVAILABLE_TO)))
    full_text = item_text(F.col(S.TITLE), F.col(S.TAGS), F.col(S.DESCRIPTION))
    df = df.withColumn(TEXT_TRUNCATED, F.length(full_text) > max_text_chars)
    df = df.withColumn("_bad_encoding", F.contains(full_text, F.lit(_REPLACEMENT_CHAR)))
    df = df.withColumn(S.TEXT, F.substring(full_text, 1, max_text_chars))
    df = df.withColumn(S.TEXT_HASH, F.sha2(F.col(S.TEXT), 256))
    row_reason = (F.when(F.col(S.ITEM_ID).isNull(), NULL_ITEM_ID).when(F.col(S.TEXT) == "", EMPTY_TEXT)
                  .when(F.col("_bad_encoding"), INVALID_ENCODING).when(bad_window, BAD_AVAILABILITY))
    df = df.withColumn(S.REASON, row_reason)
    # Same id twice: keep the longest text (ties: smallest hash) so the choice is deterministic.
    order = Window.partitionBy(S.ITEM_ID).orderBy(F.length(S.TEXT).desc(), F.col(S.TEXT_HASH), F.col(S.SOURCE))
    position = F.when(F.col(S.REASON).isNull(), F.row_number().over(order))
    reason = F.when(F.col(S.REASON).isNull() & (position > 1), F.lit(DUPLICATE_ITEM_ID)).otherwise(F.col(S.REASON))
    return df.withColumn(S.REASON, reason).drop("_bad_encoding", *[f"_raw_{c}" for c in (S.AVAILABLE_FROM, S.AVAILABLE_TO)])


def with_users(interactions_df: DataFrame, roster_df: DataFrame | None, *, text_fields: tuple[str, ...] = (),
               max_text_chars: int = 4000) -> DataFrame:
    """user_id, text: those with kept interactions plus those in the roster. `text` is the user's own
    words, the roster's `text_fields` that it has joined with ". " (null when empty; the longest when
    the roster lists a user twice)."""
    users = interactions_df.select(S.USER_ID, F.lit(None).cast("string").alias(S.TEXT))
    if roster_df is not None:
        parts = [F.nullif(F.trim(F.col(c).cast("string")), F.lit("")) for c in text_fields if c in roster_df.columns]
        text = F.nullif(F.substring(F.concat_ws(". ", *parts), 1, max_text_chars), F.lit("")) if parts else F.lit(None)
        users = users.unionByName(roster_df.select(_blank_to_null(F.col(S.USER_ID)).alias(S.USER_ID),
                                                   text.cast("string").alias(S.TEXT)))
    longest = F.max(F.struct(F.length(S.TEXT).alias("n"), F.col(S.TEXT).alias("t")))["t"]
    return users.where(F.col(S.USER_ID).isNotNull()).groupBy(S.USER_ID).agg(longest.alias(S.TEXT))


def filter_kept(classified_df: DataFrame, spec: S.TableSpec, ds: date) -> DataFrame:
    """Usable rows in the column order of the table contract."""
    kept = classified_df.where(F.col(S.REASON).isNull()).withColumn(S.DS, F.lit(ds))
    return kept.select(*spec.columns)


def filter_quarantined(classified_df: DataFrame, *, entity: str, run_id: str, ds: date) -> DataFrame:
    """Rows that cannot be used, as quarantine rows."""
    bad = classified_df.where(F.col(S.REASON).isNotNull())
    return bad.select(
        F.lit(entity).alias(S.ENTITY),
        F.coalesce(F.col(S.SOURCE), F.lit("unknown")).alias(S.SOURCE),
        F.col(S.REASON),
        F.col(_RAW_RECORD).alias(S.RECORD),
        F.lit(run_id).alias(S.RUN_ID),
        F.lit(ds).alias(S.DS),
    )


def quarantine_by_reason(classified_df: DataFrame) -> DataFrame:
    """reason, rows, example (the smallest raw record, so the choice is stable) and, for
    interactions, the earliest parsed event_ts (UTC text): what ingest's guardrail message shows."""
    # As text: a timestamp read in the wrong unit can lie past year 9999, which Python cannot hold.
    earliest = (F.date_format(F.min(S.EVENT_TS), "yyyy-MM-dd HH:mm:ss") if S.EVENT_TS in classified_df.columns
                else F.lit(None).cast("string"))
    return (classified_df.where(F.col(S.REASON).isNotNull()).groupBy(S.REASON)
            .agg(F.count(F.lit(1)).alias("rows"), F.min(_RAW_RECORD).alias("example"), earliest.alias("earliest_ts")))


def count_by_source(classified_df: DataFrame) -> DataFrame:
    """Per source: rows read, kept and quarantined (one row per source file), plus kept items whose
    text was truncated when the input has that flag."""
    truncated = (F.count(F.when(F.col(S.REASON).isNull() & F.col(TEXT_TRUNCATED), 1))
                 if TEXT_TRUNCATED in classified_df.columns else F.lit(0))
    return classified_df.groupBy(S.SOURCE).agg(
        F.count(F.lit(1)).alias("read"),
        F.count(F.when(F.col(S.REASON).isNull(), 1)).alias("kept"),
        F.count(F.when(F.col(S.REASON).isNotNull(), 1)).alias("quarantined"),
        truncated.alias(TEXT_TRUNCATED),
    )


@dataclass(frozen=True)
class Classified:
    """Every raw row with its reason (null = kept), and the frames the ingest step writes."""
    items: DataFrame              # raw items, classified (see with_item_reason)
    interactions: DataFrame       # raw interactions, classified
    items_kept: DataFrame
    interactions_kept: DataFrame
    quarantined: DataFrame        # both entities' bad rows, in the quarantine contract
    users: DataFrame


def classify(raw_items: DataFrame, raw_interactions: DataFrame, raw_users: DataFrame | None, *, ds: date,
             run_id: str, timestamp_unit: str, event_weights: dict[str, float], max_weight: float,
             max_text_chars: int, duplicate_window_seconds: float, user_text_fields: tuple[str, ...] = ()) -> Classified:
    """The whole of ingest's rules, as DataFrames: items first (interactions need the kept catalogue)."""
    items = with_item_reason(raw_items, max_text_chars=max_text_chars)
    items_kept = filter_kept(items, S.ITEMS, ds)
    interactions = with_interaction_reason(raw_interactions, ds=ds, timestamp_unit=timestamp_unit,
                                           event_weights=event_weights, max_weight=max_weight)
    interactions = with_duplicate_event_reason(with_catalogue_reason(interactions, items_kept),
                                               window_seconds=duplicate_window_seconds)
    interactions_kept = filter_kept(interactions, S.INTERACTIONS, ds)
    quarantined = filter_quarantined(items, entity="items", run_id=run_id, ds=ds).unionByName(
        filter_quarantined(interactions, entity="interactions", run_id=run_id, ds=ds))
    users = with_users(interactions_kept, raw_users, text_fields=user_text_fields,
                       max_text_chars=max_text_chars).withColumn(S.DS, F.lit(ds)).select(*S.USERS.columns)
    return Classified(items, interactions, items_kept, interactions_kept, quarantined, users)

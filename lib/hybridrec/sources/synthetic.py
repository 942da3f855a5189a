"""Deterministic synthetic dataset with real collaborative and content signal.

Items belong to a category and get readable text drawn from that category's vocabulary, so
embeddings of same-category items are close. Users have latent tastes over a few categories and
pick popular items inside them, so co-occurrence (ALS) is informative too. A fraction of items
never receives an interaction (cold items) and some users only exist in the roster (no history).
Files are generated once per parameter set under `<lakehouse>/_sources/` and read like any input
(for a lakehouse on object storage: generated in a local cache, then uploaded there once).
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from pyspark.sql import SparkSession
from tqdm import tqdm

from hybridrec.config import SyntheticConfig
from hybridrec.io.storage import child, exists, is_remote, upload_folder, write_text
from hybridrec.schema import ITEM_ID, USER_ID
from hybridrec.sources import RawInputs
from hybridrec.sources.readers import read_source

CATEGORIES: dict[str, dict[str, list[str]]] = {
    "space opera": {
        "nouns": ["starship", "nebula", "colony", "android", "galaxy", "asteroid", "star fleet", "wormhole"],
        "adjectives": ["interstellar", "cosmic", "orbital", "galactic", "alien"],
        "scenes": ["a crew drifts beyond the edge of known space", "rebels fight an empire across the stars",
                   "explorers land on a hostile alien planet", "a captain must save the failing space station"],
    },
    "cooking": {
        "nouns": ["kitchen", "recipe", "bakery", "pasta", "spice market", "chef", "sourdough", "feast"],
        "adjectives": ["homemade", "savory", "rustic", "spicy", "seasonal"],
        "scenes": ["a chef shares recipes for quick weeknight dinners", "bakers perfect bread and pastry at home",
                   "a guide to spices, sauces and slow cooking", "family meals cooked from fresh market produce"],
    },
    "gardening": {
        "nouns": ["garden", "greenhouse", "orchard", "rose bed", "compost", "seedling", "vegetable patch"],
        "adjectives": ["blooming", "organic", "leafy", "perennial", "backyard"],
        "scenes": ["how to grow vegetables and herbs in small spaces", "pruning roses and caring for fruit trees",
                   "a year of planting, watering and harvesting", "designing a flower border that blooms all summer"],
    },
    "jazz": {
        "nouns": ["saxophone", "trumpet", "big band", "quartet", "club", "swing", "bebop", "piano trio"],
        "adjectives": ["smoky", "improvised", "swinging", "late-night", "cool"],
        "scenes": ["musicians improvise in a crowded late-night club", "the history of swing and bebop records",
                   "a saxophonist records a legendary live album", "a piano trio plays standards and ballads"],
    },
    "detective": {
        "nouns": ["detective", "murder", "alibi", "inspector", "clue", "suspect", "crime scene", "heist"],
        "adjectives": ["hardboiled", "mysterious", "noir", "deadly", "hidden"],
        "scenes": ["an inspector investigates a murder in a quiet village", "a detective follows clues to a killer",
                   "a heist goes wrong and the suspects turn on each other", "a cold case is reopened after a confession"],
    },
    "fitness": {
        "nouns": ["workout", "marathon", "yoga", "strength training", "running shoes", "gym", "stretching"],
        "adjectives": ["intense", "daily", "full-body", "endurance", "beginner"],
        "scenes": ["a training plan to run your first marathon", "yoga and stretching routines for flexibility",
                   "strength workouts you can do at the gym or at home", "coaching tips to build endurance and muscle"],
    },
    "history": {
        "nouns": ["empire", "revolution", "dynasty", "battle", "ancient city", "kingdom", "archive", "war"],
        "adjectives": ["medieval", "ancient", "imperial", "forgotten", "victorian"],
        "scenes": ["the rise and fall of an ancient empire", "soldiers and kings in a medieval war",
                   "historians uncover letters from a revolution", "daily life in a forgotten kingdom"],
    },
    "wildlife": {
        "nouns": ["wolves", "ocean", "savanna", "elephants", "coral reef", "rainforest", "birds", "whales"],
        "adjectives": ["wild", "endangered", "migrating", "tropical", "arctic"],
        "scenes": ["a documentary follows elephants across the savanna", "whales migrate through the cold ocean",
                   "scientists protect an endangered coral reef", "the secret lives of birds in the rainforest"],
    },
    "programming": {
        "nouns": ["compiler", "database", "algorithm", "python", "cloud", "api", "debugger", "kernel"],
        "adjectives": ["scalable", "functional", "distributed", "open-source", "concurrent"],
        "scenes": ["a practical guide to writing clean software", "engineers design a distributed database",
                   "learn algorithms and data structures step by step", "debugging and testing code in production"],
    },
    "romance": {
        "nouns": ["wedding", "love letter", "summer affair", "heartbreak", "first date", "reunion", "promise"],
        "adjectives": ["tender", "passionate", "bittersweet", "romantic", "secret"],
        "scenes": ["two strangers fall in love during one summer", "old lovers meet again at a wedding",
                   "a letter reveals a secret romance", "a heartbroken writer finds love in a small town"],
    },
}

_TONES = ["an uplifting", "a dark", "a funny", "a thoughtful", "a fast-paced", "a gentle"]
_FORMATS = ["story", "guide", "series", "collection", "film", "book"]


def _dataset_dir(cfg: SyntheticConfig, lakehouse_root: str) -> Path:
    key = hashlib.sha256(json.dumps(cfg.model_dump(), sort_keys=True).encode()).hexdigest()[:12]
    return Path(lakehouse_root).expanduser().resolve() / "_sources" / f"synthetic-{key}"


def _item_table(cfg: SyntheticConfig, rng: np.random.Generator) -> tuple[pa.Table, np.ndarray, np.ndarray]:
    names = list(CATEGORIES)
    category = rng.integers(0, len(names), cfg.n_items)
    rows = []
    for idx, c in enumerate(category):
        vocab = CATEGORIES[names[c]]
        noun = vocab["nouns"][rng.integers(len(vocab["nouns"]))]
        other = vocab["nouns"][rng.integers(len(vocab["nouns"]))]
        adj = vocab["adjectives"][rng.integers(len(vocab["adjectives"]))]
        scene = vocab["scenes"][rng.integers(len(vocab["scenes"]))]
        tone = _TONES[rng.integers(len(_TONES))]
        fmt = _FORMATS[rng.integers(len(_FORMATS))]
        rows.append({
            ITEM_ID: f"i{idx:06d}",
            "title": f"The {adj.title()} {noun.title()} {idx}",
            "description": f"{tone.capitalize()} {fmt} where {scene}, with {adj} {noun} and {other}.",
            "tags": "|".join([names[c], noun, adj]),
        })
    popularity = rng.pareto(1.2, cfg.n_items) + 1.0
    return pa.Table.from_pylist(rows), category, popularity


def _user_ids(numbers: np.ndarray) -> np.ndarray:
    return np.char.add("u", np.char.zfill(numbers.astype(str), 7))


def _item_ids(numbers: np.ndarray) -> np.ndarray:
    return np.char.add("i", np.char.zfill(numbers.astype(str), 6))


@dataclass(frozen=True)
class LatentModel:
    """What the generator draws interactions from: per item its category index, popularity and whether
    it may be drawn at all (warm); per user (row = user number) the tastes over categories."""

    category: np.ndarray
    popularity: np.ndarray
    warm: np.ndarray
    taste: np.ndarray

    def next_item_probability(self, users: np.ndarray) -> np.ndarray:
        """P(a user's next interaction is item i), users x items: the generator's own law, so ranking by
        it is the best any recommender could do for these users (the Bayes ceiling). A category without
        warm items (tiny catalogues only) gets no mass here; the generator then draws any warm item."""
        share = np.where(self.warm, self.popularity, 0.0)
        totals = np.bincount(self.category, weights=share, minlength=self.taste.shape[1])
        within = np.divide(share, totals[self.category], out=np.zeros_like(share), where=totals[self.category] > 0)
        return self.taste[users][:, self.category] * within

    def most_probable_items(self, user_ids: list[str], n: int) -> np.ndarray:
        """(users, n) item ids, each user's n most probable next items first (ids as the files write them)."""
        users = np.array([int(u[1:]) for u in user_ids], dtype=np.int64)
        return _item_ids(np.argsort(-self.next_item_probability(users), axis=1, kind="stable")[:, :n])


def _latent(cfg: SyntheticConfig, rng: np.random.Generator) -> tuple[pa.Table, LatentModel]:
    items, category, popularity = _item_table(cfg, rng)
    warm = rng.random(cfg.n_items) >= cfg.cold_item_fraction
    taste = rng.dirichlet(np.full(len(CATEGORIES), 0.3), cfg.n_users)
    return items, LatentModel(category, popularity, warm, taste)


def latent_model(cfg: SyntheticConfig) -> LatentModel:
    """The latent model behind a parameter set's files, rebuilt from the seed (nothing is read or written)."""
    return _latent(cfg, np.random.default_rng(cfg.seed))[1]


def _interactions(
    cfg: SyntheticConfig, rng: np.random.Generator, model: LatentModel, out: Path, chunk_rows: int = 1_000_000,
) -> None:
    n_cat = len(CATEGORIES)
    category, popularity, warm, taste = model.category, model.popularity, model.warm, model.taste
    by_category = [np.flatnonzero((category == c) & warm) for c in range(n_cat)]
    cum_pop = [np.cumsum(popularity[ids]) / popularity[ids].sum() if len(ids) else None for ids in by_category]
    activity = rng.lognormal(0.0, 1.0, cfg.n_users)
    counts = np.maximum(1, np.round(activity / activity.sum() * cfg.n_interactions)).astype(np.int64)
    end = datetime.combine(date.fromisoformat(cfg.end_date), datetime.min.time(), tzinfo=UTC)
    end_s = int((end + timedelta(days=1)).timestamp()) - 1
    span_s = cfg.history_days * 86400
    event_types = np.array(["view", "click", "purchase"])
    users = np.repeat(np.arange(cfg.n_users), counts)
    schema = pa.schema([(USER_ID, pa.string()), (ITEM_ID, pa.string()), ("event_type", pa.string()),
                        ("event_ts", pa.timestamp("us", tz="UTC"))])
    with pq.ParquetWriter(out, schema) as writer:
        starts = range(0, len(users), chunk_rows)
        for start in tqdm(starts, desc="synthetic interactions", unit="chunk", disable=len(starts) < 2):
            u = users[start:start + chunk_rows]
            cum_taste = np.cumsum(taste[u], axis=1)
            cats = (cum_taste < rng.random(len(u))[:, None]).sum(axis=1).clip(max=n_cat - 1)
            items = np.empty(len(u), dtype=np.int64)
            for c in range(n_cat):
                rows = np.flatnonzero(cats == c)
                if len(rows) == 0:
                    continue
                if cum_pop[c] is None:  # category with only cold items: fall back to any warm item
                    items[rows] = rng.choice(np.flatnonzero(warm), len(rows))
                else:
                    pick = np.searchsorted(cum_pop[c], rng.random(len(rows))).clip(max=len(by_category[c]) - 1)
                    items[rows] = by_category[c][pick]
            ts = end_s - rng.integers(0, span_s, len(u))
            writer.write_table(pa.table({
                USER_ID: pa.array(_user_ids(u)),
                ITEM_ID: pa.array(_item_ids(items)),
                "event_type": pa.array(event_types[rng.choice(3, len(u), p=[0.7, 0.2, 0.1])]),
                "event_ts": pa.array(ts * 1_000_000, type=pa.timestamp("us", tz="UTC")),
            }, schema=schema))


def user_profile(taste: np.ndarray, rng: np.random.Generator) -> str:
    """A user's own words from their latent tastes: their favourite category and its vocabulary (and
    the second one when it is nearly as strong), as a roster's free-text field would say it."""
    names = list(CATEGORIES)
    first, second = np.argsort(-taste)[:2]
    vocab = CATEGORIES[names[first]]
    nouns = rng.choice(vocab["nouns"], 2, replace=False)
    adj = vocab["adjectives"][rng.integers(len(vocab["adjectives"]))]
    text = f"I love {names[first]}: {adj} {nouns[0]} stories and anything with {nouns[1]}."
    if taste[second] > 0.5 * taste[first]:
        text += f" Also into {names[second]}, {CATEGORIES[names[second]]['nouns'][rng.integers(3)]} above all."
    return text


def _users_table(cfg: SyntheticConfig, taste: np.ndarray) -> pa.Table:
    """Roster: every user (those without history last); a user_text_share of them wrote a description."""
    rng = np.random.default_rng([cfg.seed, 1])  # its own stream: interactions and items stay as they were
    n_cat = taste.shape[1]
    tastes = np.vstack([taste, rng.dirichlet(np.full(n_cat, 0.3), cfg.n_users_without_history)])
    writes = rng.random(len(tastes)) < cfg.user_text_share
    roster = _user_ids(np.arange(len(tastes))).tolist()
    texts = [user_profile(t, rng) if w else None for t, w in zip(tastes, writes, strict=True)]
    return pa.table({USER_ID: roster, "description": pa.array(texts, type=pa.string())})


def generate_synthetic(cfg: SyntheticConfig, lakehouse_root: str) -> Path:
    """Write interactions, items and users Parquet files once per parameter set; return the folder."""
    folder = _dataset_dir(cfg, lakehouse_root)
    done = folder / "_COMPLETE"
    if done.exists():
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(cfg.seed)
    items, model = _latent(cfg, rng)
    pq.write_table(items, folder / "items.parquet")
    _interactions(cfg, rng, model, folder / "interactions.parquet")
    pq.write_table(_users_table(cfg, model.taste), folder / "users.parquet")
    done.write_text(json.dumps(cfg.model_dump(), sort_keys=True))
    return folder


def _sources_folder(spark: SparkSession, cfg: SyntheticConfig, lakehouse_root: str) -> str:
    """The generated files' folder; on object storage they are generated locally, then uploaded once."""
    if not is_remote(lakehouse_root):
        return str(generate_synthetic(cfg, lakehouse_root))
    local = generate_synthetic(cfg, str(Path(tempfile.gettempdir()) / "hybridrec-synthetic"))
    remote = child(lakehouse_root, "_sources", local.name)
    if not exists(spark, child(remote, "_COMPLETE")):
        upload_folder(spark, local, remote)
        write_text(spark, child(remote, "_COMPLETE"), (local / "_COMPLETE").read_text())
    return remote


def load_synthetic(spark: SparkSession, cfg: SyntheticConfig, lakehouse_root: str) -> RawInputs:
    folder = _sources_folder(spark, cfg, lakehouse_root)
    interactions = read_source(spark, child(folder, "interactions.parquet"), "parquet",
                               what="interactions", required=[USER_ID, ITEM_ID, "event_ts", "event_type"])
    items = read_source(spark, child(folder, "items.parquet"), "parquet", what="items", required=[ITEM_ID])
    users = read_source(spark, child(folder, "users.parquet"), "parquet", what="users", required=[USER_ID])
    return RawInputs(interactions, items, users, "iso", cfg.positive_min_weight, "synthetic")

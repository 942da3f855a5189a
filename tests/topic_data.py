"""A tiny catalogue of three topics with a known right answer.

Each topic has five items with interactions and one item nobody has touched (`cold_*`). Every user
interacts only with items of one topic, so the cold item of that topic is the right content-based
recommendation and the items they touched must never come back.
"""

from __future__ import annotations

import csv
from pathlib import Path

TOPICS = {
    "space": [
        ("Starship Horizon", "A crew pilots a starship through a nebula toward a distant galaxy."),
        ("Orbital Colony", "Astronauts build a colony on a space station orbiting Mars."),
        ("Alien Signal", "Astronomers decode a radio signal from an alien civilisation in deep space."),
        ("Comet Run", "Explorers chase a comet across the solar system in a rocket."),
        ("Moon Base", "Engineers keep a lunar base alive after a meteor strike."),
        ("Galaxy Drift", "A lost spaceship drifts between stars, planets and black holes."),
    ],
    "cooking": [
        ("Sourdough Secrets", "Bake crusty sourdough bread with a wild yeast starter."),
        ("Pasta Nights", "Fresh pasta recipes with tomato sauce, garlic and basil."),
        ("Spice Kitchen", "Cook curries with cumin, turmeric and chili in a home kitchen."),
        ("Sweet Oven", "Recipes for cakes, cookies and pastries baked at home."),
        ("Soup Season", "Warm soups and stews cooked slowly with vegetables and herbs."),
        ("Grill Master", "Recipes for grilling steak, chicken and vegetables over charcoal."),
    ],
    "gardening": [
        ("Rose Garden", "Planting, pruning and watering roses in a flower garden."),
        ("Vegetable Patch", "Grow tomatoes, beans and lettuce in raised garden beds."),
        ("Orchard Care", "Care for apple and pear fruit trees through the seasons."),
        ("Herb Pots", "Grow basil, mint and thyme in pots on a sunny windowsill."),
        ("Compost Life", "Make rich compost soil for a healthy garden."),
        ("Greenhouse Year", "Raise seedlings and flowers in a small greenhouse."),
    ],
}
COLD_INDEX = 5  # the last item of each topic never gets an interaction
USERS_PER_TOPIC = 4


def item_id(topic: str, index: int) -> str:
    return f"cold_{topic}" if index == COLD_INDEX else f"{topic}_{index}"


def write_topic_dataset(folder: Path, *, extra_interactions: list[dict] | None = None,
                        extra_items: list[dict] | None = None, user_texts: dict[str, str] | None = None) -> dict[str, Path]:
    """interactions.csv, items.csv and users.csv (one roster user has no history; `user_texts`: roster
    users, with or without history, and their own words in a description column)."""
    folder.mkdir(parents=True, exist_ok=True)
    items = [
        {"item_id": item_id(topic, i), "title": title, "description": text, "tags": topic}
        for topic, entries in TOPICS.items() for i, (title, text) in enumerate(entries)
    ] + (extra_items or [])
    interactions = []
    for topic in TOPICS:
        for u in range(USERS_PER_TOPIC):
            user = f"{topic}_fan_{u}"
            # Each fan touches 3 of the 5 warm items of the topic (a different 3 per user).
            for k in range(3):
                i = (u + k) % COLD_INDEX
                interactions.append({"user_id": user, "item_id": item_id(topic, i),
                                     "event_ts": f"2026-11-{10 + k:02d}T12:00:00Z", "event_type": "purchase"})
    interactions += extra_interactions or []
    paths = {"interactions": folder / "interactions.csv", "items": folder / "items.csv", "users": folder / "users.csv"}
    _write_csv(paths["items"], items, ["item_id", "title", "description", "tags"])
    _write_csv(paths["interactions"], interactions, ["user_id", "item_id", "event_ts", "event_type"])
    users = sorted({*(r["user_id"] for r in interactions if r["user_id"]), "newcomer", *(user_texts or {})})
    texts = user_texts or {}
    _write_csv(paths["users"], [{"user_id": u, "description": texts.get(u, "")} for u in users],
               ["user_id", *(["description"] if texts else [])])
    return paths


def _write_csv(path: Path, rows: list[dict], columns: list[str]) -> None:
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)


def files_settings(paths: dict[str, Path]) -> list[str]:
    return [
        'dataset.kind="files"',
        f'files.interactions="{paths["interactions"]}"',
        f'files.items="{paths["items"]}"',
        f'files.users="{paths["users"]}"',
    ]

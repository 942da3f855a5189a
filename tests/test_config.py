from __future__ import annotations

import pytest

from hybridrec.config import load_config
from hybridrec.errors import ConfigError


def test_defaults_are_documented_values():
    cfg = load_config()
    assert (cfg.recommend.top_n, cfg.spark.master, cfg.lakehouse.root) == (50, "local[*]", "./lakehouse")
    assert cfg.embedding.model == "all-MiniLM-L6-v2"


def test_file_then_set_overrides(tmp_path):
    path = tmp_path / "my.toml"
    path.write_text('[recommend]\ntop_n = 20\ncontent_weight = 0.5\n[als]\nrank = 16\n')
    cfg = load_config(path, ["recommend.top_n=7", "recommend.new_item_slots=2", 'lakehouse.root="/data/lh"',
                             "spark.master=local[2]"])
    assert cfg.recommend.top_n == 7          # --set wins over the file
    assert cfg.recommend.content_weight == 0.5
    assert cfg.als.rank == 16
    assert cfg.lakehouse.root == "/data/lh"
    assert cfg.spark.master == "local[2]"    # bare strings need no quotes


@pytest.mark.parametrize(("override", "message"), [
    ("recommend.topn=3", "unknown key 'topn'"),
    ("recommend.top_n=0", "greater than 0"),
    ("dataset.kind=ftp", "dataset.kind"),
    ("recommend", "key=value"),
    ("recommend.new_item_slots=50", r"new_item_slots \(50\) must be < top_n \(50\)"),
    ("evaluate.protocol=random", "evaluate.protocol"),
])
def test_invalid_settings_are_rejected(override, message):
    with pytest.raises(ConfigError, match=message):
        load_config(overrides=[override])


def test_blend_needs_a_positive_weight():
    zero = [f"recommend.{w}_weight=0" for w in ("als", "recent", "popularity", "content")]
    with pytest.raises(ConfigError, match="must be > 0"):
        load_config(overrides=zero)


def test_missing_config_file(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.toml")

from __future__ import annotations

import re

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
    ("evaluate.protocol=shuffled", "evaluate.protocol"),
    ("recommend.diversity_lambda=1.5", "less than or equal to 1"),
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


def _shipped_profile(kind: str) -> dict:
    import tomllib
    from importlib import resources

    return tomllib.loads(resources.files("hybridrec").joinpath("profiles", f"{kind}.toml").read_text())


def test_synthetic_dataset_gets_its_tuned_profile_under_file_and_set(tmp_path):
    profile = _shipped_profile("synthetic")
    movielens = load_config(overrides=['dataset.kind="movielens"'])
    synthetic = load_config(overrides=['dataset.kind="synthetic"'])
    for section in ("als", "recommend"):
        for key, value in profile[section].items():
            assert getattr(getattr(synthetic, section), key) == value, f"{section}.{key}"
    assert synthetic.recommend != movielens.recommend  # the profile is not the MovieLens defaults
    assert movielens.recommend == load_config(overrides=['dataset.kind="movielens"', "dataset.tuned_profile=false"]
                                              ).recommend
    # auto resolves to synthetic when the MovieLens folder is missing
    auto = load_config(overrides=[f'movielens.path="{tmp_path / "none"}"'])
    assert auto.recommend == synthetic.recommend
    # a file and --set still win over the profile; tuned_profile=false keeps the shipped defaults
    path = tmp_path / "mine.toml"
    path.write_text("[recommend]\ncontent_weight = 0.05\n")
    mine = load_config(path, ['dataset.kind="synthetic"', "recommend.als_weight=0.15"])
    assert (mine.recommend.content_weight, mine.recommend.als_weight) == (0.05, 0.15)
    assert mine.recommend.recent_weight == synthetic.recommend.recent_weight
    plain = load_config(overrides=['dataset.kind="synthetic"', "dataset.tuned_profile=false"])
    assert plain.recommend == movielens.recommend


@pytest.mark.parametrize("retrieval", ["rerank", "ivf"])
def test_approximate_retrieval_needs_at_least_top_n_candidates(retrieval):
    with pytest.raises(ConfigError, match=rf"rerank_candidates \(10\) must be >= top_n \(50\) with retrieval '{retrieval}'"):
        load_config(overrides=[f'recommend.retrieval="{retrieval}"', "recommend.rerank_candidates=10"])
    assert load_config(overrides=['recommend.retrieval="exact"', "recommend.rerank_candidates=10"])


def test_the_hashing_stand_in_must_be_named_as_such():
    with pytest.raises(ConfigError, match=re.escape("runtime = 'hashing' goes with embedding.model = 'hashing-384'")):
        load_config(overrides=['embedding.runtime="hashing"'])
    with pytest.raises(ConfigError, match=re.escape("found runtime 'onnxruntime', model 'hashing-384'")):
        load_config(overrides=['embedding.model="hashing-384"'])
    assert load_config(overrides=['embedding.runtime="hashing"', 'embedding.model="hashing-384"'])


def test_mmr_needs_a_pool_of_at_least_top_n():
    with pytest.raises(ConfigError, match=r"diversity_candidates \(20\) must be >= top_n \(50\)"):
        load_config(overrides=["recommend.diversity_lambda=0.3", "recommend.diversity_candidates=20"])
    assert load_config(overrides=["recommend.diversity_candidates=20"]).recommend.diversity_lambda == 0.0


@pytest.mark.parametrize(("variants", "message"), [
    ('[{name="a", share=0.2, settings={"als.rank"=3}}]', r"variant 'a': settings \['als.rank'\] cannot differ"),
    ('[{name="a", share=0.6}, {name="b", share=0.6}]', "shares add up to 1.2, expected at most 1"),
    ('[{name="control", share=0.2}]', "not 'control'"),
    ('[{name="a", share=0.2, settings={"recommend.top_n"=0}}]', "(?s)experiment variant 'a'.*greater than 0"),
])
def test_experiment_variants_are_validated_at_load(variants, message):
    with pytest.raises(ConfigError, match=message):
        load_config(overrides=[f"experiment.variants={variants}"])


def test_each_arm_is_control_with_its_variant_settings():
    cfg = load_config(overrides=['experiment.variants=[{name="diverse", share=0.2, '
                                 'settings={"recommend.diversity_lambda"=0.3, "ranker.enabled"=false}}]'])
    arms = cfg.arms()
    assert list(arms) == ["control", "diverse"] and arms["control"] is cfg
    assert arms["diverse"].recommend.diversity_lambda == 0.3 and not arms["diverse"].ranker.enabled
    assert arms["diverse"].recommend.model_copy(update={"diversity_lambda": 0.0}) == cfg.recommend

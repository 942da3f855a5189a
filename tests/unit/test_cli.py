"""Command-line parsing and early failures (before any Spark session starts)."""

from __future__ import annotations

from datetime import date

import pytest

from hybridrec.cli import build_parser, main
from hybridrec.steps import STEPS


@pytest.mark.parametrize("command", ["run", *STEPS])
def test_every_step_is_a_command(command):
    args = build_parser().parse_args([command, "--ds", "2026-11-22", "--config", "my.toml",
                                      "--set", "recommend.top_n=20", "--set", "als.rank=8"])
    assert (args.command, args.ds, args.config) == (command, date(2026, 11, 22), "my.toml")
    assert args.overrides == ["recommend.top_n=20", "als.rank=8"]


def test_ds_is_required_and_must_be_a_date(capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["run"])
    with pytest.raises(SystemExit):
        build_parser().parse_args(["run", "--ds", "22/11/2026"])
    assert "YYYY-MM-DD" in capsys.readouterr().err


def test_bad_override_exits_2_naming_the_key(caplog):
    assert main(["run", "--ds", "2026-11-22", "--set", "recommend.topn=3"]) == 2
    assert "unknown key 'topn'" in caplog.text


def test_quality_commands_and_force_flag():
    parser = build_parser()
    assert parser.parse_args(["run", "--ds", "2026-11-22", "--force"]).force
    assert not parser.parse_args(["run", "--ds", "2026-11-22"]).force
    assert not parser.parse_args(["gate", "--ds", "2026-11-22", "--force=False"]).force  # Jinja renders False
    assert parser.parse_args(["gate", "--ds", "2026-11-22", "--force=true"]).force
    evaluate = parser.parse_args(["evaluate", "--ds", "2026-11-22", "--json", "out.json", "--tune"])
    assert (evaluate.json, evaluate.tune) == ("out.json", True)
    assert parser.parse_args(["tune", "--ds", "2026-11-22", "--out", "tuned.toml"]).out == "tuned.toml"
    with pytest.raises(SystemExit):
        parser.parse_args(["tune", "--ds", "2026-11-22"])  # --out is required

"""The README's examples run: its Python blocks against a published lakehouse, its TOML blocks load
as configuration, and every `hybridrec` command line it shows parses with the real CLI."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from hybridrec.cli import build_parser
from hybridrec.config import load_config

README = Path(__file__).parents[2] / "README.md"


def _blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.S)


def test_readme_is_a_short_user_document():
    assert len(README.read_bytes()) < 15_000
    assert _blocks("python") and _blocks("toml") and _blocks("bash")


def test_python_examples_run_against_a_lakehouse(published_lakehouse, tmp_path, monkeypatch, capsys):
    root, _ = published_lakehouse
    (tmp_path / "lakehouse").symlink_to(root)  # the examples use the default ./lakehouse
    monkeypatch.chdir(tmp_path)
    for block in _blocks("python"):
        exec(compile(block, str(README), "exec"), {})
    printed = capsys.readouterr().out.split()
    # 13 users (12 topic fans and a newcomer) x their top 3, and one user's whole list (top_n = 5)
    assert printed[:2] == [str(13 * 3), "5"]


def test_toml_examples_are_valid_configuration(tmp_path):
    for n, block in enumerate(_blocks("toml")):
        path = tmp_path / f"example{n}.toml"
        path.write_text(block, encoding="utf-8")
        cfg = load_config(path)
        assert cfg.lakehouse.root.startswith("s3a://")


def _command_lines() -> list[list[str]]:
    lines = []
    for block in _blocks("bash"):
        for line in block.replace("\\\n", " ").splitlines():
            line = re.sub(r"\s*\[[^\]]*\]", "", line.split("  #")[0]).strip()  # optional parts: [--flag X]
            words = shlex.split(line) if line.startswith("hybridrec ") else []
            if words:
                lines.append(words[1:])
    return lines


@pytest.mark.parametrize("argv", _command_lines(), ids=lambda argv: " ".join(argv)[:60])
def test_every_command_line_shown_parses(argv):
    args = build_parser().parse_args(argv)
    assert args.command == argv[0]

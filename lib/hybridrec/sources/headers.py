"""What is wrong with an input's header, in words (pure: column names in, problems out).

Spark's CSV reader renames a repeated column (also one repeated in another case) to name + position
(`weight,weight` -> weight3, weight4) and an unnamed one to _c + position, and keeps spaces around
names; a byte-order mark survives in other writers' files. Each shows up later as a baffling
"missing column", so the reader names the cause instead.
"""

from __future__ import annotations

import re
from collections import defaultdict

BOM = "\ufeff"
_POSITIONAL = re.compile(r"^(?P<base>.*?)(?P<pos>\d+)$")


def _repeated(columns: list[str]) -> dict[str, list[int]]:
    """base name (lower case) -> 1-based positions, for columns Spark renamed because they repeat."""
    renamed: dict[str, list[int]] = defaultdict(list)
    for position, name in enumerate(columns):
        m = _POSITIONAL.match(name)
        if m and m["base"] and int(m["pos"]) == position:
            renamed[m["base"].lower()].append(position + 1)
    return {base: positions for base, positions in renamed.items() if len(positions) > 1}


def header_problems(columns: list[str], known: list[str]) -> list[str]:
    """Problems with a header whose columns came back as `columns`; `known` are the names the
    pipeline reads (required or optional). Empty when the header is fine."""
    problems = []
    for base, positions in sorted(_repeated(columns).items()):
        problems.append(f"the header repeats column {base!r} (positions {positions}, possibly in another case); "
                        "each column name must appear once")
    for position, name in enumerate(columns):
        if name == f"_c{position}":
            problems.append(f"column {position + 1} of the header has no name")
        elif name.startswith(BOM):
            problems.append(f"column {name!r} starts with a byte-order mark (U+FEFF); save the file as UTF-8 "
                            "without BOM")
    present = set(columns)
    for wanted in known:
        if wanted in present:
            continue
        near = [c for c in columns if c.strip().lower() == wanted and c != wanted]
        for c in near:
            how = "has spaces around it" if c.strip() == wanted else "differs only by case"
            problems.append(f"column {c!r} {how}; expected {wanted!r}")
    return problems

"""Checks that run before anything is deleted: every path is resolved (symlinks followed) and must
stay inside the folder it belongs to."""

from __future__ import annotations

from pathlib import Path

from hybridrec.errors import UnsafePathError


def resolve_inside(path: str | Path, folder: str | Path) -> Path:
    """`path` resolved; UnsafePathError unless it lies strictly inside resolved `folder`."""
    base = Path(folder).expanduser().resolve()
    resolved = Path(path).expanduser().resolve()
    if resolved == base or not resolved.is_relative_to(base):
        raise UnsafePathError(f"refusing to delete {str(path)!r}: it resolves to {str(resolved)!r}, "
                              f"expected a path inside {str(base)!r}")
    return resolved


def checked_lakehouse_root(root: str) -> Path:
    """The configured lakehouse root, resolved; refuses the filesystem root and the home folder,
    where a table folder name typo could reach other data."""
    resolved = Path(root).expanduser().resolve()
    if resolved == Path(resolved.anchor) or resolved == Path.home().resolve():
        raise UnsafePathError(f"lakehouse.root {root!r} resolves to {str(resolved)!r}: expected a dedicated "
                              "folder, not the filesystem root or the home folder")
    return resolved

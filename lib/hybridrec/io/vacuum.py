"""`hybridrec vacuum`: delete files no table version within the retention references.

Candidates are what delta-rs's full vacuum lists (files of old versions and files a killed run
moved into the table but never committed) plus `_staging/<id>` folders a killed run left behind.
Nothing is deleted in a dry run; every path is resolved and must stay inside its table folder.
"""

from __future__ import annotations

import logging
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

from deltalake import DeltaTable

from hybridrec.errors import UnsafePathError
from hybridrec.io.delta import STAGING_DIR, table_path
from hybridrec.io.locks import exclusive_lakehouse
from hybridrec.io.paths import checked_lakehouse_root, resolve_inside
from hybridrec.schema import TABLES

log = logging.getLogger(__name__)


@dataclass
class VacuumReport:
    table: str
    files: list[str] = field(default_factory=list)           # relative to the table folder
    staging: list[str] = field(default_factory=list)          # abandoned _staging/<id> folders
    refused: list[str] = field(default_factory=list)          # resolved outside the table folder: kept
    deleted: bool = False


def _stale_staging(folder: Path, retention_hours: float, now: float) -> list[Path]:
    staging = folder / STAGING_DIR
    if not staging.is_dir():
        return []
    cutoff = now - retention_hours * 3600
    return sorted(p for p in staging.iterdir() if p.stat().st_mtime <= cutoff)


def vacuum_table(lakehouse_root: str, table: str, *, retention_hours: float, dry_run: bool,
                 now: float | None = None) -> VacuumReport:
    folder = Path(table_path(lakehouse_root, TABLES[table]))
    report = VacuumReport(table)
    if not DeltaTable.is_deltatable(str(folder)):
        return report
    now = time.time() if now is None else now
    listed = DeltaTable(str(folder)).vacuum(retention_hours=int(retention_hours), dry_run=True,
                                            enforce_retention_duration=False, full=True)
    targets: list[tuple[str, Path]] = []
    for relative in sorted(listed):
        try:
            targets.append((relative, resolve_inside(folder / relative, folder)))
        except UnsafePathError as exc:
            log.warning("%s", exc)
            report.refused.append(relative)
    report.files = [relative for relative, _ in targets]
    stale = _stale_staging(folder, retention_hours, now)
    report.staging = [p.relative_to(folder).as_posix() for p in stale]
    if dry_run:
        return report
    for _, path in targets:
        path.unlink(missing_ok=True)
    for path in stale:
        shutil.rmtree(resolve_inside(path, folder), ignore_errors=True)
    report.deleted = True
    return report


def vacuum_lakehouse(lakehouse_root: str, *, retention_hours: float, dry_run: bool) -> list[VacuumReport]:
    """Every hybridrec table under the root; refuses while a run holds the lakehouse (see io.locks)."""
    checked_lakehouse_root(lakehouse_root)
    with exclusive_lakehouse(lakehouse_root):
        return [vacuum_table(lakehouse_root, name, retention_hours=retention_hours, dry_run=dry_run)
                for name in TABLES]

"""Ingest's guardrail on bad rows: too large a share of an input quarantined means the input, not a
few rows, is wrong. Pure functions of the per-reason counts: which limits are broken, and a message
that gives the counts, the top reasons with one example row each, and a hint where the cause is
recognisable (the steps/ingest.py step decides to raise before writing anything)."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import UTC, date, datetime

from hybridrec import schema as S

EPOCH_UNITS = {"s": 1.0, "ms": 1e3, "us": 1e6}  # files.timestamp_unit -> units per second
_UNIT_NAMES = {"s": "seconds", "ms": "milliseconds", "us": "microseconds"}
_EARLIEST_PLAUSIBLE = datetime(1990, 1, 1, tzinfo=UTC)
TOP_REASONS = 3


@dataclass(frozen=True)
class ReasonCount:
    reason: str
    rows: int
    example: str                      # one quarantined row, as read (JSON)
    earliest_ts: str | None = None   # interactions: the earliest parsed event_ts among these rows (UTC)


def quarantine_breaches(read: int, reasons: list[ReasonCount], max_share: float,
                        max_share_by_reason: dict[str, float]) -> list[str]:
    """Each limit the quarantined rows break, in words ('' list = within limits)."""
    if read == 0:
        return []
    total = sum(r.rows for r in reasons)
    breaches = []
    if total / read > max_share:
        breaches.append(f"{total} of {read} rows ({total / read:.1%}) quarantined, above "
                        f"guardrails.max_quarantined_share {max_share:.1%}")
    for r in reasons:
        limit = max_share_by_reason.get(r.reason)
        if limit is not None and r.rows / read > limit:
            breaches.append(f"{r.rows} rows ({r.rows / read:.1%}) quarantined as {r.reason}, above "
                            f"guardrails.max_quarantined_share_by_reason.{r.reason} {limit:.1%}")
    return breaches


def _as_epoch(raw: str | None, unit: str) -> datetime | None:
    try:
        seconds = float(raw) / EPOCH_UNITS[unit]
        return datetime.fromtimestamp(seconds, tz=UTC) if math.isfinite(seconds) else None
    except (TypeError, ValueError, OverflowError, OSError):
        return None


def timestamp_unit_hint(raw_ts: str | None, unit: str, ds: date) -> str | None:
    """When numeric event_ts values make sense in another epoch unit than the configured one."""
    end = S.day_end(ds)
    plausible = [u for u in EPOCH_UNITS
                 if (t := _as_epoch(raw_ts, u)) is not None and _EARLIEST_PLAUSIBLE <= t < end]
    if not plausible or unit in plausible:
        return None
    best = plausible[0]
    as_read = "ISO 8601 dates" if unit == "iso" else f"epoch {_UNIT_NAMES[unit]}"
    when = _as_epoch(raw_ts, best).strftime("%Y-%m-%d %H:%M:%S")
    return (f"event_ts values such as {raw_ts} are read as {as_read} (files.timestamp_unit = {unit!r}) but are "
            f"epoch {_UNIT_NAMES[best]} ({when} UTC): set files.timestamp_unit = {best!r}")


def reason_hint(r: ReasonCount, *, unit: str, ds: date) -> str | None:
    """A likely cause for one reason's rows, from its example row and earliest timestamp."""
    if r.reason in ("future_event_ts", "bad_event_ts"):
        try:
            raw_ts = json.loads(r.example).get("event_ts")
        except (ValueError, AttributeError):
            raw_ts = None
        if hint := timestamp_unit_hint(raw_ts, unit, ds):
            return hint
        if r.reason == "future_event_ts" and r.earliest_ts is not None:
            return (f"these events lie after the run date {ds} (the earliest at {r.earliest_ts}): "
                    f"is --ds right, or does the input hold later events than this night should see?")
    if r.reason == "invalid_encoding":
        return ("the text holds bytes that are not UTF-8 (often Latin-1 or Windows-1252): convert the file to UTF-8, "
                "e.g. iconv -f cp1252 -t utf-8")
    if r.reason == "unknown_item":
        return "the interactions name items the catalogue lacks: is files.items this night's full catalogue?"
    return None


def quarantine_message(entity: str, read: int, reasons: list[ReasonCount], breaches: list[str], *,
                       unit: str, ds: date) -> str:
    """What ingest says when it refuses an input: limits broken, top reasons with an example, hints."""
    top = sorted(reasons, key=lambda r: (-r.rows, r.reason))[:TOP_REASONS]
    parts = [f"{entity}: " + "; ".join(breaches) + ". Nothing was written."]
    for r in top:
        line = f"{r.reason}: {r.rows} rows, e.g. {r.example}"
        if hint := reason_hint(r, unit=unit, ds=ds):
            line += f". Hint: {hint}"
        parts.append(line)
    parts.append("Fix the input, raise the limit, or run with --force to ingest anyway (recorded in runs).")
    return "\n  ".join(parts)

"""A/B bucketing: each user's variant from a stable hash of (salt, user_id), in Spark and in plain
Python (the two agree exactly: tests check it), so the same user stays in the same variant night
after night, across re-runs, and in any reader's own code.

The hash's first 13 hex digits (52 bits, exact in a double) give a number in [0, 1); variant i takes
the users whose number falls in [sum of the shares before it, that sum plus its share); the users
left over form the control arm.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from itertools import accumulate

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from hybridrec import schema as S

CONTROL = "control"
_DIGITS = 13


def bucket(user_id: str, salt: str) -> float:
    """The user's position in [0, 1)."""
    digest = hashlib.sha256(f"{salt}:{user_id}".encode()).hexdigest()
    return int(digest[:_DIGITS], 16) / 16**_DIGITS


def variant_of(user_id: str, salt: str, arms: Sequence[tuple[str, float]]) -> str:
    """The variant (name) of one user; `arms` are (name, share) in configured order."""
    position = bucket(user_id, salt)
    for (name, _), upper in zip(arms, accumulate(share for _, share in arms), strict=True):
        if position < upper:
            return name
    return CONTROL


def variant_column(salt: str, arms: Sequence[tuple[str, float]]) -> Column:
    """variant_of as a Spark column over `user_id`."""
    digest = F.sha2(F.concat_ws(":", F.lit(salt), F.col(S.USER_ID)), 256)
    position = F.conv(F.substring(digest, 1, _DIGITS), 16, 10).cast("double") / float(16**_DIGITS)
    out = F.lit(CONTROL)
    # Built from the last arm back, so the first whose upper bound is above the position wins.
    for (name, _), upper in reversed(list(zip(arms, accumulate(share for _, share in arms), strict=True))):
        out = F.when(position < upper, F.lit(name)).otherwise(out)
    return out


def with_variant(users_df: DataFrame, salt: str, arms: Sequence[tuple[str, float]]) -> DataFrame:
    return users_df.withColumn(S.VARIANT, variant_column(salt, arms))

"""Split fractions: validation, and the partition of trajectory indices 0..N-1 into split ranges.

Trajectories carry a global index ``i`` in ``[0, N)``; ``train`` holds the first indices, then
``val``, then ``test`` (splits with fraction 0 are left out). Trajectory ``i`` is the same whatever
the fractions: only which split it lands in changes.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from numbers import Real

from hamgrad.datasets.schema import SPLIT_NAMES

#: Tolerance on the sum of the fractions.
SUM_TOLERANCE = 1e-9


def normalize_splits(splits: Mapping[str, float] | Sequence[float] | str) -> dict[str, float]:
    """Validated fractions ``{split: fraction}`` in the order of ``SPLIT_NAMES``, zeros dropped.

    ``splits`` is a mapping (``{"train": 0.5, "test": 0.5}``), a sequence of up to three fractions
    for train, val, test (``(0.8, 0.1, 0.1)``) or the same as comma-separated text (``"0.8,0.1,0.1"``).
    The fractions must be finite, non-negative and sum to 1.
    """
    if isinstance(splits, str):
        try:
            splits = [float(s) for s in splits.split(",")]
        except ValueError:
            raise ValueError(
                f"splits must be comma-separated fractions such as '0.8,0.1,0.1', got {splits!r}"
            ) from None
    if isinstance(splits, Mapping):
        unknown = [k for k in splits if k not in SPLIT_NAMES]
        if unknown:
            raise ValueError(f"unknown split name(s) {unknown}; allowed: {', '.join(SPLIT_NAMES)}")
        items = {name: splits[name] for name in SPLIT_NAMES if name in splits}
    elif isinstance(splits, Sequence):
        if not 1 <= len(splits) <= len(SPLIT_NAMES):
            raise ValueError(
                f"splits must give 1 to 3 fractions (train, val, test), got {list(splits)!r}"
            )
        items = dict(zip(SPLIT_NAMES, splits, strict=False))
    else:
        raise TypeError(
            f"splits must be a dict of fractions or a tuple (train, val, test), got {splits!r}"
        )
    out: dict[str, float] = {}
    for name, frac in items.items():
        if isinstance(frac, bool) or not isinstance(frac, Real):
            raise TypeError(f"split fraction {name!r} must be a number, got {frac!r}")
        f = float(frac)
        if not math.isfinite(f) or f < 0 or f > 1:
            raise ValueError(f"split fraction {name!r} must be in [0, 1], got {frac!r}")
        if f > 0:
            out[name] = f
    total = sum(out.values())
    if abs(total - 1.0) > SUM_TOLERANCE:
        raise ValueError(f"split fractions must sum to 1, got {total:.6g} from {dict(items)!r}")
    return out


def split_counts(n: int, fractions: Mapping[str, float]) -> dict[str, int]:
    """Items per split: floor(f·n), the remainder going to the largest fractional parts.

    A split with a positive fraction that would get no item takes one from the largest split, so
    ``(0.8, 0.1, 0.1)`` of 6 gives 4, 1, 1. Fewer items than splits is a ``ValueError``.
    """
    if n < len(fractions):
        raise ValueError(
            f"{n} item(s) cannot fill {len(fractions)} splits {list(fractions)}; "
            "use more items or fewer splits (fraction 0 drops a split)"
        )
    raw = {name: f * n for name, f in fractions.items()}
    counts = {name: math.floor(v) for name, v in raw.items()}
    remainder = n - sum(counts.values())
    order = sorted(raw, key=lambda name: (-(raw[name] - counts[name]), SPLIT_NAMES.index(name)))
    for name in order[:remainder]:
        counts[name] += 1
    for name in counts:
        if counts[name] == 0:
            largest = max(counts, key=lambda k: (counts[k], -SPLIT_NAMES.index(k)))
            counts[largest] -= 1
            counts[name] = 1
    return counts


def split_ranges(counts: Mapping[str, int]) -> dict[str, tuple[int, int]]:
    """Global index range ``[start, stop)`` of each split, in ``SPLIT_NAMES`` order."""
    out: dict[str, tuple[int, int]] = {}
    start = 0
    for name in SPLIT_NAMES:
        if name in counts:
            out[name] = (start, start + counts[name])
            start += counts[name]
    return out

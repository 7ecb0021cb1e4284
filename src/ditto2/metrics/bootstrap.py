"""Percentile-bootstrap intervals for the numbers in a table: a mean over items, and an FAD over generations.
n = 160 generations is not a number without a spread."""
from __future__ import annotations

from typing import Optional, Sequence

import numpy as np
import torch

from ditto2.metrics.fad import fad_against


def bootstrap_ci(values: Sequence[float], n_boot: int = 1000, level: float = 0.95, seed: int = 0) -> tuple[float, float]:
    """(lo, hi) of the mean of ``values`` over ``n_boot`` resamples with replacement (percentile method)."""
    x = np.asarray(values, dtype=np.float64)
    if x.size < 2 or not np.isfinite(x).all():
        raise ValueError(f"a bootstrap interval needs >= 2 finite values, got {x.size}")
    idx = np.random.default_rng(seed).integers(0, x.size, size=(n_boot, x.size))
    means = x[idx].mean(1)
    return float(np.quantile(means, (1 - level) / 2)), float(np.quantile(means, (1 + level) / 2))


def fad_ci(reference: torch.Tensor, generated: torch.Tensor, n_boot: int = 200, level: float = 0.95,
           seed: int = 0) -> Optional[tuple[float, float]]:
    """(lo, hi) of the FAD of ``generated`` against the fixed ``reference`` over resamples of the generations;
    None when the FAD itself is undefined (no more generations than dimensions). A resample repeats items, which
    narrows its covariance: read the interval as the estimate's spread, its centre sits a little above the FAD."""
    return _resampled_fad(reference, [generated], lambda fa: fa, n_boot, level, seed)


def fad_difference_ci(reference: torch.Tensor, a: torch.Tensor, b: torch.Tensor, n_boot: int = 200,
                      level: float = 0.95, seed: int = 0) -> Optional[tuple[float, float]]:
    """(lo, hi) of FAD(a) − FAD(b) against the fixed ``reference`` when row i of ``a`` and of ``b`` are generations
    for the same item (two cells of one table): each resample draws the same items for both, so the spread of the
    items themselves, which moves both FADs alike, leaves the difference. None where either FAD is undefined."""
    if a.shape != b.shape:
        raise ValueError(f"paired generations must align item by item: {tuple(a.shape)} vs {tuple(b.shape)}")
    return _resampled_fad(reference, [a, b], lambda fa, fb: fa - fb, n_boot, level, seed)


def _resampled_fad(reference: torch.Tensor, cells: list, stat, n_boot: int, level: float,
                   seed: int) -> Optional[tuple[float, float]]:
    """Percentile interval of ``stat`` of the cells' FADs over resamples that draw the same items (rows) from every
    cell; None when the FAD is undefined (no more generations or reference clips than dimensions: fad_against)."""
    n, dim = cells[0].shape
    if n <= dim or reference.shape[0] <= dim:
        return None
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(n_boot):
        idx = torch.from_numpy(rng.integers(0, n, n))
        fads = [fad_against(reference, c[idx]) for c in cells]
        if all(f is not None for f in fads):
            values.append(stat(*fads))
    values = np.asarray(values)
    return float(np.quantile(values, (1 - level) / 2)), float(np.quantile(values, (1 + level) / 2))

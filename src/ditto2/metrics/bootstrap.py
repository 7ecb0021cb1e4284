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
    dim = generated.shape[1]
    if generated.shape[0] <= dim or reference.shape[0] <= dim:  # fad_against's condition for a defined FAD
        return None
    rng = np.random.default_rng(seed)
    n = generated.shape[0]
    values = [fad_against(reference, generated[torch.from_numpy(rng.integers(0, n, n))]) for _ in range(n_boot)]
    values = np.asarray([v for v in values if v is not None])
    return float(np.quantile(values, (1 - level) / 2)), float(np.quantile(values, (1 + level) / 2))


def fad_difference_ci(reference: torch.Tensor, a: torch.Tensor, b: torch.Tensor, n_boot: int = 200,
                      level: float = 0.95, seed: int = 0) -> Optional[tuple[float, float]]:
    """(lo, hi) of FAD(a) − FAD(b) against the fixed ``reference`` when row i of ``a`` and of ``b`` are generations
    for the same item (two cells of one table): each resample draws the same items for both, so the spread of the
    items themselves, which moves both FADs alike, leaves the difference. None where either FAD is undefined."""
    if a.shape != b.shape:
        raise ValueError(f"paired generations must align item by item: {tuple(a.shape)} vs {tuple(b.shape)}")
    dim = a.shape[1]
    if a.shape[0] <= dim or reference.shape[0] <= dim:
        return None
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(n_boot):
        idx = torch.from_numpy(rng.integers(0, a.shape[0], a.shape[0]))
        fa, fb = fad_against(reference, a[idx]), fad_against(reference, b[idx])
        if fa is not None and fb is not None:
            values.append(fa - fb)
    values = np.asarray(values)
    return float(np.quantile(values, (1 - level) / 2)), float(np.quantile(values, (1 + level) / 2))

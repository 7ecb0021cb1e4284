"""Bootstrap intervals: known coverage of a mean, determinism, and an FAD interval around its estimate."""
import numpy as np
import pytest
import torch

from ditto2.metrics.bootstrap import bootstrap_ci, fad_ci, fad_difference_ci
from ditto2.metrics.fad import fad_against


def test_mean_interval_has_the_textbook_width_and_covers_the_mean():
    x = np.random.default_rng(0).normal(5.0, 2.0, 400)
    lo, hi = bootstrap_ci(x, n_boot=2000)
    assert lo < x.mean() < hi and lo < 5.0 < hi
    assert hi - lo == pytest.approx(2 * 1.96 * 2.0 / np.sqrt(400), rel=0.15)  # ≈ 0.39
    assert bootstrap_ci(x, seed=1) != bootstrap_ci(x, seed=2) and bootstrap_ci(x, seed=1) == bootstrap_ci(x, seed=1)
    with pytest.raises(ValueError):
        bootstrap_ci([1.0])


def test_fad_interval_brackets_the_estimate_and_is_none_when_fad_is():
    g = torch.Generator().manual_seed(0)
    ref, gen = torch.randn(200, 4, generator=g), torch.randn(100, 4, generator=g) + 0.5
    lo, hi = fad_ci(ref, gen, n_boot=100)
    value = fad_against(ref, gen)
    assert lo <= value <= hi and hi > lo
    assert fad_ci(ref, gen[:3]) is None


def test_paired_fad_difference_cancels_what_both_cells_share():
    """Two cells of the same items, one shifted a little further from the reference than the other: their
    unpaired intervals overlap, the paired interval of the difference does not reach zero; a cell against
    itself differs by exactly zero; misaligned cells are refused."""
    g = torch.Generator().manual_seed(0)
    ref = torch.randn(300, 4, generator=g)
    items = torch.randn(150, 4, generator=g) + 0.3  # what both cells make of the same items
    a, b = items + 0.15, items + 0.05 * torch.randn(150, 4, generator=g)
    lo_a, hi_a = fad_ci(ref, a, n_boot=100)
    lo_b, hi_b = fad_ci(ref, b, n_boot=100)
    assert lo_a < hi_b and lo_b < hi_a  # unpaired: not separable
    lo, hi = fad_difference_ci(ref, a, b, n_boot=100)
    assert 0 < lo <= fad_against(ref, a) - fad_against(ref, b) <= hi
    assert fad_difference_ci(ref, a, a, n_boot=20) == (0.0, 0.0)
    assert fad_difference_ci(ref, a[:3], b[:3]) is None
    with pytest.raises(ValueError, match="align"):
        fad_difference_ci(ref, a, b[:-1])

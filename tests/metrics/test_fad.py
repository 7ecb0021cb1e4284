"""FAD: Fréchet math against scipy, Gaussian closed forms, DDP-exact state merging, sample-size errors."""
import numpy as np
import pytest
import scipy.linalg
import torch

from ditto2.metrics.fad import FrechetAudioDistance, fad_against, fad_inf, fad_terms, frechet_distance, gaussian_stats, mean_term

D = 8


def _emb(n, seed, shift=0.0, d=D):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, d, generator=g, dtype=torch.float64) + shift


def _scipy_fd(mu1, s1, mu2, s2):
    covmean = scipy.linalg.sqrtm(s1 @ s2)
    covmean = covmean.real if np.iscomplexobj(covmean) else covmean
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))


def test_frechet_distance_matches_scipy_sqrtm():
    rng = np.random.default_rng(0)
    a = rng.standard_normal((200, D)) @ rng.standard_normal((D, D))
    b = 0.5 * rng.standard_normal((300, D)) + 0.3
    mu1, s1, mu2, s2 = a.mean(0), np.cov(a.T), b.mean(0), np.cov(b.T)
    ours = float(frechet_distance(mu1, s1, mu2, s2))
    assert ours == pytest.approx(_scipy_fd(mu1, s1, mu2, s2), rel=1e-9, abs=1e-9)
    assert float(frechet_distance(mu1, s1, mu1, s1)) == pytest.approx(0.0, abs=1e-9)


def test_frechet_distance_matches_frechet_audio_distance_package():
    fad_pkg = pytest.importorskip("frechet_audio_distance")  # optional extra "fad-crosscheck"
    rng = np.random.default_rng(1)
    a, b = rng.standard_normal((100, D)), rng.standard_normal((120, D)) + 0.2
    mu1, s1, mu2, s2 = a.mean(0), np.cov(a.T), b.mean(0), np.cov(b.T)
    ref = fad_pkg.FrechetAudioDistance.calculate_frechet_distance(None, mu1, s1, mu2, s2)
    assert float(frechet_distance(mu1, s1, mu2, s2)) == pytest.approx(float(ref), rel=1e-6)


def test_singular_covariances_stay_real_and_finite():
    a, b = _emb(5, 0, d=16), _emb(6, 1, d=16)  # rank 4 and 5 in 16 dimensions
    fd = frechet_distance(*gaussian_stats(a), *gaussian_stats(b))
    assert torch.isfinite(fd) and fd > 0


def test_fad_of_a_set_against_itself_is_zero_and_grows_with_a_mean_shift():
    x = _emb(500, 0)
    same = FrechetAudioDistance(D)
    same.update(x, real=True)
    same.update(x, real=False)
    assert float(same.compute()) == pytest.approx(0.0, abs=1e-9)
    # equal covariance, shifted mean: FD = ‖Δμ‖² exactly
    prev = 0.0
    for shift in (0.1, 0.5, 1.0):
        m = FrechetAudioDistance(D)
        m.update(x, real=True)
        m.update(x + shift, real=False)
        fad = float(m.compute())
        assert fad == pytest.approx(D * shift**2, rel=1e-9) and fad > prev
        prev = fad


def test_metric_matches_direct_computation():
    real, fake = _emb(300, 0), _emb(200, 1, shift=0.2) * 1.3
    m = FrechetAudioDistance(D)
    for chunk in real.split(64):
        m.update(chunk.float(), real=True)
    m.update(fake.float(), real=False)
    mu1, s1 = real.float().double().mean(0).numpy(), np.cov(real.float().double().T.numpy())
    mu2, s2 = fake.float().double().mean(0).numpy(), np.cov(fake.float().double().T.numpy())
    assert float(m.compute()) == pytest.approx(_scipy_fd(mu1, s1, mu2, s2), rel=1e-8)


def test_two_ranks_merge_to_the_single_process_result():
    real, fake = _emb(300, 0), _emb(260, 1, shift=0.3)
    whole = FrechetAudioDistance(D)
    whole.update(real, real=True)
    whole.update(fake, real=False)
    ranks = [FrechetAudioDistance(D), FrechetAudioDistance(D)]
    for r, (re, fa) in enumerate(zip(real.chunk(2), fake.tensor_split([100]))):
        ranks[r].update(re, real=True)
        ranks[r].update(fa, real=False)
    # what DDP's sync does with dist_reduce_fx="sum": add every state across ranks
    manual = FrechetAudioDistance(D)
    for name in manual._defaults:
        setattr(manual, name, getattr(ranks[0], name) + getattr(ranks[1], name))
    assert float(manual.compute()) == pytest.approx(float(whole.compute()), rel=1e-12)
    ranks[0].merge_state(ranks[1])  # torchmetrics' own merge gives the same
    assert float(ranks[0].compute()) == pytest.approx(float(whole.compute()), rel=1e-12)


def test_too_few_samples_is_a_clear_error():
    m = FrechetAudioDistance(D)
    m.update(_emb(100, 0), real=True)
    m.update(_emb(D, 1), real=False)  # N = D samples: covariance rank D-1
    with pytest.raises(ValueError, match="generated set has 8 samples"):
        m.compute()
    relaxed = FrechetAudioDistance(D, require_full_rank=False)
    relaxed.update(_emb(100, 0), real=True)
    relaxed.update(_emb(1, 1), real=False)
    with pytest.raises(ValueError, match=">= 2"):
        relaxed.compute()
    relaxed.update(_emb(3, 2), real=False)
    assert torch.isfinite(relaxed.compute())
    with pytest.raises(ValueError, match=r"\(B, 8\)"):
        m.update(torch.zeros(4, 3), real=True)


def test_fad_inf_removes_the_small_sample_bias():
    real, fake = _emb(4000, 0), _emb(2000, 1, shift=0.25)
    out = fad_inf(real, fake, steps=8, min_n=100, generator=torch.Generator().manual_seed(0))
    truth = D * 0.25**2  # both Gaussians have identity covariance
    biased = float(frechet_distance(*gaussian_stats(real), *gaussian_stats(fake[:100])))
    assert out["slope"] > 0 and len(out["n"]) == 8
    assert abs(out["fad_inf"] - truth) < abs(biased - truth)
    assert out["fad_inf"] == pytest.approx(truth, abs=0.05)


def test_fad_terms_split_a_mean_shift_from_a_change_of_spread():
    """A shifted copy differs only in the mean term (‖shift‖²), a scaled copy about the same mean mostly in the
    covariance term; the terms add up to FAD; too few samples give None like fad_against."""
    x = _emb(500, 0)
    mean, cov = fad_terms(x, x + 0.5)
    assert mean == pytest.approx(D * 0.25, rel=1e-9) and cov == pytest.approx(0.0, abs=1e-9)
    y = (x - x.mean(0)) * 0.5 + x.mean(0)
    mean, cov = fad_terms(x, y)
    assert mean == pytest.approx(0.0, abs=1e-12) and cov > 1.0
    assert mean + cov == pytest.approx(fad_against(x, y), rel=1e-12)
    assert fad_terms(x, x[:D]) is None
    assert mean_term(x, x[:D] + 0.5) == pytest.approx(float(((x[:D].mean(0) + 0.5 - x.mean(0)) ** 2).sum()), rel=1e-6)

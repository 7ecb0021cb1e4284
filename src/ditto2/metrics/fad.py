"""Fréchet Audio Distance over embeddings from an AudioTextEmbedder (paper §4.3: CLAP backbone)."""
from __future__ import annotations

from typing import Optional

import torch
from torchmetrics import Metric


def _f64(x) -> torch.Tensor:
    return torch.as_tensor(x).to(torch.float64)


def _sym(m: torch.Tensor) -> torch.Tensor:
    return 0.5 * (m + m.T)


def frechet_distance(mu1, sigma1, mu2, sigma2) -> torch.Tensor:
    """‖μ₁−μ₂‖² + tr Σ₁ + tr Σ₂ − 2·tr (Σ₁Σ₂)^{1/2}, in float64 (0-dim tensor).

    tr (Σ₁Σ₂)^{1/2} = Σᵢ √λᵢ(Σ₁^{1/2} Σ₂ Σ₁^{1/2}): that product is similar to Σ₁Σ₂ but symmetric PSD,
    so a symmetric eigendecomposition gives its real, non-negative spectrum directly, also for the
    singular covariances of few samples, where sqrtm of the non-symmetric Σ₁Σ₂ returns complex
    round-off that has to be patched (the eps·I retry of other implementations)."""
    mu1, mu2, sigma1, sigma2 = _f64(mu1), _f64(mu2), _sym(_f64(sigma1)), _sym(_f64(sigma2))
    d = mu1.shape[-1]
    if mu1.shape != (d,) or mu2.shape != (d,) or sigma1.shape != (d, d) or sigma2.shape != (d, d):
        raise ValueError(f"shape mismatch: mu {tuple(mu1.shape)}, {tuple(mu2.shape)}; "
                         f"sigma {tuple(sigma1.shape)}, {tuple(sigma2.shape)}")
    w, v = torch.linalg.eigh(sigma1)
    root1 = (v * w.clamp(min=0).sqrt()) @ v.T
    tr_covmean = torch.linalg.eigvalsh(_sym(root1 @ sigma2 @ root1)).clamp(min=0).sqrt().sum()
    diff = mu1 - mu2
    return diff @ diff + torch.trace(sigma1) + torch.trace(sigma2) - 2 * tr_covmean


def gaussian_stats(emb) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and unbiased covariance of (N, D) embeddings, float64."""
    x = _f64(emb)
    if x.dim() != 2 or x.shape[0] < 2:
        raise ValueError(f"need (N >= 2, D) embeddings, got {tuple(x.shape)}")
    return x.mean(0), torch.cov(x.T).reshape(x.shape[1], x.shape[1])


class FrechetAudioDistance(Metric):
    """FAD between a reference ("real") and a generated set: ``update(emb (B, D), real=...)``.

    States are running sums, sums of outer products and counts per set, all float64 and summed
    across processes, so the DDP-synced statistics equal single-process ones exactly (up to the
    order of float additions). With ``require_full_rank`` (default) each set needs more samples than
    dimensions: N samples give a covariance of rank ≤ N−1, and FAD on a singular covariance is
    biased — the paper uses 2.5K generations for 512-d CLAP embeddings."""

    is_differentiable = False
    higher_is_better = False
    full_state_update = False

    def __init__(self, dim: int, require_full_rank: bool = True, **kwargs):
        super().__init__(**kwargs)
        self.dim, self.require_full_rank = int(dim), require_full_rank
        for side in ("real", "fake"):
            self.add_state(f"{side}_sum", torch.zeros(dim, dtype=torch.float64), dist_reduce_fx="sum")
            self.add_state(f"{side}_outer", torch.zeros(dim, dim, dtype=torch.float64), dist_reduce_fx="sum")
            self.add_state(f"{side}_n", torch.zeros((), dtype=torch.long), dist_reduce_fx="sum")

    def update(self, embeddings: torch.Tensor, real: bool) -> None:
        if embeddings.dim() != 2 or embeddings.shape[1] != self.dim:
            raise ValueError(f"expected (B, {self.dim}) embeddings, got {tuple(embeddings.shape)}")
        x = embeddings.detach().to(torch.float64)
        side = "real" if real else "fake"
        setattr(self, f"{side}_sum", getattr(self, f"{side}_sum") + x.sum(0))
        setattr(self, f"{side}_outer", getattr(self, f"{side}_outer") + x.T @ x)
        setattr(self, f"{side}_n", getattr(self, f"{side}_n") + x.shape[0])

    def gaussian(self, real: bool) -> tuple[torch.Tensor, torch.Tensor]:
        side = "real" if real else "fake"
        n = int(getattr(self, f"{side}_n"))
        need = self.dim + 1 if self.require_full_rank else 2
        if n < need:
            why = f"> {self.dim} embedding dimensions for a full-rank covariance" if self.require_full_rank else ">= 2"
            raise ValueError(f"FAD: the {'reference' if real else 'generated'} set has {n} samples; it needs {why} "
                             "(or require_full_rank=False)")
        mu = getattr(self, f"{side}_sum") / n
        # float64 keeps the cancellation in Σxxᵀ − n·μμᵀ harmless for normalized embeddings
        cov = (getattr(self, f"{side}_outer") - n * torch.outer(mu, mu)) / (n - 1)
        return mu, cov

    def compute(self) -> torch.Tensor:
        return frechet_distance(*self.gaussian(True), *self.gaussian(False))


def fad_against(reference: torch.Tensor, generated: torch.Tensor) -> Optional[float]:
    """FAD of ``generated`` (N, D) embeddings against ``reference`` (M, D), or None when either set has
    no more samples than dimensions (a singular covariance: see FrechetAudioDistance)."""
    dim = generated.shape[1]
    if generated.shape[0] <= dim or reference.shape[0] <= dim:
        return None
    metric = FrechetAudioDistance(dim)
    metric.update(reference, real=True)
    metric.update(generated, real=False)
    return float(metric.compute())


def mean_term(reference: torch.Tensor, generated: torch.Tensor) -> float:
    """FAD's first term ‖μ − μ_ref‖²: how far the set's mean embedding sits from the reference's. Defined for any
    number of embeddings (FAD itself needs more than the dimension)."""
    d = _f64(generated).mean(0) - _f64(reference).mean(0)
    return float(d @ d)


def fad_terms(reference: torch.Tensor, generated: torch.Tensor) -> Optional[tuple[float, float]]:
    """``fad_against`` split into its two terms: (``mean_term``, the rest), i.e. how far the set's mean embedding sits
    from the reference's, and how their covariances (spread and shape) differ; None where ``fad_against`` is."""
    fad = fad_against(reference, generated)
    if fad is None:
        return None
    mean = mean_term(reference, generated)
    return mean, fad - mean


def fad_inf(real, fake, steps: int = 10, min_n: Optional[int] = None,
            generator: Optional[torch.Generator] = None) -> dict:
    """FAD extrapolated to infinitely many generated samples (fadtk's FAD∞): FAD on random subsets
    of ``fake`` of ``steps`` sizes from ``min_n`` to N, a least-squares line FAD = a + b/n, and its
    intercept a. FAD is biased upward by O(1/n); the intercept removes that bias, so sets of
    different sizes become comparable. Returns {"fad_inf", "slope", "r2", "n", "fad"}."""
    fake = _f64(fake)
    n_all = fake.shape[0]
    mu_r, cov_r = gaussian_stats(real)
    min_n = min_n or max(2, min(n_all, fake.shape[1] + 1, n_all // 2))
    if not 2 <= min_n <= n_all or steps < 2:
        raise ValueError(f"fad_inf needs 2 <= min_n ({min_n}) <= N ({n_all}) and steps >= 2")
    ns = torch.linspace(min_n, n_all, steps).round().long().unique()
    if len(ns) < 2:
        raise ValueError(f"fad_inf: too few distinct subset sizes between {min_n} and {n_all}")
    fads = []
    for n in ns.tolist():
        idx = torch.randperm(n_all, generator=generator)[:n]
        fads.append(frechet_distance(mu_r, cov_r, *gaussian_stats(fake[idx])))
    y = torch.stack(fads)
    a = torch.stack([torch.ones(len(ns), dtype=torch.float64), 1.0 / ns.double()], dim=1)
    (intercept, slope) = torch.linalg.lstsq(a, y.unsqueeze(1)).solution.squeeze(1)
    resid = y - a @ torch.stack([intercept, slope])
    r2 = 1 - resid.pow(2).sum() / (y - y.mean()).pow(2).sum().clamp(min=1e-300)
    return {"fad_inf": float(intercept), "slope": float(slope), "r2": float(r2), "n": ns.tolist(),
            "fad": y.tolist()}

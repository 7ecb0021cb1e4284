import pytest
import torch
from torch import nn

from ditto2.diffusion.edm import EDMPrecond, karras_sigmas
from ditto2.diffusion.guidance import CFGDenoiser, guided_denoise
from ditto2.diffusion.samplers import append_zero, sample_euler, sample_heun

SD = 0.5
X_T = torch.tensor([80.0, -40.0], dtype=torch.float64)



def gaussian_denoiser(x, sigma):
    """Exact D(x; σ) for data ~ N(0, σ_d²)."""
    return x * SD**2 / (sigma**2 + SD**2)


def ode_solution(x_T, sigma_T, sigma):
    return x_T * ((sigma**2 + SD**2) / (sigma_T**2 + SD**2)) ** 0.5


def grid(n):
    return append_zero(karras_sigmas(n).double())


def test_append_zero():
    assert append_zero(torch.tensor([2.0, 1.0])).tolist() == [2.0, 1.0, 0.0]


def test_euler_matches_reference_loop_and_stored_numbers():
    sigmas = grid(20)
    calls = []

    def denoise(x, s):
        calls.append(s)
        return gaussian_denoiser(x, s)

    out = sample_euler(denoise, X_T.clone(), sigmas)
    ref = X_T.clone()
    for i in range(len(sigmas) - 1):
        ref = ref + (sigmas[i + 1] - sigmas[i]) * (ref - gaussian_denoiser(ref, sigmas[i])) / sigmas[i]
    torch.testing.assert_close(out, ref, rtol=1e-12, atol=0)
    assert len(calls) == 20 and all(s.ndim == 0 for s in calls)
    assert out.tolist() == pytest.approx([0.4305378775450842, -0.2152689387725421], rel=1e-9)


def test_euler_and_heun_converge_to_ode_solution():
    exact = ode_solution(X_T, 80.0, 0.0)  # = [0.49999..., -0.24999...]
    assert sample_euler(gaussian_denoiser, X_T, grid(200)).tolist() == pytest.approx(
        exact.tolist(), rel=0.02)
    assert sample_heun(gaussian_denoiser, X_T, grid(200)).tolist() == pytest.approx(
        exact.tolist(), rel=1e-3)
    # Intermediate points follow the ODE too.
    mid = []
    sample_heun(gaussian_denoiser, X_T, grid(200), callback=lambda d: mid.append(d))
    step = mid[99]
    torch.testing.assert_close(step["x"], ode_solution(X_T, 80.0, step["sigma_next"]),
                               rtol=1e-3, atol=0)


def test_heun_beats_euler_and_counts_evaluations():
    exact = ode_solution(X_T, 80.0, 0.0)
    n_calls = []

    def denoise(x, s):
        n_calls.append(1)
        return gaussian_denoiser(x, s)

    heun = sample_heun(denoise, X_T, grid(20))
    assert len(n_calls) == 2 * 20 - 1  # Euler only on the final step to σ=0
    euler = sample_euler(gaussian_denoiser, X_T, grid(20))
    assert (heun - exact).abs().max() < 0.5 * (euler - exact).abs().max()


class TinyDenoiserNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.out = nn.Conv2d(4, 1, 3, padding=1)
        self.tag = nn.Embedding(3, 4)

    def forward(self, x, c_noise, tags):
        h = self.conv(x) * c_noise.reshape(-1, 1, 1, 1) + self.tag(tags[:, 0])[:, :, None, None]
        return self.out(torch.tanh(h))


@pytest.mark.parametrize("sampler", [sample_euler, sample_heun])
def test_checkpointing_gives_identical_values_and_noise_gradients(sampler):
    torch.manual_seed(0)
    denoise = CFGDenoiser(EDMPrecond(TinyDenoiserNet()), torch.tensor([[1], [2]]), w=3.0)
    sigmas = append_zero(karras_sigmas(6))
    z = torch.randn(2, 1, 8, 8)
    results = []
    for ckpt in (False, True):
        noise = z.clone().requires_grad_()
        x0 = sampler(denoise, noise * sigmas[0], sigmas, checkpoint=ckpt)
        x0.square().mean().backward()
        results.append((x0.detach(), noise.grad))
    torch.testing.assert_close(results[0][0], results[1][0], rtol=0, atol=0)
    assert results[0][1].abs().sum() > 0
    assert torch.allclose(results[0][1], results[1][1])


def _spy_denoiser(calls):
    def denoiser(x, sigma, tags, **extra):
        calls.append((x.shape[0], sigma, tags, extra))
        scale = sigma.reshape(-1, 1) if torch.is_tensor(sigma) and sigma.ndim else sigma
        return x * scale + tags.float().sum(1, keepdim=True)
    return denoiser


def test_guided_denoise_is_one_batched_call_of_the_cfg_formula():
    calls = []
    den = _spy_denoiser(calls)
    x, tags = torch.randn(3, 5), torch.tensor([[1, 2], [0, 1], [3, 3]])
    sigma = torch.tensor([0.5, 1.0, 2.0])
    w = torch.tensor([0.0, 2.0, 4.5])
    out = guided_denoise(den, x, sigma, tags, w, s_noise=sigma.log())
    assert len(calls) == 1
    batch, sig_seen, tags_seen, extra = calls[0]
    assert batch == 6 and sig_seen.shape == (6,) and extra["s_noise"].shape == (6,)
    assert torch.equal(tags_seen[3:], torch.zeros_like(tags))
    cond, uncond = den(x, sigma, tags), den(x, sigma, torch.zeros_like(tags))
    torch.testing.assert_close(out, uncond + w[:, None] * (cond - uncond))
    # w = 1 is the plain conditional denoiser; a float w and a scalar σ work too.
    torch.testing.assert_close(guided_denoise(den, x, 0.7, tags, 1.0), den(x, 0.7, tags))


def test_cfg_denoiser_binds_arguments():
    calls = []
    den = _spy_denoiser(calls)
    x, tags = torch.randn(2, 4), torch.tensor([[1], [2]])
    torch.testing.assert_close(CFGDenoiser(den, tags, 2.0)(x, torch.tensor(0.3)),
                               guided_denoise(den, x, torch.tensor(0.3), tags, 2.0))


def test_refine_sigmas_start_at_sigma_then_follow_the_grid_below_it():
    from ditto2.diffusion.samplers import base_sigmas, refine_sigmas

    g = base_sigmas(20, 0.002, 80.0)
    r = refine_sigmas(0.3, g)
    assert r[0] == pytest.approx(0.3) and r[-1] == 0.0
    assert torch.equal(r[1:], g[g < 0.3]) and bool((r[:-1] > r[1:]).all())
    for bad in (0.0, -1.0, 81.0):
        with pytest.raises(ValueError, match="refine sigma"):
            refine_sigmas(bad, g)


def test_refine_renoises_to_sigma_and_the_denoiser_takes_it_home():
    """With a denoiser that always answers c, Euler from x0 + σ·ε ends exactly at c (each step moves
    (σ_next/σ) of the way); its first call sees x0 + σ·ε at σ, from the generator's ε."""
    from ditto2.diffusion.samplers import base_sigmas, refine_guided, refine_sigmas

    x0, c = torch.randn(2, 1, 4, 8, dtype=torch.float64), torch.randn(2, 1, 4, 8, dtype=torch.float64)
    seen = []

    def constant(x, sigma, tags, **_):
        seen.append((x[: x.shape[0] // 2].clone(), float(sigma)))
        return c.repeat(2, 1, 1, 1)

    sigmas = refine_sigmas(0.5, base_sigmas(20, 0.002, 80.0).double())
    out = refine_guided(constant, x0, torch.zeros(2, 3, dtype=torch.long), 2.0, sigmas,
                        torch.Generator().manual_seed(7))
    assert torch.allclose(out, c, atol=1e-12)
    eps = torch.randn(x0.shape, generator=torch.Generator().manual_seed(7), dtype=x0.dtype)
    assert seen[0][1] == pytest.approx(0.5) and torch.allclose(seen[0][0], x0 + 0.5 * eps)
    assert len(seen) == len(sigmas) - 1

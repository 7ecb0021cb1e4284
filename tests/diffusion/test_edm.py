import math

import pytest
import torch
from torch import nn

from ditto2.diffusion.edm import (
    ConsistencyPrecond,
    EDMPrecond,
    c_noise,
    consistency_scalings,
    drop_tags,
    edm_loss,
    edm_scalings,
    karras_sigmas,
)

SD = 0.5
SIGMAS = torch.tensor([0.002, 0.1, 0.5, 1.0, 10.0, 80.0], dtype=torch.float64)



class Backbone(nn.Module):
    """Any backbone with the UNet signature; records what it was given."""

    def forward(self, x, c_noise, tags, **extra):
        self.seen = (x, c_noise, extra)
        return torch.tanh(x) + c_noise.reshape(-1, 1, 1, 1) + 3.0


def test_edm_scaling_identities():
    c_skip, c_out, c_in = edm_scalings(SIGMAS, SD)
    total = SIGMAS**2 + SD**2
    # c_skip + c_out²/σ_d² = 1 is what makes F's training target unit-variance.
    torch.testing.assert_close(c_skip + c_out**2 / SD**2, torch.ones_like(SIGMAS))
    torch.testing.assert_close(c_in**2 * total, torch.ones_like(SIGMAS))
    torch.testing.assert_close(c_out, SIGMAS * SD * c_in)
    torch.testing.assert_close(c_noise(torch.tensor(math.e**4)), torch.tensor(1.0))


def test_consistency_boundary_is_exact():
    sigma_min = torch.tensor(0.002)
    c_skip, c_out, _ = consistency_scalings(sigma_min, SD, 0.002)
    assert c_skip.item() == 1.0 and c_out.item() == 0.0
    # Far from σ_min it approaches the EDM scalings.
    big = consistency_scalings(torch.tensor(80.0), SD, 0.002)
    for a, b in zip(big, edm_scalings(torch.tensor(80.0), SD)):
        torch.testing.assert_close(a, b, rtol=1e-3, atol=1e-6)


def test_consistency_precond_returns_x_at_sigma_min():
    x = torch.randn(3, 1, 4, 8)
    g = ConsistencyPrecond(Backbone())
    assert torch.equal(g(x, 0.002, None), x)
    assert torch.equal(g(x, torch.full((3,), 0.002), None), x)


def test_edm_precond_matches_formula_and_passes_extras():
    net = Backbone()
    d = EDMPrecond(net)
    x = torch.randn(3, 1, 4, 8)
    sigma = torch.tensor([0.01, 1.0, 50.0])
    out = d(x, sigma, None, w=2.0)
    c_skip, c_out, c_in = (c.reshape(-1, 1, 1, 1) for c in edm_scalings(sigma, SD))
    f = torch.tanh(c_in * x) + (sigma.log() / 4).reshape(-1, 1, 1, 1) + 3.0
    torch.testing.assert_close(out, c_skip * x + c_out * f)
    seen_x, seen_c, extra = net.seen
    torch.testing.assert_close(seen_x, c_in * x)
    torch.testing.assert_close(seen_c, sigma.log() / 4)
    assert extra == {"w": 2.0}
    # A scalar σ broadcasts to the batch.
    torch.testing.assert_close(d(x, 1.0, None), d(x, torch.ones(3), None))


def test_edm_precond_tends_to_identity_as_sigma_vanishes():
    d = EDMPrecond(Backbone())
    x = torch.randn(2, 1, 4, 8, dtype=torch.float64)
    errs = [(d(x, s, None) - x).abs().max().item() for s in (1e-2, 1e-4, 1e-6)]
    assert errs[0] > errs[1] > errs[2] and errs[2] < 1e-5


def test_karras_sigmas():
    sig = karras_sigmas(20)
    assert sig.shape == (20,) and sig[0].item() == torch.tensor(80.0).item()
    assert sig[-1].item() == torch.tensor(0.002).item()
    assert (sig[1:] < sig[:-1]).all()
    i, rho = 7, 7.0
    ref = (80.0 ** (1 / rho) + i / 19 * (0.002 ** (1 / rho) - 80.0 ** (1 / rho))) ** rho
    assert sig[i].item() == pytest.approx(ref, rel=1e-6)
    assert karras_sigmas(5, 0.1, 10.0, rho=1.0).tolist() == pytest.approx(
        [10.0, 7.525, 5.05, 2.575, 0.1])


def test_edm_loss_zero_for_oracle_and_weight():
    x0 = torch.full((4, 1, 2, 3), 0.7)  # single-point data set: D = x0 is the exact denoiser
    loss, sigma = edm_loss(lambda x, s, t: x0.clone(), x0, None,
                           generator=torch.Generator().manual_seed(0))
    assert loss.shape == sigma.shape == (4,) and torch.equal(loss, torch.zeros(4))
    # A denoiser returning zeros pays λ(σ)·mean(x0²).
    loss, sigma = edm_loss(lambda x, s, t: torch.zeros_like(x), x0, None,
                           generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(loss, (sigma**2 + SD**2) / (sigma * SD) ** 2 * 0.49)


def test_edm_loss_noise_and_sigma_distribution():
    g = torch.Generator().manual_seed(0)
    x0 = torch.zeros(4000, 1, 1, 1)
    seen = {}

    def spy(x, s, t):
        seen["x"], seen["s"] = x, s
        return x

    _, sigma = edm_loss(spy, x0, None, P_mean=-1.2, P_std=1.2, generator=g)
    assert torch.equal(seen["s"], sigma)
    assert sigma.log().mean().item() == pytest.approx(-1.2, abs=0.06)
    assert sigma.log().std().item() == pytest.approx(1.2, abs=0.06)
    assert (seen["x"].flatten() / sigma).std().item() == pytest.approx(1.0, abs=0.05)


def test_drop_tags_extremes_and_whole_rows():
    tags = torch.randint(1, 5, (64, 3))
    assert torch.equal(drop_tags(tags, 0.0), tags)
    assert torch.equal(drop_tags(tags, 1.0), torch.zeros_like(tags))
    half = drop_tags(tags, 0.5, generator=torch.Generator().manual_seed(0))
    dropped = (half == 0).all(1)
    assert torch.equal(half[~dropped], tags[~dropped])  # rows are dropped whole or kept whole
    assert 10 < dropped.sum() < 54


def test_edm_loss_trains_through_precond_and_unet():
    from ditto2.nn.unet import UNet, UNetConfig

    net = UNet(UNetConfig(base_channels=8, channel_mults=(1, 2), attn_levels=(1,), num_heads=2,
                          tag_vocab_sizes=[3]))
    x0 = torch.randn(2, 1, 8, 16)
    tags = drop_tags(torch.tensor([[1], [2]]), 0.5, generator=torch.Generator().manual_seed(0))
    loss, _ = edm_loss(EDMPrecond(net), x0, tags, generator=torch.Generator().manual_seed(0))
    loss.mean().backward()
    # Only the zero-initialized output conv can receive gradient at step 0 (EDM init).
    assert net.conv_out.weight.grad.abs().sum() > 0

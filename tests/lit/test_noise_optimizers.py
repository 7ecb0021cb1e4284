"""The noise's optimizers (ito.optimizers): ItemAdam is Adam with one second moment per item."""
import pytest
import torch

from ditto2.ito.optimizers import ItemAdam, check_optimizer, noise_optimizer


def steps(opt_cls, z0, loss, k, **kw):
    z = torch.nn.Parameter(z0.clone())
    opt = opt_cls([z], **kw)
    path = []
    for _ in range(k):
        opt.zero_grad()
        loss(z).sum().backward()
        opt.step()
        path.append(z.detach().clone())
    return torch.stack(path)


def quartic(z):
    """Per-item loss whose gradient changes size and sign from step to step (not a fixed direction)."""
    w = torch.linspace(0.5, 3.0, z[0].numel()).view_as(z[0])
    return (w * (z - 0.3).pow(4) + torch.sin(3 * z)).flatten(1).sum(1)


def test_item_adam_is_adam_when_every_item_is_one_element():
    z0 = torch.randn(5, 1, generator=torch.Generator().manual_seed(0))
    for betas in ((0.9, 0.999), (0.5, 0.9)):
        ours = steps(ItemAdam, z0, quartic, 25, lr=0.05, betas=betas)
        theirs = steps(torch.optim.Adam, z0, quartic, 25, lr=0.05, betas=betas)
        assert torch.allclose(ours, theirs, atol=1e-6)


def test_first_step_is_the_gradient_over_the_items_rms():
    """Step 1 (bias-corrected moments m = g, v = mean g²): z − lr · g / (rms of the item's g + eps), item by item."""
    z0 = torch.randn(3, 2, 4, generator=torch.Generator().manual_seed(1))
    z = torch.nn.Parameter(z0.clone())
    quartic(z).sum().backward()
    g = z.grad.clone()
    rms = g.pow(2).flatten(1).mean(1).sqrt().view(3, 1, 1)
    assert torch.allclose(steps(ItemAdam, z0, quartic, 1, lr=0.1)[0], z0 - 0.1 * g / (rms + 1e-8), atol=1e-6)


def test_items_are_independent_and_a_loss_scale_changes_nothing():
    z0 = torch.randn(2, 3, 3, generator=torch.Generator().manual_seed(2))
    scale = torch.tensor([1.0, 1000.0])
    base = steps(ItemAdam, z0, quartic, 10, lr=0.05)
    scaled = steps(ItemAdam, z0, lambda z: scale * quartic(z), 10, lr=0.05)
    assert torch.allclose(base, scaled, atol=1e-5)
    alone = steps(ItemAdam, z0[:1], quartic, 10, lr=0.05)
    assert torch.allclose(alone, base[:, :1], atol=1e-6)


def test_elements_the_loss_hardly_depends_on_hardly_move():
    """Loss a · z with a = (1, 1e-3): Adam moves both elements by the step size each step (sign descent), ItemAdam moves
    the second a thousandth as far as the first — the step keeps the gradient's direction."""
    a = torch.tensor([1.0, 1e-3]).view(1, 2)
    loss = lambda z: (a * z).sum(1)  # noqa: E731
    z0 = torch.zeros(1, 2)
    adam = steps(torch.optim.Adam, z0, loss, 5, lr=0.1)[-1, 0]
    ours = steps(ItemAdam, z0, loss, 5, lr=0.1)[-1, 0]
    assert torch.allclose(adam, torch.tensor([-0.5, -0.5]), atol=1e-4)
    assert ours[1] / ours[0] == pytest.approx(1e-3, rel=1e-4)
    assert ours.pow(2).mean().sqrt() == pytest.approx(0.5, rel=1e-3)  # the item's RMS step is still the step size


def test_names():
    z = torch.nn.Parameter(torch.zeros(2, 3))
    assert isinstance(noise_optimizer("adam", z, 0.1, (0.9, 0.999)), torch.optim.Adam)
    assert isinstance(noise_optimizer("adam-item", z, 0.1, (0.9, 0.999)), ItemAdam)
    with pytest.raises(ValueError, match="optimizer must be one of"):
        check_optimizer("sgd")

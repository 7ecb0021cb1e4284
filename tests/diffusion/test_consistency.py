import pytest
import torch

from ditto2.diffusion.consistency import CMStudent, CTMStudent, cm_sample, ctm_gamma_sample, decode_sigmas, teacher_step
from ditto2.diffusion.edm import ConsistencyPrecond, EDMPrecond, karras_sigmas
from ditto2.diffusion.guidance import guided_denoise
from ditto2.nn.unet import UNet, UNetConfig

SMALL = dict(base_channels=8, channel_mults=(1, 2), attn_levels=(1,), num_heads=2)
VOCAB = [4, 3, 3]


def net(**flags):
    torch.manual_seed(0)
    n = UNet(UNetConfig.preset("tiny", VOCAB, **SMALL, **flags))
    with torch.no_grad():  # non-trivial weights everywhere except the zero-initialized w/s projections
        for name, p in n.named_parameters():
            if not name.startswith(("w_embed.2", "w_embed.1", "s_embed.3", "s_embed.2")) or p.abs().sum() > 0:
                p.normal_(0, 0.05)
    return n


def data(b=2):
    g = torch.Generator().manual_seed(1)
    return torch.randn(b, 1, 16, 32, generator=g), torch.tensor([[1, 2, 0], [3, 0, 1]])[:b]


def test_cm_boundary_condition():
    x, tags = data()
    G = CMStudent(ConsistencyPrecond(net(use_w_embedding=True)))
    assert torch.equal(G(x, torch.tensor(0.002), tags, 2.0), x)
    assert not torch.allclose(G(x, torch.tensor(1.0), tags, 2.0), x)


def test_ctm_identity_at_s_equals_t():
    x, tags = data()
    G = CTMStudent(EDMPrecond(net(use_w_embedding=True, use_s_embedding=True)))
    for t in (0.002, 0.5, 80.0):
        assert torch.allclose(G(x, torch.tensor(t), torch.tensor(t), tags, 3.0), x, atol=1e-6)


def test_fresh_ctm_student_is_a_teacher_euler_jump():
    x, tags = data()
    teacher_net = net()
    teacher = EDMPrecond(teacher_net)
    student_net = UNet(UNetConfig.preset("tiny", VOCAB, **SMALL, use_w_embedding=True, use_s_embedding=True))
    new = student_net.load_teacher_state(teacher_net.state_dict())
    assert new and all(k.startswith(("w_embed", "s_embed")) for k in new)
    G = CTMStudent(EDMPrecond(student_net))
    for t, s in ((80.0, 10.0), (5.0, 0.002), (1.0, 0.5)):
        t_, s_ = torch.tensor(t), torch.tensor(s)
        d = teacher(x, t_, tags)
        euler = x + (s - t) * (x - d) / t
        for w in (1.0, 4.0):  # the zero-initialized w embedding: w has no effect yet
            assert torch.allclose(G(x, t_, s_, tags, w), euler, atol=1e-5, rtol=1e-5)


def test_teacher_step_matches_the_guided_euler_formula():
    x, tags = data()
    teacher = EDMPrecond(net())
    t, tn, w = torch.tensor([10.0, 2.0]), torch.tensor([5.0, 1.0]), torch.tensor([1.5, 3.0])
    d_w = guided_denoise(teacher, x, t, tags, w)
    expected = x + (tn - t).view(-1, 1, 1, 1) * (x - d_w) / t.view(-1, 1, 1, 1)
    assert torch.allclose(teacher_step(teacher, x, t, tn, tags, w), expected, atol=1e-6)
    # a caller that has D_w(x, t) already passes it: the same step, and the passed value is the one used
    assert torch.allclose(teacher_step(teacher, x, t, tn, tags, w, denoised=d_w), expected, atol=1e-6)
    assert not torch.allclose(teacher_step(teacher, x, t, tn, tags, w, denoised=d_w + 1), expected)
    heun = teacher_step(teacher, x, t, tn, tags, w, solver="heun")
    assert heun.shape == x.shape and not torch.allclose(heun, expected)
    with pytest.raises(ValueError):
        teacher_step(teacher, x, t, tn, tags, w, solver="rk4")


def test_gamma_one_equals_cm_multistep_and_gamma_zero_one_step_is_one_jump():
    x, tags = data()
    G = CTMStudent(EDMPrecond(net(use_w_embedding=True, use_s_embedding=True)))
    grid = karras_sigmas(20)
    sigmas = decode_sigmas(4, grid)
    z = x * sigmas[0]
    ctm = lambda x_, t, s: G(x_, t, s, tags, 2.0)
    cm = lambda x_, t: G(x_, t, grid[-1], tags, 2.0)  # a CTM jump to σ_min is a CM step
    a = ctm_gamma_sample(ctm, z, sigmas, 1.0, torch.Generator().manual_seed(5))
    b = cm_sample(cm, z, sigmas, torch.Generator().manual_seed(5))
    assert torch.allclose(a, b, atol=1e-5)
    one = decode_sigmas(1, grid)
    assert torch.allclose(ctm_gamma_sample(ctm, z, one, 0.0), G(z, grid[0], grid[-1], tags, 2.0))
    # deterministic at γ=0, stochastic otherwise
    g0 = [ctm_gamma_sample(ctm, z, sigmas, 0.0, torch.Generator().manual_seed(i)) for i in (1, 2)]
    g3 = [ctm_gamma_sample(ctm, z, sigmas, 0.3, torch.Generator().manual_seed(i)) for i in (1, 2)]
    assert torch.equal(g0[0], g0[1]) and not torch.allclose(g3[0], g3[1])


def test_decode_sigmas_uses_training_grid_points():
    grid = karras_sigmas(20)
    for steps in (1, 2, 4, 8, 19):
        s = decode_sigmas(steps, grid)
        assert len(s) == steps + 1 and s[0] == grid[0] and s[-1] == grid[-1]
        assert all((grid == v).any() for v in s)
    with pytest.raises(ValueError):
        decode_sigmas(20, grid)


def test_samplers_pass_gradients_to_the_noise():
    x, tags = data()
    G = CTMStudent(EDMPrecond(net(use_w_embedding=True, use_s_embedding=True)))
    z = (x * 80.0).requires_grad_(True)
    out = ctm_gamma_sample(lambda x_, t, s: G(x_, t, s, tags, 2.0), z, decode_sigmas(2, karras_sigmas(20)), 0.0)
    out.square().mean().backward()
    assert z.grad is not None and z.grad.abs().sum() > 0


def test_decode_pairs_are_the_jumps_of_the_decodes_once_each():
    from ditto2.diffusion.consistency import decode_indices, decode_pairs

    pairs = decode_pairs([1, 2, 4], 20).tolist()
    assert pairs == [[0, 19], [0, 10], [10, 19], [0, 5], [5, 10], [10, 14], [14, 19]]
    grid = karras_sigmas(20)
    for steps in (1, 2, 4, 7):  # every consecutive pair of a decode's sigmas is one of its pairs
        s = decode_sigmas(steps, grid)
        idx = decode_indices(steps, 20)
        assert torch.equal(grid[idx], s)
        assert {tuple(p) for p in decode_pairs([steps], 20).tolist()} == set(zip(idx[:-1].tolist(), idx[1:].tolist()))
    assert decode_pairs([2, 2, 1], 20).tolist() == [[0, 10], [10, 19], [0, 19]]
    with pytest.raises(ValueError, match="steps"):
        decode_pairs([1, 20], 20)

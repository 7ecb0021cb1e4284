"""The distillation loss at the level of its formula (paper eqs. 1 and 4, CTM's soft consistency):
the (σ_n, σ_{n+j}, s) triple, the teacher's guided steps, the stop-gradient target, the EMA of φ⁻, and
the step-count bias diagnostics — each against a hand-written computation."""
import pytest
import torch

from ditto2.controls.bias import FeatureBias
from ditto2.data.datamodule import MelShardDataModule
from ditto2.diffusion.consistency import teacher_step
from ditto2.diffusion.edm import drop_tags
from ditto2.lit.distill import CMDistillModule, CTMDistillModule, control_feature_bias


@pytest.fixture(scope="module")
def info(synth_tiny):
    return MelShardDataModule(str(synth_tiny)).data_info()


def _batch(b=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    return {"mel": torch.randn(b, 1, 64, 256, generator=g), "tags": torch.randint(0, 3, (b, 3), generator=g)}


def _perturb(module, seed=1, scale=0.02):
    """Move student and target apart from the teacher, so every term of the loss is non-trivial."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.student.parameters():
            p.add_(scale * torch.randn(p.shape, generator=g))
        for p in module.target.parameters():
            p.add_(scale * torch.randn(p.shape, generator=g))


def _hand_draws(m, batch, seed):
    """The loss's random numbers, drawn by hand in the documented order: n, w, tag dropout, ε, then s's u."""
    g = torch.Generator().manual_seed(seed)
    x0, h = batch["mel"], m.hparams
    b = x0.shape[0]
    n = torch.randint(0, len(m.grid) - 1, (b,), generator=g)
    w = h.w_min + (h.w_max - h.w_min) * torch.rand(b, generator=g)
    tags = drop_tags(batch["tags"], h.tag_dropout, generator=g)
    eps = torch.randn(x0.shape, generator=g)
    return g, x0, n, w, tags, eps


@pytest.mark.parametrize("teacher_steps", [1, 3])
def test_ctm_loss_matches_a_hand_computation(info, teacher_tiny, teacher_steps):
    m = CTMDistillModule(teacher=str(teacher_tiny), data_info=info, teacher_steps=teacher_steps).eval()
    _perturb(m)
    batch = _batch()
    loss = m.distill_loss(batch, torch.Generator().manual_seed(7))

    # by hand, drawing the same random numbers in the documented order
    g, x0, n, w, tags, eps = _hand_draws(m, batch, 7)
    b, grid = 4, m.grid
    u = torch.rand(b, generator=g)
    losses = []
    j_batch = int(torch.randint(1, teacher_steps + 1, (1,), generator=g)) if teacher_steps > 1 else 1
    for i in range(b):
        last = len(grid) - 1
        s_idx = int(n[i]) + 1 + min(int(u[i] * (last - int(n[i]))), last - int(n[i]) - 1)
        assert int(n[i]) < s_idx <= last
        x = x0[i : i + 1] + grid[n[i]] * eps[i : i + 1]
        student = m.student(x, grid[n[i]], grid[s_idx], tags[i : i + 1], w[i : i + 1])
        k = n[i].item()
        j = min(j_batch, s_idx - k)  # the teacher never passes s
        xh = x
        for step in range(j):
            xh = teacher_step(m.teacher, xh, grid[k + step], grid[k + step + 1], tags[i : i + 1], w[i : i + 1])
        target = m.target(xh, grid[k + j], grid[s_idx], tags[i : i + 1], w[i : i + 1])
        losses.append((student - target).pow(2).mean())
    assert torch.allclose(loss, torch.stack(losses), rtol=1e-4, atol=1e-7)


def test_cm_loss_matches_a_hand_computation(info, teacher_tiny):
    m = CMDistillModule(teacher=str(teacher_tiny), data_info=info).eval()
    _perturb(m)
    batch = _batch(seed=3)
    loss = m.distill_loss(batch, torch.Generator().manual_seed(5))
    _, x0, n, w, tags, eps = _hand_draws(m, batch, 5)
    grid = m.grid
    x = x0 + grid[n].reshape(-1, 1, 1, 1) * eps
    xh = teacher_step(m.teacher, x, grid[n], grid[n + 1], tags, w)
    want = (m.student(x, grid[n], tags, w) - m.target(xh, grid[n + 1], tags, w)).pow(2).flatten(1).mean(1)
    assert torch.allclose(loss, want, rtol=1e-4, atol=1e-7)


def test_no_gradient_reaches_the_target_or_the_teacher(info, teacher_tiny):
    m = CTMDistillModule(teacher=str(teacher_tiny), data_info=info, teacher_steps=2)
    _perturb(m)
    m.distill_loss(_batch(), torch.Generator().manual_seed(0)).mean().backward()
    assert all(p.grad is None for p in m.target.parameters())
    assert all(p.grad is None for p in m.teacher.parameters())
    grads = [p.grad for p in m.student.parameters() if p.grad is not None]
    assert grads and sum(float(g.abs().sum()) for g in grads) > 0


def test_target_is_an_ema_of_the_student(info, teacher_tiny):
    m = CTMDistillModule(teacher=str(teacher_tiny), data_info=info, target_decay=0.9)
    _perturb(m)
    before = [p.detach().clone() for p in m.target.parameters()]
    student = [p.detach().clone() for p in m.student.parameters()]
    m.on_train_batch_end(None, None, 0)
    for old, s, new in zip(before, student, m.target.parameters()):
        assert torch.allclose(new, 0.9 * old + 0.1 * s, atol=1e-6)


def test_teacher_span_is_bounded_by_s(info, teacher_tiny):
    m = CTMDistillModule(teacher=str(teacher_tiny), data_info=info, teacher_steps=4)
    n = torch.arange(0, 19).repeat(20)
    g = torch.Generator().manual_seed(0)
    seen = set()
    for _ in range(40):
        s_idx = m.draw_s_index(n, g)
        j = m.teacher_span(n, s_idx, g)
        assert ((s_idx > n) & (s_idx <= 19)).all()
        assert ((j >= 1) & (j <= 4) & (n + j <= s_idx)).all()
        seen |= set(j.tolist())
    assert seen == {1, 2, 3, 4}
    with pytest.raises(ValueError, match="teacher_steps"):
        CMDistillModule(teacher=str(teacher_tiny), data_info=info, teacher_steps=2)


def test_init_student_continues_from_an_exported_student(info, teacher_tiny, student_bundles, tmp_path):
    from ditto2.models.bundle import save_bundle

    m = CTMDistillModule(teacher=str(teacher_tiny), data_info=info)
    _perturb(m, seed=4)
    save_bundle(tmp_path / "ctm", m.exported_model(), m.bundle_meta())
    m2 = CTMDistillModule(teacher=str(teacher_tiny), data_info=info, init_student=str(tmp_path / "ctm"))
    for a, b, t in zip(m.student.parameters(), m2.student.parameters(), m2.target.parameters()):
        assert torch.equal(a, b) and torch.equal(b, t)
    with pytest.raises(ValueError, match="'cm' model"):
        CTMDistillModule(teacher=str(teacher_tiny), data_info=info, init_student=str(student_bundles["cm"]))


def test_control_feature_bias_reads_known_shifts(info):
    """A mel shifted by +Δ in log-magnitude is 20·log10(e)·Δ dB louder; chroma and SSM of the same mel agree."""
    from ditto2.audio.mel import MelConfig, MelNormalizer
    from ditto2.controls import MelContext

    ctx = MelContext(MelConfig.from_dict(info["mel"]), MelNormalizer.from_dict(info["stats"]))
    g = torch.Generator().manual_seed(0)
    ref = torch.randn(2, 1, 64, 256, generator=g) * 0.5
    delta = 0.3  # natural-log magnitude units; in the normalized mel that is delta / std · target_std
    nz = ctx.normalizer
    out = control_feature_bias(FeatureBias(ctx, ref), {1: ref.clone(), 2: ref + delta / nz.std * nz.target_std})
    assert abs(float(out["bias/level_db_1step"])) < 1e-4 and float(out["bias/chroma_agree_1step"]) == 1.0
    assert float(out["bias/ssm_mse_1step"]) < 1e-10
    want = 20 * torch.log10(torch.exp(torch.tensor(delta)))
    assert abs(float(out["bias/level_db_2step"]) - float(want)) < 0.05
    assert float(out["bias/chroma_agree_2step"]) > 0.99
    assert abs(float(out["bias/detail_ratio_2step"]) - 1) < 1e-4  # a shift adds no detail; a blur removes it
    blurred = torch.nn.functional.avg_pool2d(ref, 3, stride=1, padding=1, count_include_pad=False)
    assert float(control_feature_bias(FeatureBias(ctx, ref), {1: blurred})["bias/detail_ratio_1step"]) < 0.5


def test_data_space_loss_carries_both_sides_to_sigma_min(info, teacher_tiny):
    """loss_space="data": d(G⁻(G_φ(x_t,t,s), s, σ_min), G⁻(G⁻(x̂,t−1,s), s, σ_min)); gradient only into φ."""
    m = CTMDistillModule(teacher=str(teacher_tiny), data_info=info, loss_space="data").eval()
    _perturb(m)
    batch = _batch(seed=5)
    loss = m.distill_loss(batch, torch.Generator().manual_seed(9))
    g, x0, n, w, tags, eps = _hand_draws(m, batch, 9)
    b, grid = 4, m.grid
    u = torch.rand(b, generator=g)
    last = len(grid) - 1
    s_idx = n + 1 + (u * (last - n).float()).floor().long().clamp(max=last - n - 1)
    x = x0 + grid[n].reshape(-1, 1, 1, 1) * eps
    xh = teacher_step(m.teacher, x, grid[n], grid[n + 1], tags, w)
    lo = grid[-1].expand(b)
    pred = m.target(m.student(x, grid[n], grid[s_idx], tags, w), grid[s_idx], lo, tags, w)
    target = m.target(m.target(xh, grid[n + 1], grid[s_idx], tags, w), grid[s_idx], lo, tags, w)
    want = (pred - target).pow(2).flatten(1).mean(1)
    assert torch.allclose(loss, want, rtol=1e-4, atol=1e-7)
    # x_s-space and data-space losses differ unless every s is σ_min
    plain = CTMDistillModule(teacher=str(teacher_tiny), data_info=info).eval()
    plain.load_state_dict(m.state_dict())
    assert not torch.allclose(plain.distill_loss(batch, torch.Generator().manual_seed(9)), loss)
    m.train()
    m.distill_loss(batch, torch.Generator().manual_seed(9)).mean().backward()
    assert all(p.grad is None for p in m.target.parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in m.student.parameters())
    with pytest.raises(ValueError, match="loss_space"):
        CMDistillModule(teacher=str(teacher_tiny), data_info=info, loss_space="data")


def test_anchor_adds_the_students_denoiser_against_the_teachers(info, teacher_tiny):
    """anchor_weight λ: loss = eq. 4 + λ·‖g_θ(x_t, t, t) − D_w(x_t, t)‖² per sample, the teacher's guided denoiser."""
    from ditto2.diffusion.guidance import guided_denoise

    m = CTMDistillModule(teacher=str(teacher_tiny), data_info=info, anchor_weight=0.5).eval()
    _perturb(m)
    plain = CTMDistillModule(teacher=str(teacher_tiny), data_info=info).eval()
    plain.load_state_dict(m.state_dict())
    batch = _batch(seed=2)
    loss = m.distill_loss(batch, torch.Generator().manual_seed(4))
    _, x0, n, w, tags, eps = _hand_draws(m, batch, 4)
    t = m.grid[n]
    x = x0 + t.reshape(-1, 1, 1, 1) * eps
    g = m.student.precond(x, t, tags, w=w, s_noise=torch.log(t) / 4)  # g(x, t, s = t): EDM's c_noise of s
    anchor = (g - guided_denoise(m.teacher, x, t, tags, w)).pow(2).flatten(1).mean(1)
    want = plain.distill_loss(batch, torch.Generator().manual_seed(4)) + 0.5 * anchor
    assert torch.allclose(loss, want, rtol=1e-4, atol=1e-7)
    assert float(anchor.min()) > 0
    # the Euler parameterization: G(x, t, s) = (s/t) x + (1 − s/t) g(x, t, s)
    s = m.grid[n + 1]
    r = (s / t).reshape(-1, 1, 1, 1)
    G = m.student(x, t, s, tags, w)
    assert torch.allclose(G, r * x + (1 - r) * m.student.denoiser(x, t, s, tags, w), atol=1e-6)


def test_anchor_vanishes_for_the_unguided_teacher_at_the_start(info, teacher_tiny):
    """A fresh student is the teacher: at w = 1 its denoiser at s = t is the teacher's, so the anchor is 0;
    at w = 3 the guided denoiser differs and the anchor is what pulls the student's g towards it."""
    batch = _batch(seed=6)
    fresh = CTMDistillModule(teacher=str(teacher_tiny), data_info=info, anchor_weight=1.0, w_min=1.0, w_max=1.0)
    fresh.eval().distill_loss(batch, torch.Generator().manual_seed(1))
    assert float(fresh._anchor.max()) < 1e-10
    guided = CTMDistillModule(teacher=str(teacher_tiny), data_info=info, anchor_weight=1.0, w_min=3.0, w_max=3.0)
    guided.eval().distill_loss(batch, torch.Generator().manual_seed(1))
    assert float(guided._anchor.min()) > 1e-8
    with pytest.raises(ValueError, match="anchor_weight"):
        CMDistillModule(teacher=str(teacher_tiny), data_info=info, anchor_weight=1.0)
    with pytest.raises(ValueError, match="anchor_weight"):
        CTMDistillModule(teacher=str(teacher_tiny), data_info=info, anchor_weight=-1.0)


def test_trajectory_loss_matches_a_hand_computation(info, teacher_tiny):
    """trajectory_weight: ‖G_θ(x_{σ_n}, σ_n, σ_m) − x_{σ_m}‖² per drawn trajectory, x_{σ_m} the teacher's own guided
    Euler steps from x_{σ_n}; the bank fills with the whole batch first, then refreshes trajectory_refresh per step."""
    m = CTMDistillModule(teacher=str(teacher_tiny), data_info=info, trajectory_weight=0.5, trajectory_bank=6,
                         trajectory_batch=5, trajectory_refresh=2).eval()
    _perturb(m)
    m.refresh_trajectories(_batch(b=4), torch.Generator().manual_seed(0))
    assert m.bank.count == 4
    m.refresh_trajectories(_batch(b=4, seed=1), torch.Generator().manual_seed(1))
    assert m.bank.count == 6 and m.bank.next == 0  # 2 fill the room left
    m.refresh_trajectories(_batch(b=4, seed=2), torch.Generator().manual_seed(2))
    assert m.bank.count == 6 and m.bank.next == 2  # then trajectory_refresh = 2 per step, over the oldest
    loss = m.trajectory_loss(torch.Generator().manual_seed(3))

    g = torch.Generator().manual_seed(3)
    rows = torch.randint(0, 6, (5,), generator=g)
    n = torch.randint(0, len(m.grid) - 1, (5,), generator=g)
    s_idx = m.draw_s_index(n, g)
    want = []
    for i in range(5):
        r, k = int(rows[i]), int(n[i])
        tags, w = m.bank.tags[r : r + 1], m.bank.w[r : r + 1]
        x = m.bank.states[r, 0 : 1]
        for step in range(k):  # the bank's state at σ_n is the teacher's trajectory from its noise
            x = teacher_step(m.teacher, x, m.grid[step], m.grid[step + 1], tags, w)
        x_t = x
        for step in range(k, int(s_idx[i])):
            x = teacher_step(m.teacher, x, m.grid[step], m.grid[step + 1], tags, w)
        pred = m.student(x_t, m.grid[k], m.grid[s_idx[i]], tags, w)
        want.append((pred - x).pow(2).mean())
    assert torch.allclose(loss, torch.stack(want), rtol=1e-4, atol=1e-7)

    batch = _batch(seed=5)
    torch.manual_seed(11)
    total = m.training_step(batch, 0)
    torch.manual_seed(11)
    plain = m.distill_loss(batch).mean()
    m.refresh_trajectories(batch)
    assert torch.allclose(total, plain + 0.5 * m.trajectory_loss().mean(), rtol=1e-5)


def test_trajectory_loss_is_zero_for_a_fresh_student_on_one_unguided_step(info, teacher_tiny):
    """A fresh student is one teacher Euler step (w = 1): on adjacent grid points it lands exactly on the teacher's
    trajectory; over several steps it does not, which is what the term teaches."""
    m = CTMDistillModule(teacher=str(teacher_tiny), data_info=info, trajectory_weight=1.0, trajectory_bank=4,
                         w_min=1.0, w_max=1.0, tag_dropout=0.0).eval()
    m.refresh_trajectories(_batch(b=4), torch.Generator().manual_seed(0))
    n = torch.tensor([0, 5, 10, 14])
    x_t, x_s, tags, w = m.bank.draw(torch.arange(4), n, n + 1)
    assert float(m.distance(m.student(x_t, m.grid[n], m.grid[n + 1], tags, w), x_s).max()) < 1e-10
    x_t, x_s, tags, w = m.bank.draw(torch.arange(4), n, torch.full_like(n, len(m.grid) - 1))
    assert float(m.distance(m.student(x_t, m.grid[n], m.grid[-1], tags, w), x_s).min()) > 1e-6
    with pytest.raises(ValueError, match="trajectory_weight"):
        CMDistillModule(teacher=str(teacher_tiny), data_info=info, trajectory_weight=1.0)


def test_local_detail_sees_blur_and_noise_but_not_a_shift():
    from ditto2.controls.bias import local_detail

    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 1, 16, 32, generator=g)
    assert torch.allclose(local_detail(x + 3.0), local_detail(x), atol=1e-5)  # blind to a constant shift
    assert torch.allclose(local_detail(2 * x), 2 * local_detail(x), rtol=1e-4)  # an amplitude: scales with x
    assert float(local_detail(torch.ones(1, 1, 8, 8)).max()) < 1e-3  # a flat map has none
    # by hand at an interior point: RMS over a 5×5 window of x minus its 3×3 means
    v = x[0, 0]
    hp = torch.stack([torch.stack([v[i, j] - v[i - 1 : i + 2, j - 1 : j + 2].mean() for j in range(1, 31)])
                      for i in range(1, 15)])
    want = (hp[4:9, 4:9].square().mean() + 1e-8).sqrt()  # centre (7, 7) of v = (6, 6) of hp
    assert torch.allclose(local_detail(x)[0, 0, 7, 7], want, rtol=1e-4)
    blurred = torch.nn.functional.avg_pool2d(x, 3, stride=1, padding=1)
    assert float(local_detail(blurred).mean()) < 0.5 * float(local_detail(x).mean())


def test_detail_term_adds_the_scaled_detail_distance(info, teacher_tiny):
    from ditto2.controls.bias import local_detail

    kw = dict(teacher=str(teacher_tiny), data_info=info, trajectory_weight=1.0, trajectory_bank=4, trajectory_batch=4)
    m = CTMDistillModule(**kw, detail_weight=2.0).eval()
    _perturb(m)
    m.refresh_trajectories(_batch(b=4), torch.Generator().manual_seed(0))
    plain = CTMDistillModule(**kw).eval()
    plain.load_state_dict(m.state_dict())
    plain.bank = m.bank
    loss = m.trajectory_loss(torch.Generator().manual_seed(1))
    g = torch.Generator().manual_seed(1)
    rows = torch.randint(0, 4, (4,), generator=g)
    n = torch.randint(0, len(m.grid) - 1, (4,), generator=g)
    s_idx = m.draw_s_index(n, g)
    x_t, x_s, tags, w = m.bank.draw(rows, n, s_idx)
    pred = m.student(x_t, m.grid[n], m.grid[s_idx], tags, w)
    scale = 0.25 / (m.grid[s_idx] ** 2 + 0.25)  # σ_data = 0.5
    detail = scale * (local_detail(pred) - local_detail(x_s)).pow(2).flatten(1).mean(1)
    assert torch.allclose(loss, plain.trajectory_loss(torch.Generator().manual_seed(1)) + 2.0 * detail, rtol=1e-4, atol=1e-8)
    assert float(detail.min()) > 0
    with pytest.raises(ValueError, match="detail_weight"):
        CTMDistillModule(teacher=str(teacher_tiny), data_info=info, detail_weight=1.0)


def test_trajectory_decode_share_draws_the_decodes_jumps(info, teacher_tiny):
    """trajectory_decode_share: the first round(share·b) pairs are jumps of the 1/2/4-step decodes (uniform over the
    7 distinct ones), the rest the uniform (n, m) draw of share 0 with the same random numbers."""
    kw = dict(teacher=str(teacher_tiny), data_info=info, trajectory_weight=1.0)
    plain = CTMDistillModule(**kw)
    mixed = CTMDistillModule(**kw, trajectory_decode_share=0.25)
    n0, m0 = plain.trajectory_pairs(8, torch.Generator().manual_seed(3))
    g = torch.Generator().manual_seed(3)  # by hand: n uniform on 0..N−2, m on n+1..N−1, then the pick
    n = torch.randint(0, 19, (8,), generator=g)
    u = torch.rand(8, generator=g)
    assert torch.equal(n0, n) and torch.equal(m0, n + 1 + (u * (19 - n).float()).floor().long().clamp(max=18 - n))
    n1, m1 = mixed.trajectory_pairs(8, torch.Generator().manual_seed(3))
    assert torch.equal(n1[2:], n0[2:]) and torch.equal(m1[2:], m0[2:])
    jumps = {(0, 19), (0, 10), (10, 19), (0, 5), (5, 10), (10, 14), (14, 19)}
    assert {(a, b) for a, b in zip(n1[:2].tolist(), m1[:2].tolist())} <= jumps
    only = CTMDistillModule(**kw, trajectory_decode_share=1.0, trajectory_decode_steps=[1, 2])
    n2, m2 = only.trajectory_pairs(300, torch.Generator().manual_seed(0))
    seen = {(a, b) for a, b in zip(n2.tolist(), m2.tolist())}
    assert seen == {(0, 19), (0, 10), (10, 19)}
    for bad in (dict(trajectory_decode_share=1.5), dict(trajectory_decode_share=0.5, trajectory_weight=0.0)):
        with pytest.raises(ValueError, match="trajectory_decode_share"):
            CTMDistillModule(**{**kw, **bad})

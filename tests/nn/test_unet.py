import pytest
import torch

from ditto2.nn.embeddings import SinusoidalEmbedding, TagEmbedding
from ditto2.nn.unet import UNet, UNetConfig

TAGS = [5, 4, 3]



def _perturb(net: UNet, skip: tuple[str, ...] = ()) -> None:
    """Random non-zero weights everywhere, so zero-init layers cannot hide a broken path."""
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, p in net.named_parameters():
            if not name.startswith(skip):
                p.copy_(torch.randn(p.shape, generator=g) * 0.1)


def _inputs(b=2, h=64, w=256, seed=1):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(b, 1, h, w, generator=g)
    tags = torch.stack([torch.randint(0, n, (b,), generator=g) for n in TAGS], dim=1)
    return x, torch.randn(b, generator=g), tags


def test_embeddings_shapes():
    assert SinusoidalEmbedding(16)(torch.tensor([0.0, 1.5])).shape == (2, 16)
    emb = TagEmbedding(TAGS, 8)
    assert emb(torch.tensor([[0, 3, 2]])).shape == (1, 8)
    with pytest.raises(ValueError):
        emb(torch.zeros(1, 2, dtype=torch.long))


def test_tiny_output_shape():
    net = UNet(UNetConfig.preset("tiny", TAGS))
    _perturb(net)
    x, c, tags = _inputs()
    out = net(x, c, tags)
    assert out.shape == x.shape and torch.isfinite(out).all()
    # tags=None means all-null tags
    assert torch.equal(net(x, c, None), net(x, c, torch.zeros_like(tags)))


def test_paper_shaped_input_with_reduced_width():
    # The paper architecture (levels, attention placement) at full 160×512, but narrow.
    net = UNet(UNetConfig.preset("paper", TAGS, base_channels=8, num_heads=2, dropout=0.0))
    _perturb(net)
    x, c, tags = _inputs(b=1, h=160, w=512)
    assert net(x, c, tags).shape == x.shape


def test_paper_param_count():
    n = sum(p.numel() for p in UNet(UNetConfig.preset("paper", TAGS)).parameters())
    print(f"paper UNet parameters: {n / 1e6:.2f}M")
    assert 38e6 <= n <= 44e6


def test_rejects_indivisible_size():
    net = UNet(UNetConfig.preset("tiny", TAGS))
    with pytest.raises(ValueError, match="divisible"):
        net(torch.zeros(1, 1, 60, 256), torch.zeros(1), None)


def _small(**kw) -> UNetConfig:
    return UNetConfig(base_channels=16, channel_mults=(1, 2), num_res_blocks=1, attn_levels=(1,),
                      num_heads=2, tag_vocab_sizes=TAGS, **kw)


def test_student_from_teacher_is_exactly_teacher():
    torch.manual_seed(0)
    teacher = UNet(_small())
    _perturb(teacher)
    student = UNet(_small(use_w_embedding=True, use_s_embedding=True))
    _perturb(student, skip=("w_embed.1.", "s_embed.3."))  # the zero-init projections only
    new = student.load_teacher_state(teacher.state_dict())
    assert sorted(new) == ["s_embed.1.bias", "s_embed.1.weight", "s_embed.3.bias",
                           "s_embed.3.weight", "w_embed.1.bias", "w_embed.1.weight"]
    x, c, tags = _inputs(h=16, w=32)
    ref = teacher(x, c, tags)
    for w, s in [(1.0, 0.3), (torch.tensor([2.0, 7.5]), torch.tensor([-1.0, 0.5]))]:
        assert torch.equal(student(x, c, tags, w=w, s_noise=s), ref)
    # Once the projections move, w does change the output: the path is live.
    with torch.no_grad():
        student.w_embed[1].weight.normal_()
    assert not torch.allclose(student(x, c, tags, w=1.0, s_noise=0.3),
                              student(x, c, tags, w=5.0, s_noise=0.3))


def test_student_inputs_must_match_flags():
    student = UNet(_small(use_w_embedding=True))
    x, c, tags = _inputs(h=16, w=32)
    with pytest.raises(ValueError):
        student(x, c, tags)  # w missing
    with pytest.raises(ValueError):
        student(x, c, tags, w=1.0, s_noise=0.0)  # no s embedding


def test_load_teacher_rejects_foreign_keys():
    student = UNet(_small(use_w_embedding=True))
    state = UNet(_small()).state_dict() | {"extra.weight": torch.zeros(1)}
    with pytest.raises(KeyError):
        student.load_teacher_state(state)


def test_presets():
    assert UNetConfig(tag_vocab_sizes=TAGS) == UNetConfig.preset("tiny", TAGS)  # defaults = tiny
    assert UNetConfig.preset("tiny", TAGS, dropout=0.2).dropout == 0.2
    with pytest.raises(KeyError):
        UNetConfig.preset("huge", TAGS)

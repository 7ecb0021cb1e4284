"""CLAP score: bounds, identity, pairing, DDP-exact merging."""
import pytest
import torch

from ditto2.metrics.clap_score import CLAPScore


def test_identical_embeddings_score_one_and_range():
    x = torch.randn(10, 16, generator=torch.Generator().manual_seed(0))
    m = CLAPScore()
    m.update(x, x)
    assert float(m.compute()) == pytest.approx(1.0)
    m = CLAPScore()
    m.update(x, -x)
    assert float(m.compute()) == pytest.approx(-1.0)



def test_known_angles_give_known_cosines_whatever_the_scale():
    from ditto2.metrics.clap_score import clap_cosines

    audio = torch.tensor([[1.0, 0.0], [3.0, 0.0], [2.0, 2.0]])  # unnormalized on purpose
    text = torch.tensor([[0.0, 5.0], [0.5, 0.5 * 3**0.5], [1.0, 0.0]])  # 90°, 60°, 45° away
    cos = clap_cosines(audio, text)
    assert torch.allclose(cos, torch.tensor([0.0, 0.5, 0.5**0.5], dtype=torch.float64), atol=1e-7)
    m = CLAPScore()
    m.update(audio, text)
    assert float(m.compute()) == pytest.approx((0.0 + 0.5 + 0.5**0.5) / 3, abs=1e-7)


def test_single_caption_broadcasts_and_shapes_are_checked():
    a = torch.nn.functional.normalize(torch.randn(4, 8), dim=-1)
    m = CLAPScore()
    m.update(a, a[0])
    assert float(m.compute()) == pytest.approx(float((a @ a[0]).mean()), abs=1e-6)
    with pytest.raises(ValueError):
        m.update(a, a[:3])
    with pytest.raises(ValueError, match="before any update"):
        CLAPScore().compute()


def test_two_ranks_merge_to_the_single_process_result():
    g = torch.Generator().manual_seed(0)
    a, t = torch.randn(9, 8, generator=g), torch.randn(9, 8, generator=g)
    whole, r0, r1 = CLAPScore(), CLAPScore(), CLAPScore()
    whole.update(a, t)
    r0.update(a[:4], t[:4])
    r1.update(a[4:], t[4:])
    r0.merge_state(r1)  # the sum reduction DDP applies
    assert float(r0.compute()) == pytest.approx(float(whole.compute()), rel=1e-12)

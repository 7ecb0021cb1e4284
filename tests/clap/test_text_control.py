"""TextControl: targets checked and embedded once; gradient steps on a mel raise its CLAP similarity."""
import pytest
import torch
from clap_helpers import CFG, NORM, synthetic_batch

from ditto2.clap.embedder import InDomainClapEmbedder
from ditto2.controls.base import ControlTargetError, MelContext
from ditto2.controls.text import TextControl

CAPTION = "A happy rock song at 128 beats per minute."


@pytest.fixture
def control(clap_module):
    # briefly trained, so caption embeddings are distinct and the mel tower responds to them
    batch = synthetic_batch()
    opt = torch.optim.Adam(clap_module.parameters(), lr=3e-3)
    for _ in range(10):
        loss, _ = clap_module._loss(batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return TextControl(MelContext(CFG, NORM), embedder=InDomainClapEmbedder(clap_module.model, CFG, NORM))


def test_check_target(control):
    one = control.check_target(CAPTION, batch_size=3)
    assert one.shape == (1, 16) and torch.allclose(one.norm(dim=-1), torch.ones(1))
    assert control.check_target([CAPTION, "A song.", "A sad folk song."], batch_size=3).shape == (3, 16)
    assert torch.equal(control.check_target(one, batch_size=3), one)  # composites re-check embedded targets
    for bad in ("", "   ", [], [CAPTION, ""], [CAPTION, 3], None):
        with pytest.raises(ControlTargetError):
            control.check_target(bad, batch_size=3)
    with pytest.raises(ControlTargetError, match="2 captions"):
        control.check_target([CAPTION, CAPTION], batch_size=3)
    with pytest.raises(ControlTargetError):
        control.check_target(torch.ones(2, 7))


def test_gradient_steps_on_the_mel_lower_the_loss(control):
    target = control.check_target(CAPTION)
    mel = synthetic_batch(seed=2)["mel"][6:8].clone().requires_grad_()  # clips of other captions
    opt = torch.optim.Adam([mel], lr=0.1)
    with torch.no_grad():
        start = control(mel, target)
    for _ in range(25):
        loss = control(mel, target).sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        end = control(mel, target)
    assert start.shape == (2,) and ((start >= 0) & (start <= 2)).all()
    assert (end < start - 0.1).all(), (start, end)  # measured 0.53 -> 0.38 (a 2-stage, 16-d CLAP)


def test_audio_domain_runs_through_the_vocoder(control):
    ctx = MelContext(CFG, NORM, gl_iters=2, nnls_iters=2)
    audio = TextControl(ctx, domain="audio", embedder=control.embedder)
    mel = synthetic_batch()["mel"][:1, :, :, :16].clone().requires_grad_()
    loss = audio(mel, audio.check_target(CAPTION))
    loss.sum().backward()
    assert loss.shape == (1,) and mel.grad.abs().sum() > 0


def test_missing_default_bundle_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FileNotFoundError, match="checkpoints/tiny/clap"):
        TextControl(MelContext(CFG, NORM))

import numpy as np
import pytest
import torch
from control_signals import CFG, aba_signal, to_mel

from ditto2.controls import ControlTargetError, StructureControl, form_ssm
from ditto2.controls.structure import dct_ortho


def _corr(a, b):
    return float(np.corrcoef(np.asarray(a).ravel(), np.asarray(b).ravel())[0, 1])


def test_dct_matches_scipy_ortho():
    from scipy.fft import dct
    x = np.random.default_rng(0).standard_normal((64, 5))
    assert np.abs(dct_ortho(20, 64).double().numpy() @ x - dct(x, type=2, norm="ortho", axis=0)[:20]).max() < 1e-5


@pytest.mark.parametrize("domain", ["mel", "audio"])
def test_aba_signal_gives_an_aba_matrix(ctx, domain):
    control = StructureControl(ctx, domain)
    ssm = control.features(to_mel(aba_signal()))
    n = control.ssm_size
    assert ssm.shape == (1, n, n) and n == CFG.frames // 4
    assert torch.allclose(ssm, ssm.transpose(1, 2), atol=1e-5)
    assert ssm.abs().max() <= 1 + 1e-4
    aba, abba = form_ssm("ABA", n), form_ssm("ABBA", n)
    # measured: correlation 0.94 (mel) / 0.94 (audio); MSE 0.11 / 0.12 vs ABA, 1.04 / 1.00 vs ABBA
    assert _corr(ssm[0], aba) > 0.9
    target = control.check_target(aba)
    assert control.loss(ssm, target).item() < 0.2
    assert control.loss(ssm, control.check_target(abba)).item() > 0.8


def test_form_ssm_blocks():
    ssm = form_ssm("ABA", 6)
    assert ssm.shape == (6, 6)
    expected = torch.tensor([[1, 1, -1, -1, 1, 1], [1, 1, -1, -1, 1, 1], [-1, -1, 1, 1, -1, -1],
                             [-1, -1, 1, 1, -1, -1], [1, 1, -1, -1, 1, 1], [1, 1, -1, -1, 1, 1]]).float()
    assert torch.equal(ssm, expected)
    assert torch.equal(form_ssm("aba", 6), ssm)
    abc = form_ssm("ABC", 9)
    assert abc[0, 4].item() == pytest.approx(-0.5)  # three letters: simplex cosine −1/2
    assert form_ssm("ABBA", 8, across=0.0)[0, 2].item() == 0.0
    assert torch.equal(form_ssm("AAB", 64), form_ssm("AAB", 64).T)


@pytest.mark.parametrize("form", ["", "AAAA", "A-B", "AB1", "ÄBA", None, "AB" * 40])
def test_bad_forms_are_rejected(form):
    with pytest.raises(ControlTargetError):
        form_ssm(form, 64)


@pytest.mark.parametrize("bad,match", [
    (torch.zeros(63, 63), "shape"),
    (torch.zeros(64, 32), "shape"),
    (torch.zeros(CFG.frames, CFG.frames), "shape"),
    (torch.full((64, 64), float("nan")), "NaN"),
    (torch.full((64, 64), 2.0), r"\[-1, 1\]"),
])
def test_rejects_bad_targets(ctx, bad, match):
    with pytest.raises(ControlTargetError, match=match):
        StructureControl(ctx).check_target(bad)


def test_reference_target_has_zero_loss(ctx):
    control = StructureControl(ctx)
    mel = to_mel(aba_signal())
    target = control.check_target(control.target_from_reference(mel))
    assert control.loss(control.features(mel), target).item() < 1e-10

import math

import pytest
import torch
from control_signals import CFG, aba_signal, ramp_tone, to_mel

from ditto2.controls import (
    CONTROLS,
    CompositeControl,
    ControlTargetError,
    IntensityControl,
    MelodyControl,
    build_control,
    form_ssm,
    intensity_curve,
)


def _batch():
    """Two different real clips, so every control has structure to differentiate."""
    return torch.cat([to_mel(ramp_tone()[0]), to_mel(aba_signal())])


def _target(control, mel):
    if control.name == "melody":  # a held note C, then rest, then E
        t = torch.full((CFG.frames,), -1)
        t[:100], t[150:] = 0, 4
        return t
    if control.name == "structure":
        return form_ssm("ABA", control.ssm_size)
    if control.name == "intensity":
        return intensity_curve("tanh", "rising", 9.0, -30.0, CFG.frames)
    return control.target_from_reference(mel.flip(-1))  # painting: a different clip as the reference


# the text control needs a CLAP embedder; tests/clap covers it
CASES = [(n, d) for n, cls in CONTROLS.items() for d in cls.domains if n != "text"]


@pytest.mark.parametrize("name,domain", CASES)
def test_gradient_reaches_the_mel_and_is_finite(ctx, name, domain):
    control = build_control(name, ctx, domain=domain)
    mel = _batch()
    target = control.check_target(_target(control, mel), batch_size=2)
    x = mel.clone().requires_grad_(True)
    loss = control(x, target)
    assert loss.shape == (2,) and torch.isfinite(loss).all() and (loss > 0).all()
    loss.sum().backward()
    assert torch.isfinite(x.grad).all()
    assert (x.grad.flatten(1).abs().sum(1) > 0).all()  # every item gets its own gradient


def test_registry_builds_by_name_and_rejects_unknown(ctx):
    assert set(CONTROLS) == {"intensity", "melody", "structure", "outpainting", "inpainting", "text"}
    assert isinstance(build_control("melody", ctx, temperature=0.5), MelodyControl)
    with pytest.raises(ValueError, match="unknown control 'volume'"):
        build_control("volume", ctx)
    with pytest.raises(ValueError, match="domains"):
        build_control("outpainting", ctx, domain="audio")


def test_composite_is_the_weighted_sum_and_vocodes_once(ctx, monkeypatch):
    mel = _batch()
    intensity, melody = IntensityControl(ctx, "audio"), MelodyControl(ctx, "audio")
    y_int, y_mel = _target(intensity, mel), _target(melody, mel)
    composite = CompositeControl([(intensity, y_int, 1.0), (melody, y_mel, 0.25)], batch_size=2)
    voc = ctx.vocoder()
    calls = []
    monkeypatch.setattr(voc, "from_logmel", lambda lm, f=voc.from_logmel: calls.append(1) or f(lm))
    total = composite(mel)
    assert len(calls) == 1  # the Griffin-Lim waveform is shared by both terms
    expected = intensity(mel, intensity.check_target(y_int)) + 0.25 * melody(mel, melody.check_target(y_mel))
    assert torch.allclose(total, expected, rtol=1e-5)
    assert len(calls) == 3  # outside the composite nothing is cached
    assert set(composite.losses(mel)) == {"intensity", "melody"}


def test_composite_checks_targets_and_weights_up_front(ctx):
    intensity = IntensityControl(ctx)
    with pytest.raises(ControlTargetError, match="intensity"):
        CompositeControl([(intensity, torch.zeros(CFG.frames + 1), 1.0)])
    with pytest.raises(ControlTargetError, match="batch"):
        CompositeControl([(intensity, torch.zeros(3, CFG.frames), 1.0)], batch_size=2)
    with pytest.raises(ValueError, match="weight"):
        CompositeControl([(intensity, torch.zeros(CFG.frames), math.nan)])


@pytest.mark.parametrize("bad,match", [
    (torch.zeros(CFG.frames - 1), "shape"),
    (torch.zeros(2, 3, CFG.frames), "shape"),
    (torch.full((CFG.frames,), math.nan), "NaN"),
    (torch.full((CFG.frames,), math.inf), "NaN"),
    (torch.full((CFG.frames,), 40.0), r"\[-120.0, 20.0\] dB"),
])
def test_intensity_rejects_bad_targets(ctx, bad, match):
    with pytest.raises(ControlTargetError, match=match):
        IntensityControl(ctx).check_target(bad, batch_size=2)

import pytest
import torch
from control_signals import CFG, aba_signal, ramp_tone, to_mel

from ditto2.controls import (
    ControlTargetError,
    InpaintingControl,
    OutpaintingControl,
    PaintingTarget,
    inpainting,
    outpainting,
)

ONE_SECOND = round(CFG.sample_rate / CFG.hop_length)  # 43 frames on the tiny preset


@pytest.fixture(scope="module")
def clips():
    return to_mel(ramp_tone()[0]), to_mel(aba_signal())


def test_outpainting_mask_geometry(clips):
    ref, _ = clips
    target = outpainting(ref, 1.0, cfg=CFG)
    assert target.mask.shape == (CFG.frames,) and target.mask.dtype == torch.bool
    assert target.mask.sum() == ONE_SECOND == 43 and target.mask[:ONE_SECOND].all()
    # the generated clip's head must equal the reference's tail
    assert torch.equal(target.values[..., :ONE_SECOND], ref.squeeze(1)[..., -ONE_SECOND:])


def test_inpainting_mask_geometry(clips):
    ref, _ = clips
    target = inpainting(ref, 1.0, cfg=CFG)
    assert target.mask.sum() == 2 * ONE_SECOND
    assert target.mask[:ONE_SECOND].all() and target.mask[-ONE_SECOND:].all()
    assert not target.mask[ONE_SECOND:-ONE_SECOND].any()  # the ≈4 s gap
    gap_s = (CFG.frames - 2 * ONE_SECOND) * CFG.hop_length / CFG.sample_rate
    assert 3.9 < gap_s < 4.0


@pytest.mark.parametrize("cls", [OutpaintingControl, InpaintingControl])
def test_loss_is_zero_for_the_matching_clip_and_positive_otherwise(ctx, clips, cls):
    ref, other = clips
    control = cls(ctx)
    target = control.check_target(control.target_from_reference(ref), batch_size=2)
    if cls is OutpaintingControl:  # a clip that starts with the reference's last second
        match = torch.cat([ref[..., -ONE_SECOND:], other[..., ONE_SECOND:]], dim=-1)
    else:  # the reference itself, and the reference with a different gap
        match = torch.where(target.mask, ref, other)
    loss = control(torch.cat([match, other]), target)
    assert loss.shape == (2,)
    assert loss[0].item() < 1e-12 and loss[1].item() > 0.01
    if cls is InpaintingControl:
        assert control(ref, target).item() < 1e-12


def test_stitching(ctx, clips):
    ref, gen = clips
    out = OutpaintingControl(ctx).stitch(ref, gen)
    assert out.shape[-1] == 2 * CFG.frames - ONE_SECOND
    assert torch.equal(out[..., : CFG.frames], ref) and torch.equal(out[..., CFG.frames:], gen[..., ONE_SECOND:])
    filled = InpaintingControl(ctx).stitch(ref, gen)
    assert torch.equal(filled[..., :ONE_SECOND], ref[..., :ONE_SECOND])
    assert torch.equal(filled[..., ONE_SECOND:-ONE_SECOND], gen[..., ONE_SECOND:-ONE_SECOND])


def test_rejects_bad_targets(ctx, clips):
    ref, _ = clips
    control = OutpaintingControl(ctx)
    good = outpainting(ref, 1.0, cfg=CFG)
    bad_values = good.values.clone()
    bad_values[..., 3] = float("nan")
    cases = [
        (ref, "PaintingTarget"),
        (PaintingTarget(good.values[..., :-1], good.mask), "shape"),
        (PaintingTarget(bad_values, good.mask), "NaN"),
        (PaintingTarget(good.values, good.mask[:-1]), "mask"),
        (PaintingTarget(good.values, good.mask.float()), "mask"),
        (PaintingTarget(good.values, torch.zeros(CFG.frames, dtype=torch.bool)), "no frame"),
    ]
    for bad, match in cases:
        with pytest.raises(ControlTargetError, match=match):
            control.check_target(bad)
    with pytest.raises(ControlTargetError, match="overlap"):
        outpainting(ref, 10.0, cfg=CFG)
    with pytest.raises(ControlTargetError, match="gap"):
        inpainting(ref, 3.0, cfg=CFG)

"""Differentiable controls for inference-time optimization, found by name through one registry.

A new control is one file here (a ``Control`` subclass: features, loss, check_target, targets,
grade, plot) plus one line in ``CONTROLS``; the runner, its report callbacks, the bench and the demo
find it from there.
"""
from ditto2.controls.base import CompositeControl, Control, ControlTargetError, MelContext, TargetSet
from ditto2.controls.intensity import IntensityControl
from ditto2.controls.melody import MelodyControl
from ditto2.controls.painting import (
    InpaintingControl,
    OutpaintingControl,
    PaintingControl,
    PaintingTarget,
    inpainting,
    outpainting,
)
from ditto2.controls.shapes import form_ssm, intensity_curve, melody_from_synth, shifted_melody
from ditto2.controls.structure import StructureControl
from ditto2.controls.text import TextControl

CONTROLS: dict[str, type[Control]] = {
    "intensity": IntensityControl,
    "melody": MelodyControl,
    "structure": StructureControl,
    "outpainting": OutpaintingControl,
    "inpainting": InpaintingControl,
    "text": TextControl,
}


def build_control(name: str, ctx: MelContext, **kwargs) -> Control:
    """``CONTROLS[name](ctx, **kwargs)`` with a readable error for unknown names."""
    try:
        cls = CONTROLS[name]
    except KeyError:
        raise ValueError(f"unknown control {name!r}; choose one of {sorted(CONTROLS)}") from None
    return cls(ctx, **kwargs)


__all__ = [
    "CONTROLS", "CompositeControl", "Control", "ControlTargetError", "InpaintingControl", "IntensityControl",
    "MelContext", "MelodyControl", "OutpaintingControl", "PaintingControl", "PaintingTarget", "StructureControl",
    "TargetSet", "TextControl", "build_control", "form_ssm", "inpainting", "intensity_curve", "melody_from_synth",
    "outpainting", "shifted_melody",
]

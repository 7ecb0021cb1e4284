"""Differentiable controls for inference-time optimization, chosen by name from config."""
from ditto2.controls.base import CompositeControl, Control, ControlTargetError, MelContext
from ditto2.controls.intensity import IntensityControl
from ditto2.controls.melody import MelodyControl
from ditto2.controls.painting import (InpaintingControl, OutpaintingControl, PaintingControl, PaintingTarget,
                                      inpainting, outpainting)
from ditto2.controls.structure import StructureControl
from ditto2.controls.text import TextControl
from ditto2.controls.targets import form_ssm, intensity_curve, melody_from_synth, shifted_melody

CONTROLS: dict[str, type[Control]] = {
    cls.name: cls
    for cls in (IntensityControl, MelodyControl, StructureControl, OutpaintingControl, InpaintingControl, TextControl)
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
    "MelContext", "MelodyControl", "OutpaintingControl", "PaintingControl", "PaintingTarget", "StructureControl", "TextControl",
    "build_control", "form_ssm", "inpainting", "intensity_curve", "melody_from_synth", "outpainting",
    "shifted_melody",
]

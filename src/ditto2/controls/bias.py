"""How far one set of mels is from a reference set on the controls' own features: the level (intensity),
the chroma argmax (melody) and the MFCC self-similarity (structure). A bias here is a bias ITO inherits,
e.g. a student's k-step decode against its teacher's output of the same noise. Also the local detail energy
(``local_detail``), which the level follows: a blurred output is quieter, a rough one louder."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ditto2.controls.base import MelContext
from ditto2.controls.intensity import IntensityControl
from ditto2.controls.melody import MelodyControl
from ditto2.controls.structure import StructureControl


def box_blur(x: torch.Tensor, k: int) -> torch.Tensor:
    """k×k mean of (B, C, H, W) maps (odd k), edges replicated: the same shape back."""
    return F.avg_pool2d(F.pad(x, (k // 2,) * 4, mode="replicate"), k, stride=1)


def local_detail(x: torch.Tensor) -> torch.Tensor:
    """Local detail amplitude of (B, C, H, W) maps: √(5×5 mean of (x − 3×3 mean of x)²), edges replicated. Blind to
    a constant shift; a blurred map has less of it, residual noise more."""
    return (box_blur((x - box_blur(x, 3)).square(), 5) + 1e-8).sqrt()


class FeatureBias:
    """The reference's features are computed once; each call compares another batch of the same shape."""

    def __init__(self, ctx: MelContext, reference: torch.Tensor):
        self.intensity, self.melody, self.structure = IntensityControl(ctx), MelodyControl(ctx), StructureControl(ctx)
        self.reference = reference
        self.level = self.intensity.features(reference).mean(-1)
        self.chroma = self.melody.features(reference).argmax(1)
        self.ssm = self.structure.features(reference)
        self.detail = local_detail(reference).square().mean()

    @torch.no_grad()
    def __call__(self, mels: torch.Tensor) -> dict:
        """level_db (signed mean level difference, dB), level_abs_db (per item), chroma_agree (argmax
        agreement per frame), ssm_mse, mse (mel MSE), detail_ratio (mean local detail energy over the reference's)."""
        level = self.intensity.features(mels).mean(-1) - self.level
        return {"level_db": level.mean(), "level_abs_db": level.abs().mean(),
                "chroma_agree": (self.melody.features(mels).argmax(1) == self.chroma).float().mean(),
                "ssm_mse": (self.structure.features(mels) - self.ssm).pow(2).mean(),
                "mse": (mels - self.reference).pow(2).mean(),
                "detail_ratio": local_detail(mels).square().mean() / self.detail}

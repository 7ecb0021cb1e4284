"""A control added by a user: brightness, the spectral centroid (kHz) of every frame follows a target.

One file like this plus one registry line is the whole of a new control:

    from ditto2.controls import CONTROLS
    CONTROLS["brightness"] = BrightnessControl

(in the package: a line in ``ditto2/controls/__init__.py``). ``ditto2 ito``, its report callbacks, the
bench and the demo then find it by name: ``controls: [{name: brightness, target: {khz: 1.5}}]``.
"""
from __future__ import annotations

import librosa
import numpy as np
import torch

from ditto2.controls.base import Control, TargetSet, as_float_target, batch_target


class BrightnessControl(Control):
    name = "brightness"
    domains = ("mel",)
    metric = "centroid_mse_khz2"  # what ``grade`` returns; lower is better

    def features(self, mel: torch.Tensor) -> torch.Tensor:
        """Differentiable centroid of the NNLS linear magnitude, (B, frames) in kHz."""
        mag = self.ctx.linear_magnitude(mel)
        freqs = torch.linspace(0, self.ctx.cfg.sample_rate / 2000, mag.shape[1], device=mag.device)
        return (mag * freqs[:, None]).sum(1) / mag.sum(1).clamp(min=1e-8)

    def loss(self, features: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return (features - target.to(features)).pow(2).mean(-1)

    def check_target(self, target, batch_size=None) -> torch.Tensor:
        return batch_target(as_float_target(target, self.name), (self.n_frames,), batch_size, self.name)

    def targets(self, n, seed, references=None, source="constant", clips=None, khz: float = 2.0) -> TargetSet:
        t = torch.full((n, self.n_frames), float(khz))
        return TargetSet(t, list(t.numpy()), [f"centroid {khz:g} kHz"] * n)

    def grade(self, wave, sample_rate, metric_target) -> float:
        """librosa's centroid of the decoded audio: an instrument the optimization never saw."""
        hop = self.ctx.cfg.hop_length
        centroid = librosa.feature.spectral_centroid(y=np.asarray(wave, np.float32), sr=sample_rate, hop_length=hop)[0]
        n = min(len(centroid), len(metric_target))
        return float(np.mean((centroid[:n] / 1000 - np.asarray(metric_target)[:n]) ** 2))

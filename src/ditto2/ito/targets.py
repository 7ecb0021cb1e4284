"""Control targets for a batch of ITO items, from held-out clips, synth labels, curves or forms.

Each builder returns a ``TargetSet``: the target the control optimizes against, the target the
reference metric grades against (same values, in numpy), the reference mels (painting, or the clip a
target came from) and a short description per item.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Optional

import numpy as np
import torch

from ditto2.controls import PaintingTarget, form_ssm, intensity_curve
from ditto2.controls.base import Control, ControlTargetError

INTENSITY_CURVES = [(k, d, delta) for delta in (6, 9, 12, 15) for k in ("linear", "tanh", "cosine")
                    for d in ("rising", "falling")]
FORMS = ("ABA", "ABBA", "AAB", "ABAB")


@dataclass
class TargetSet:
    target: object  # what control.check_target accepts
    metric_target: list  # per item, numpy, for the reference metric
    descriptions: list[str]
    references: Optional[torch.Tensor] = None  # (B, 1, n_mels, frames) normalized, when used
    extra: dict = field(default_factory=dict)


def intensity_targets(control: Control, n: int, seed: int, references: Optional[torch.Tensor] = None,
                      base_db: float = -25.0, source: str = "curve") -> TargetSet:
    """Hand-built DITTO curves (linear/tanh/cosine, rising/falling by 6-15 dB); each starts at the
    level of a held-out clip when references are given. ``source="reference"``: the clip's own curve."""
    frames = control.ctx.cfg.frames
    if source == "reference":
        if references is None:
            raise ValueError("intensity targets from references need held-out clips (shards)")
        t = control.target_from_reference(references)
        return TargetSet(t, list(t.numpy()), [f"reference clip {i}" for i in range(n)], references)
    levels = control.features(references).mean(-1).tolist() if references is not None else [base_db] * n
    rng = np.random.default_rng(seed)
    picks = [INTENSITY_CURVES[i] for i in rng.permutation(len(INTENSITY_CURVES))[:n]]
    picks += [INTENSITY_CURVES[i % len(INTENSITY_CURVES)] for i in range(n - len(picks))]
    curves = []
    for (kind, direction, delta), level in zip(picks, levels):
        start = level - delta / 2 if direction == "rising" else level + delta / 2  # centred on the clip's level
        curves.append(intensity_curve(kind, direction, float(delta), float(start), frames))
    t = torch.stack(curves)
    return TargetSet(t, list(t.numpy()), [f"{k} {d} {delta} dB" for k, d, delta in picks], references)


def melody_targets(control: Control, n: int, seed: int, references: Optional[torch.Tensor] = None,
                   source: str = "synth") -> TargetSet:
    """Exact melodies of procedural synth tracks (default), or a held-out clip's chroma argmax."""
    cfg = control.ctx.cfg
    if source == "reference":
        if references is None:
            raise ValueError("melody targets from references need held-out clips (shards)")
        t = control.target_from_reference(references)
        return TargetSet(t, list(t.numpy()), [f"reference clip {i} chroma" for i in range(n)], references)
    from ditto2.data.sources.synth import render_synth_track

    rows, desc = [], []
    for i in itertools.count():
        if len(rows) == n:
            break
        track = render_synth_track(seed * 1000 + i, sr=cfg.sample_rate, duration_s=cfg.clip_seconds + 1.0)
        labels = track.frame_labels(cfg.hop_length, cfg.frames)["melody"]
        if (labels >= 0).mean() < 0.3:
            continue  # mostly rests: a weak target
        rows.append(torch.as_tensor(labels.astype(np.int64)))
        desc.append(f"synth melody seed {seed * 1000 + i} ({track.spec.key_name})")
    t = torch.stack(rows)
    return TargetSet(t, list(t.numpy()), desc, references)


def structure_targets(control: Control, n: int, seed: int, references: Optional[torch.Tensor] = None,
                      source: str = "form", forms=FORMS) -> TargetSet:
    if source == "reference":
        if references is None:
            raise ValueError("structure targets from references need held-out clips (shards)")
        t = control.target_from_reference(references)
        return TargetSet(t, list(t.numpy()), [f"reference clip {i} SSM" for i in range(n)], references)
    chosen = [forms[(seed + i) % len(forms)] for i in range(n)]
    t = torch.stack([form_ssm(f, control.ssm_size) for f in chosen])
    return TargetSet(t, list(t.numpy()), [f"form {f}" for f in chosen], references, {"forms": chosen})


def painting_targets(control: Control, n: int, seed: int, references: Optional[torch.Tensor] = None,
                     source: str = "reference") -> TargetSet:
    if references is None:
        raise ControlTargetError(f"{control.name} needs reference clips (held-out shards)")
    t: PaintingTarget = control.build_target(references)
    return TargetSet(t, [(v.numpy(), t.mask.numpy()) for v in t.values],
                     [f"{control.name} of held-out clip {i}" for i in range(n)], references)


def text_targets(control: Control, n: int, seed: int, references: Optional[torch.Tensor] = None,
                 source: str = "reference", captions: Optional[list] = None, clips: Optional[list] = None) -> TargetSet:
    """Captions to move towards: given ones (``captions``), or the held-out clips' own captions."""
    if source == "caption" or captions:
        texts = list(captions) if captions else []
    else:
        if not clips:
            raise ValueError("text targets from references need held-out clips (shards)")
        texts = [c["caption"] for c in clips[:n]]
    texts = (texts * n)[:n] if texts else texts
    t = control.check_target(texts, n)
    return TargetSet(t, texts, [f"caption: {x}" for x in texts], references)


BUILDERS = {"intensity": intensity_targets, "melody": melody_targets, "structure": structure_targets,
            "outpainting": painting_targets, "inpainting": painting_targets, "text": text_targets}
NEEDS_REFERENCES = {"outpainting", "inpainting"}

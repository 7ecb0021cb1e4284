"""Controls: differentiable feature extractors f(mel) and per-item losses L(f, y) for ITO, each with
its target sources (``targets``), its independent grader (``grade``, an instrument from
``ditto2.metrics.control``, never the control's own loss) and its plot.

A control sees the model's NORMALIZED mel (B, 1, n_mels, frames) and works in one of two domains:
"mel" reads features off the mel itself (through the NNLS linear magnitude where it needs a
spectrum), "audio" goes through the differentiable Griffin-Lim waveform first, as DITTO does. Mel
is 7x (NNLS-based controls) to 1000x (structure) cheaper on CPU; audio grades what is heard. Targets are checked once, before any
optimization, by ``check_target``, which returns the canonical (B or 1, ...) tensor ``loss`` expects.
"""
from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence

import torch
from torch import nn

from ditto2.audio.mel import LogMel, MelConfig, MelNormalizer
from ditto2.audio.vocoder import GriffinLimVocoder

DOMAINS = ("mel", "audio")


class ControlTargetError(ValueError):
    """A target that cannot be optimized against (shape, NaN/inf, out-of-range values)."""


@dataclass(eq=False)
class MelContext:
    """What every control needs to turn a model mel into spectra / audio; shared by composed controls.

    The vocoder is built lazily (per device), and inside ``shared()`` the NNLS magnitude and the
    vocoded waveform of a given mel tensor are computed once for all controls that ask.
    """

    cfg: MelConfig
    normalizer: MelNormalizer
    gl_iters: int = 32
    nnls_iters: int = 30
    _vocoders: dict = field(default_factory=dict, repr=False)
    _cache: Optional[dict] = field(default=None, repr=False)

    @property
    def frames_per_second(self) -> float:
        return self.cfg.sample_rate / self.cfg.hop_length

    def vocoder(self, device=None) -> GriffinLimVocoder:
        device = torch.device(device or "cpu")
        if device not in self._vocoders:
            voc = GriffinLimVocoder(self.cfg, self.normalizer, n_iter=self.gl_iters, nnls_iter=self.nnls_iters)
            self._vocoders[device] = voc.to(device)
        return self._vocoders[device]

    def logmel_module(self, device=None) -> LogMel:
        return self.vocoder(device).logmel

    def logmel(self, mel: torch.Tensor) -> torch.Tensor:
        """Normalized (B, 1, M, T) or (B, M, T) -> natural-log magnitude mel (B, M, T)."""
        if mel.dim() == 4:
            mel = mel.squeeze(1)
        if mel.dim() != 3 or mel.shape[1] != self.cfg.n_mels:
            raise ValueError(f"expected mels (B, [1,] {self.cfg.n_mels}, frames), got {tuple(mel.shape)}")
        return self.normalizer.denormalize(mel)

    def linear_magnitude(self, mel: torch.Tensor) -> torch.Tensor:
        """(B, n_fft//2+1, T) STFT magnitude estimated from the mel by NNLS."""
        return self._memo("mag", mel, lambda: self.vocoder(mel.device).linear_magnitude(self.logmel(mel)))

    def waveform(self, mel: torch.Tensor) -> torch.Tensor:
        """(B, T·hop) differentiable Griffin-Lim audio."""
        return self._memo("wave", mel, lambda: self.vocoder(mel.device)(mel))

    def stft_magnitude(self, wave: torch.Tensor) -> torch.Tensor:
        """(B, n_fft//2+1, T) magnitude of the same centered STFT the mels come from."""
        # a centered STFT has one frame more than the mel grid (MelConfig.clip_samples)
        return self.logmel_module(wave.device).magnitude(wave)[..., : wave.shape[-1] // self.cfg.hop_length]

    @contextlib.contextmanager
    def shared(self):
        outer, self._cache = self._cache, (self._cache if self._cache is not None else {})
        try:
            yield self
        finally:
            self._cache = outer

    def _memo(self, kind: str, mel: torch.Tensor, compute):
        if self._cache is None:
            return compute()
        key = (kind, id(mel), mel._version)
        hit = self._cache.get(key)
        if hit is not None and hit[0] is mel:  # holding the tensor keeps its id from being reused
            return hit[1]
        out = compute()
        self._cache[key] = (mel, out)
        return out


def as_float_target(target, name: str) -> torch.Tensor:
    t = torch.as_tensor(target)
    if t.is_complex() or t.dtype == torch.bool:
        raise ControlTargetError(f"{name} target must be real numbers, got dtype {t.dtype}")
    t = t.float()
    if not torch.isfinite(t).all():
        raise ControlTargetError(f"{name} target has {int((~torch.isfinite(t)).sum())} NaN/inf values")
    return t


def batch_target(t: torch.Tensor, item_shape: tuple, batch_size: Optional[int], name: str) -> torch.Tensor:
    """Accept an unbatched item (broadcast over the batch) or one item per batch row."""
    if tuple(t.shape) == tuple(item_shape):
        return t.unsqueeze(0)
    if t.dim() == len(item_shape) + 1 and tuple(t.shape[1:]) == tuple(item_shape):
        if batch_size is not None and t.shape[0] not in (1, batch_size):
            raise ControlTargetError(f"{name} target has batch {t.shape[0]}, the batch has {batch_size} items")
        return t
    raise ControlTargetError(
        f"{name} target must have shape {tuple(item_shape)} or (B, {', '.join(map(str, item_shape))}), "
        f"got {tuple(t.shape)}")


@dataclass
class TargetSet:
    """The targets of a batch of ITO items."""

    target: object  # what control.check_target accepts
    metric_target: list  # per item, numpy, for the control's grader
    descriptions: list[str]
    references: Optional[torch.Tensor] = None  # (B, 1, n_mels, frames) normalized, when used
    extra: dict = field(default_factory=dict)


class Control(nn.Module):
    """Base class. A control is one file in ``ditto2/controls`` plus one line in ``CONTROLS``: it sets
    ``name``, ``domains``, ``metric`` (+ ``higher_is_better``) and implements features / loss / check_target
    (what ITO differentiates), ``targets`` (where targets come from) and ``grade`` (how a decoded waveform
    is scored, with an extractor that is not ``features``)."""

    name = "control"
    domains: tuple = DOMAINS
    metric = "value"  # the key of ``grade``'s value, e.g. "mse_db2"
    higher_is_better = False
    writes_reference_audio = False  # the report writes each item's reference clip as audio too

    @classmethod
    def uses_references(cls, source: Optional[str] = None) -> bool:
        """Whether targets from ``source`` (None = the default) read held-out reference clips."""
        return source == "reference"

    @classmethod
    def run_options(cls, run) -> dict:
        """Keyword arguments this control takes from the ITO run's config ``run`` (e.g. the text control's judging
        CLAP); the control's own kwargs in the config win over them."""
        return {}

    def __init__(self, ctx: MelContext, domain: str = "mel"):
        super().__init__()
        if domain not in self.domains:
            raise ValueError(f"{type(self).__name__} supports domains {self.domains}, got {domain!r}")
        self.ctx, self.domain = ctx, domain

    @property
    def n_frames(self) -> int:
        return self.ctx.cfg.frames

    def features(self, mel: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def loss(self, features: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Per-item loss (B,); ``target`` as returned by ``check_target``."""
        raise NotImplementedError

    def check_target(self, target, batch_size: Optional[int] = None) -> torch.Tensor:
        raise NotImplementedError

    def target_from_reference(self, mel: torch.Tensor) -> torch.Tensor:
        """The target that a reference clip (normalized mel) satisfies: by default its features."""
        with torch.no_grad():
            return self.features(mel).detach()

    def forward(self, mel: torch.Tensor, target) -> torch.Tensor:
        return self.loss(self.features(mel), target)

    # ------------------------------------------------------------------ targets, grading, plots
    def targets(self, n: int, seed: int, references: Optional[torch.Tensor] = None, source: Optional[str] = None,
                clips: Optional[list] = None, **kwargs) -> TargetSet:
        """Targets for ``n`` items; ``references`` are held-out clips (normalized mels), ``clips`` their rows."""
        raise NotImplementedError

    def user_targets(self, n: int, path: Optional[str] = None, values=None, offset: float = 0.0,
                     resample: bool = False, **options) -> TargetSet:
        """Targets from a user's own material, the same for every item: a file, whose type picks the source
        (audio: ``target_from_audio`` of the model window from ``offset`` seconds; MIDI: ``target_from_midi``;
        .npy/.csv/.txt: per-frame values), or inline per-frame ``values``. Read with the model's mel config
        and statistics (``ditto2.controls.sources``)."""
        from ditto2.controls.sources import file_kind, read_audio_window

        if (path is None) == (values is None):
            raise ControlTargetError(f"{self.name} target: give a file (path) or per-frame values, one of the two")
        kind = "values" if values is not None else file_kind(path)
        if options and kind != "midi":
            raise ControlTargetError(f"{self.name} target: options {sorted(options)} apply to MIDI files only")
        label, references = (Path(path).name if path else f"{self.name} values"), None
        if kind == "values":
            item = self.target_from_values(values if values is not None else path, resample)
        elif kind == "midi":
            item, label = self.target_from_midi(path, offset, **options), f"{label} from {offset:g} s"
        else:
            wave, mel = read_audio_window(path, self.ctx, offset)
            item, label = self.target_from_audio(wave, mel), f"{label} from {offset:g} s"
            references = mel.expand(n, -1, -1, -1)
        t = item.unsqueeze(0).expand(n, *item.shape).clone()
        return TargetSet(t, list(t.numpy()), [label] * n, references, {"source": kind, "path": path, "offset": offset})

    def target_from_values(self, values, resample: bool = False) -> torch.Tensor:
        """One item's target from per-frame values (a list or a .npy/.csv/.txt path)."""
        raise ControlTargetError(f"{self.name} takes no per-frame values; use an audio file")

    def target_from_midi(self, path: str, offset: float = 0.0, **options) -> torch.Tensor:
        raise ControlTargetError(f"{self.name} takes no MIDI file; use an audio file")

    def target_from_audio(self, wave, mel: torch.Tensor) -> torch.Tensor:
        """One item's target from a window of the user's audio (``wave`` and its normalized mel (1, 1, M, T)):
        by default what that window satisfies (``target_from_reference``)."""
        return self.target_from_reference(mel)[0]

    def reference_targets(self, n: int, references: Optional[torch.Tensor], what: str = "") -> TargetSet:
        """Each item's target = what its held-out reference clip satisfies."""
        if references is None:
            raise ValueError(f"{self.name} targets from references need held-out clips (shards)")
        t = self.target_from_reference(references)
        return TargetSet(t, list(t.numpy()), [f"reference clip {i}{what}" for i in range(n)], references)

    def grade(self, wave, sample_rate: int, metric_target) -> float:
        """The item's score (``metric``) on its decoded mono waveform (numpy)."""
        raise NotImplementedError

    def extra_grades(self, wave, sample_rate: int, metric_target) -> dict:
        """More independent grades of the item, ``{name: value}`` (reported as ``<control>_<name>``)."""
        return {}

    def achieved(self, wave, sample_rate: int):
        """What the grader measured, for the plot (None: the plot shows the mel)."""
        return None

    def plot(self, target, achieved, mel, reference, title: str):
        """Target vs achieved of one item; by default the generated mel."""
        from ditto2.viz import mel_figure

        return mel_figure(mel, title)


class CompositeControl(nn.Module):
    """Σ_i w_i · L_i(f_i(mel), y_i), per item. Targets are checked when the composite is built."""

    def __init__(self, terms: Sequence[tuple], batch_size: Optional[int] = None):
        super().__init__()
        if not terms:
            raise ValueError("CompositeControl needs at least one (control, target, weight) term")
        controls, self.targets, self.weights = [], [], []
        for control, target, weight in terms:
            if not (isinstance(weight, (int, float)) and math.isfinite(weight) and weight >= 0):
                raise ValueError(f"weight of {control.name} must be a finite number >= 0, got {weight!r}")
            controls.append(control)
            self.targets.append(control.check_target(target, batch_size))
            self.weights.append(float(weight))
        self.controls = nn.ModuleList(controls)

    def check_target(self, target=None, batch_size: Optional[int] = None) -> None:
        for control, t in zip(self.controls, self.targets):
            control.check_target(t, batch_size)

    def losses(self, mel: torch.Tensor) -> dict:
        """Unweighted per-item loss of each term, keyed by control name (for logging)."""
        ctx_scopes = {id(c.ctx): c.ctx for c in self.controls}
        with contextlib.ExitStack() as stack:
            for ctx in ctx_scopes.values():
                stack.enter_context(ctx.shared())  # one NNLS / vocoder pass for all terms
            out = {}
            for i, (c, t) in enumerate(zip(self.controls, self.targets)):
                out[c.name if c.name not in out else f"{c.name}_{i}"] = c.loss(c.features(mel), t)
        return out

    def forward(self, mel: torch.Tensor, target=None) -> torch.Tensor:
        return sum(w * loss for w, loss in zip(self.weights, self.losses(mel).values()))

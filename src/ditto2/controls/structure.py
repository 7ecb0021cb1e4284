"""Structure control: cosine self-similarity of time-normalized MFCCs (c0 dropped) vs a target; MSE."""
from __future__ import annotations

import math
from typing import Optional

import torch
import torch.nn.functional as F

from ditto2.controls.base import Control, ControlTargetError, MelContext, TargetSet, as_float_target, batch_target
from ditto2.controls.shapes import form_ssm
from ditto2.metrics import control as grader

FORMS = ("ABA", "ABBA", "AAB", "ABAB")

TOP_DB = 80.0  # librosa.power_to_db's default dynamic range: silent bins do not dominate the cepstrum
EPS = 1e-5


def dct_ortho(n_out: int, n_in: int) -> torch.Tensor:
    """Rows of the orthonormal DCT-II (scipy.fft.dct(type=2, norm="ortho"), what librosa's mfcc uses)."""
    k = torch.arange(n_out, dtype=torch.float64)[:, None]
    m = torch.arange(n_in, dtype=torch.float64)[None]
    basis = torch.cos(math.pi * k * (2 * m + 1) / (2 * n_in)) * math.sqrt(2.0 / n_in)
    basis[0] /= math.sqrt(2.0)
    return basis.float()


class StructureControl(Control):
    """features (B, n, n) with n = frames // pool.

    MFCC = DCT-II (ortho) of the dB mel (20·log10 of the magnitude mel, floored at max − 80 dB),
    c0 (loudness) dropped, c1..c{n_mfcc−1} kept. Frames are averaged in groups of ``pool`` (default 4:
    ≈93 ms cells on both presets' time grids, 16x fewer matrix entries, and form-level structure
    lives at the seconds scale anyway). Each coefficient is standardized over time, each frame vector
    scaled to unit length, and the SSM is their cosine similarity in [-1, 1], so it is on the same
    scale as the 1 / −1 block targets of ``form_ssm``. (T·Tᵀ/n_coeffs without the unit-length step
    would weight sections by their length: in ABA, A–A ≈ 0.5 but B–B ≈ 2.)
    """

    name = "structure"
    metric = "mse"

    def __init__(self, ctx: MelContext, domain: str = "mel", n_mfcc: int = 20, pool: int = 4):
        super().__init__(ctx, domain)
        if not 2 <= n_mfcc <= ctx.cfg.n_mels or pool < 1 or ctx.cfg.frames // pool < 2:
            raise ValueError(f"need 2 <= n_mfcc <= n_mels and frames // pool >= 2 (n_mfcc={n_mfcc}, pool={pool})")
        self.pool = pool
        self.register_buffer("dct", dct_ortho(n_mfcc, ctx.cfg.n_mels)[1:], persistent=False)

    @property
    def ssm_size(self) -> int:
        return self.n_frames // self.pool

    def mfcc(self, mel: torch.Tensor) -> torch.Tensor:
        """(B, n_mfcc − 1, T // pool) pooled MFCCs without c0."""
        if self.domain == "mel":
            logmel = self.ctx.logmel(mel)
        else:
            wave = self.ctx.waveform(mel)
            logmel = self.ctx.logmel_module(wave.device)(wave)[..., : mel.shape[-1]]
        db = logmel * (20.0 / math.log(10.0))
        db = torch.maximum(db, db.amax(dim=(-2, -1), keepdim=True) - TOP_DB)
        cep = torch.matmul(self.dct.to(db), db)
        return F.avg_pool1d(cep, self.pool) if self.pool > 1 else cep

    def features(self, mel: torch.Tensor) -> torch.Tensor:
        cep = self.mfcc(mel)
        cep = (cep - cep.mean(-1, keepdim=True)) / (cep.std(-1, keepdim=True) + EPS)
        frames = F.normalize(cep.transpose(1, 2), dim=-1, eps=EPS)
        return frames @ frames.transpose(1, 2)

    def loss(self, features: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return (features - target.to(features)).pow(2).mean(dim=(-2, -1))

    def check_target(self, target, batch_size: Optional[int] = None) -> torch.Tensor:
        n = self.ssm_size
        t = batch_target(as_float_target(target, self.name), (n, n), batch_size, self.name)
        if t.abs().max() > 1.0 + 1e-4:
            raise ControlTargetError(f"structure target is a cosine similarity matrix, values must lie in "
                                     f"[-1, 1]; got [{float(t.min()):.3f}, {float(t.max()):.3f}]")
        return t

    def targets(self, n, seed, references=None, source="form", clips=None, forms=FORMS, form=None, path=None,
                offset: float = 0.0) -> TargetSet:
        """Block SSMs of form strings (``form``: one for every item, or ``forms`` in turn from ``seed``), or a
        held-out clip's own SSM (``source="reference"``), or the SSM of your own audio (``path``, from ``offset``)."""
        if path is not None:
            return self.user_targets(n, path, offset=offset)
        if form is not None:
            forms = [form]
        if source == "reference":
            return self.reference_targets(n, references, " SSM")
        if source != "form":
            raise ValueError(f"structure target source must be 'form' or 'reference', got {source!r}")
        chosen = [forms[(seed + i) % len(forms)] for i in range(n)]
        t = torch.stack([form_ssm(f, self.ssm_size) for f in chosen])
        return TargetSet(t, list(t.numpy()), [f"form {f}" for f in chosen], references, {"forms": chosen})

    def grade(self, wave, sample_rate, metric_target) -> float:
        return grader.structure_mse(wave, sample_rate, metric_target, self.ctx.cfg.hop_length, pool=self.pool)

    def achieved(self, wave, sample_rate):
        return grader.mfcc_ssm(wave, sample_rate, self.ctx.cfg.hop_length, self.ssm_size, pool=self.pool)

    def plot(self, target, achieved, mel, reference, title):
        from ditto2.viz import finish, plt

        fig, axes = plt.subplots(1, 2, figsize=(6, 3))
        for ax, m, t in zip(axes, (target, achieved), ("target SSM", "achieved SSM (librosa MFCC)")):
            ax.imshow(m, cmap="viridis", vmin=-1, vmax=1, origin="lower")
            ax.set_title(t, fontsize=8)
            ax.axis("off")
        return finish(fig, title)

"""CM and CTM distillation of a frozen guided teacher (paper eqs. 1 and 4), thin Lightning wiring.

Both draw a grid index n of the teacher's T-point Karras grid, noise the data to t = σ_n, let the
teacher take one guided step to σ_{n+1} with w ~ U[w_min, w_max], and pull the student's output at
x_t towards the stop-gradient output of the target network φ⁻ (an EMA of the student) at the
teacher's point. The student starts as the teacher (zero-initialized w / s embeddings), or as an
earlier student (``init_student``) to continue a distillation with new settings.

CTM with ``teacher_steps`` k > 1 uses CTM's soft-consistency target: the teacher solves j ≤ k grid
steps (j drawn per batch, never past s), and φ⁻ jumps from there to s. k = 1 is the paper's
local-consistency form (eq. 4). ``loss_space="data"`` measures the distance where CTM measures it:
both x_s are carried on to σ_min by the frozen target network (gradient through its input only), so
an error counts by what it does to the decoded output, not by its size at noise level s. ``anchor_weight``
λ > 0 (CTM) adds λ·‖g_θ(x_t, t, t) − sg[D_w(x_t, t)]‖²: the student's own denoiser (s = t) held to the
teacher's guided denoiser at the same point, CTM's DSM term with the guided teacher in place of the data, so
the short jumps and intermediate landings stay on the teacher's ODE while the long ones are distilled.
``trajectory_weight`` λ_τ > 0 (CTM) adds λ_τ·‖G_θ(x_{σ_n}, σ_n, σ_m) − x_{σ_m}‖² on the teacher's own guided ODE
trajectories (``diffusion.trajectories.TrajectoryBank``: solved from noise over the whole grid, kept in a ring buffer,
``trajectory_refresh`` new ones per step): every jump, the long ones included, against the exact point it should
reach rather than a target bootstrapped through a chain of shorter jumps. ``detail_weight`` λ_d adds to each trajectory
pair the distance of the local detail amplitudes (``local_detail``: RMS of the 3×3 high-pass over 5×5 windows), scaled
by σ_data² / (σ_m² + σ_data²): an L2 student regresses to the mean, so its long jumps come out smooth (the 1-step
output has a third of the teacher's detail energy) and its landings rough, and the controls' level follows the detail
energy (results/distill-diagnosis.md) while the L2 term barely sees it. ``trajectory_decode_share`` spends that share
of the trajectory pairs on the jumps the 1-, 2- and 4-step decodes take (σ_max → σ_min among them), which a uniform
draw of (n, m) visits once in (N−1)² pairs. Every validation
also logs the students' step-count bias on the controls' own features (``bias/*``): k-step outputs vs
the teacher's full-grid output of the same noises (mean level in dB, chroma argmax agreement, SSM MSE).
"""
from __future__ import annotations

import copy
from typing import Sequence

import pytorch_lightning as pl
import torch

from ditto2.audio.mel import MelConfig, MelNormalizer
from ditto2.controls import MelContext
from ditto2.controls.bias import FeatureBias, local_detail
from ditto2.data.tags import TagVocab
from ditto2.diffusion.consistency import CMStudent, CTMStudent, decode_pairs, decode_sigmas, teacher_step
from ditto2.diffusion.edm import ConsistencyPrecond, EDMPrecond, drop_tags, karras_sigmas
from ditto2.diffusion.guidance import guided_denoise
from ditto2.diffusion.trajectories import TrajectoryBank
from ditto2.lit.optim import with_warmup
from ditto2.lit.sample_logging import SampleLogMixin
from ditto2.models.bundle import load_bundle, unet_config_from_dict, unet_config_to_dict
from ditto2.models.generator import Generator
from ditto2.nn.unet import UNet


class DistillModule(SampleLogMixin, pl.LightningModule):
    """Shared wiring; subclasses define the student, its loss pair and its sampler."""

    kind = ""

    def __init__(
        self,
        teacher: str,
        data_info: dict,
        grid_steps: int = 20,
        w_min: float = 1.0,
        w_max: float = 4.0,
        teacher_solver: str = "euler",
        target_decay: float = 0.95,
        tag_dropout: float = 0.1,
        distance: str = "l2",
        lr: float = 1e-4,
        warmup_steps: int = 100,
        sample_w: float = 2.0,
        sample_steps: Sequence[int] = (1, 2, 4),
        sample_gamma: float = 0.2,
        n_log_samples: int = 4,
        sample_seed: int = 1234,
        init_student: str | None = None,
        teacher_steps: int = 1,
        loss_space: str = "x_s",
        n_bias_samples: int = 16,
        anchor_weight: float = 0.0,
        trajectory_weight: float = 0.0,
        trajectory_bank: int = 256,
        trajectory_batch: int = 16,
        trajectory_refresh: int = 4,
        detail_weight: float = 0.0,
        trajectory_decode_share: float = 0.0,
        trajectory_decode_steps: Sequence[int] = (1, 2, 4),
    ):
        super().__init__()
        self.save_hyperparameters()
        if distance not in ("l2", "pseudo_huber"):
            raise ValueError(f"distance must be 'l2' or 'pseudo_huber', got {distance!r}")
        if loss_space not in ("x_s", "data") or (loss_space == "data" and self.kind != "ctm"):
            raise ValueError(f"loss_space must be 'x_s' (or 'data' for CTM), got {loss_space!r}")
        if anchor_weight < 0 or (anchor_weight > 0 and self.kind != "ctm"):
            raise ValueError(f"anchor_weight must be >= 0 (and > 0 only for CTM), got {anchor_weight}")
        if trajectory_weight < 0 or (trajectory_weight > 0 and self.kind != "ctm"):
            raise ValueError(f"trajectory_weight must be >= 0 (and > 0 only for CTM), got {trajectory_weight}")
        if trajectory_weight > 0 and min(trajectory_bank, trajectory_batch, trajectory_refresh) < 1:
            raise ValueError("trajectory_bank, trajectory_batch and trajectory_refresh must be >= 1")
        if detail_weight < 0 or (detail_weight > 0 and trajectory_weight <= 0):
            raise ValueError(f"detail_weight must be >= 0 (and > 0 only with trajectory_weight > 0), got {detail_weight}")
        if not 0 <= trajectory_decode_share <= 1 or (trajectory_decode_share > 0 and trajectory_weight <= 0):
            raise ValueError("trajectory_decode_share must be in [0, 1] (and > 0 only with trajectory_weight > 0), "
                             f"got {trajectory_decode_share}")
        if teacher_steps < 1 or (teacher_steps > 1 and self.kind != "ctm"):
            raise ValueError(f"teacher_steps must be 1 (or > 1 for CTM's soft consistency), got {teacher_steps}")
        teacher_model, meta = load_bundle(teacher)
        self.mel_config = MelConfig.from_dict(data_info["mel"])
        MelConfig.from_dict(meta["data"]["mel"]).check_matches(self.mel_config, what="the shards")
        if meta["data"]["vocab"] != data_info["vocab"]:
            raise ValueError("the teacher was trained with another tag vocabulary than these shards")
        self.normalizer = MelNormalizer.from_dict(data_info["stats"])
        self.vocab = TagVocab.from_dict(data_info["vocab"])
        self.teacher_meta = meta
        self.teacher = teacher_model.requires_grad_(False).eval()
        unet_cfg = unet_config_from_dict({**meta["unet"], "use_w_embedding": True,
                                          "use_s_embedding": self.kind == "ctm"})
        net = UNet(unet_cfg)
        new = net.load_teacher_state(self.teacher.net.state_dict())
        assert all(k.startswith(("w_embed", "s_embed")) for k in new), new
        self.unet_config = unet_cfg
        e = meta["edm"]
        precond_cls = ConsistencyPrecond if self.kind == "cm" else EDMPrecond
        wrapper = CMStudent if self.kind == "cm" else CTMStudent
        self.student = wrapper(precond_cls(net, sigma_data=e["sigma_data"], sigma_min=e["sigma_min"], sigma_max=e["sigma_max"]))
        if init_student:
            self._load_student(init_student)
        self.target = copy.deepcopy(self.student).requires_grad_(False)
        self.register_buffer("grid", karras_sigmas(grid_steps, e["sigma_min"], e["sigma_max"]), persistent=False)
        self.bank = None  # the teacher's trajectories (trajectory_weight > 0), solved on the first training steps
        self.register_buffer("decode_jumps", decode_pairs(trajectory_decode_steps, len(self.grid)), persistent=False)

    def _load_student(self, path: str) -> None:
        """Start from an exported student of the same kind, teacher data and architecture."""
        student, meta = load_bundle(path)
        if meta.get("kind") != self.kind:
            raise ValueError(f"init_student {path} is a {meta.get('kind')!r} model, this run distills {self.kind!r}")
        if meta["data"]["stats"] != self.teacher_meta["data"]["stats"] or unet_config_from_dict(meta["unet"]) != self.unet_config:
            raise ValueError(f"init_student {path} was distilled from another teacher or architecture")
        self.student.load_state_dict(student.state_dict())

    # ------------------------------------------------------------------ export
    def bundle_meta(self) -> dict:
        h = self.hparams
        return {"kind": self.kind, "unet": unet_config_to_dict(self.unet_config), "data": h.data_info,
                "edm": self.teacher_meta["edm"], "grid_steps": h.grid_steps, "w_range": [h.w_min, h.w_max],
                "teacher": h.teacher, "sampling": {"w": h.sample_w, "gamma": h.sample_gamma},
                "unconditional": self.unconditional}

    def exported_model(self):
        return self.student

    @property
    def unconditional(self) -> bool:
        """A teacher trained without tags gets (and its students learn) null tags only."""
        return bool(self.teacher_meta.get("unconditional", False))

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["ditto2_module"] = f"{type(self).__module__}.{type(self).__name__}"

    def on_train_start(self) -> None:
        self.teacher.eval()  # Lightning puts every submodule in train mode; the teacher stays frozen

    # ------------------------------------------------------------------ training
    def _draw(self, batch, generator=None):
        x0 = batch["mel"]
        b, dev = x0.shape[0], x0.device
        n = torch.randint(0, len(self.grid) - 1, (b,), device=dev, generator=generator)
        w = self.hparams.w_min + (self.hparams.w_max - self.hparams.w_min) * torch.rand(b, device=dev, generator=generator)
        tags = drop_tags(self.condition_tags(batch["tags"]), self.hparams.tag_dropout, generator=generator)
        eps = torch.randn(x0.shape, device=dev, generator=generator)
        return x0, n, w, tags, eps

    def distill_loss(self, batch, generator=None) -> torch.Tensor:
        x0, n, w, tags, eps = self._draw(batch, generator)
        x_t = x0 + self.grid[n].reshape(-1, 1, 1, 1) * eps
        m = self.draw_s_index(n, generator)
        j = self.teacher_span(n, m, generator)
        anchored = self.hparams.anchor_weight > 0
        with torch.no_grad():  # the teacher's guided denoiser at x_t: the anchor's target and its first ODE step's
            denoised = guided_denoise(self.teacher, x_t, self.grid[n], tags, w) if anchored else None
        x_hat = self.teacher_solve(x_t, n, j, tags, w, denoised)
        pred, target = self.pair(x_t, x_hat, n, n + j, m, tags, w)
        loss = self.distance(pred, target.detach())
        if anchored:
            self._anchor = self.anchor_loss(x_t, self.grid[n], tags, w, denoised)
            loss = loss + self.hparams.anchor_weight * self._anchor
        return loss

    def anchor_loss(self, x_t, t, tags, w, denoised) -> torch.Tensor:
        """Per sample ‖g_θ(x_t, t, t) − sg[D_w(x_t, t)]‖² (mean over elements): the student's denoiser vs the
        teacher's guided ``denoised`` output at the same point."""
        return (self.student.denoiser(x_t, t, t, tags, w) - denoised).float().square().flatten(1).mean(1)

    def draw_s_index(self, n, generator=None):
        """Grid index of s (CTM); CM always jumps to σ_min, the last grid point."""
        return torch.full_like(n, len(self.grid) - 1)

    def teacher_span(self, n, m, generator=None):
        """How many grid steps the teacher solves from σ_n: 1 (local consistency), or with
        ``teacher_steps`` = k > 1 one j ~ U{1..k} per batch, clamped so the teacher never passes s."""
        k = self.hparams.teacher_steps
        if k == 1:
            return torch.ones_like(n)
        j = int(torch.randint(1, k + 1, (1,), generator=generator, device=n.device))
        return torch.minimum(torch.full_like(n, j), (m - n).clamp(min=1))

    @torch.no_grad()
    def teacher_solve(self, x, n, j, tags, w, denoised=None):
        """Guided teacher steps σ_n → σ_{n+j} along the grid, j per sample (samples that are done wait);
        ``denoised``: the teacher's guided denoiser at (x, σ_n), if already computed (the first step reuses it)."""
        for i in range(int(j.max())):
            moving = i < j
            idx = (n + i).clamp(max=len(self.grid) - 2)
            x_next = teacher_step(self.teacher, x, self.grid[idx], self.grid[idx + 1], tags, w, self.hparams.teacher_solver,
                                  denoised=denoised if i == 0 else None)
            x = torch.where(moving.reshape(-1, 1, 1, 1), x_next, x)
        return x

    def distance(self, a, b) -> torch.Tensor:
        sq = (a - b).float().square().flatten(1)
        if self.hparams.distance == "l2":
            return sq.mean(1)
        c = 0.00054 * sq.shape[1] ** 0.5  # iCT's pseudo-Huber constant, scaled by dimension
        return ((sq.sum(1) + c**2).sqrt() - c) / sq.shape[1] ** 0.5

    def refresh_trajectories(self, batch, generator=None) -> None:
        """Solve new teacher trajectories from the batch's tags (with CFG dropout) and fresh w and noise: the whole
        batch while the bank fills, then ``trajectory_refresh`` per step over the oldest."""
        h = self.hparams
        if self.bank is None:
            self.bank = TrajectoryBank(h.trajectory_bank, self.grid, h.teacher_solver)
        room = h.trajectory_bank - self.bank.count
        b = min(batch["mel"].shape[0], h.trajectory_bank, max(room, h.trajectory_refresh))
        dev = batch["mel"].device
        tags = drop_tags(self.condition_tags(batch["tags"][:b]), h.tag_dropout, generator=generator)
        w = h.w_min + (h.w_max - h.w_min) * torch.rand(b, device=dev, generator=generator)
        z = torch.randn((b, *batch["mel"].shape[1:]), device=dev, generator=generator)
        self.bank.add(self.teacher, z, tags, w)

    def trajectory_pairs(self, b: int, generator=None):
        """(n, m) grid indices of ``b`` trajectory pairs: the first round(share·b) from ``decode_jumps``, the rest
        n uniform on the first N−1 points and m = ``draw_s_index(n)``."""
        n = torch.randint(0, len(self.grid) - 1, (b,), device=self.grid.device, generator=generator)
        m = self.draw_s_index(n, generator)
        k = round(self.hparams.trajectory_decode_share * b)
        if k > 0:
            pick = torch.randint(0, len(self.decode_jumps), (k,), device=n.device, generator=generator)
            n, m = n.clone(), m.clone()
            n[:k], m[:k] = self.decode_jumps[pick, 0], self.decode_jumps[pick, 1]
        return n, m

    def trajectory_loss(self, generator=None) -> torch.Tensor:
        """Per sample ‖G_θ(x_{σ_n}, σ_n, σ_m) − x_{σ_m}‖² (``distance``) on ``trajectory_batch`` held trajectories,
        n uniform on the grid's first N−1 points and m drawn like s (``draw_s_index``), except for a share
        ``trajectory_decode_share`` of the rows, whose (n, m) is one of the jumps the ``trajectory_decode_steps``-step
        decodes take (uniform over those pairs): the maps ITO optimizes through and decodes with, σ_max → σ_min among
        them, which the uniform draw visits once in (N−1)² pairs."""
        rows = self.bank.rows(self.hparams.trajectory_batch, generator)
        n, m = self.trajectory_pairs(rows.shape[0], generator)
        x_t, x_s, tags, w = self.bank.draw(rows, n, m)
        pred = self.student(x_t, self.grid[n], self.grid[m], tags, w)
        loss = self.distance(pred, x_s)
        if self.hparams.detail_weight > 0:
            sd2 = self.teacher_meta["edm"]["sigma_data"] ** 2
            scale = sd2 / (self.grid[m] ** 2 + sd2)
            self._detail = scale * (local_detail(pred) - local_detail(x_s)).float().square().flatten(1).mean(1)
            loss = loss + self.hparams.detail_weight * self._detail
        return loss

    def training_step(self, batch, batch_idx):
        loss = self.distill_loss(batch).mean()
        if self.hparams.anchor_weight > 0:
            self.log("train/anchor", self._anchor.mean())
        if self.hparams.trajectory_weight > 0:
            self.refresh_trajectories(batch)
            traj = self.trajectory_loss().mean()
            self.log("train/trajectory", traj)
            if self.hparams.detail_weight > 0:
                self.log("train/detail", self._detail.mean())
            loss = loss + self.hparams.trajectory_weight * traj
        self.log("train/loss", loss, prog_bar=True)
        return loss

    def on_train_batch_end(self, outputs, batch, batch_idx) -> None:
        mu = self.hparams.target_decay
        with torch.no_grad():
            for p_t, p in zip(self.target.parameters(), self.student.parameters()):
                p_t.lerp_(p, 1.0 - mu)

    def validation_step(self, batch, batch_idx):
        gen = torch.Generator(device=batch["mel"].device).manual_seed(batch_idx)
        self.log("val/loss", self.distill_loss(batch, gen).mean(), prog_bar=True, batch_size=batch["mel"].shape[0])

    def on_validation_epoch_start(self) -> None:
        # at the start, not the end: an EMA callback (WeightAveraging) has swapped the averaged weights in before this
        # hook and swaps them out before on_validation_epoch_end, so samples and bias/* are of the weights exported
        if not self.trainer.sanity_checking:
            self.log_samples()
            if self.hparams.n_bias_samples > 0:
                for key, value in self.step_count_bias().items():
                    self.log(key, value)

    def configure_optimizers(self):
        opt = torch.optim.Adam(self.student.parameters(), lr=self.hparams.lr)
        return with_warmup(opt, self.hparams.warmup_steps)

    # ------------------------------------------------------------------ sampling
    def teacher_generator(self) -> Generator:
        """The frozen teacher as a loaded base model (its one guided sampler)."""
        return Generator(self.teacher, self.mel_config, self.normalizer, self.vocab, self.teacher_meta)

    def generate(self, noise, tags, w, steps, gamma=None, generator=None):
        """The student's ``steps``-step sample (``sample()`` of CMStudent / CTMStudent) over the grid."""
        gamma = self.hparams.sample_gamma if gamma is None else gamma
        return self.student.sample(noise, decode_sigmas(steps, self.grid), tags, w, gamma=gamma, generator=generator)

    @torch.no_grad()
    def sample_for_logging(self, noise, tags):
        """k-step student samples next to the teacher's 20-step guided Euler from the same noise."""
        w = self.hparams.sample_w
        tags = self.condition_tags(tags)
        teacher = self.teacher_generator()
        out = {"teacher_euler20": teacher.sample(noise, tags, w=w, steps=len(self.grid))}
        for k in self.hparams.sample_steps:
            fixed = torch.Generator(device=noise.device).manual_seed(0)
            out[f"{self.kind}_{k}step"] = self.generate(noise, tags, w, k, generator=fixed)
            self.log(f"val/mse_vs_teacher_{k}step", (out[f"{self.kind}_{k}step"] - out["teacher_euler20"]).pow(2).mean())
        return out

    @torch.no_grad()
    def step_count_bias(self) -> dict:
        """Control-feature bias of the k-step students against the teacher's full-grid output of the
        same noises (null tags, w = sample_w, deterministic decode: γ = 0 for CTM): what ITO through a
        1-step map and decoding with k steps depends on. Keys ``bias/<feature>_<k>step``. The teacher is
        frozen and the noises fixed, so its output and features are computed at the first validation only."""
        if getattr(self, "_bias_reference", None) is None:
            n, cfg, dev = self.hparams.n_bias_samples, self.mel_config, self.device
            gen = torch.Generator().manual_seed(self.hparams.sample_seed + 1)
            noise = torch.randn((n, 1, cfg.n_mels, cfg.frames), generator=gen).to(dev)
            tags = torch.zeros((n, len(self.vocab.sizes)), dtype=torch.long, device=dev)
            teacher = self.teacher_generator()
            ref = teacher.sample(noise, tags, w=self.hparams.sample_w, steps=len(self.grid))
            self._bias_reference = (noise, tags, FeatureBias(MelContext(self.mel_config, self.normalizer), ref))
        noise, tags, bias = self._bias_reference
        outs = {k: self.generate(noise, tags, self.hparams.sample_w, k, gamma=0.0,
                                 generator=torch.Generator(device=noise.device).manual_seed(0))
                for k in self.hparams.sample_steps}
        return control_feature_bias(bias, outs)


def control_feature_bias(bias: FeatureBias, outputs: dict) -> dict:
    """``{k: mels}`` -> TensorBoard keys ``bias/<feature>_<k>step`` and ``val/mse_vs_teacher_<k>step_n<N>``."""
    out = {}
    for k, mels in outputs.items():
        values = bias(mels)
        out[f"val/mse_vs_teacher_{k}step_n{len(mels)}"] = values.pop("mse")
        out.update({f"bias/{key}_{k}step": v for key, v in values.items()})
    return out


class CMDistillModule(DistillModule):
    """Paper eq. (1): ‖G_φ(x_t, t) − sg[G_φ⁻(x̂_{t−1}, t−1)]‖², boundary condition at σ_min."""

    kind = "cm"

    def pair(self, x_t, x_hat, n, n_hat, m, tags, w):
        return self.student(x_t, self.grid[n], tags, w), self.target(x_hat, self.grid[n_hat], tags, w)



class CTMDistillModule(DistillModule):
    """Paper eq. (4): ‖G_φ(x_t, t, s) − sg[G_φ⁻(x̂_{t−1}, t−1, s)]‖², s on the grid at or below t−1;
    with ``teacher_steps`` > 1, x̂ is the teacher's solution j grid steps below t (soft consistency)."""

    kind = "ctm"

    def draw_s_index(self, n, generator=None):
        """s index uniform on {n+1, ..., N−1}: from the teacher's first point down to σ_min."""
        last = len(self.grid) - 1
        u = torch.rand(n.shape, device=n.device, generator=generator)
        return n + 1 + (u * (last - n).float()).floor().long().clamp(max=last - n - 1)

    def pair(self, x_t, x_hat, n, n_hat, m, tags, w):
        s = self.grid[m]
        pred = self.student(x_t, self.grid[n], s, tags, w)
        with torch.no_grad():
            target = self.target(x_hat, self.grid[n_hat], s, tags, w)
        if self.hparams.loss_space == "data":
            sigma_min = self.grid[-1].expand_as(s)
            pred = self.target(pred, s, sigma_min, tags, w)  # φ⁻ is frozen: the gradient reaches pred only
            with torch.no_grad():
                target = self.target(target, s, sigma_min, tags, w)
        return pred, target


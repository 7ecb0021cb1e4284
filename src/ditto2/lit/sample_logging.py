"""Samples from fixed noise and fixed tags, logged as mel images + vocoded audio + a PNG in the run folder."""
from __future__ import annotations

from pathlib import Path

import torch

from ditto2.audio.io import peak_normalized
from ditto2.audio.vocoder import GriffinLimVocoder
from ditto2.viz import figure_to_array, mel_grid_figure, save_figure


class SampleLogMixin:
    """Needs ``self.mel_config``, ``self.normalizer``, ``self.vocab``, hparams ``n_log_samples`` and
    ``sample_seed``, and ``sample_for_logging(noise, tags) -> {name: mels}``. The noise and tags are
    the same at every step (seeded), so the pictures are comparable across training.

    ``unconditional`` (a model that never sees a tag, paper §5.4) is False unless a module says so;
    ``condition_tags`` is where such a module swaps every tag for the null id."""

    unconditional = False

    def condition_tags(self, tags: torch.Tensor) -> torch.Tensor:
        return torch.zeros_like(tags) if self.unconditional else tags

    def fixed_noise_and_tags(self):
        n = self.hparams.n_log_samples
        gen = torch.Generator().manual_seed(self.hparams.sample_seed)
        cfg = self.mel_config
        noise = torch.randn((n, 1, cfg.n_mels, cfg.frames), generator=gen)
        sizes = self.vocab.sizes
        # a spread of tag settings: cycle through values of each field, and one all-null row
        tags = torch.stack([torch.tensor([1 + (i * (k + 1)) % (s - 1) if s > 1 else 0 for k, s in enumerate(sizes)])
                            for i in range(n)])
        tags[-1] = 0
        return noise.to(self.device), tags.to(self.device)

    def tag_titles(self, tags) -> list[str]:
        if self.unconditional:
            return [f"unconditional, noise {i}" for i in range(len(tags))]  # the tags are never used
        return [" / ".join(v for v in self.vocab.decode(t).values() if v != "<null>") or "(null tags)" for t in tags.tolist()]

    @torch.no_grad()
    def log_samples(self) -> None:
        if self.hparams.n_log_samples < 1:  # n_log_samples: 0 switches sample logging off
            return
        noise, tags = self.fixed_noise_and_tags()
        titles = self.tag_titles(tags)
        step = self.global_step
        vocoder = GriffinLimVocoder(self.mel_config, self.normalizer).to(self.device)
        # no logger (e.g. fast_dev_run): nothing is written, not even PNGs into the working directory
        if not self.trainer.loggers or self.trainer.log_dir is None:
            return
        run_dir = Path(self.trainer.log_dir) / "samples"
        writer = getattr(self.logger, "experiment", None)
        for name, mels in self.sample_for_logging(noise, tags).items():
            mels = mels.float().cpu()
            fig = mel_grid_figure([m[0].numpy() for m in mels], titles)
            save_figure(fig, run_dir / f"{name}_step{step:07d}.png", close=False)
            image = figure_to_array(fig)  # one figure for the PNG and TensorBoard (this closes it)
            if writer is not None and hasattr(writer, "add_image"):
                writer.add_image(f"samples/{name}", image, step, dataformats="HWC")
                waves = vocoder(mels.to(self.device)).cpu()
                for i, wave in enumerate(waves):
                    writer.add_audio(f"samples/{name}/{i}", peak_normalized(wave)[None], step,
                                     sample_rate=self.mel_config.sample_rate)

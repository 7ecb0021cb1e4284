"""Text control (paper §5.4): L = 1 − cos(CLAP_audio(x₀), CLAP_text(y)), both embeddings L2-normalized."""
from __future__ import annotations

from pathlib import Path
from typing import Optional, Union

import torch

from ditto2.audio.mel import MEL_PRESETS
from ditto2.clap.embedder import AudioTextEmbedder
from ditto2.controls.base import Control, ControlTargetError, MelContext, TargetSet


def default_clap_bundle(ctx: MelContext) -> Path:
    """checkpoints/<preset>/clap, beside the teacher that `make export-teacher` writes."""
    preset = next((name for name, cfg in MEL_PRESETS.items() if cfg == ctx.cfg), None)
    if preset is None:
        raise ValueError("the mel config matches no preset, so there is no default CLAP bundle; "
                         "pass embedder= (an AudioTextEmbedder or a bundle path)")
    return Path("checkpoints") / preset / "clap"


class TextControl(Control):
    """``embedder``: an AudioTextEmbedder, a CLAP bundle / checkpoint path, or None for the in-domain
    CLAP at ``default_clap_bundle``. Domain "mel" embeds the model's mel directly (in-domain CLAP
    only: its audio tower reads our mels); "audio" embeds the Griffin-Lim waveform (any embedder).

    ``judge``: the CLAP that grades it (another audio tower and seed, never optimized), e.g.
    ``checkpoints/<preset>/clap-judge``; an ITO run passes its ``clap_judge``. Without one the grade is the
    control's own CLAP and its key says so (``text_clap_cosine_self_graded``).

    Targets: a caption or a list of captions (one per batch item), embedded once by
    ``check_target``; an already-embedded (B or 1, D) tensor is accepted as is."""

    name = "text"
    metric = "clap_judge_cosine"  # per instance: "clap_cosine_self_graded" when there is no judge
    higher_is_better = True

    @classmethod
    def uses_references(cls, source=None) -> bool:
        return True  # the held-out clips' captions, unless captions are given

    @classmethod
    def run_options(cls, run) -> dict:
        """A run's ``clap_judge`` grades its text control."""
        return {"judge": run.clap_judge} if getattr(run, "clap_judge", None) else {}

    def __init__(self, ctx: MelContext, domain: str = "mel",
                 embedder: Union[AudioTextEmbedder, str, Path, None] = None,
                 judge: Union[AudioTextEmbedder, str, Path, None] = None):
        super().__init__(ctx, domain)
        self.embedder_path = None  # the CLAP this control optimizes, when named by a path (to spot self-grading)
        if not isinstance(embedder, AudioTextEmbedder):
            from ditto2.clap.indomain import load_clap

            self.embedder_path = Path(embedder or default_clap_bundle(ctx))
            embedder = load_clap(self.embedder_path)
        self.judge = self._load_judge(judge)
        # the grade's key says which instrument gave it: a CLAP the control never optimized, or its own
        self.metric = "clap_judge_cosine" if self.judge is not None else "clap_cosine_self_graded"
        if domain == "mel":
            if not embedder.supports_mel:
                raise ValueError(f"{type(embedder).__name__} cannot read mels; use domain='audio'")
            if getattr(embedder, "mel_config", None) is not None:
                embedder.mel_config.check_matches(ctx.cfg, what="the control's mel context")
        self.embedder = embedder

    def _load_judge(self, judge) -> Optional[AudioTextEmbedder]:
        """The CLAP that grades this control: an embedder, a path (e.g. ``checkpoints/<preset>/clap-judge``; an ITO
        run passes its ``clap_judge``), or None: the grade is then the control's own CLAP, labelled self-graded."""
        from ditto2.clap.load import load_embedder
        from ditto2.models.bundle import bundle_stem

        if judge is None or isinstance(judge, AudioTextEmbedder):
            return judge
        if self.embedder_path is not None and bundle_stem(judge).resolve() == bundle_stem(self.embedder_path).resolve():
            raise ValueError(f"the text control's judge {judge} is the CLAP it optimizes: a grade needs another "
                             "instrument (checkpoints/<preset>/clap-judge), or no judge for a self-graded score")
        return load_embedder(judge)

    def features(self, mel: torch.Tensor) -> torch.Tensor:
        if self.domain == "audio":
            return self.embedder.embed_audio(self.ctx.waveform(mel), self.ctx.cfg.sample_rate)
        norm = getattr(self.embedder, "normalizer", None)
        if norm is not None and norm != self.ctx.normalizer:
            # the CLAP was trained on other shards' statistics: renormalize, in the log-mel domain
            mel = norm.normalize(self.ctx.normalizer.denormalize(mel))
        return self.embedder.embed_mel(mel)

    def loss(self, features: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return 1.0 - (features * target.to(features)).sum(-1)

    def check_target(self, target, batch_size: Optional[int] = None) -> torch.Tensor:
        if isinstance(target, torch.Tensor):
            return self._check_embedding(target, batch_size)
        texts = [target] if isinstance(target, str) else target
        if not isinstance(texts, (list, tuple)) or not texts:
            raise ControlTargetError(f"text target must be a caption or a non-empty list of captions, got {target!r}")
        for t in texts:
            if not isinstance(t, str) or not t.strip():
                raise ControlTargetError(f"text target captions must be non-empty strings, got {t!r}")
        if batch_size is not None and len(texts) not in (1, batch_size):
            raise ControlTargetError(f"text target has {len(texts)} captions, the batch has {batch_size} items")
        with torch.no_grad():
            return self.embedder.embed_text(list(texts)).detach()

    def _check_embedding(self, t: torch.Tensor, batch_size: Optional[int]) -> torch.Tensor:
        dim = self.embedder.dim
        if t.dim() == 1:
            t = t.unsqueeze(0)
        if t.dim() != 2 or t.shape[1] != dim:
            raise ControlTargetError(f"text target embedding must be (B, {dim}) or ({dim},), got {tuple(t.shape)}")
        if batch_size is not None and t.shape[0] not in (1, batch_size):
            raise ControlTargetError(f"text target has {t.shape[0]} embeddings, the batch has {batch_size} items")
        if not torch.isfinite(t).all():
            raise ControlTargetError("text target embedding has NaN/inf values")
        return t.detach()

    def targets(self, n, seed, references=None, source="reference", clips=None, captions=None) -> TargetSet:
        """Captions to move towards: given ones (``captions``), or the held-out clips' own captions."""
        if source == "caption" or captions:
            texts = list(captions) if captions else []
        else:
            if not clips:
                raise ValueError("text targets from references need held-out clips (shards)")
            texts = [c["caption"] for c in clips[:n]]
        texts = (texts * n)[:n] if texts else texts
        t = self.check_target(texts, n)
        return TargetSet(t, texts, [f"caption: {x}" for x in texts], references, {"captions": texts})

    def extra_grades(self, wave, sample_rate, metric_target) -> dict:
        """Tempo of the decoded audio (librosa) vs the caption's "... at N beats per minute": an instrument the
        CLAP never was. Captions without a tempo give no tempo grade."""
        from ditto2.metrics.captions import tempo_grades

        return tempo_grades(wave, sample_rate, str(metric_target), self.ctx.cfg.hop_length)

    def grade(self, wave, sample_rate, metric_target) -> float:
        """Cosine of the decoded AUDIO and the caption in the judging CLAP (another audio tower, another seed,
        never optimized: ``clap_judge_cosine``), or without a judge in this control's own CLAP
        (``clap_cosine_self_graded``: the control optimized that same CLAP on the mel, so it is no grade)."""
        from ditto2.metrics.clap_score import clap_cosines

        clap = self.judge if self.judge is not None else self.embedder
        device = next(clap.parameters()).device
        with torch.no_grad():
            a = clap.embed_audio(torch.from_numpy(wave)[None].float().to(device), sample_rate)
            t = clap.embed_text([metric_target]).to(a)
        return float(clap_cosines(a, t)[0])

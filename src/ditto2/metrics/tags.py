"""Genre / mood / tempo-bucket grades of audio with the project's tagger (``checkpoints/<preset>/tagger``): the
tagger hears the decoded waveform through its own mel front end and says whether the caption's tags are what it
hears. A grader only (no control optimizes it), so a text control cannot have fitted it."""
from __future__ import annotations

import re
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from ditto2.audio.mel import MelConfig, MelNormalizer, NormalizedLogMel
from ditto2.clap.embedder import resample
from ditto2.data.tags import TAG_FIELDS, caption_bpm, tempo_bucket
from ditto2.models.bundle import read_bundle
from ditto2.nn.tagger import MelTagger, TemporalConvConfig


def caption_tags(text: str, values: dict[str, list[str]]) -> dict[str, str]:
    """The tag values a caption names ("A calm ambient song at 72 beats per minute." -> mood calm, genre ambient,
    tempo_bucket slow): vocabulary words found as whole words, the tempo from its BPM. Fields it does not name are
    left out."""
    words = set(re.findall(r"[a-z][a-z\-]*", text.lower()))
    out = {f: v for f in ("genre", "mood") for v in values.get(f, [])[1:] if v.lower() in words}
    bpm = caption_bpm(text)
    if bpm is not None and tempo_bucket(bpm) in values.get("tempo_bucket", []):
        out["tempo_bucket"] = tempo_bucket(bpm)
    return out


class TagGrader(torch.nn.Module):
    """A trained ``MelTagger`` with the mel front end and statistics it was trained on."""

    def __init__(self, model: MelTagger, meta: dict):
        super().__init__()
        data = meta["data"]
        self.model = model.eval()
        self.mel_config = MelConfig.from_dict(data["mel"])
        self.normalizer = MelNormalizer.from_dict(data["stats"])
        self.values = {f: list(data["vocab"]["values"][f]) for f in TAG_FIELDS}
        self.to_mel = NormalizedLogMel(self.mel_config, self.normalizer)
        self.requires_grad_(False)

    def probabilities(self, wave: torch.Tensor, sr: int) -> list[torch.Tensor]:
        """(B, T) audio -> per field (B, n_values) probabilities over the vocabulary (null id 0 gets 0)."""
        mel = self.to_mel(resample(wave.float(), sr, self.mel_config.sample_rate))
        with torch.no_grad():
            logits = self.model(mel)
        return [torch.nn.functional.pad(lg.softmax(-1), (1, 0)) for lg in logits]

    def grade(self, waves: np.ndarray, sr: int, captions: Sequence[str], batch: int = 64) -> list[dict]:
        """Per item, for each field its caption names: ``<field>_acc`` (1.0 when the tagger's top value is the
        caption's) and ``<field>_prob`` (the probability the tagger gives the caption's value)."""
        device = next(self.model.parameters()).device
        probs = [[] for _ in TAG_FIELDS]
        for i in range(0, len(waves), batch):
            for j, p in enumerate(self.probabilities(torch.as_tensor(waves[i : i + batch], device=device), sr)):
                probs[j].append(p.cpu())
        probs = [torch.cat(p) for p in probs]
        out = []
        for i, text in enumerate(captions):
            named, grades = caption_tags(text, self.values), {}
            for j, f in enumerate(TAG_FIELDS):
                if f in named:
                    k = self.values[f].index(named[f])
                    grades[f"{f}_acc"] = float(probs[j][i].argmax() == k)
                    grades[f"{f}_prob"] = round(float(probs[j][i, k]), 5)
            out.append(grades)
        return out


def load_tagger(path: str | Path, map_location: str = "cpu") -> TagGrader:
    """A tagger bundle (``ditto2 export`` of a ``TaggerModule`` checkpoint) -> a frozen ``TagGrader``."""
    state, meta = read_bundle(path, map_location, how_to_make="train one with `ditto2 fit --config "
                              "experiments/tagger/tiny.yaml` and `ditto2 export`")
    if meta.get("kind") != "tagger":
        raise ValueError(f"{path} is a {meta.get('kind')!r} bundle, not a tagger")
    sizes = [len(meta["data"]["vocab"]["values"][f]) for f in TAG_FIELDS]
    model = MelTagger(TemporalConvConfig.from_dict(meta["tagger"]), sizes)
    model.load_state_dict(state)
    return TagGrader(model, meta)

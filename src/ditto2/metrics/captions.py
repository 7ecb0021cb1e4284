"""Grades of audio against the captions it was asked for, by instruments no text control optimizes: the judging
CLAP's cosine (``clap_judge_score``), the tagger's genre / mood / tempo bucket (``metrics/tags.py``) and librosa's
tempo against the caption's BPM (``tempo_*``). One road for generations (the text control's extra grades) and for
real clips (the bench's "real clips" row)."""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from ditto2.data.tags import caption_bpm
from ditto2.metrics import control as grader
from ditto2.metrics.clap_score import clap_cosines


def tempo_grades(wave, sample_rate: int, caption: str, hop: int) -> dict:
    """librosa's tempo of ``wave`` vs the caption's "... at N beats per minute" (``tempo_bpm``, ``tempo_error_pct``,
    ``tempo_within_8pct``, ``tempo_octave_within_8pct``); {} when the caption names no tempo."""
    bpm = caption_bpm(caption)
    if bpm is None:
        return {}
    estimated = grader.tempo_bpm(wave, sample_rate, hop)
    return {"tempo_bpm": round(estimated, 2),
            **{f"tempo_{k}": v for k, v in grader.tempo_errors(estimated, bpm).items()}}


@torch.no_grad()
def audio_text_embeddings(clap, waves, sample_rate: int, captions: Sequence[str], batch: int = 64):
    """(audio (B, D), caption text (B, D)) float32 CPU embeddings of (B, T) waves and their captions in ``clap``
    (any AudioTextEmbedder), the audio in batches of ``batch`` on the CLAP's device."""
    device = next(clap.parameters()).device
    waves = torch.as_tensor(np.asarray(waves)).float()
    a = torch.cat([clap.embed_audio(waves[i : i + batch].to(device), sample_rate).float().cpu()
                   for i in range(0, waves.shape[0], batch)])
    return a, clap.embed_text(list(captions)).float().cpu()


def caption_grades(waves, sample_rate: int, captions: Sequence[str], hop: int, judge=None,
                   tagger=None) -> list[dict]:
    """Per item of (B, T) ``waves``: ``clap_judge_score`` (with a ``judge`` CLAP), the tagger's ``<field>_acc`` /
    ``<field>_prob`` (with a ``tagger``: a ``TagGrader``) and the tempo grades, each against the item's caption."""
    if len(waves) != len(captions):
        raise ValueError(f"{len(waves)} waves but {len(captions)} captions")
    items: list[dict] = [{} for _ in captions]
    if judge is not None:
        for item, c in zip(items, clap_cosines(*audio_text_embeddings(judge, waves, sample_rate, captions)).tolist()):
            item["clap_judge_score"] = round(c, 5)
    if tagger is not None:
        for item, g in zip(items, tagger.grade(np.asarray(waves), sample_rate, captions)):
            item.update(g)
    for item, wave, text in zip(items, waves, captions):
        item.update(tempo_grades(wave, sample_rate, text, hop))
    return items


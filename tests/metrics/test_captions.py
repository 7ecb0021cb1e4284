"""Grades against captions (metrics/captions.py): the tempo a caption names, the judge's cosine, one road."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from ditto2.metrics.captions import audio_text_embeddings, caption_grades, tempo_grades

SR, HOP = 16000, 256


def clicks(bpm: float, seconds: float = 8.0) -> np.ndarray:
    wave = np.zeros(int(SR * seconds), dtype=np.float32)
    for t in np.arange(0.0, seconds, 60.0 / bpm):
        i = int(t * SR)
        wave[i : i + 160] = np.hanning(320)[160:].astype(np.float32)
    return wave


class LoudnessClap(torch.nn.Module):
    """A stand-in CLAP with a known answer: audio -> (rms, 1); a caption -> (1, 0) if it says "loud" else (0, 1)."""

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.ones(1))

    def embed_audio(self, wave, sr):
        return F.normalize(torch.stack([wave.pow(2).mean(-1).sqrt() * self.w, torch.ones(len(wave))], -1), dim=-1)

    def embed_text(self, texts):
        return torch.tensor([[1.0, 0.0] if "loud" in t else [0.0, 1.0] for t in texts])


def test_tempo_grades_hear_the_captions_bpm_and_ignore_captions_without_one():
    hit = tempo_grades(clicks(120), SR, "A song at 120 beats per minute.", HOP)
    assert hit["tempo_within_8pct"] == 1.0 and hit["tempo_error_pct"] < 8 and abs(hit["tempo_bpm"] - 120) < 10
    miss = tempo_grades(clicks(120), SR, "A song at 90 beats per minute.", HOP)
    assert miss["tempo_within_8pct"] == 0.0 and miss["tempo_error_pct"] > 20
    assert tempo_grades(clicks(120), SR, "A calm song.", HOP) == {}


def test_caption_grades_give_each_item_its_own_captions_grades():
    quiet, loud = 0.01 * clicks(120), clicks(120)
    waves = np.stack([quiet, loud, loud])
    captions = ["A loud song at 120 beats per minute.", "A loud song.", "A quiet song at 60 beats per minute."]
    clap = LoudnessClap()
    a, t = audio_text_embeddings(clap, waves, SR, captions, batch=2)  # batches of 2: the same rows as one batch
    assert torch.allclose(a, clap.embed_audio(torch.from_numpy(waves), SR).detach())
    items = caption_grades(waves, SR, captions, HOP, judge=clap)
    cos = [float(a[i] @ t[i]) for i in range(3)]
    assert [it["clap_judge_score"] for it in items] == pytest.approx(cos, abs=1e-5)
    assert items[1]["clap_judge_score"] > items[0]["clap_judge_score"]  # the loud clip is the "loud song"
    assert "tempo_bpm" in items[0] and "tempo_bpm" not in items[1] and items[2]["tempo_within_8pct"] == 0.0
    assert all("genre_acc" not in it for it in items)  # no tagger, no tag grades
    with pytest.raises(ValueError, match="3 waves but 2 captions"):
        caption_grades(waves, SR, captions[:2], HOP)

"""The tagger grader: which tags a caption names, and grades from a tagger whose answer is known."""
import numpy as np
import pytest
import torch

from ditto2.audio.mel import MelNormalizer, mel_preset
from ditto2.data.tags import TagVocab, caption, caption_bpm
from ditto2.lit.tagger import tagger_bundle_meta
from ditto2.metrics.tags import caption_tags, load_tagger
from ditto2.models.bundle import save_bundle
from ditto2.nn.tagger import MelTagger, TemporalConvConfig

VOCAB = TagVocab({"genre": ["<null>", "ambient", "rock"], "mood": ["<null>", "calm", "dark", "sad"],
                  "tempo_bucket": ["<null>", "fast", "moderate", "slow", "upbeat"]})


def test_caption_tags_reads_the_papers_captions():
    v = VOCAB.values
    assert caption_tags("A calm ambient song at 72 beats per minute.", v) == {"mood": "calm", "genre": "ambient",
                                                                              "tempo_bucket": "slow"}
    assert caption_tags("A dark rock song at 140 beats per minute.", v) == {"mood": "dark", "genre": "rock",
                                                                            "tempo_bucket": "fast"}
    assert caption_tags("A sad song.", v) == {"mood": "sad"}
    assert caption_tags("A song.", v) == {}
    assert caption_tags("A rockabilly song.", v) == {}  # whole words only


def test_caption_bpm_reads_back_the_tempo_caption_wrote():
    assert caption_bpm(caption({"mood": "calm", "genre": "ambient", "tempo": 71.6})) == 72.0
    assert caption_bpm("A song at 128.5 beats per minute.") == 128.5
    assert caption_bpm(caption({"genre": "rock"})) is None
    assert caption_bpm("A song at fast beats per minute.") is None


def _forced_tagger(tmp_path, genre: int, mood: int, tempo: int):
    """A tagger whose heads ignore the audio: each field's logits are a fixed bias (class j = vocabulary id j + 1)."""
    cfg = TemporalConvConfig(n_mels=64, width=8, dilations=(1,))
    model = MelTagger(cfg, VOCAB.sizes)
    with torch.no_grad():
        for head, pick in zip(model.heads, (genre, mood, tempo)):
            head.weight.zero_()
            head.bias.fill_(0.0)
            head.bias[pick - 1] = 3.0
    info = {"mel": mel_preset("tiny").to_dict(), "stats": MelNormalizer(-4.0, 2.0).to_dict(), "vocab": VOCAB.to_dict()}
    return save_bundle(tmp_path / "tagger", model.eval(), tagger_bundle_meta(cfg, info))


def test_grades_of_a_tagger_with_a_known_answer(tmp_path):
    g = VOCAB.values
    path = _forced_tagger(tmp_path, g["genre"].index("rock"), g["mood"].index("dark"), g["tempo_bucket"].index("fast"))
    grader = load_tagger(path)
    waves = np.random.default_rng(0).standard_normal((3, 22050)).astype(np.float32) * 0.1
    out = grader.grade(waves, 22050, ["A dark rock song at 140 beats per minute.", "A calm ambient song at 72 beats "
                                      "per minute.", "A song."])
    p_top = np.exp(3.0) / (np.exp(3.0) + 1)  # genre head: 2 classes, logits (0, 3)
    assert out[0] == {"genre_acc": 1.0, "genre_prob": pytest.approx(p_top, abs=1e-4), "mood_acc": 1.0,
                      "mood_prob": pytest.approx(np.exp(3) / (np.exp(3) + 2), abs=1e-4), "tempo_bucket_acc": 1.0,
                      "tempo_bucket_prob": pytest.approx(np.exp(3) / (np.exp(3) + 3), abs=1e-4)}
    assert out[1]["genre_acc"] == 0.0 and out[1]["mood_acc"] == 0.0 and out[1]["tempo_bucket_acc"] == 0.0
    assert out[1]["genre_prob"] == pytest.approx(1 - p_top, abs=1e-4)
    assert out[2] == {}
    # another sample rate is resampled to the tagger's, not refused
    assert grader.grade(waves[:1, :16000], 16000, ["A dark rock song."])[0]["genre_acc"] == 1.0


def test_a_bundle_of_another_kind_is_refused(tmp_path, clap_bundle):
    with pytest.raises(ValueError, match="not a tagger"):
        load_tagger(clap_bundle)

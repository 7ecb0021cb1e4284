"""LaionClapEmbedder on a tiny random ClapModel saved locally: loading, torch features vs the numpy
feature extractor, deterministic cropping, normalization, gradient to the waveform; the resampler."""
import math

import numpy as np
import pytest
import torch

from ditto2.clap.embedder import LaionClapEmbedder, resample
from model_fixtures import tiny_laion_clap_dir as _tiny_clap_dir

SR = 48000


@pytest.fixture(scope="module")
def unfused(tmp_path_factory):
    root, fe = _tiny_clap_dir(tmp_path_factory.mktemp("clap"), fusion=False)
    return LaionClapEmbedder(root), fe


def _waves(n, seed=0):
    x = (0.1 * np.random.default_rng(seed).standard_normal((2, n))).astype(np.float32)
    x[1, :5000] = 0  # silence: the -100 dB floor must match too
    return x


# measured max |Δ| ≈ 1e-4 dB (float32 torch STFT vs float64 numpy), on features spanning -100..-8 dB
FEATURE_TOL_DB = 1e-3


@pytest.mark.parametrize("n", [30000, 48000], ids=["repeatpad", "exact"])
def test_torch_features_match_the_numpy_extractor(unfused, n):
    emb, fe = unfused
    x = _waves(n)
    ref = fe(list(x), sampling_rate=SR, return_tensors="np")["input_features"]
    ours, longer = emb.input_features(torch.from_numpy(x))
    assert ours.shape == ref.shape == (2, 1, 101, 16) and not longer.any()
    assert np.abs(ours.numpy() - ref).max() < FEATURE_TOL_DB


def test_long_audio_is_center_cropped(unfused):
    emb, fe = unfused
    x = _waves(70000)
    start = (70000 - 48000) // 2
    ref = fe(list(x[:, start: start + 48000]), sampling_rate=SR, return_tensors="np")["input_features"]
    ours, _ = emb.input_features(torch.from_numpy(x))
    assert np.abs(ours.numpy() - ref).max() < FEATURE_TOL_DB


def test_embeddings_normalized_and_differentiable(unfused):
    emb, _ = unfused
    wave = torch.from_numpy(_waves(30000)).requires_grad_()
    a = emb.embed_audio(wave, 22050)  # resampled to 48 kHz inside
    t = emb.embed_text(["a calm folk song", "An epic orchestral song at 112 beats per minute."])
    assert a.shape == t.shape == (2, 16)
    assert torch.allclose(a.norm(dim=-1), torch.ones(2), atol=1e-5) and torch.allclose(t.norm(dim=-1), torch.ones(2))
    (a * t).sum().backward()
    assert torch.isfinite(wave.grad).all() and wave.grad.abs().sum() > 0
    assert not any(p.requires_grad for p in emb.parameters())
    emb.train()
    assert not emb.model.training  # frozen: stays in eval mode (BatchNorm statistics)


def test_fused_model_short_and_long(tmp_path):
    root, fe = _tiny_clap_dir(tmp_path, fusion=True)
    emb = LaionClapEmbedder(root)
    x = _waves(30000)
    ref = fe(list(x), sampling_rate=SR, return_tensors="np")["input_features"]
    ours, longer = emb.input_features(torch.from_numpy(x))
    assert ours.shape == ref.shape == (2, 4, 101, 16) and not longer.any()
    assert np.abs(ours.numpy() - ref).max() < FEATURE_TOL_DB
    long = torch.from_numpy(_waves(70000))
    feats, longer = emb.input_features(long)
    assert feats.shape == (2, 4, 101, 16) and longer.all()
    whole = emb.log_mel(long)
    assert any(torch.equal(feats[:, 2], whole[:, s: s + 101]) for s in range(whole.shape[1] - 100))
    assert torch.equal(emb.input_features(long)[0], feats)  # deterministic crops
    assert emb.embed_audio(long, SR).shape == (2, 16)


def test_missing_directory_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="no CLAP checkpoint"):
        LaionClapEmbedder(tmp_path / "laion-clap")


@pytest.mark.parametrize("orig,new", [(22050, 48000), (48000, 22050), (44100, 48000)])
def test_resample_a_sine(orig, new):
    t = torch.arange(orig, dtype=torch.float64) / orig
    y = resample(torch.sin(2 * math.pi * 1000 * t), orig, new)
    assert y.shape[-1] == new
    ref = torch.sin(2 * math.pi * 1000 * torch.arange(new, dtype=torch.float64) / new)
    inner = slice(new // 20, -new // 20)  # zero-padded edges aside
    assert (y - ref)[inner].abs().max() < 1e-4  # measured ≈1e-5


def test_resample_suppresses_aliases():
    t = torch.arange(48000) / 48000
    y = resample(torch.sin(2 * math.pi * 15000 * t), 48000, 22050)  # above the new Nyquist
    assert y[1000:-1000].pow(2).mean().sqrt() < 3e-3  # < -50 dB re the tone's 0.707 RMS

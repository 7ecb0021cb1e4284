import math

import numpy as np
import soundfile as sf
import torch

from ditto2.audio.mel import LogMel, MelNormalizer, NormalizedLogMel, mel_preset
from ditto2.audio.vocoder import GriffinLimVocoder, spectral_convergence
from ditto2.cli import main

CFG = mel_preset("tiny")


def chord(seconds=None):
    n = CFG.clip_samples if seconds is None else int(seconds * CFG.sample_rate)
    t = torch.arange(n) / CFG.sample_rate
    return (0.3 * torch.sin(2 * math.pi * 440 * t) + 0.2 * torch.sin(2 * math.pi * 660 * t))[None]


def test_clip_gives_exact_frames_and_matches_librosa():
    import librosa

    wave = chord()
    mel = LogMel(CFG).clip(wave)
    assert mel.shape == (1, CFG.n_mels, CFG.frames)
    ref = librosa.feature.melspectrogram(y=wave[0].numpy(), sr=CFG.sample_rate, n_fft=CFG.n_fft,
                                         hop_length=CFG.hop_length, n_mels=CFG.n_mels, power=1.0,
                                         pad_mode="reflect")
    ref = np.log(np.maximum(ref, CFG.log_floor))[:, : CFG.frames]
    assert np.abs(mel[0].numpy() - ref).max() < 5e-3  # float32 noise in near-silent bins


def test_normalized_log_mel_is_on_the_mel_grid_for_any_length():
    norm = MelNormalizer(-2.0, 3.0, 0.5)
    to_mel = NormalizedLogMel(CFG, norm)
    clip = chord()
    assert torch.allclose(to_mel(clip), norm.normalize(LogMel(CFG).clip(clip)))  # a clip: exactly cfg.frames
    for seconds in (0.5, 1.37):
        wave = chord(seconds)
        assert to_mel(wave).shape == (1, CFG.n_mels, wave.shape[-1] // CFG.hop_length)


def test_normalizer_roundtrip():
    norm = MelNormalizer(-2.0, 3.0, 0.5)
    x = torch.randn(4, 64, 256)
    assert torch.allclose(norm.denormalize(norm.normalize(x)), x, atol=1e-6)


def test_griffin_lim_roundtrip_on_a_tone_is_close_and_differentiable():
    wave = chord()
    logmel = LogMel(CFG)
    norm = MelNormalizer(-3.0, 2.5)
    mel = norm.normalize(logmel.clip(wave)).requires_grad_(True)
    out = GriffinLimVocoder(CFG, norm)(mel)
    assert out.shape == (1, CFG.clip_samples)
    # bound measured at 0.297 (64 mels cannot pin a tone's exact bin); a broken phase loop gives > 0.6
    assert spectral_convergence(wave, out.detach(), logmel) < 0.35
    # the mel of the vocoded audio is close to the mel it came from
    back = logmel.clip(out.detach())
    assert (back - logmel.clip(wave)).abs().mean() < 0.35
    out.pow(2).sum().backward()
    assert torch.isfinite(mel.grad).all() and mel.grad.abs().sum() > 0


def test_vocode_cli(tmp_path, capsys):
    sf.write(tmp_path / "in.wav", chord(3.0)[0].numpy(), CFG.sample_rate)
    assert main(["vocode", str(tmp_path / "in.wav"), str(tmp_path / "out.wav")]) == 0
    out, sr = sf.read(tmp_path / "out.wav")
    assert sr == CFG.sample_rate and abs(len(out) - 3.0 * sr) < CFG.hop_length * 2
    assert '"spectral_convergence"' in capsys.readouterr().out


def test_normalizer_statistics_match_up_to_summation_order():
    """Shards rebuilt from the same audio on another machine (the numbers of data/shards/debian-tiny against the
    committed teacher) are the same statistics; another mean or std is not."""
    from ditto2.audio.mel import MelNormalizer

    model = MelNormalizer(-4.342437443554764, 2.0147610413462167)
    assert MelNormalizer(-4.342437462915688, 2.01476104477774).matches(model)
    assert not MelNormalizer(-4.35, 2.0147610413462167).matches(model)
    assert not MelNormalizer(-4.342437443554764, 2.02).matches(model)
    assert not MelNormalizer(-4.342437443554764, 2.0147610413462167, target_std=1.0).matches(model)

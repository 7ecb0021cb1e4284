"""In-domain CLAP: the MiniLM text tower, the contrastive loss, training, metrics, bundles."""
import pytest
import torch
from clap_helpers import CFG, NORM, SMALL, synthetic_batch

from ditto2.clap.embedder import InDomainClapEmbedder
from ditto2.clap.indomain import InDomainClap, InDomainClapConfig, clip_loss, load_clap, retrieval_metrics, save_clap_bundle
from ditto2.clap.text import MiniLMText


def test_minilm_mean_pooling_matches_sentence_transformers():
    st = pytest.importorskip("sentence_transformers")
    from ditto2.clap.text import minilm_path

    texts = ["An epic orchestral song at 112 beats per minute.", "A sad folk song."]
    ours = torch.nn.functional.normalize(MiniLMText()(texts), dim=-1)
    ref = st.SentenceTransformer(str(minilm_path()), device="cpu").encode(texts, convert_to_tensor=True)
    assert torch.allclose(ours, torch.nn.functional.normalize(ref, dim=-1), atol=1e-5)


def test_frozen_text_tower_is_not_in_state_dict_and_is_cached():
    model = InDomainClap(InDomainClapConfig(**SMALL))
    assert not any(k.startswith("text") and "proj" not in k for k in model.state_dict())
    assert all(p.requires_grad for p in model.parameters())  # only what this project trains
    a = model.embed_text(["A sad folk song.", "A sad folk song."])
    assert a.shape == (2, 16) and torch.allclose(a.norm(dim=-1), torch.ones(2)) and len(model._text_cache) == 1


def test_clip_loss_counts_shared_captions_as_one_positive():
    audio = torch.nn.functional.normalize(torch.randn(4, 8), dim=-1)
    text = audio[[0, 2]]
    good = clip_loss(audio, text, torch.tensor([0, 0, 1, 1]), 100.0)
    bad = clip_loss(audio, text, torch.tensor([1, 1, 0, 0]), 100.0)
    assert good < bad
    one = clip_loss(audio, text[:1], torch.zeros(4, dtype=torch.long), 10.0)
    assert abs(float(one)) < 1e-6  # a single caption: nothing to contrast


def test_a_few_steps_lower_infonce_on_a_fixed_batch(clap_module):
    batch = synthetic_batch()
    opt = torch.optim.Adam(clap_module.parameters(), lr=3e-3)
    with torch.no_grad():
        start, _ = clap_module._loss(batch)
    for _ in range(15):
        loss, _ = clap_module._loss(batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        end, _ = clap_module._loss(batch)
    assert end < 0.5 * start, (float(start), float(end))


def test_retrieval_metrics_perfect_and_chance():
    text = torch.eye(3)
    idx = torch.tensor([0, 0, 1, 2])
    audio = text[idx]
    tags = torch.tensor([[1, 1], [1, 2], [2, 1]])  # caption tags; clip tags = tags[idx]
    m = retrieval_metrics(audio, text, idx, tags[idx], tags, ("genre", "mood"))
    assert m["t2a_R@1"] == m["caption_acc"] == m["genre_acc"] == 1.0
    assert m["t2a_R@1_chance"] == pytest.approx((2 / 4 + 1 / 4 + 1 / 4) / 3)
    assert m["t2a_R@5_chance"] == pytest.approx(1.0)  # k >= N clips: always a hit
    assert m["caption_acc_chance"] == pytest.approx(1 / 3)
    # genre 1 is shared by captions 0 and 1: clips 0, 1, 2 match 2 of 3 captions, clip 3 matches 1
    assert m["genre_acc_chance"] == pytest.approx((2 / 3 * 3 + 1 / 3) / 4)


def test_validation_epoch_logs_retrieval(clap_module, monkeypatch):
    logged = {}
    monkeypatch.setattr(clap_module, "log", lambda k, v, **kw: logged.__setitem__(k, float(v)))
    with torch.no_grad():
        clap_module.validation_step(synthetic_batch(seed=1), 0)
    clap_module.on_validation_epoch_end()
    for key in ("val/loss", "val/t2a_R@1", "val/t2a_R@5_chance", "val/caption_acc", "val/genre_acc_chance"):
        assert key in logged
    assert logged["val/caption_acc_chance"] == pytest.approx(0.25)


def test_bundle_round_trip_gives_identical_embeddings(clap_module, tmp_path):
    path = save_clap_bundle(tmp_path / "clap", clap_module)
    emb = load_clap(path)
    assert isinstance(emb, InDomainClapEmbedder) and emb.mel_config == CFG and emb.normalizer == NORM
    ref = InDomainClapEmbedder(clap_module.model, CFG, NORM)
    mel = synthetic_batch()["mel"][:3]
    texts = ["A happy rock song at 128 beats per minute.", "A song."]
    assert torch.equal(emb.embed_mel(mel), ref.embed_mel(mel))
    assert torch.equal(emb.embed_text(texts), ref.embed_text(texts))
    with pytest.raises(FileNotFoundError, match="missing"):
        load_clap(tmp_path / "nothing")


def test_embed_audio_is_logmel_then_embed_mel_and_differentiable(clap_module):
    from ditto2.audio.mel import LogMel

    emb = InDomainClapEmbedder(clap_module.model, CFG, NORM)
    g = torch.Generator().manual_seed(0)
    wave = (0.1 * torch.randn(2, 64 * CFG.hop_length, generator=g)).requires_grad_()
    a = emb.embed_audio(wave, CFG.sample_rate)
    via_mel = emb.embed_mel(NORM.normalize(LogMel(CFG)(wave)[..., :64]))
    assert a.shape == (2, 16) and torch.allclose(a, via_mel, atol=1e-6)
    a.sum().backward()
    assert wave.grad is not None and wave.grad.abs().sum() > 0
    assert emb.embed_audio(wave.detach()[:, ::2], CFG.sample_rate // 2).shape == (2, 16)  # resampled


def test_text_features_file_stands_in_for_the_minilm_package(tmp_path, monkeypatch):
    from ditto2.clap import indomain, text

    caps = ["A sad folk song.", "An epic orchestral song at 120 beats per minute."]
    path = text.write_text_features(caps + caps[:1], tmp_path / "text.safetensors")
    assert text.read_text_features(path)[0] == caps  # deduplicated, in order
    torch.manual_seed(0)
    ref = InDomainClap(InDomainClapConfig(**SMALL))
    expected = ref.embed_text(caps)

    def no_minilm(*args, **kwargs):
        raise AssertionError("MiniLM loaded")

    monkeypatch.setenv(text.TEXT_FEATURES_ENV, str(path))
    monkeypatch.setattr(indomain, "MiniLMText", no_minilm)
    model = InDomainClap(InDomainClapConfig(**SMALL))
    model.load_state_dict(ref.state_dict())
    assert torch.allclose(model.embed_text(caps[::-1]), expected.flip(0), atol=1e-6)
    with pytest.raises(AssertionError, match="MiniLM loaded"):  # a caption the file lacks needs the tower
        model.embed_text(["An unknown caption."])

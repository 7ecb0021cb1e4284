"""The in-domain CLAP stage through `ditto2 fit` (LightningCLI) on synth shards, then `ditto2 export`."""
from pathlib import Path

import pytest
import torch

from ditto2.clap.indomain import load_clap
from ditto2.cli import main
from ditto2.lit.clap import load_clap_checkpoint

CONFIG = str(Path(__file__).resolve().parents[2] / "experiments" / "clap" / "tiny.yaml")


@pytest.fixture(scope="module")
def synth_shards(tmp_path_factory):
    from ditto2.audio.mel import mel_preset
    from ditto2.data.shards import ShardOptions, build_shards
    from ditto2.data.sources.synth import synth_tracks

    out = tmp_path_factory.mktemp("synth-tiny")
    build_shards(synth_tracks(6, seed=11, duration_s=13.0), out, mel_preset("tiny"), ShardOptions(), progress=False)
    return out


def test_fit_export_and_load(synth_shards, tmp_path):
    main(["fit", "--config", CONFIG, "--data.root", str(synth_shards), "--data.batch_size", "4",
          "--trainer.accelerator", "cpu", "--trainer.logger.init_args.save_dir", str(tmp_path / "logs"),
          "--trainer.max_time", "null", "--trainer.max_steps", "2", "--trainer.val_check_interval", "2",
          "--checkpoint.every_n_train_steps=2",
          "--model.init_args.channels", "[4, 8]", "--model.init_args.embed_dim", "16"])
    run = tmp_path / "logs" / "clap-tiny" / "main"
    last = run / "checkpoints" / "last.ckpt"
    ckpt = torch.load(last, weights_only=False)
    assert ckpt["global_step"] == 2 and ckpt["hyper_parameters"]["data_info"]["mel"]["n_mels"] == 64
    assert not any("text_encoder" in k or "_frozen_text" in k for k in ckpt["state_dict"])  # MiniLM not saved

    main(["export", str(last), str(tmp_path / "clap")])
    from_bundle, from_ckpt = load_clap(tmp_path / "clap"), load_clap_checkpoint(last)
    mel = torch.randn(2, 1, 64, 40, generator=torch.Generator().manual_seed(0))
    assert torch.equal(from_bundle.embed_mel(mel), from_ckpt.embed_mel(mel))
    assert torch.equal(from_bundle.embed_text(["A song."]), from_ckpt.embed_text(["A song."]))

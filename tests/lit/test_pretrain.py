"""The pretraining stage through its real entry point (`ditto2 fit` = LightningCLI) on synth shards."""
from pathlib import Path

import pytest
import torch

from ditto2.cli import main
from ditto2.lit.cli import run_lightning_cli
from ditto2.models.bundle import load_bundle
from ditto2.models.generator import load_generator

EXPERIMENTS_DIR = Path(__file__).resolve().parents[2].joinpath("experiments")
EXPERIMENTS = sorted(p for p in EXPERIMENTS_DIR.rglob("*.yaml") if p.parent.name in ("pretrain", "distill", "clap", "tagger"))
# a UNet small enough to train a few steps in a second
SMALL = ["--model.init_args.unet_overrides", "{base_channels: 8, channel_mults: [1, 2], attn_levels: [1], num_heads: 2}"]


def fit_args(shards, tmp_path, *extra):
    return ["fit", "--config", "experiments/pretrain/tiny.yaml", "--data.root", str(shards),
            "--data.batch_size", "2", "--trainer.logger.init_args.save_dir", str(tmp_path / "logs"),
            "--trainer.limit_val_batches", "1", "--trainer.max_time", "null",
            "--model.init_args.n_log_samples", "2", "--model.init_args.sample_steps", "2", *SMALL, *extra]


@pytest.mark.parametrize("path", EXPERIMENTS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_experiment_yaml_builds(path, synth_tiny, synth_paper, teacher_tiny, teacher_paper, tmp_path):
    preset = "paper" if "paper" in path.name else "tiny"
    shards = synth_paper if preset == "paper" else synth_tiny
    teacher = teacher_paper if preset == "paper" else teacher_tiny
    # a distillation starts from the test teacher (a committed init_student belongs to the committed teacher)
    extra = ["--model.init_args.teacher", str(teacher), "--model.init_args.init_student", "null"] \
        if path.parent.name == "distill" else []
    # *-uncond* / *-fsdp* / *-trajectory* / *-decode* files are layered over their recipe (e.g. tiny.yaml + tiny-uncond.yaml)
    overlay = next((tag for tag in ("-uncond", "-fsdp", "-trajectory", "-decode") if tag in path.name), None)
    configs = ["--config", str(path.with_name(path.name.replace(overlay, "")))] if overlay else []
    cli = run_lightning_cli([*configs, "--config", str(path), "--data.root", str(shards), "--trainer.accelerator", "cpu",
                             "--trainer.devices", "1", "--trainer.strategy", "auto", "--trainer.precision", "32-true",
                             "--trainer.logger.init_args.save_dir", str(tmp_path), *extra], run=False)
    n_params = sum(p.numel() for p in cli.model.parameters())
    if preset == "paper" and path.parent.name == "pretrain":
        assert 38e6 < n_params < 44e6, n_params  # paper §4.2: 41M
    assert cli.model.mel_config == cli.datamodule.mel_config


def test_fast_dev_run(synth_tiny, tmp_path):
    # fast_dev_run swaps the logger out, so checkpoints would land in ./checkpoints without a root dir
    from fit_checks import fast_dev_run_moves_the_weights

    fast_dev_run_moves_the_weights(fit_args(synth_tiny, tmp_path, "--trainer.fast_dev_run", "true",
                                            "--trainer.default_root_dir", str(tmp_path)))


def test_resume_from_last_continues_the_same_run(synth_tiny, tmp_path, monkeypatch):
    args = fit_args(synth_tiny, tmp_path, "--trainer.val_check_interval", "2",
                    "--checkpoint.every_n_train_steps=2")
    main(args + ["--trainer.max_steps", "2"])
    run = tmp_path / "logs" / "pretrain-tiny" / "main"
    last = run / "checkpoints" / "last.ckpt"
    first = torch.load(last, weights_only=False)
    assert first["global_step"] == 2
    assert (run / "config.yaml").exists() and list((run / "samples").glob("*.png"))
    assert first["hyper_parameters"]["data_info"]["mel"]["n_mels"] == 64  # mel config in the checkpoint
    main(args + ["--trainer.max_steps", "4", "--ckpt_path", "last"])
    second = torch.load(last, weights_only=False)
    assert second["global_step"] == 4
    assert not (tmp_path / "logs" / "pretrain-tiny" / "version_0").exists()

    # export the EMA weights, load them without Lightning, and sample through the CLI
    main(["export", str(last), str(tmp_path / "bundle")])
    denoiser, meta = load_bundle(tmp_path / "bundle")
    ema = {k[len("denoiser."):]: v for k, v in second["state_dict"].items() if k.startswith("denoiser.")}
    assert all(torch.equal(denoiser.state_dict()[k], v) for k, v in ema.items())
    gen = load_generator(str(tmp_path / "bundle"))
    tags = gen.encode_tags({"genre": gen.vocab.values["genre"][1]}, 2)
    noise = torch.randn(2, 1, 64, 256, generator=torch.Generator().manual_seed(0))
    a, b = gen.sample(noise, tags, steps=3), gen.sample(noise, tags, steps=3)
    assert torch.equal(a, b) and torch.isfinite(a).all()
    main(["sample", "--model", str(tmp_path / "bundle"), "--steps", "2", "--n", "2", "--out", str(tmp_path / "s")])
    assert len(list((tmp_path / "s").glob("*.wav"))) == 2 and (tmp_path / "s" / "mels.png").exists()


def test_unconditional_model_never_sees_a_tag(synth_tiny, tmp_path):
    """U-DITTO-2's base model (paper §5.4): null tags in training, validation and sampling; its bundle says
    so, its students are distilled with null tags, and ITO refuses tags for it."""
    from ditto2.data.datamodule import MelShardDataModule
    from ditto2.lit.distill import CTMDistillModule
    from ditto2.lit.pretrain import PretrainModule
    from ditto2.models.bundle import save_bundle
    from ditto2.runs.ito import build_surrogate, load_config

    info = MelShardDataModule(str(synth_tiny)).data_info()
    small = {"base_channels": 8, "channel_mults": [1, 2], "attn_levels": [1], "num_heads": 2}
    module = PretrainModule(info, unet_overrides=small, unconditional=True)
    tags = torch.tensor([[1, 2, 1], [2, 1, 0]])
    assert torch.equal(module.condition_tags(tags), torch.zeros_like(tags))
    assert PretrainModule(info, unet_overrides=small).condition_tags(tags) is tags
    assert module.bundle_meta()["unconditional"] is True
    assert module.tag_titles(tags) == ["unconditional, noise 0", "unconditional, noise 1"]  # sample grids
    teacher = save_bundle(tmp_path / "u-teacher", module.exported_model(), module.bundle_meta())

    student = CTMDistillModule(teacher=str(teacher), data_info=info, tag_dropout=0.0)
    batch = {"mel": torch.randn(2, 1, 64, 256), "tags": tags}
    assert student.unconditional and student.bundle_meta()["unconditional"] is True
    assert not student._draw(batch, torch.Generator().manual_seed(0))[3].any()

    cfg = load_config(None, [f"teacher={teacher}", "method=ditto", "shards=null", "batch=1", "tags={genre: rock}"])
    with pytest.raises(ValueError, match="without tags"):
        build_surrogate(cfg, cfg.tags)
    surrogate, _ = build_surrogate(cfg, {})
    assert not surrogate.tags.any()


def test_a_run_stopped_between_checkpoints_keeps_its_last_steps(synth_tiny, tmp_path):
    """max_steps 3 with a checkpoint every 2 steps: last.ckpt holds step 3 (Lightning's own ModelCheckpoint
    stops at 2), which is what a max_time stop needs."""
    overlay = tmp_path / "checkpoint-every-2.yaml"  # an overlay changes only what it changes
    overlay.write_text("checkpoint: {every_n_train_steps: 2}\n")
    main(fit_args(synth_tiny, tmp_path, "--config", str(overlay), "--trainer.max_steps", "3",
                  "--trainer.val_check_interval", "3"))
    last = tmp_path / "logs" / "pretrain-tiny" / "main" / "checkpoints" / "last.ckpt"
    assert torch.load(last, weights_only=False)["global_step"] == 3


def test_the_fsdp_overlay_builds_its_strategy():
    """experiments/pretrain/paper-fsdp.yaml: the strategy it names is built from its arguments (the multi-GPU run
    itself needs GPUs; the overlay's other keys are parsed by test_every_experiment_yaml_builds)."""
    import yaml
    from pytorch_lightning.strategies import FSDPStrategy

    spec = yaml.safe_load((EXPERIMENTS_DIR / "pretrain" / "paper-fsdp.yaml").read_text())["trainer"]["strategy"]
    assert spec["class_path"] == "pytorch_lightning.strategies.FSDPStrategy"
    strategy = FSDPStrategy(**spec["init_args"])
    assert strategy.sharding_strategy.name == "FULL_SHARD" and strategy._state_dict_type == "full"

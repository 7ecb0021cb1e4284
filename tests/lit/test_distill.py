"""CM / CTM distillation through `ditto2 fit`, on synth shards with a small random teacher."""
import pytest
import torch

from ditto2.cli import main
from ditto2.lit.distill import CMDistillModule, CTMDistillModule
from ditto2.models.bundle import load_bundle


def args(kind, shards, teacher, tmp_path, *extra):
    return ["fit", "--config", f"experiments/distill/{kind}-tiny.yaml", "--data.root", str(shards),
            "--model.init_args.teacher", str(teacher), "--data.batch_size", "2",
            "--trainer.logger.init_args.save_dir", str(tmp_path / "logs"), "--trainer.max_time", "null",
            "--trainer.limit_val_batches", "1", "--model.init_args.n_log_samples", "2",
            "--model.init_args.sample_steps", "[1, 2]", "--model.init_args.n_bias_samples", "2", *extra]


@pytest.mark.parametrize("kind", ["cm", "ctm"])
def test_fast_dev_run(kind, synth_tiny, teacher_tiny, tmp_path):
    from fit_checks import fast_dev_run_moves_the_weights

    fast_dev_run_moves_the_weights(args(kind, synth_tiny, teacher_tiny, tmp_path, "--trainer.fast_dev_run", "true",
                                        "--trainer.default_root_dir", str(tmp_path)))


def test_trajectory_recipe_trains(synth_tiny, teacher_tiny, tmp_path):
    """experiments/distill/ctm-trajectory-tiny.yaml layered over the CTM recipe: the trajectory and detail terms train
    (the bank fills from the batch) and are logged."""
    from fit_checks import fast_dev_run_moves_the_weights

    cli = fast_dev_run_moves_the_weights(args("ctm", synth_tiny, teacher_tiny, tmp_path, "--config",
                                        "experiments/distill/ctm-trajectory-tiny.yaml", "--model.init_args.teacher",
                                        str(teacher_tiny), "--model.init_args.init_student", "null",
                                        "--model.init_args.trajectory_bank", "4", "--trainer.fast_dev_run", "true",
                                        "--trainer.default_root_dir", str(tmp_path)))
    logged = cli.trainer.callback_metrics
    assert float(logged["train/trajectory"]) > 0 and float(logged["train/detail"]) > 0
    assert cli.model.bank.count == 2  # the batch of 2 went into the bank


@pytest.mark.parametrize("kind", ["cm", "ctm"])
def test_train_export_and_sample(kind, synth_tiny, teacher_tiny, tmp_path):
    main(args(kind, synth_tiny, teacher_tiny, tmp_path, "--trainer.max_steps", "2", "--trainer.val_check_interval", "2",
              "--checkpoint.every_n_train_steps=2"))
    run = tmp_path / "logs" / f"distill-{kind}-tiny" / "main"
    assert list((run / "samples").glob("teacher_euler20_*.png")) and list((run / "samples").glob(f"{kind}_1step_*.png"))
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run))
    events.Reload()
    logged = set(events.Tags()["scalars"])  # the step-count bias of every decode, each validation
    assert {f"bias/{f}_{k}step" for f in ("level_db", "chroma_agree", "ssm_mse") for k in (1, 2)} <= logged
    main(["export", str(run / "checkpoints" / "last.ckpt"), str(tmp_path / kind)])
    student, meta = load_bundle(tmp_path / kind)
    assert meta["kind"] == kind and meta["unet"]["use_w_embedding"]
    x = torch.randn(1, 1, 64, 256) * 80
    tags = torch.zeros(1, 3, dtype=torch.long)
    t = torch.tensor(80.0)
    out = student(x, t, tags, 2.0) if kind == "cm" else student(x, t, torch.tensor(0.002), tags, 2.0)
    assert out.shape == x.shape and torch.isfinite(out).all()


def test_mismatched_teacher_is_refused_before_compute(synth_tiny, synth_paper, teacher_paper):
    from ditto2.audio.mel import MelConfigMismatchError
    from ditto2.data.datamodule import MelShardDataModule

    info = MelShardDataModule(str(synth_tiny)).data_info()
    with pytest.raises(MelConfigMismatchError):
        CTMDistillModule(teacher=str(teacher_paper), data_info=info)


def test_student_starts_as_the_teacher(synth_tiny, teacher_tiny):
    """Zero-initialized w/s embeddings: a fresh CTM student's t->s jump is the teacher's Euler step."""
    from ditto2.data.datamodule import MelShardDataModule

    info = MelShardDataModule(str(synth_tiny)).data_info()
    m = CTMDistillModule(teacher=str(teacher_tiny), data_info=info)
    x, tags = torch.randn(2, 1, 64, 256) * 5, torch.tensor([[1, 1, 1], [0, 0, 0]])
    t, s = torch.tensor(5.0), torch.tensor(1.0)
    euler = x + (s - t) * (x - m.teacher(x, t, tags)) / t
    assert torch.allclose(m.student(x, t, s, tags, 3.0), euler, atol=1e-5)
    cm = CMDistillModule(teacher=str(teacher_tiny), data_info=info)
    assert torch.equal(cm.student(x, torch.tensor(0.002), tags, 2.0), x)


def test_samples_and_bias_are_of_the_exported_ema_weights(synth_tiny, teacher_tiny, tmp_path, monkeypatch):
    """bias/* and the sample grids are computed while the EMA callback's averaged weights are in the module (the
    weights `ditto2 export` writes), not the raw ones it swaps back in before on_validation_epoch_end."""
    seen = []
    bias = CTMDistillModule.step_count_bias

    def spy(self):
        seen.append({k: v.detach().clone() for k, v in self.student.state_dict().items()})
        return bias(self)

    monkeypatch.setattr(CTMDistillModule, "step_count_bias", spy)
    main(args("ctm", synth_tiny, teacher_tiny, tmp_path, "--trainer.max_steps", "2", "--trainer.val_check_interval", "2",
              "--checkpoint.every_n_train_steps=2", "--model.init_args.lr", "1e-3", "--model.init_args.warmup_steps", "1"))
    run = tmp_path / "logs" / "distill-ctm-tiny" / "main"
    raw = torch.load(run / "checkpoints" / "last.ckpt", weights_only=False)["current_model_state"]  # EMA in state_dict
    main(["export", str(run / "checkpoints" / "last.ckpt"), str(tmp_path / "ctm")])
    exported = load_bundle(tmp_path / "ctm")[0].state_dict()
    assert len(seen) == 1 and seen[0].keys() == exported.keys()
    assert any(not torch.equal(raw[f"student.{k}"], exported[k]) for k in exported)  # EMA ≠ raw after 2 steps
    assert all(torch.equal(seen[0][k], exported[k]) for k in exported)

"""Multi-process training (DDP, gloo, 2 CPU ranks) through the real `ditto2 fit`: each rank reads its own part of
the data, the ranks end with identical weights, one checkpoint is written, and a run resumes from it."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
SMALL_UNET = "{base_channels: 8, channel_mults: [1, 2], attn_levels: [1], num_heads: 2}"
STAGES = {
    "pretrain": ["--config", "experiments/pretrain/tiny.yaml", "--model.init_args.unet_overrides", SMALL_UNET,
                 "--model.init_args.n_log_samples", "0"],
    "cm": ["--config", "experiments/distill/cm-tiny.yaml", "--model.init_args.n_log_samples", "0",
           "--model.init_args.n_bias_samples", "0"],
    "ctm": ["--config", "experiments/distill/ctm-tiny.yaml", "--model.init_args.n_log_samples", "0",
            "--model.init_args.n_bias_samples", "0"],
    "clap": ["--config", "experiments/clap/tiny.yaml", "--model.init_args.channels", "[4, 8]",
             "--model.init_args.embed_dim", "16"],
}
RUN_DIRS = {"pretrain": "pretrain-tiny", "cm": "distill-cm-tiny", "ctm": "distill-ctm-tiny", "clap": "clap-tiny"}


def ddp_fit(stage, shards, tmp_path, steps, *extra):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "tests"), os.environ.get("PYTHONPATH", "")]),
           "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    cmd = [sys.executable, "-m", "ditto2.cli", "fit", *STAGES[stage], "--data.root", str(shards),
           "--data.batch_size", "2", "--data.eval_batch_size", "2", "--trainer.accelerator", "cpu",
           "--trainer.strategy", "ddp", "--trainer.devices", "2", "--trainer.max_steps", str(steps),
           "--trainer.max_time", "null", "--trainer.limit_val_batches", "1", "--trainer.val_check_interval", "2",
           "--trainer.enable_progress_bar", "false", "--checkpoint.every_n_train_steps=2",
           "--trainer.logger.init_args.save_dir", str(tmp_path / "logs"),
           "--trainer.callbacks+=ddp_probe.DDPProbe", "--trainer.callbacks.out", str(tmp_path / "probe"), *extra]
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return [json.loads((tmp_path / "probe" / f"rank{r}.json").read_text()) for r in (0, 1)]


def check_ddp(ranks, steps):
    assert [r["world_size"] for r in ranks] == [2, 2] and all(r["global_step"] == steps for r in ranks)
    for step, (a, b) in enumerate(zip(ranks[0]["batches"], ranks[1]["batches"])):
        assert not set(a) & set(b), f"step {step}: both ranks trained on {set(a) & set(b)}"
    assert ranks[0]["digest"] == ranks[1]["digest"], "the ranks' weights differ after the steps"


@pytest.mark.parametrize("stage", ["pretrain", "cm", "ctm", "clap"])
def test_ddp_two_ranks(stage, synth_tiny, teacher_tiny, tmp_path):
    extra = ["--model.init_args.teacher", str(teacher_tiny)] if stage in ("cm", "ctm") else []
    check_ddp(ddp_fit(stage, synth_tiny, tmp_path, 2, *extra), 2)
    checkpoints = list((tmp_path / "logs" / RUN_DIRS[stage]).rglob("*.ckpt"))
    assert [p.name for p in checkpoints] == ["last.ckpt"], checkpoints  # one checkpoint, written once
    if stage != "pretrain":
        return
    # resume: the same run goes on from its checkpoint, still in step across the ranks
    check_ddp(ddp_fit(stage, synth_tiny, tmp_path, 4, "--ckpt_path", "last", *extra), 4)
    assert torch.load(checkpoints[0], weights_only=False)["global_step"] == 4

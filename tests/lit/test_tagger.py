"""The tagger stage (a grader of text control, never a loss) through `ditto2 fit`, `ditto2 test` and `ditto2 export`."""
import pytest
import torch

from ditto2.cli import main
from ditto2.metrics.tags import load_tagger

SMALL = ["--model.init_args.width", "16", "--model.init_args.dilations", "[1, 2]"]


def args(cmd, shards, tmp_path, *extra):
    return [cmd, "--config", "experiments/tagger/tiny.yaml", "--data.root", str(shards), "--data.batch_size", "4",
            "--trainer.accelerator", "cpu", "--trainer.logger.init_args.save_dir", str(tmp_path / "logs"),
            "--trainer.max_time", "null", *SMALL, *extra]


def test_fast_dev_run_moves_the_weights(synth_tiny, tmp_path):
    from fit_checks import fast_dev_run_moves_the_weights

    fast_dev_run_moves_the_weights(args("fit", synth_tiny, tmp_path, "--trainer.fast_dev_run", "true",
                                        "--trainer.default_root_dir", str(tmp_path)))


def test_fit_test_export_and_grade(synth_tiny, tmp_path, capsys):
    from ditto2.lit.tagger import TaggerModule

    main(args("fit", synth_tiny, tmp_path, "--trainer.max_steps", "3", "--trainer.val_check_interval", "3",
              "--checkpoint.every_n_train_steps=3"))
    last = tmp_path / "logs" / "tagger-tiny" / "main" / "checkpoints" / "last.ckpt"
    assert torch.load(last, weights_only=False)["global_step"] == 3
    main(args("test", synth_tiny, tmp_path, "--ckpt_path", str(last)))
    printed = capsys.readouterr().out
    assert "test/genre_acc" in printed and "test/genre_acc_majority" in printed
    main(["export", str(last), str(tmp_path / "tagger")])
    grader = load_tagger(tmp_path / "tagger")
    module = TaggerModule.load_from_checkpoint(str(last), map_location="cpu").eval()
    mel = torch.randn(2, 1, 64, 256, generator=torch.Generator().manual_seed(0))
    for a, b in zip(grader.model(mel), module.model(mel)):
        assert torch.equal(a, b)


def test_null_tags_do_not_count(synth_tiny):
    """A field whose tag is null (id 0) adds nothing to the loss: the loss of a batch whose mood is all null is the
    same for any mood logits."""
    from ditto2.data.datamodule import MelShardDataModule
    from ditto2.lit.tagger import TaggerModule

    module = TaggerModule(MelShardDataModule(str(synth_tiny)).data_info(), width=8, dilations=(1,))
    logits = [torch.randn(3, n - 1) for n in module.model.sizes]
    tags = torch.tensor([[1, 0, 1], [2, 0, 1], [1, 0, 2]])
    other = [logits[0], torch.randn_like(logits[1]) * 10, logits[2]]
    assert module._losses(logits, tags) == pytest.approx(float(module._losses(other, tags)))
    expected = sum(torch.nn.functional.cross_entropy(logits[j], tags[:, j] - 1) for j in (0, 2))
    assert float(module._losses(logits, tags)) == pytest.approx(float(expected), rel=1e-6)

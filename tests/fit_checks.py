"""Checks on `ditto2 fit` runs shared by the stage tests (imported by name: tests/ is on the path)."""
import torch


def fast_dev_run_moves_the_weights(argv: list[str]):
    """``ditto2 fit`` with fast_dev_run through the real CLI: the first training loss is finite and the trained
    weights differ from the same config's seeded initial weights (one optimizer step happened)."""
    import math

    from ditto2.lit.cli import run_lightning_cli

    init = run_lightning_cli(argv[1:], run=False).model  # same config, same seed: the weights fit started from
    before = {k: v.detach().clone() for k, v in init.state_dict().items() if v.is_floating_point()}
    cli = run_lightning_cli(argv)
    loss = cli.trainer.callback_metrics.get("train/loss")
    assert loss is not None and math.isfinite(float(loss)), cli.trainer.callback_metrics
    after = cli.model.state_dict()
    moved = [k for k, v in before.items() if k in after and not torch.equal(v, after[k].detach().cpu())]
    assert moved, "fast_dev_run took no optimizer step"
    return cli

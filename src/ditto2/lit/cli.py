"""LightningCLI entry point: `ditto2 fit --config experiments/<stage>/<preset>.yaml [--ckpt_path last]`.

Every run gets the two callbacks all stages share as mapped arguments, so a preset or an overlay YAML
changes one value without repeating a callbacks list:
``checkpoint`` (``FinalModelCheckpoint``: last.ckpt every 250 steps and at the end) and ``lr_monitor``
(the learning rate per step), e.g. ``checkpoint: {every_n_train_steps: 100}``. What differs by stage
(EMA of the weights, its decay) stays in ``trainer.callbacks``.
"""
from __future__ import annotations

import pytorch_lightning as pl
from pytorch_lightning.callbacks import LearningRateMonitor
from pytorch_lightning.cli import LightningCLI

from ditto2.data.datamodule import MelShardDataModule
from ditto2.lit.callbacks import FinalModelCheckpoint

CHECKPOINT_DEFAULTS = {"save_last": True, "every_n_train_steps": 250, "save_top_k": 0, "save_on_exception": True}


class Ditto2CLI(LightningCLI):
    def add_arguments_to_parser(self, parser) -> None:
        # the data contract (mel config, statistics, vocabulary) flows from the shards into the model
        parser.link_arguments("data", "model.init_args.data_info", apply_on="instantiate",
                              compute_fn=lambda dm: dm.data_info())
        parser.add_lightning_class_args(FinalModelCheckpoint, "checkpoint")
        parser.set_defaults({f"checkpoint.{k}": v for k, v in CHECKPOINT_DEFAULTS.items()})
        parser.add_lightning_class_args(LearningRateMonitor, "lr_monitor")
        parser.set_defaults({"lr_monitor.logging_interval": "step"})


def run_lightning_cli(argv: list[str], run: bool = True) -> Ditto2CLI:
    """``run=False`` only parses and instantiates (argv then has no subcommand)."""
    return Ditto2CLI(
        pl.LightningModule, MelShardDataModule, subclass_mode_model=True, args=argv, run=run,
        save_config_kwargs={"overwrite": True}, parser_kwargs={"parser_mode": "omegaconf"},
    )

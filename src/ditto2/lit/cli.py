"""LightningCLI entry point: `ditto2 fit --config experiments/<stage>/<preset>.yaml [--ckpt_path last]`."""
from __future__ import annotations

import pytorch_lightning as pl
from pytorch_lightning.cli import LightningCLI

from ditto2.data.datamodule import MelShardDataModule


class Ditto2CLI(LightningCLI):
    def add_arguments_to_parser(self, parser) -> None:
        # the data contract (mel config, statistics, vocabulary) flows from the shards into the model
        parser.link_arguments("data", "model.init_args.data_info", apply_on="instantiate",
                              compute_fn=lambda dm: dm.data_info())


def run_lightning_cli(argv: list[str], run: bool = True) -> Ditto2CLI:
    """``run=False`` only parses and instantiates (argv then has no subcommand)."""
    return Ditto2CLI(
        pl.LightningModule, MelShardDataModule, subclass_mode_model=True, args=argv, run=run,
        save_config_kwargs={"overwrite": True}, parser_kwargs={"parser_mode": "omegaconf"},
    )

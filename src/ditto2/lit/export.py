"""`ditto2 export`: a ditto2 Lightning checkpoint -> a model bundle (``ditto2.models.bundle``)."""
from __future__ import annotations

from pathlib import Path

import pytorch_lightning as pl
import torch

from ditto2.models.bundle import save_bundle

# modules that moved since checkpoints were written: the path a checkpoint names -> where it lives now
MOVED = {"ditto2.clap.indomain.InDomainClapModule": "ditto2.lit.clap.InDomainClapModule"}


def checkpoint_to_bundle(ckpt_path: str | Path, out: str | Path, shards: str | None = None) -> Path:
    """Export the weights of a ditto2 Lightning checkpoint. With EMAWeightAveraging in the run, the
    checkpoint's state_dict holds the EMA weights, so those are what is exported."""
    ckpt = torch.load(str(ckpt_path), map_location="cpu", weights_only=False)
    module_path = ckpt.get("hyper_parameters", {}).get("_class_path") or ckpt.get("ditto2_module")
    if module_path is None:
        raise KeyError(f"{ckpt_path} was not written by a ditto2 LightningModule")
    mod_name, cls_name = MOVED.get(module_path, module_path).rsplit(".", 1)
    cls = getattr(__import__(mod_name, fromlist=[cls_name]), cls_name)
    module: pl.LightningModule = cls.load_from_checkpoint(str(ckpt_path), map_location="cpu")
    meta = {**module.bundle_meta(), "source_checkpoint": str(ckpt_path), "global_step": ckpt.get("global_step")}
    if shards and "held_out" not in meta["data"]:
        from ditto2.audio.mel import MelNormalizer
        from ditto2.data.datamodule import MelShardDataModule

        dm = MelShardDataModule(shards)
        if not dm.normalizer.matches(MelNormalizer.from_dict(meta["data"]["stats"])):
            raise ValueError(f"{shards} is not the shard set this model was trained on (other statistics)")
        meta["data"] = {**meta["data"], "held_out": dm.data_info()["held_out"]}
    return save_bundle(out, module.exported_model(), meta)


def load_checkpoint_generator(path: str | Path):
    """The base model of a pretraining checkpoint (its EMA weights when the run had EMA), ready to sample."""
    from ditto2.lit.pretrain import PretrainModule
    from ditto2.models.generator import generator_from

    module = PretrainModule.load_from_checkpoint(str(path), map_location="cpu")
    return generator_from(module.denoiser.eval(), module.bundle_meta())

"""A callback for the multi-process tests (imported by the `ditto2 fit` ranks: tests/ is on their PYTHONPATH): each
rank writes which clips it trained on and a digest of its weights, so the test can check what DDP guarantees."""
import hashlib
import json
from pathlib import Path

import pytorch_lightning as pl
import torch


def weights_digest(module: torch.nn.Module) -> str:
    h = hashlib.sha1()
    for name, value in sorted(module.state_dict().items()):
        if torch.is_tensor(value):
            h.update(name.encode())
            h.update(value.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


class DDPProbe(pl.Callback):
    def __init__(self, out: str):
        self.out, self.seen = Path(out), []

    def on_train_batch_start(self, trainer, module, batch, batch_idx) -> None:
        self.seen.append(list(batch["clip_id"]))

    def on_train_end(self, trainer, module) -> None:
        self.out.mkdir(parents=True, exist_ok=True)
        (self.out / f"rank{trainer.global_rank}.json").write_text(json.dumps({
            "rank": trainer.global_rank, "world_size": trainer.world_size, "global_step": trainer.global_step,
            "batches": self.seen, "digest": weights_digest(module)}))

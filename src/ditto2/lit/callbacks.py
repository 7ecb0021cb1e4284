"""``ModelCheckpoint`` that also keeps the last steps of a run.

Lightning's ModelCheckpoint(save_last=True, every_n_train_steps=N) skips the final save when it has saved
before, so a run stopped by ``max_time`` loses up to N−1 steps (the reference teacher: exported at
step 5500 of 5528), and with ``fast_dev_run`` it writes ``./checkpoints/last.ckpt``. This one writes
``last.ckpt`` at the end of every fit that ran past the last save, never under ``fast_dev_run``."""
from __future__ import annotations

from pytorch_lightning.callbacks import ModelCheckpoint


class FinalModelCheckpoint(ModelCheckpoint):
    def on_train_end(self, trainer, pl_module) -> None:
        if self.save_last and not self._should_skip_saving_checkpoint(trainer):
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))

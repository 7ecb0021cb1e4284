"""Silence the framework messages that are known and harmless here, so a terminal shows progress and
real errors. Each pattern names a message this project triggers on purpose or cannot act on."""
from __future__ import annotations

import logging
import os
import warnings

KNOWN_HARMLESS = (
    r".*isinstance\(treespec, LeafSpec\)` is deprecated.*",  # Lightning vs newer torch pytree API
    r".*module\(s\) in eval mode at the start of training.*",  # frozen teachers / surrogates stay in eval on purpose
    r".*does not have many workers.*",  # in-memory shards and ITO's one-item loader need none
    r".*smaller than the logging interval.*",
    r".*The number of training batches .* is smaller than.*",
    r".*Consider setting `persistent_workers=True`.*",
    r".*`training_step` returned `None`.*",
    r".*LightningCLI's args parameter is intended.*",  # `ditto2 fit` hands its own argv on, on purpose
)
QUIET_LOGGERS = ("pytorch_lightning.utilities.rank_zero", "pytorch_lightning.accelerators.cuda",
                 "lightning.pytorch.utilities.rank_zero", "lightning_fabric.utilities.seed")


def quiet() -> None:
    """Filter the known warnings, the Trainer's "GPU available / TPU available / tip" banner lines and the
    "Loading weights" bar transformers draws each time the in-domain CLAP loads its MiniLM tower."""
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    for pattern in KNOWN_HARMLESS:
        warnings.filterwarnings("ignore", message=pattern)
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)

"""One way to name a CLAP: a path. A folder holding a transformers ``ClapModel`` (``config.json``) is a
LAION CLAP; anything else is an in-domain CLAP bundle (a training checkpoint: ``ditto2.lit.clap``)."""
from __future__ import annotations

import hashlib
from pathlib import Path


def is_laion_dir(path: str | Path) -> bool:
    return (Path(path) / "config.json").is_file()


def load_embedder(path: str | Path):
    """-> a frozen AudioTextEmbedder."""
    if is_laion_dir(path):
        from ditto2.clap.embedder import LaionClapEmbedder

        return LaionClapEmbedder(path)
    from ditto2.clap.indomain import load_clap

    return load_clap(path)


def weights_digest(path: str | Path) -> str:
    """A short hash of the weights a CLAP path loads (cache keys of embeddings made with it)."""
    from ditto2.models.bundle import bundle_stem

    path = Path(path)
    if is_laion_dir(path):
        files = sorted(p for p in path.iterdir() if p.suffix in (".safetensors", ".bin"))
    else:
        base = bundle_stem(path)
        files = [path] if path.suffix == ".ckpt" else [base.with_suffix(".safetensors")]
    h = hashlib.sha1()
    for file in files:
        with open(file, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()[:12]

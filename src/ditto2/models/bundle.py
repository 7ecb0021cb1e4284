"""Exported models: weights as safetensors + a JSON config beside them. No pickle, no source ties.

A bundle ``NAME.safetensors`` + ``NAME.json`` holds everything to rebuild the denoiser and to read
and write its data: the UNet config, the EDM constants, the mel config, the normalization
statistics and the tag vocabulary.
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from safetensors.torch import load_file, save_file
from torch import nn

from ditto2.diffusion.consistency import CMStudent, CTMStudent
from ditto2.diffusion.edm import ConsistencyPrecond, EDMPrecond
from ditto2.nn.unet import UNet, UNetConfig

_KINDS = {"edm": (EDMPrecond, None), "cm": (ConsistencyPrecond, CMStudent), "ctm": (EDMPrecond, CTMStudent)}

BUNDLE_VERSION = 1


def unet_config_from_dict(d: dict) -> UNetConfig:
    d = dict(d)
    for key in ("channel_mults", "attn_levels"):
        if key in d:
            d[key] = tuple(d[key])
    return UNetConfig(**d)


def build_denoiser(meta: dict) -> nn.Module:
    """The saved module of a bundle: ``edm`` -> EDMPrecond (base model D_θ), ``cm`` -> CMStudent,
    ``ctm`` -> CTMStudent; all the same UNet class underneath."""
    edm = meta["edm"]
    net = UNet(unet_config_from_dict(meta["unet"]))
    kind = meta.get("kind", "edm")
    if kind not in _KINDS:
        raise ValueError(f"unknown model kind {kind!r} in bundle; known: {sorted(_KINDS)}")
    precond_cls, wrapper = _KINDS[kind]
    precond = precond_cls(net, sigma_data=edm["sigma_data"], sigma_min=edm["sigma_min"], sigma_max=edm["sigma_max"])
    return wrapper(precond) if wrapper else precond


def save_bundle(path: str | Path, denoiser: nn.Module, meta: dict) -> Path:
    """Write ``path``.safetensors and ``path``.json (``path`` without extension)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in denoiser.state_dict().items()}
    save_file(state, str(path.with_suffix(".safetensors")))
    path.with_suffix(".json").write_text(json.dumps({"version": BUNDLE_VERSION, **meta}, indent=1, sort_keys=True))
    return path


def bundle_stem(path: str | Path) -> Path:
    """A bundle's path without extension, whichever of its two files (or neither) ``path`` names."""
    path = Path(path)
    return path.with_suffix("") if path.suffix in (".safetensors", ".json") else path


def read_bundle(path: str | Path, map_location: str = "cpu", how_to_make: str = "") -> tuple[dict, dict]:
    """(state dict, meta) of the bundle at ``path`` (with or without extension); a clear error when a file
    is missing (``how_to_make``: the command that writes one)."""
    path = bundle_stem(path)
    for ext in (".safetensors", ".json"):
        if not path.with_suffix(ext).exists():
            hint = f"; {how_to_make}" if how_to_make else ""
            raise FileNotFoundError(f"model bundle {path.with_suffix(ext)} is missing{hint}")
    meta = json.loads(path.with_suffix(".json").read_text())
    return load_file(str(path.with_suffix(".safetensors")), device=map_location), meta


def load_bundle(path: str | Path, map_location: str = "cpu") -> tuple[nn.Module, dict]:
    """The denoiser (base model or student) of a bundle, in eval mode, and its meta."""
    state, meta = read_bundle(path, map_location)
    denoiser = build_denoiser(meta)
    denoiser.load_state_dict(state)
    return denoiser.eval(), meta


def unet_config_to_dict(cfg: UNetConfig) -> dict:
    return dataclasses.asdict(cfg)

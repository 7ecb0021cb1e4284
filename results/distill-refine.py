"""`python results/distill-refine.py STUDENT...`: the renoised decode of diagnosis §7 (the 1-step output, fresh noise
up to σ_r, one jump back) against the teacher. The deterministic two-jump rows through a chosen σ are attribution paths:
`python -m ditto2.bench.distill --attribute --null-tags --n 32 --seed 1235 --ctm STUDENT --out DIR` (S(0-12)S(12-19) ...)."""
import sys

import torch

from ditto2.controls.base import MelContext
from ditto2.controls.bias import FeatureBias
from ditto2.diffusion.edm import karras_sigmas
from ditto2.models.bundle import load_bundle
from ditto2.models.generator import load_generator

torch.set_num_threads(2)
gen = load_generator("checkpoints/tiny/teacher")
cfg, e, n = gen.mel, gen.meta["edm"], 32
noise = torch.randn((n, 1, cfg.n_mels, cfg.frames), generator=torch.Generator().manual_seed(1235))
tags = torch.zeros((n, len(gen.vocab.sizes)), dtype=torch.long)
grid = karras_sigmas(20, e["sigma_min"], e["sigma_max"])
with torch.no_grad():
    bias = FeatureBias(MelContext(gen.mel, gen.normalizer), gen.sample(noise, tags, w=2.0, steps=20))
    for path in sys.argv[1:]:
        student, _ = load_bundle(path)
        smin = grid[-1]
        x1 = student(noise * grid[0], grid[0], smin, tags, 2.0)
        for i in (10, 12, 14, 16, 17, 18):
            eps = torch.randn(x1.shape, generator=torch.Generator().manual_seed(7))
            r = bias(student(x1 + (grid[i] ** 2 - smin**2).sqrt() * eps, grid[i], smin, tags, 2.0))
            print(f"{path} renoise {float(grid[i]):.3f}: " + "  ".join(f"{k} {float(v):.4f}" for k, v in r.items()))

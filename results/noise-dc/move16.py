"""DITTO-2's intensity default (ctm-decode, M = 1, Adam 0.02, K = 70) on 16 validation items (seed 1000, the clips' own
tags): how the optimized noise's move z − z0 splits over scales; saves z0 and z for the other scripts (~2 min).
Run from the repository root: python results/noise-dc/move16.py [/tmp/ditto2-move16.pt]"""
import torch
from ditto2.ito.optimize import initial_noise, optimize_noise
from ditto2.ito.optimize import pooled_gradient as block_means  # each pool × pool block of x set to its mean
from common import MOVE, runs
B = 16
cfg, _, ps, _ = runs(B)
shape = (B, 1, ps.gen.mel.n_mels, ps.gen.mel.frames)
z0 = initial_noise(shape, cfg.seed)
r = optimize_noise(ps.surrogate, ps.composite, z0, [1] * 70, cfg.lr)
d = (r.z.detach() - z0)
print("shape", shape, "move RMS", d.pow(2).mean().sqrt().item())
for p in (2, 4, 8, 16, 32, 64):
    up = block_means(d, p)  # every block holds its mean, so its RMS is the block means' RMS
    print(f"block {p}: RMS of block means {up.pow(2).mean().sqrt():.4f}, share of move energy {up.pow(2).sum()/d.pow(2).sum():.3f}")
# per-item mean and std of z
print("z mean per item", r.z.mean((1,2,3))[:8])
print("z std per item", r.z.std((1,2,3))[:8])
print("global mean of move per item RMS", d.mean((1,2,3)).pow(2).mean().sqrt().item())
# time-only and freq-only structure
print("share in frame-constant (per bin) component", (d.mean(3, keepdim=True).expand_as(d).pow(2).sum()/d.pow(2).sum()).item())
print("share in bin-constant (per frame) component", (d.mean(2, keepdim=True).expand_as(d).pow(2).sum()/d.pow(2).sum()).item())
torch.save({"z0": z0, "z": r.z.detach()}, MOVE)

"""The control loss of the 1-step output when parts of DITTO-2's move are removed or kept alone (after move16.py).
Run from the repository root: python results/noise-dc/dc16.py [/tmp/ditto2-move16.pt]"""
import torch
from ditto2.ito.optimize import pooled_gradient as block_means  # each pool × pool block of x set to its mean
from common import MOVE, output, runs
B = 16
cfg, _, ps, _ = runs(B)
d = torch.load(MOVE)
z0, z = d["z0"], d["z"]
def show(name, x):
    l = ps.composite(output(ps, x, 1)); print(f"{name:40s} mean {l.mean():8.3f} median {l.median():8.3f}", flush=True)
show("z0", z0); show("z optimized", z)
dc = z.mean((1,2,3), keepdim=True) - z0.mean((1,2,3), keepdim=True)
show("z minus its DC move", z - dc)
dd = z - z0
for p in (64, 16, 4):
    up = block_means(dd, p)
    show(f"z0 + only the {p}x{p} block means of move", z0 + up)
    show(f"z minus the {p}x{p} block means of move", z - up)
bin_c = dd.mean(3, keepdim=True); fr_c = dd.mean(2, keepdim=True)
show("z0 + per-bin constant", z0 + bin_c); show("z0 + per-frame constant", z0 + fr_c)
show("z0 + per-bin + per-frame", z0 + bin_c + fr_c - dd.mean((2,3), keepdim=True))

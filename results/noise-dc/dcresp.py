"""Level response of the 1-step student and the 20-step teacher to a DC offset c added to the initial noise.
Run from the repository root after move16.py: python results/noise-dc/dcresp.py [/tmp/ditto2-move16.pt]"""
import time
import numpy as np
import torch
from common import MOVE, intensity, output, runs
B = 16
_, _, ps, pt = runs(B, teacher=True)
z0 = torch.load(MOVE)["z0"]
ctl = intensity(ps)
def lev(run, x, m):
    return ctl.level_db(output(run, x, m)).mean(-1).flatten()
b0s = lev(ps, z0, 1); b0t = lev(pt, z0, 20)
print("c      student dLevel (mean, sd)   teacher dLevel (mean, sd)")
for c in (-0.1, -0.05, -0.02, 0.02, 0.05, 0.1):
    t = time.time()
    ds = lev(ps, z0 + c, 1) - b0s; dt = lev(pt, z0 + c, 20) - b0t
    print(f"{c:+.2f}  {ds.mean():+7.2f} {ds.std():5.2f}   {dt.mean():+7.2f} {dt.std():5.2f}   corr {np.corrcoef(ds, dt)[0,1]:+.2f} ({time.time()-t:.0f}s)", flush=True)

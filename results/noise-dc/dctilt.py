"""Spectral tilt (mean log-mel of the top quarter of bands minus the bottom eighth) of outputs whose noise got a DC offset,
student 1 step and teacher 20 steps, against c = 0; and of DITTO-2's optimized noise and its DC part alone.
Run from the repository root after move16.py: python results/noise-dc/dctilt.py [/tmp/ditto2-move16.pt]"""
import torch
from common import MOVE, output, runs, tilt as tilt_of
B = 16
_, _, ps, pt = runs(B, teacher=True)
d = torch.load(MOVE); z0, z = d["z0"], d["z"]
def tilt(run, x, m):
    return tilt_of(output(run, x, m))
s0, t0 = tilt(ps, z0, 1), tilt(pt, z0, 20)
print(f"c = 0: tilt student {s0.mean():+.3f}, teacher {t0.mean():+.3f} (normalized log-mel units)")
for c in (-0.05, -0.02, 0.02, 0.05):
    print(f"c {c:+.2f}: d tilt student {(tilt(ps, z0 + c, 1) - s0).mean():+.3f}, teacher {(tilt(pt, z0 + c, 20) - t0).mean():+.3f}", flush=True)
dc = z.mean((1, 2, 3), keepdim=True) - z0.mean((1, 2, 3), keepdim=True)
print(f"DITTO-2 optimized z: d tilt student {(tilt(ps, z, 1) - s0).mean():+.3f}, teacher {(tilt(pt, z, 20) - t0).mean():+.3f}")
print(f"z0 + its DC move only: d tilt student {(tilt(ps, z0 + dc, 1) - s0).mean():+.3f}, teacher {(tilt(pt, z0 + dc, 20) - t0).mean():+.3f}")
print("DC moves per item:", [round(v, 3) for v in dc.flatten().tolist()])

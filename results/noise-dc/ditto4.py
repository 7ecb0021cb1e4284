"""DITTO (teacher 20 steps, Adam 5e-3) and DITTO-2 (ctm-decode, M = 1, Adam 0.02), K = 70, intensity, on the first 4
validation items of move16.py (seed 1000): how much of each move is the noise's DC, and the outputs' level and tilt.
Run from the repository root: python results/noise-dc/ditto4.py (~6 min alone on 2 cores, DITTO's steps nearly all of it;
DITTO-2 is rerun on the same batch of 4 so both methods see one batch shape)"""
import time
import torch
from ditto2.ito.optimize import initial_noise, optimize_noise
from common import MOVE, intensity, output, runs, tilt as tilt_of
B = 4
cs, ct, ps, pt = runs(B, teacher=True)
z0 = initial_noise((B, 1, ps.gen.mel.n_mels, ps.gen.mel.frames), cs.seed)
print("z0 equals move16's first items:", end=" ")
try:
    print(torch.equal(torch.load(MOVE)["z0"][:B], z0))
except FileNotFoundError:
    print("(move16.py not run)")
t = time.time()
z2 = optimize_noise(ps.surrogate, ps.composite, z0, [1] * 70, cs.lr).z.detach()
print(f"DITTO-2 {time.time() - t:.0f}s", flush=True)
t = time.time()
z1 = optimize_noise(pt.surrogate, pt.composite, z0, [1] * 70, ct.lr).z.detach()
print(f"DITTO {time.time() - t:.0f}s", flush=True)
ctl = intensity(ps)


def stats(name, run, z, m):
    d = z - z0
    dc = d.mean((1, 2, 3))
    mel, mel0 = output(run, z, m), output(run, z0, m)
    loss = run.composite(mel)
    print(f"{name}: move RMS {d.pow(2).mean().sqrt():.4f}, DC move {[round(v, 3) for v in dc.tolist()]}, "
          f"DC share of move energy {(dc.pow(2).sum() * d[0].numel() / d.pow(2).sum()):.2f}, "
          f"loss {[round(v, 3) for v in loss.tolist()]} dB², "
          f"level change {[round(v, 2) for v in (ctl.level_db(mel) - ctl.level_db(mel0)).mean(-1).flatten().tolist()]} dB, "
          f"tilt change {[round(v, 3) for v in (tilt_of(mel) - tilt_of(mel0)).tolist()]}")


stats("DITTO-2 (student 1 step)", ps, z2, 1)
stats("DITTO   (teacher 20 steps)", pt, z1, 20)
d1, d2 = (z1 - z0).flatten(1), (z2 - z0).flatten(1)
print("cosine of the two moves per item:", [round(v, 2) for v in torch.nn.functional.cosine_similarity(d1, d2).tolist()])
print("cosine with the DC removed:", [round(v, 2) for v in torch.nn.functional.cosine_similarity(
    d1 - d1.mean(1, keepdim=True), d2 - d2.mean(1, keepdim=True)).tolist()])

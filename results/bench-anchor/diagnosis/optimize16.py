"""DITTO and DITTO-2 (intensity defaults: teacher 20 steps Adam 5e-3; ctm-decode M = 1 Adam 0.02; K = 70) on the same
16 validation items (seed 1000, the clips' own tags, DITTO curves at held-out clips' levels); saves z0 and both optimized
noises for compare16.py. Run from the repository root (~30 min on 2 cores, DITTO's 70 steps nearly all of it):
    python results/bench-anchor/diagnosis/optimize16.py /tmp/ditto2-z16.pt"""
import sys, torch, time
from ditto2.runs.ito import load_config, build_run
from ditto2.ito.optimize import initial_noise, optimize_noise
OUT = sys.argv[1] if len(sys.argv) > 1 else "/tmp/ditto2-z16.pt"
B = 16
base = ["tags=reference", "shards=data/shards/debian-tiny", "split=val", f"batch={B}", "seed=1000", "ctm=checkpoints/tiny/ctm-decode"]
cfg_s = load_config("experiments/ito/intensity.yaml", base + ["method=ditto2-ctm"])
cfg_t = load_config("experiments/ito/intensity.yaml", base + ["method=ditto"])
ps = build_run(cfg_s); pt = build_run(cfg_t, gen=ps.gen)
shape = (B, 1, ps.gen.mel.n_mels, ps.gen.mel.frames)
z0 = initial_noise(shape, cfg_s.seed)
r2 = optimize_noise(ps.surrogate, ps.composite, z0, [1] * 70, cfg_s.lr)
torch.save({"z0": z0, "z2": r2.z.detach(), "h2": r2.history}, OUT)
t0 = time.time()
r1 = optimize_noise(pt.surrogate, pt.composite, z0, [1] * 70, cfg_t.lr, on_step=lambda k, l: print(k, f"{l.mean():.2f}", f"{time.time()-t0:.0f}s", flush=True))
torch.save({"z0": z0, "z2": r2.z.detach(), "h2": r2.history, "z1": r1.z.detach(), "h1": r1.history}, OUT)
print("done")

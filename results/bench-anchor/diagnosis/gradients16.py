"""Does the student's ITO gradient point where the teacher's does along DITTO-2's path? On the 16 validation items of
optimize16.py: DITTO-2's intensity optimization (1-step ctm-decode, Adam 0.02), and at steps 5 / 20 / 70 the cosine
between ∇z of the control loss through the student (M = 1) and through the teacher's 20-step sampler, with both losses.
Run from the repository root: python results/bench-anchor/diagnosis/gradients16.py   (~3 min on 2 cores)"""
import torch
from ditto2.runs.ito import load_config, build_run
from ditto2.ito.optimize import initial_noise
B = 16
base = ["tags=reference", "shards=data/shards/debian-tiny", "split=val", f"batch={B}", "seed=1000", "ctm=checkpoints/tiny/ctm-decode"]
cfg_s = load_config("experiments/ito/intensity.yaml", base + ["method=ditto2-ctm"])
cfg_t = load_config("experiments/ito/intensity.yaml", base + ["method=ditto"])
print("lr", cfg_s.lr, "m", cfg_s.m, "T", cfg_s.decode_steps, "teacher lr", cfg_t.lr)
ps = build_run(cfg_s); pt = build_run(cfg_t, gen=ps.gen)
shape = (B, 1, ps.gen.mel.n_mels, ps.gen.mel.frames)
z0 = initial_noise(shape, cfg_s.seed)
def grad(sur, comp, z, m):
    z = z.detach().clone().requires_grad_(True)
    loss = comp(sur.optimize_forward(z, m)); loss.sum().backward()
    return z.grad.detach(), loss.detach()
cos = lambda a, b: torch.nn.functional.cosine_similarity(a.flatten(1), b.flatten(1), dim=1)
snaps = {}  # DITTO-2's noise after 5, 20 and 70 Adam steps
z = torch.nn.Parameter(z0.clone()); opt = torch.optim.Adam([z], lr=cfg_s.lr)
for k in range(70):
    opt.zero_grad(); l = ps.composite(ps.surrogate.optimize_forward(z, 1)); l.sum().backward(); opt.step()
    if k + 1 in (5, 20, 70): snaps[k + 1] = z.detach().clone()
for k, zk in snaps.items():
    gS, lS = grad(ps.surrogate, ps.composite, zk, 1)
    gT, lT = grad(pt.surrogate, pt.composite, zk, None)
    c = cos(gS, gT)
    print(f"step {k}: student loss {lS.mean():.2f} (med {lS.median():.2f}) teacher loss at same z {lT.mean():.2f} (med {lT.median():.2f}); grad cos {c.mean():.3f} med {c.median():.3f}; |dz| {(zk-z0).flatten(1).norm(dim=1).mean()/ (zk[0].numel()**0.5):.3f}")


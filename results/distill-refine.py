"""`python results/distill-refine.py STUDENT...`: 1-jump, 2-jump-via-σ and renoised decodes against the teacher (diagnosis §7)."""
import torch, sys
torch.set_num_threads(2)
from ditto2.models.generator import load_generator
from ditto2.models.bundle import load_bundle
from ditto2.controls.base import MelContext
from ditto2.controls.bias import FeatureBias, local_detail
from ditto2.diffusion.edm import karras_sigmas
gen = load_generator("checkpoints/tiny/teacher")
cfg = gen.mel; e = gen.meta["edm"]
g = torch.Generator().manual_seed(1235)
n = 32
noise = torch.randn((n, 1, cfg.n_mels, cfg.frames), generator=g)
tags = torch.zeros((n, len(gen.vocab.sizes)), dtype=torch.long)
ctx = MelContext(gen.mel, gen.normalizer)
grid = karras_sigmas(20, e["sigma_min"], e["sigma_max"])
print("grid", [round(float(s), 3) for s in grid])
with torch.no_grad():
    ref = gen.sample(noise, tags, w=2.0, steps=20)
    fb = FeatureBias(ctx, ref)
    for path in sys.argv[1:]:
        st, meta = load_bundle(path)
        smin = grid[-1]
        x1 = st(noise * grid[0], grid[0], smin, tags, 2.0)
        def rep(name, out):
            r = fb(out)
            print(f"{path} {name}: level {float(r['level_db']):+.2f}  detail {float(r['detail_ratio']):.2f}  mse {float(r['mse']):.4f} chroma {float(r['chroma_agree']):.3f} ssm {float(r['ssm_mse']):.4f}", flush=True)
        rep("1-step", x1)
        for i in (10, 12, 14, 16, 17, 18):
            sr = grid[i]
            eps = torch.randn(x1.shape, generator=torch.Generator().manual_seed(7))
            xr = x1 + (sr**2 - smin**2).sqrt() * eps
            rep(f"1-step + renoise {float(sr):.3f} + jump", st(xr, sr, smin, tags, 2.0))
            xd = st(noise * grid[0], grid[0], sr, tags, 2.0)
            rep(f"det 2-jump via {float(sr):.3f}", st(xd, sr, smin, tags, 2.0))

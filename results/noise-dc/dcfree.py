"""DITTO-2 intensity default on move16.py's 16 items with the DC part of each step's gradient scaled by alpha (1 = as is):
does taking the DC out of the path make it move like DITTO's? Run from the repository root (~6 min on 2 cores)."""
import time
import ditto2.ito.optimize as O
from common import optimize, output, runs, tilt
B = 16
cs, _, ps, _ = runs(B)
z0 = O.initial_noise((B, 1, ps.gen.mel.n_mels, ps.gen.mel.frames), cs.seed)
pooled = O.pooled_gradient
mel0 = output(ps, z0, 1)


def dc_scaled(alpha):
    """The engine's per-step gradient transform (pooled_gradient, called after backward) with each item's mean scaled
    by alpha: the hook optimize_noise offers a gradient, swapped in here for this diagnosis only."""
    def transform(g, pool):
        h = pooled(g, pool)
        return h - (1 - alpha) * h.mean((1, 2, 3), keepdim=True)
    return transform


for alpha in (1.0, 0.0, 0.1):
    O.pooled_gradient = dc_scaled(alpha)
    t = time.time()
    z, mel, loss, d = optimize(ps, cs, z0)
    print(f"alpha {alpha}: loss mean {loss.mean():.3f} median {loss.median():.3f}, move RMS {d.pow(2).mean().sqrt():.3f}, "
          f"DC RMS {d.mean((1,2,3)).pow(2).mean().sqrt():.4f}, |tilt change| mean {(tilt(mel)-tilt(mel0)).abs().mean():.3f} ({time.time()-t:.0f}s)", flush=True)

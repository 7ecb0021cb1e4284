"""DITTO-2 intensity default on move16.py's 16 items with the noise projected after every Adam step so that a part of
it never moves: its DC (the item's mean), its per-bin means over frames (a static spectral offset), or its per-frame
means over bins. Can the 1-step path meet the curve without the knob that brightens (dcresp / dctilt), and does the
timbre then stay (tilt change per dB of level change, DITTO's ≤ 0.08 on ditto4's items)? ~8 min on 2 cores.
Run from the repository root: python results/noise-dc/dcproj.py"""
import time

import torch

import ditto2.ito.optimize as O
from common import intensity, optimize, output, runs, tilt
from ditto2.ito.optimizers import noise_optimizer

B = 16
cs, _, ps, _ = runs(B)
z0 = O.initial_noise((B, 1, ps.gen.mel.n_mels, ps.gen.mel.frames), cs.seed)
mel0 = output(ps, z0, 1)
level = intensity(ps).level_db
PARTS = {"none": None, "dc": (1, 2, 3), "bin means": (3,), "frame means": (2,)}


def projected(dims):
    """noise_optimizer whose step() afterwards resets the noise's means over ``dims`` to z0's (for this diagnosis)."""
    def make(name, z, lr, betas):
        opt = noise_optimizer(name, z, lr, betas)
        step = opt.step

        def step_and_project(*args, **kwargs):
            out = step(*args, **kwargs)
            if dims is not None:
                with torch.no_grad():
                    z.sub_(z.mean(dims, keepdim=True) - z0.mean(dims, keepdim=True))
            return out
        opt.step = step_and_project
        return opt
    return make


for name, dims in PARTS.items():
    O.noise_optimizer = projected(dims)
    t = time.time()
    z, mel, loss, d = optimize(ps, cs, z0)
    dl = (level(mel) - level(mel0)).mean(-1).flatten()
    dt = tilt(mel) - tilt(mel0)
    print(f"{name:11s}: loss mean {loss.mean():.3f} median {loss.median():.3f}, move RMS {d.pow(2).mean().sqrt():.3f}, "
          f"DC RMS {d.mean((1, 2, 3)).pow(2).mean().sqrt():.4f}, |level change| mean {dl.abs().mean():.2f} dB, "
          f"|tilt change| mean {dt.abs().mean():.3f}, tilt change per +10 dB {10 * (dt * dl).sum() / dl.pow(2).sum():+.3f} "
          f"({time.time() - t:.0f}s)", flush=True)

"""What this folder's scripts share: the intensity defaults of DITTO-2 (ctm-decode, M = 1, Adam 0.02) and DITTO (teacher
20 steps, Adam 5e-3) on validation items (seed 1000, the clips' own tags), where move16.py keeps its noises, and the
pieces the scripts read a run with."""
import sys

import torch

from ditto2.controls.intensity import IntensityControl
from ditto2.ito import optimize as engine  # looked up at each call: a script's swapped-in hooks take effect
from ditto2.runs.ito import build_run, load_config

MOVE = sys.argv[1] if len(sys.argv) > 1 else "/tmp/ditto2-move16.pt"


def runs(batch: int, teacher: bool = False):
    """(DITTO-2 config, DITTO config, DITTO-2 run, DITTO run or None) for ``batch`` items."""
    base = ["tags=reference", "shards=data/shards/debian-tiny", "split=val", f"batch={batch}", "seed=1000",
            "ctm=checkpoints/tiny/ctm-decode"]
    cs = load_config("experiments/ito/intensity.yaml", base + ["method=ditto2-ctm"])
    ct = load_config("experiments/ito/intensity.yaml", base + ["method=ditto"])
    ps = build_run(cs)
    return cs, ct, ps, (build_run(ct, gen=ps.gen) if teacher else None)


def output(run, z, m):
    """The run's surrogate output of noise z through m steps (the student's 1 step, or DITTO's 20), no gradient."""
    with torch.no_grad():
        return run.surrogate.optimize_forward(z, m)


def intensity(run) -> IntensityControl:
    return [m for m in run.composite.modules() if isinstance(m, IntensityControl)][0]


def tilt(mel):
    """Mean normalized log-mel of the top quarter of bands minus the bottom eighth, per item."""
    f = mel.shape[2]
    return mel[:, 0, -f // 4:].mean((1, 2)) - mel[:, 0, :f // 8].mean((1, 2))


def optimize(run, cfg, z0):
    """The DITTO-2 default's K = 70 Adam steps from z0 through the 1-step student (whatever optimize_noise and the
    engine's hooks are at the time of the call) -> (optimized z, its output mel, per-item loss, move z − z0)."""
    z = engine.optimize_noise(run.surrogate, run.composite, z0, [1] * 70, cfg.lr).z.detach()
    mel = output(run, z, 1)
    with torch.no_grad():
        loss = run.composite(mel)
    return z, mel, loss, z - z0

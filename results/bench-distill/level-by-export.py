"""Mean level bias (dB) and mel MSE of several CTM bundles at 1 / 2 / 4 deterministic steps (null tags, w = 2) against
the teacher's 20-step guided output from the same N unit noises of SEED, ± the standard error over chunks of 16 noises:
the numbers of results/distill-diagnosis.md section 8 (seed 7: validation noises that chose the export; seed 8: test).
    python results/bench-distill/level-by-export.py SEED N BUNDLE [BUNDLE ...]"""
import sys

import torch

from ditto2.controls import MelContext
from ditto2.controls.bias import FeatureBias
from ditto2.diffusion.consistency import decode_sigmas
from ditto2.diffusion.edm import karras_sigmas
from ditto2.models.bundle import load_bundle
from ditto2.models.generator import load_generator

CHUNK = 16


def main(seed: int, n: int, paths: list[str]) -> None:
    torch.set_num_threads(2)
    gen = load_generator("checkpoints/tiny/teacher")
    noise = torch.randn((n, 1, gen.mel.n_mels, gen.mel.frames), generator=torch.Generator().manual_seed(seed))
    tags = torch.zeros((n, len(gen.vocab.sizes)), dtype=torch.long)
    ctx, e = MelContext(gen.mel, gen.normalizer), gen.meta["edm"]
    chunks = range(0, n, CHUNK)
    with torch.no_grad():
        ref = torch.cat([gen.sample(noise[i:i + CHUNK], tags[i:i + CHUNK], w=2.0, steps=20) for i in chunks])
        for path in paths:
            student, meta = load_bundle(path)
            grid = karras_sigmas(meta.get("grid_steps", 20), e["sigma_min"], e["sigma_max"])
            cells = []
            for k in (1, 2, 4):
                sig = decode_sigmas(k, grid)
                out = torch.cat([student.sample(noise[i:i + CHUNK], sig, tags[i:i + CHUNK], 2.0, gamma=0.0,
                                                generator=torch.Generator().manual_seed(0)) for i in chunks])
                level = torch.tensor([float(FeatureBias(ctx, ref[i:i + CHUNK])(out[i:i + CHUNK])["level_db"]) for i in chunks])
                mse = float((out - ref).pow(2).mean())
                cells.append(f"{k}: {level.mean():+.2f}±{level.std() / len(level) ** 0.5:.2f} dB mse {mse:.4f}")
            print(path, "  ".join(cells), flush=True)


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]), sys.argv[3:])

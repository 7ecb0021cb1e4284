"""`make bench-distill`: how close k-step students get to the teacher's 20-step guided output.

For a fixed batch of unit noises and tags, mel-space MSE between the teacher's T=20 guided Euler
sample and: the CM student (1/2/4 steps, multistep), the CTM student (1/2/4 steps, several γ), and,
as the reference point distillation must beat, the teacher itself with 1/2/4 Euler steps.
Results: results/bench-distill.{json,md}.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from ditto2.diffusion.consistency import cm_sample, ctm_gamma_sample, decode_sigmas
from ditto2.diffusion.edm import karras_sigmas
from ditto2.lit.bundle import load_bundle
from ditto2.lit.generate import load_generator


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--teacher", default="checkpoints/tiny/teacher")
    p.add_argument("--cm", default="checkpoints/tiny/cm")
    p.add_argument("--ctm", default="checkpoints/tiny/ctm")
    p.add_argument("--n", type=int, default=64)
    p.add_argument("--w", type=float, default=2.0)
    p.add_argument("--steps", type=int, nargs="*", default=[1, 2, 4])
    p.add_argument("--gammas", type=float, nargs="*", default=[0.0, 0.1, 0.2, 0.35, 1.0])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--chunk", type=int, default=16)
    p.add_argument("--out", default="results/bench-distill")
    args = p.parse_args(argv)
    gen = load_generator(args.teacher)
    g = torch.Generator().manual_seed(args.seed)
    cfg = gen.mel
    noise = torch.randn((args.n, 1, cfg.n_mels, cfg.frames), generator=g)
    sizes = gen.vocab.sizes
    tags = torch.stack([torch.randint(0, s, (args.n,), generator=g) for s in sizes], dim=1)
    e = gen.meta["edm"]

    def batched(fn):
        return torch.cat([fn(noise[i : i + args.chunk], tags[i : i + args.chunk]) for i in range(0, args.n, args.chunk)])

    rows, t0 = [], time.time()
    with torch.no_grad():
        ref = batched(lambda z, c: gen.sample(z, c, w=args.w, steps=20))
        for k in args.steps:
            out = batched(lambda z, c: gen.sample(z, c, w=args.w, steps=k + 1))  # k+1 sigmas incl. σ_min → k+1 evals
            rows.append({"model": "teacher (Euler, no distillation)", "steps": k + 1, "gamma": None, "mse": _mse(out, ref)})
        for kind in ("cm", "ctm"):
            path = getattr(args, kind)
            if not Path(path + ".safetensors").exists():
                print(f"skipping {kind}: no bundle at {path}")
                continue
            student, meta = load_bundle(path)
            grid = karras_sigmas(meta.get("grid_steps", 20), e["sigma_min"], e["sigma_max"])
            for k in args.steps:
                sig = decode_sigmas(k, grid)
                for gamma in (args.gammas if kind == "ctm" else [None]):
                    gen_noise = torch.Generator().manual_seed(args.seed + 1)
                    if kind == "cm":
                        fn = lambda z, c: cm_sample(lambda x, s: student(x, s, c, args.w), z * sig[0], sig, gen_noise)
                    else:
                        fn = lambda z, c: ctm_gamma_sample(lambda x, t, s: student(x, t, s, c, args.w), z * sig[0], sig,
                                                           gamma, gen_noise)
                    rows.append({"model": kind.upper(), "steps": k, "gamma": gamma, "mse": _mse(batched(fn), ref)})
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    meta = {"n": args.n, "w": args.w, "teacher": args.teacher, "seconds": round(time.time() - t0, 1),
            "reference": "teacher guided Euler, 20 steps", "data_var": float(ref.var())}
    (out / "results.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
    lines = [f"# Distillation fidelity: mel MSE to the teacher's 20-step guided sample ({args.n} noises, w={args.w})",
             "", f"Variance of the reference mels: {meta['data_var']:.4f}", "",
             "| model | steps | γ | MSE |", "|---|---|---|---|"]
    lines += [f"| {r['model']} | {r['steps']} | {'' if r['gamma'] is None else r['gamma']} | {r['mse']:.4f} |" for r in rows]
    (out / "results.md").write_text("\n".join(lines) + "\n")
    print((out / "results.md").read_text())
    return 0


def _mse(a: torch.Tensor, b: torch.Tensor) -> float:
    return round(float((a - b).pow(2).mean()), 5)


if __name__ == "__main__":
    raise SystemExit(main())

"""`make bench-distill`: how close k-step students get to the teacher's 20-step guided output.

For a fixed batch of unit noises and tags (``--null-tags``: all null, as ITO without tags runs),
mel-space MSE between the teacher's T=20 guided Euler sample and: the CM student (1/2/4 steps,
multistep), the CTM student (1/2/4 steps, several γ), and, as the reference point distillation must
beat, the teacher itself with 1/2/4 Euler steps (what a student is at initialization). Beside the MSE,
the step-count bias on the controls' own features (``controls.bias.FeatureBias``): mean level
difference in dB (± its standard error over the ``--chunk``-noise chunks), chroma argmax agreement, SSM
MSE. ``--ctm A B ...`` scores several CTM bundles (e.g. a run's exports by step) on the same noises.
Results: results/bench-distill/results.{json,md}.

``--attribute``: where a CTM's step-count bias comes from. Each row replaces part of the teacher's
20-step path by student jumps over the same grid interval (S(i-j): one student jump from grid
point i to j; T(i-j): the teacher's guided Euler steps from i to j), so a bias that appears with one
jump and not without it belongs to that jump. Results: attribution.{json,md}.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from ditto2.controls import MelContext
from ditto2.controls.bias import FeatureBias, box_blur
from ditto2.diffusion.consistency import decode_sigmas
from ditto2.diffusion.edm import karras_sigmas
from ditto2.models.bundle import load_bundle
from ditto2.models.generator import load_generator


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--teacher", default="checkpoints/tiny/teacher")
    p.add_argument("--cm", default="checkpoints/tiny/cm")
    p.add_argument("--ctm", nargs="+", default=["checkpoints/tiny/ctm"],
                   help="one or more CTM bundles (several: rows named CTM <bundle>; --attribute takes the first)")
    p.add_argument("--n", type=int, default=64)
    p.add_argument("--w", type=float, default=2.0)
    p.add_argument("--steps", type=int, nargs="*", default=[1, 2, 4])
    p.add_argument("--gammas", type=float, nargs="*", default=[0.0, 0.1, 0.2, 0.35, 1.0])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--chunk", type=int, default=16)
    p.add_argument("--null-tags", action="store_true", help="all tags null (ITO without tags)")
    p.add_argument("--attribute", action="store_true", help="only the CTM jump attribution (see above)")
    p.add_argument("--out", default="results/bench-distill")
    args = p.parse_args(argv)
    gen = load_generator(args.teacher)
    g = torch.Generator().manual_seed(args.seed)
    cfg = gen.mel
    noise = torch.randn((args.n, 1, cfg.n_mels, cfg.frames), generator=g)
    sizes = gen.vocab.sizes
    tags = torch.stack([torch.randint(0, s, (args.n,), generator=g) for s in sizes], dim=1)
    if args.null_tags:
        tags.zero_()
    ctx = MelContext(gen.mel, gen.normalizer)
    e = gen.meta["edm"]

    def batched(fn):
        return torch.cat([fn(noise[i : i + args.chunk], tags[i : i + args.chunk]) for i in range(0, args.n, args.chunk)])

    if args.attribute:
        return attribute(gen, args.ctm[0], noise, tags, args.w, ctx, Path(args.out))
    rows, t0 = [], time.time()
    with torch.no_grad():
        ref = batched(lambda z, c: gen.sample(z, c, w=args.w, steps=20))
        bias = FeatureBias(ctx, ref)
        chunks = [FeatureBias(ctx, ref[i : i + args.chunk]) for i in range(0, args.n, args.chunk)]

        def features(out):  # the features' bias, and the level's standard error over the chunks
            level = torch.tensor([float(b(out[i * args.chunk : (i + 1) * args.chunk])["level_db"])
                                  for i, b in enumerate(chunks)])
            se = float(level.std() / len(level) ** 0.5) if len(level) > 1 else float("nan")
            return {**_bias(bias, out), "level_se_db": round(se, 4)}
        for k in args.steps:
            out = batched(lambda z, c: gen.sample(z, c, w=args.w, steps=k + 1))  # k+1 sigmas incl. σ_min → k+1 evals
            rows.append({"model": "teacher (Euler, no distillation)", "steps": k + 1, "gamma": None, "mse": _mse(out, ref),
                         **features(out)})
        for k in (3, 5):  # what blur alone does to the features: the level follows the detail energy
            out = box_blur(ref, k)
            rows.append({"model": f"teacher's output, {k}×{k} box blur", "steps": 20, "gamma": None, "mse": _mse(out, ref),
                         **features(out)})
        students = [("CM", args.cm)] + [("CTM" if len(args.ctm) == 1 else f"CTM {p}", p) for p in args.ctm]
        for name, path in students:
            kind = name.split()[0].lower()
            if not Path(path + ".safetensors").exists():
                print(f"skipping {kind}: no bundle at {path}")
                continue
            student, meta = load_bundle(path)
            grid = karras_sigmas(meta.get("grid_steps", 20), e["sigma_min"], e["sigma_max"])
            for k in args.steps:
                sig = decode_sigmas(k, grid)
                for gamma in (args.gammas if kind == "ctm" else [None]):
                    gen_noise = torch.Generator().manual_seed(args.seed + 1)
                    out = batched(lambda z, c: student.sample(z, sig, c, args.w, gamma=gamma, generator=gen_noise))
                    rows.append({"model": name, "steps": k, "gamma": gamma, "mse": _mse(out, ref), **features(out)})
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    meta = {"n": args.n, "w": args.w, "teacher": args.teacher, "cm": args.cm, "ctm": args.ctm,
            "null_tags": args.null_tags, "seconds": round(time.time() - t0, 1),
            "reference": "teacher guided Euler, 20 steps", "data_var": float(ref.var())}
    (out / "results.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
    tags_note = "null tags" if args.null_tags else "random tags"
    lines = [f"# Distillation fidelity: mel MSE to the teacher's 20-step guided sample "
             f"({args.n} noises, {tags_note}, w={args.w})",
             "", f"Variance of the reference mels: {meta['data_var']:.4f}. Level bias: mean smoothed level minus the "
             "teacher's (dB; |·| = per item); chroma: argmax agreement; SSM: MFCC self-similarity MSE; detail: local detail "
             "energy over the teacher's (``controls.bias.local_detail``; < 1 smoother, > 1 rougher).", "",
             "| model | steps | γ | MSE | level bias dB | ± SE | |level| dB | chroma agree | SSM MSE | detail |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    lines += [f"| {r['model']} | {r['steps']} | {'' if r['gamma'] is None else r['gamma']} | {r['mse']:.4f} | "
              f"{r['level_db']:+.2f} | {r['level_se_db']:.2f} | {r['level_abs_db']:.2f} | {r['chroma_agree']:.3f} | "
              f"{r['ssm_mse']:.4f} | {r['detail_ratio']:.2f} |" for r in rows]
    (out / "results.md").write_text("\n".join(lines) + "\n")
    print((out / "results.md").read_text())
    return 0


ATTRIBUTION_PATHS = (("S", 0, 19),), (("S", 0, 10), ("S", 10, 19)), (("S", 0, 10), ("T", 10, 19)), \
    (("T", 0, 10), ("S", 10, 19)), (("T", 0, 5), ("S", 5, 19)), (("T", 0, 14), ("S", 14, 19)), \
    (("S", 0, 12), ("S", 12, 19)), (("S", 0, 14), ("S", 14, 19))  # two jumps through a lower σ (0.69, 0.20)


@torch.no_grad()
def attribute(gen, ctm_path: str, noise, tags, w: float, ctx, out: Path) -> int:
    from ditto2.diffusion.consistency import teacher_step

    student, meta = load_bundle(ctm_path)
    e = gen.meta["edm"]
    grid = karras_sigmas(meta.get("grid_steps", 20), e["sigma_min"], e["sigma_max"])
    last = len(grid) - 1
    w_col = torch.full((len(noise),), w)

    def run(path):
        x = noise * grid[0]
        for kind, i, j in path:
            j = min(j, last)
            if kind == "S":
                x = student(x, grid[i], grid[j], tags, w)
            else:
                for k in range(i, j):
                    x = teacher_step(gen.denoiser, x, grid[k], grid[k + 1], tags, w_col)
        return x

    ref = run((("T", 0, last),))
    bias = FeatureBias(ctx, ref)
    rows = []
    for path in ATTRIBUTION_PATHS:
        name = "".join(f"{k}({i}-{min(j, last)})" for k, i, j in path)
        x = run(path)
        rows.append({"path": name, "mse": _mse(x, ref), **_bias(bias, x)})
    out.mkdir(parents=True, exist_ok=True)
    (out / "attribution.json").write_text(json.dumps({"ctm": ctm_path, "n": len(noise), "w": w, "rows": rows}, indent=1))
    lines = [f"# Where the CTM's step-count bias comes from ({len(noise)} noises, w={w}, {ctm_path})", "",
             "S(i-j): one student jump between grid points i and j of the 20-point grid; T(i-j): the teacher's guided "
             "Euler steps over the same points. Bias against the teacher's full path T(0-19).", "",
             "| path | MSE | level bias dB | chroma agree | SSM MSE | detail |", "|---|---|---|---|---|---|"]
    lines += [f"| {r['path']} | {r['mse']:.4f} | {r['level_db']:+.2f} | {r['chroma_agree']:.3f} | {r['ssm_mse']:.4f} | "
              f"{r['detail_ratio']:.2f} |" for r in rows]
    (out / "attribution.md").write_text("\n".join(lines) + "\n")
    print((out / "attribution.md").read_text())
    return 0


def _bias(bias: FeatureBias, out: torch.Tensor) -> dict:
    return {key: round(float(v), 4) for key, v in bias(out).items() if key != "mse"}


def _mse(a: torch.Tensor, b: torch.Tensor) -> float:
    return round(float((a - b).pow(2).mean()), 5)


if __name__ == "__main__":
    raise SystemExit(main())

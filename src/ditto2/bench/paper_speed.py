"""`python -m ditto2.bench.paper_speed`: DITTO vs DITTO-2 speed at the paper preset's size.

The paper-size UNet (≈41M parameters, 160 mels × 512 frames) with random weights, saved as teacher and
CTM-student bundles, runs the real ITO path (``run_ito``: intensity control, CFG w = 2) for a few Adam
steps per method. Time and memory do not depend on the weights, so this checks paper Table 1's speed
claim where no trained paper-size model exists (training one takes GPU-days). Reported per method:
median seconds per Adam step (first step excluded: autotuning), decode + vocode seconds, the projected
seconds per generation for K optimization steps, and peak CUDA memory. Output: ``out``/results.{json,md}.
"""
from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path


def make_paper_bundles(root: Path, contract_from: str = "checkpoints/tiny/teacher", preset: str = "paper") -> dict:
    """Random teacher + CTM student bundles of a preset (tag vocabulary and statistics borrowed from a
    trained bundle's data contract, mel config and UNet = the preset's)."""
    import torch

    from ditto2.audio.mel import mel_preset
    from ditto2.data.tags import TagVocab
    from ditto2.diffusion.edm import EDMPrecond
    from ditto2.lit.distill import CTMDistillModule
    from ditto2.models.bundle import save_bundle, unet_config_to_dict
    from ditto2.nn.unet import UNet, UNetConfig

    data = dict(json.loads(Path(contract_from).with_suffix(".json").read_text())["data"])
    data["mel"] = mel_preset(preset).to_dict()
    torch.manual_seed(0)
    cfg = UNetConfig.preset(preset, TagVocab.from_dict(data["vocab"]).sizes)
    net = UNet(cfg)
    meta = {"kind": "edm", "unet": unet_config_to_dict(cfg), "data": data,
            "edm": {"sigma_data": 0.5, "sigma_min": 0.002, "sigma_max": 80.0}}
    teacher = save_bundle(root / "teacher", EDMPrecond(net), meta)
    student = CTMDistillModule(teacher=str(teacher), data_info=data)
    ctm = save_bundle(root / "ctm", student.exported_model(), student.bundle_meta())
    return {"teacher": str(teacher), "ctm": str(ctm), "params_m": round(sum(p.numel() for p in net.parameters()) / 1e6, 2)}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="results/bench-paper-speed")
    p.add_argument("--batch", type=int, nargs="*", default=[1])
    p.add_argument("--k", type=int, default=70, help="optimization steps to project a generation's time to")
    p.add_argument("--probe-steps", type=int, nargs=2, default=[6, 20], metavar=("DITTO", "DITTO2"),
                   help="Adam steps actually run per method")
    p.add_argument("--decode-steps", type=int, default=2)
    p.add_argument("--preset", default="paper", choices=["paper", "tiny"], help="tiny: a quick check of this script")
    args = p.parse_args(argv)
    import torch

    from ditto2.bench.ito import set_tf32
    from ditto2.runs.ito import make_config, run_ito

    set_tf32()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        bundles = make_paper_bundles(Path(tmp), preset=args.preset)
        print(f"paper-preset bundles ({bundles['params_m']}M params) in {time.perf_counter() - t0:.1f} s", flush=True)
        for batch in args.batch:
            for method, steps in (("ditto", args.probe_steps[0]), ("ditto2-ctm", args.probe_steps[1])):
                if torch.cuda.is_available():
                    torch.cuda.reset_peak_memory_stats()
                cfg = make_config(teacher=bundles["teacher"], ctm=bundles["ctm"], shards=None, method=method,
                                  steps=steps, batch=batch, tags={}, decode_steps=args.decode_steps,
                                  tensorboard=False, report_items=0, out=f"{tmp}/run-{method}-{batch}")
                s = run_ito(cfg)
                step = statistics.median(s["step_s"][1:] or s["step_s"])
                decode = s["decode_s"] + s["vocode_s"]
                rows.append({"method": method, "batch": batch, "probe_steps": steps, "T": s["T"],
                             "step_s": round(step, 4), "first_step_s": round(s["step_s"][0], 4),
                             "decode_s": round(decode, 4), f"projected_s_K{args.k}": round(args.k * step + decode, 3),
                             "projected_s_per_item": round((args.k * step + decode) / batch, 4),
                             "peak_cuda_mb": round(torch.cuda.max_memory_allocated() / 2**20, 1)
                             if torch.cuda.is_available() else None, "device": s["device"]})
                print(json.dumps(rows[-1]), flush=True)
    for r in rows:
        base = next(b for b in rows if b["method"] == "ditto" and b["batch"] == r["batch"])
        r["speedup_vs_ditto"] = round(base["projected_s_per_item"] / r["projected_s_per_item"], 1)
    device = rows[0]["device"] if rows else "?"
    name = torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu"
    from ditto2.audio.mel import mel_preset

    meta = {"device": name, "preset": args.preset, "params_m": bundles["params_m"], "k": args.k,
            "clip_seconds": mel_preset(args.preset).clip_seconds}
    (out / "results.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
    cols = list(rows[0])
    md = [f"# DITTO vs DITTO-2 at the {args.preset} preset ({bundles['params_m']}M-parameter UNet, random weights, {name}, "
          f"{device}; K = {args.k} projected from the median step)", "",
          "| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    md += ["| " + " | ".join(str(r[c]) for c in cols) + " |" for r in rows]
    md += ["", f"A clip is {meta['clip_seconds']:.2f} s of audio; DITTO decodes with the 20-step sampler, DITTO-2 "
           f"with {args.decode_steps} CTM steps; decode_s includes Griffin-Lim vocoding. TF32 matmuls on CUDA."]
    (out / "results.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

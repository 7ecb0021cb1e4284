"""`python -m ditto2.bench.scale`: the paper preset's training and ITO speed under each precision and compile setting.

For every (precision, compile) pair: pretraining steps/s of the preset's UNet through the real ``PretrainModule`` and
a Lightning Trainer (random mels of the preset's shape: speed and memory do not depend on the data), and one DITTO-2
generation (CTM student, intensity control, K Adam steps on the noise + a T-step decode) through ``optimize_noise``.
Reported: median step time (the first steps excluded: compilation, autotuning), steps/s, peak memory (CUDA, else
the process's RSS), the compile time. Output: ``out``/results.{json,md}. ``--steps 1`` on a CPU is the check that
keeps this script from rotting (tests/bench/test_scale.py); the numbers worth quoting come from a GPU.
"""
from __future__ import annotations

import argparse
import json
import resource
import statistics
import tempfile
import time
from contextlib import nullcontext
from pathlib import Path

PRECISIONS = ("32-true", "bf16-mixed")


def _peak_mb(device: str) -> float:
    import torch

    if device.startswith("cuda"):
        return round(torch.cuda.max_memory_allocated() / 2**20, 1)
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def _reset_peak(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def _timed_steps(times: list, compiled: bool) -> dict:
    """Per-step wall times -> the steady step time (median after 2 warm-up steps, 1 when there are <= 3), the first
    step's, and for a compiled step ``compile_s``: how much longer the first step took than a steady one."""
    step = statistics.median(times[2 if len(times) > 3 else 1 :] or times)
    compile_s = round(times[0] - step, 2) if compiled and len(times) > 1 else 0.0
    return {"step_s": round(step, 5), "steps_per_s": round(1 / step, 3), "first_step_s": round(times[0], 4),
            "compile_s": compile_s}


def pretrain_speed(bundles: dict, device: str, precision: str, compile_backend: str | None, steps: int,
                   batch: int) -> dict:
    """Training steps of the preset's base model through ``PretrainModule`` and ``pl.Trainer``."""
    import pytorch_lightning as pl
    import torch
    from torch.utils.data import DataLoader, Dataset

    from ditto2.lit.pretrain import PretrainModule

    meta = json.loads(Path(bundles["teacher"]).with_suffix(".json").read_text())
    data = meta["data"]
    mel = data["mel"]

    class Random(Dataset):
        def __len__(self):
            return steps * batch

        def __getitem__(self, i):
            g = torch.Generator().manual_seed(i)
            return {"mel": torch.randn(1, mel["n_mels"], mel["frames"], generator=g) * 0.5,
                    "tags": torch.zeros(len(data["vocab"]["fields"]), dtype=torch.long), "caption": "", "clip_id": str(i)}

    module = PretrainModule(data, unet_preset=bundles["preset"], n_log_samples=0)
    if compile_backend:
        module.denoiser = torch.compile(module.denoiser, backend=compile_backend)
    times: list[float] = []

    class Clock(pl.Callback):
        def on_train_batch_start(self, *a):
            if device.startswith("cuda"):
                torch.cuda.synchronize()
            self.t = time.perf_counter()

        def on_train_batch_end(self, *a):
            if device.startswith("cuda"):
                torch.cuda.synchronize()
            times.append(time.perf_counter() - self.t)

    _reset_peak(device)
    trainer = pl.Trainer(max_steps=steps, accelerator="gpu" if device.startswith("cuda") else "cpu", devices=1,
                         precision=precision, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, limit_val_batches=0, callbacks=[Clock()])
    trainer.fit(module, DataLoader(Random(), batch_size=batch))
    return {"stage": "pretrain", "batch": batch, "steps": len(times), **_timed_steps(times, bool(compile_backend)),
            "peak_mb": _peak_mb(device)}


def ito_speed(bundles: dict, device: str, precision: str, compile_backend: str | None, steps: int,
              decode_steps: int) -> dict:
    """One DITTO-2 generation: ``steps`` Adam steps on the noise through the CTM student (M = 1) + a T-step decode."""
    import torch

    from ditto2.ito.optimize import initial_noise, optimize_noise
    from ditto2.runs.ito import build_control_and_targets, build_surrogate, make_config, run_context

    cfg = make_config(teacher=bundles["teacher"], ctm=bundles["ctm"], shards=None, method="ditto2-ctm", batch=1,
                      steps=steps, tags={}, decode_steps=decode_steps, tensorboard=False, report_items=0)
    surrogate, gen = build_surrogate(cfg, {})
    composite, _, _ = build_control_and_targets(cfg, run_context(cfg, gen))
    surrogate, composite = surrogate.to(device), composite.to(device)
    if compile_backend:
        surrogate.student.precond = torch.compile(surrogate.student.precond, backend=compile_backend)
    z0 = initial_noise((1, 1, gen.mel.n_mels, gen.mel.frames), 0).to(device)
    amp = torch.autocast("cuda" if device.startswith("cuda") else "cpu", dtype=torch.bfloat16) \
        if precision == "bf16-mixed" else nullcontext()
    _reset_peak(device)
    with amp:
        run = optimize_noise(surrogate, composite, z0, [1] * steps, lr=cfg.lr)
        mel = run.decode()
    if not torch.isfinite(mel.float()).all():
        raise RuntimeError(f"ITO at {precision} produced non-finite mels")
    timed = _timed_steps(run.timing["step_s"], bool(compile_backend))
    return {"stage": "ito-ditto2-ctm", "batch": 1, "steps": len(run.timing["step_s"]), **timed,
            "decode_s": round(run.timing["decode_s"], 4),
            "generation_s_K70": round(70 * timed["step_s"] + run.timing["decode_s"], 3), "peak_mb": _peak_mb(device)}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="results/bench-scale")
    p.add_argument("--preset", default="paper", choices=["paper", "tiny"])
    p.add_argument("--steps", type=int, default=20, help="training steps and ITO steps per setting")
    p.add_argument("--batch", type=int, default=8, help="pretraining batch")
    p.add_argument("--precision", nargs="*", default=list(PRECISIONS), choices=PRECISIONS)
    p.add_argument("--compile", nargs="*", default=["off", "inductor"],
                   help="off | a torch.compile backend (inductor on a GPU; eager checks the wiring cheaply)")
    p.add_argument("--decode-steps", type=int, default=2)
    p.add_argument("--stages", nargs="*", default=["pretrain", "ito"], choices=["pretrain", "ito"])
    p.add_argument("--contract", default="checkpoints/tiny/teacher", help="a bundle whose tag vocabulary to borrow")
    args = p.parse_args(argv)
    import torch

    from ditto2.bench.ito import set_tf32
    from ditto2.bench.paper_speed import make_paper_bundles

    set_tf32()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        bundles = {**make_paper_bundles(Path(tmp), contract_from=args.contract, preset=args.preset), "preset": args.preset}
        for precision in args.precision:
            for backend in args.compile:
                backend = None if backend == "off" else backend
                runs = {"pretrain": lambda: pretrain_speed(bundles, device, precision, backend, args.steps, args.batch),
                        "ito": lambda: ito_speed(bundles, device, precision, backend, args.steps, args.decode_steps)}
                for stage in args.stages:
                    row = {"precision": precision, "compile": backend or "off", **runs[stage]()}
                    rows.append(row)
                    print(json.dumps(row), flush=True)
    name = torch.cuda.get_device_name() if device == "cuda" else "cpu"
    meta = {"device": name, "preset": args.preset, "params_m": bundles["params_m"], "steps": args.steps,
            "torch": torch.__version__}
    (out / "results.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
    cols = list(dict.fromkeys(k for r in rows for k in r))
    md = [f"# Training and ITO speed at the {args.preset} preset ({bundles['params_m']}M parameters, {name}, torch "
          f"{torch.__version__})", "", "| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    md += ["| " + " | ".join("" if r.get(c) is None else str(r[c]) for c in cols) + " |" for r in rows]
    md += ["", "step_s: median over the steps after the first (compilation / autotuning); pretraining steps go through "
           "PretrainModule + pl.Trainer at the given precision, ITO steps through optimize_noise (CTM, M = 1) under "
           "autocast for bf16-mixed; generation_s_K70 = 70 median steps + the decode; peak_mb: CUDA peak allocation "
           "(CPU: the process's peak RSS, a running maximum)."]
    (out / "results.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

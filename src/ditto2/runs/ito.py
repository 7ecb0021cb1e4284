"""`ditto2 ito --config experiments/ito/<control>.yaml [key=value ...]`: one ITO run of B items.

Config (validated before any compute) -> models -> controls + targets (the registry) -> ITO (the
Lightning ``ITOModule`` by default, or the plain ``optimize_noise`` loop) -> report callbacks (decode,
vocode, CLAP / FAD, one grader per control, summary) -> a run folder with its resolved config.yaml.
"""
from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import torch
from omegaconf import OmegaConf

from ditto2.controls import CONTROLS, CompositeControl, MelContext, build_control
from ditto2.data.heldout import held_out_clips
from ditto2.ito.optimize import initial_noise, optimize_noise
from ditto2.ito.surrogates import BaseModelSurrogate, StudentSurrogate, m_schedule
from ditto2.models.bundle import load_bundle
from ditto2.models.generator import load_generator

METHODS = ("ditto", "ditto2-cm", "ditto2-ctm")
ENGINES = ("lightning", "loop")


@dataclass
class ControlSpec:
    name: str = "intensity"
    domain: str = "mel"
    weight: float = 1.0
    source: Optional[str] = None  # target source; None = the control's default
    kwargs: dict = field(default_factory=dict)  # the control's own arguments (e.g. pool, embedder)
    target: dict = field(default_factory=dict)  # the target builder's arguments (e.g. forms, base_db, captions)


@dataclass
class ITOConfig:
    method: str = "ditto2-ctm"
    teacher: str = "checkpoints/tiny/teacher"
    cm: str = "checkpoints/tiny/cm"
    ctm: str = "checkpoints/tiny/ctm"
    controls: list = field(default_factory=lambda: [ControlSpec()])
    shards: Optional[str] = "data/shards/debian-tiny"  # held-out clips for targets / references
    # which held-out split targets and references come from: "test" grades, "val" chooses defaults
    split: str = "test"
    # e.g. {genre: orchestral, mood: epic}; {} = null tags; "reference" = each held-out clip's own tags
    tags: Any = field(default_factory=dict)
    clap: Optional[str] = None  # in-domain CLAP bundle: CLAP score of each item vs its caption
    # a LAION CLAP folder (transformers ClapModel.save_pretrained): a second CLAP score and FAD
    laion_clap: Optional[str] = None
    # held-out test clips for the FAD reference set (an int, or "all"); 0 = no FAD. FAD needs more
    # generations (batch) than CLAP dimensions; `ditto2 bench` pools runs for it.
    fad_reference: Any = 0
    w: float = 2.0
    steps: int = 70  # K; 0 = no optimization: decode the initial noise (plain sampling)
    lr: float = 5e-3
    m: Any = 1  # surrogate steps while optimizing: int or "adaptive"
    decode_steps: int = 2  # T for students; the DITTO baseline always uses base_steps
    base_steps: int = 20
    gamma: float = 0.2
    batch: int = 4
    seed: int = 0
    prior_weight: float = 0.0
    # NNLS refinements of the mel->linear magnitude inside mel-domain controls. Measured on 12 held-out
    # clips: 0 vs 30 iterations changes intensity features by 0.01 dB and melody argmax agreement by
    # 0.5 points, and costs 1.7 ms instead of 52 ms per step (fwd+bwd, batch 1).
    control_nnls_iters: int = 0
    gradient_clip: Optional[float] = None
    # per-method settings over the file's (e.g. the CM student's own M, T): {method: {key: value}};
    # key=value overrides still win
    defaults_by_method: dict = field(default_factory=dict)
    out: str = "results/ito/run"
    report_items: int = 16  # items that get wav + plots + TensorBoard entries (all are graded)
    device: str = "auto"  # auto | cpu | cuda
    engine: str = "lightning"  # lightning: ITOModule + Trainer (TensorBoard per step); loop: optimize_noise
    tensorboard: bool = True
    progress_bar: bool = False


def load_config(path: Optional[str], overrides: list[str] = ()) -> ITOConfig:
    """A YAML file (or none) with ``key=value`` overrides over the defaults, then the file's
    ``defaults_by_method`` entry for the chosen method under the overrides; checked before any compute."""
    base = OmegaConf.structured(ITOConfig)
    layers = [base]
    if path:
        layers.append(OmegaConf.load(path))
    layers.append(OmegaConf.from_dotlist(list(overrides)))
    merged = OmegaConf.merge(*layers)
    per_method = merged.defaults_by_method.get(merged.method) if merged.defaults_by_method else None
    if per_method:
        merged = OmegaConf.merge(*layers[:-1], per_method, layers[-1])
    merged.controls = [OmegaConf.merge(OmegaConf.structured(ControlSpec), c) for c in merged.controls]
    return check_config(OmegaConf.to_object(merged))


def make_config(base: Optional[ITOConfig] = None, **changes) -> ITOConfig:
    """A checked copy of ``base`` (the defaults when None) with fields replaced: how code (the bench, the
    demo, a notebook) builds runs. ``controls`` may be given as names, dicts or ``ControlSpec``."""
    base = base or ITOConfig()
    if "controls" in changes:
        changes["controls"] = [c if isinstance(c, ControlSpec) else ControlSpec(name=c) if isinstance(c, str)
                               else ControlSpec(**c) for c in changes["controls"]]
    unknown = set(changes) - {f.name for f in dataclasses.fields(ITOConfig)}
    if unknown:
        raise ValueError(f"unknown ITO config keys {sorted(unknown)}")
    return check_config(dataclasses.replace(base, **changes))


def with_overrides(cfg: ITOConfig, overrides: list[str]) -> ITOConfig:
    """``key=value`` strings (a CLI's or a benchmark YAML's) over a config, checked."""
    merged = OmegaConf.merge(OmegaConf.structured(cfg), OmegaConf.from_dotlist(list(overrides)))
    merged.controls = [OmegaConf.merge(OmegaConf.structured(ControlSpec), c) for c in merged.controls]
    return check_config(OmegaConf.to_object(merged))


def check_config(cfg: ITOConfig) -> ITOConfig:
    if cfg.method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {cfg.method!r}")
    if cfg.steps < 0 or cfg.batch < 1:
        raise ValueError("steps (K) must be >= 0 and batch >= 1")
    if cfg.split not in ("val", "test"):
        raise ValueError(f"split must be 'val' (choosing defaults) or 'test' (grading), got {cfg.split!r}")
    unknown = set(cfg.defaults_by_method) - set(METHODS)
    if unknown:
        raise ValueError(f"defaults_by_method has unknown methods {sorted(unknown)}; known: {METHODS}")
    if cfg.device not in ("auto", "cpu", "cuda"):
        raise ValueError(f"device must be auto, cpu or cuda, got {cfg.device!r}")
    if cfg.engine not in ENGINES:
        raise ValueError(f"engine must be one of {ENGINES}, got {cfg.engine!r}")
    for spec in cfg.controls:
        if spec.name not in CONTROLS:
            raise ValueError(f"unknown control {spec.name!r}; choose one of {sorted(CONTROLS)}")
    if cfg.laion_clap:
        from ditto2.clap.load import is_laion_dir

        if not is_laion_dir(cfg.laion_clap):
            raise ValueError(f"laion_clap={cfg.laion_clap!r} is no folder with a ClapModel (config.json)")
    if cfg.fad_reference and (not cfg.clap or not cfg.shards):
        raise ValueError("fad_reference needs clap (the embedding) and shards (the held-out clips)")
    if cfg.fad_reference not in (0, None, "all") and not (isinstance(cfg.fad_reference, int) and cfg.fad_reference >= 2):
        raise ValueError(f"fad_reference must be 0, 'all' or a clip count >= 2, got {cfg.fad_reference!r}")
    return cfg


def save_config(cfg: ITOConfig, path: Path) -> None:
    """The resolved config, loadable with ``ditto2 ito --config``: any run is reproducible from its folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(OmegaConf.to_yaml(OmegaConf.structured(cfg)))


DECODE_KEYS = ("m", "decode_steps", "gamma")


def decode_defaults(path: str, method: str) -> dict:
    """The (M, T, γ) that a control's experiment YAML chooses for ``method`` (its top-level values with
    its ``defaults_by_method`` entry over them): how the bench and the demo use the per-control defaults."""
    cfg = load_config(path, [f"method={method}"])
    return {k: getattr(cfg, k) for k in DECODE_KEYS}


def build_surrogate(cfg: ITOConfig, tags_spec, clips: Optional[list] = None):
    gen = load_generator(cfg.teacher)
    if tags_spec == "reference":
        if not clips:
            raise ValueError("tags: reference needs held-out clips (shards)")
        # encoded by value with the model's own vocabulary: the shards' ids may come from another vocabulary
        tags = torch.tensor([gen.vocab.encode(c["tags"]) for c in clips], dtype=torch.long)
    else:
        tags = gen.encode_tags(dict(tags_spec), 1)
    if gen.meta.get("unconditional") and bool(tags.any()):
        raise ValueError(f"{cfg.teacher} was trained without tags (unconditional): use tags={{}}")
    if cfg.method == "ditto":
        return BaseModelSurrogate(gen.denoiser, tags, cfg.w, steps=cfg.base_steps), gen
    student, meta = load_bundle(cfg.cm if cfg.method == "ditto2-cm" else cfg.ctm)
    if meta["data"]["mel"] != gen.meta["data"]["mel"]:
        raise ValueError("student and teacher bundles have different mel configs")
    return StudentSurrogate(student, tags, cfg.w, cfg.decode_steps, cfg.gamma, meta.get("grid_steps", 20), cfg.seed), gen


def reference_clips(cfg: ITOConfig):
    """Held-out clips (mels + index rows) when the config uses them, else (None, None)."""
    used = cfg.tags == "reference" or any(CONTROLS[c.name].uses_references(c.source) for c in cfg.controls)
    if cfg.shards and used:
        return held_out_clips(cfg.shards, cfg.batch, cfg.seed, cfg.split)
    return None, None


def build_control_and_targets(cfg: ITOConfig, ctx: MelContext, refs=None, clips=None):
    """Every target is built and checked here, before the optimizer takes a step."""
    terms, target_sets = [], []
    for spec in cfg.controls:
        kwargs, target_kw = dict(spec.kwargs), dict(spec.target)
        if "captions" in kwargs:  # older configs gave the text control's captions among its kwargs
            target_kw["captions"] = kwargs.pop("captions")
        control = build_control(spec.name, ctx, domain=spec.domain, **kwargs)
        ts = control.targets(cfg.batch, cfg.seed, refs, clips=clips,
                             **({"source": spec.source} if spec.source else {}), **target_kw)
        terms.append((control, ts.target, spec.weight))
        target_sets.append(ts)
    return CompositeControl(terms, batch_size=cfg.batch), target_sets, refs


def item_captions(cfg: ITOConfig, clips: Optional[list], target_sets: list) -> list[str]:
    """The caption each item's CLAP score is against: the caption a control steered it to (a target set
    with ``extra["captions"]``), else the paper's caption of its conditioning tags."""
    from ditto2.data.tags import caption

    for ts in target_sets:
        if "captions" in ts.extra:
            return list(ts.extra["captions"])
    if cfg.tags == "reference":
        return [c["caption"] for c in clips]
    return [caption(dict(cfg.tags))] * cfg.batch


def report_callbacks(cfg: ITOConfig, gen, composite: CompositeControl, target_sets: list, captions: list,
                     out: Path, mel: Optional[torch.Tensor] = None) -> list:
    """The run's report, in order: decode (shared), CLAP / FAD (shared, when a CLAP is configured), one
    grader per control (from the registry), summary (shared, last)."""
    from ditto2.lit.report import AudioReport, ControlReport, DecodeReport, RunOutputs, SummaryReport

    outputs = RunOutputs(out, cfg.report_items)
    claps = {k: p for k, p in (("clap", cfg.clap), ("laion", cfg.laion_clap)) if p}
    callbacks = [DecodeReport(outputs, gen, mel)]
    if claps:
        callbacks.append(AudioReport(outputs, claps, captions, cfg.shards, cfg.fad_reference))
    callbacks += [ControlReport(outputs, c, ts, cfg.method) for c, ts in zip(composite.controls, target_sets)]
    return callbacks + [SummaryReport(outputs, cfg, target_sets)]


def run_ito(cfg: ITOConfig) -> dict:
    t_setup = time.perf_counter()
    check_config(cfg)
    refs, clips = reference_clips(cfg)
    surrogate, gen = build_surrogate(cfg, cfg.tags, clips)
    ctx = MelContext(gen.mel, gen.normalizer, nnls_iters=cfg.control_nnls_iters)
    composite, target_sets, refs = build_control_and_targets(cfg, ctx, refs, clips)
    captions = item_captions(cfg, clips, target_sets)
    shape = (cfg.batch, 1, gen.mel.n_mels, gen.mel.frames)
    out = Path(cfg.out)
    save_config(cfg, out / "config.yaml")
    device = "cuda" if cfg.device == "cuda" or (cfg.device == "auto" and torch.cuda.is_available()) else "cpu"
    setup_s = time.perf_counter() - t_setup
    callbacks = lambda mel=None: report_callbacks(cfg, gen, composite, target_sets, captions, out, mel)
    if cfg.steps > 0 and cfg.engine == "lightning":
        summary = _run_lightning(cfg, surrogate, composite, shape, device, callbacks(), out)
    else:
        summary = _run_loop(cfg, surrogate.to(device), composite.to(device), shape, device, callbacks, out)
    summary["setup_s"] = round(setup_s, 3)
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    return summary


def _run_lightning(cfg: ITOConfig, surrogate, composite, shape, device: str, callbacks: list, out: Path) -> dict:
    import pytorch_lightning as pl

    from ditto2.lit.ito import ITOModule

    module = ITOModule(surrogate, composite, shape, steps=cfg.steps, m=cfg.m, lr=cfg.lr,
                       prior_weight=cfg.prior_weight, seed=cfg.seed)
    logger = pl.loggers.TensorBoardLogger(str(out), name="tb", version="") if cfg.tensorboard else False
    trainer = pl.Trainer(max_steps=cfg.steps, accelerator="gpu" if device == "cuda" else "cpu",
                         devices=1, logger=logger, callbacks=callbacks, enable_checkpointing=False,
                         enable_model_summary=False, enable_progress_bar=cfg.progress_bar,
                         gradient_clip_val=cfg.gradient_clip, log_every_n_steps=1, num_sanity_val_steps=0)
    trainer.fit(module)
    return callbacks[-1].summary


def _run_loop(cfg: ITOConfig, surrogate, composite, shape, device: str, callbacks, out: Path) -> dict:
    """``optimize_noise`` without a Trainer; the report callbacks are called directly. K = 0 is plain
    sampling from the initial noise, graded like an optimized run."""
    writer = _writer(out) if cfg.tensorboard else None
    log = (lambda k, loss: writer.add_scalar("ito/loss", float(loss.mean()), k)) if writer is not None else None
    run = optimize_noise(surrogate, composite, initial_noise(shape, cfg.seed).to(device), m_schedule(cfg.steps, cfg.m),
                         cfg.lr, cfg.prior_weight, cfg.gradient_clip, on_step=log)
    mel = None
    if cfg.steps == 0:
        mel = run.decode()  # once: the control loss at the initial noise and the report both read this output
        with torch.no_grad():
            run.history.append(composite(mel).cpu().tolist())
    report = callbacks(mel)
    for cb in report:
        cb.finalize(run, writer)
    if writer is not None:
        writer.close()
    return report[-1].summary


def _writer(out: Path):
    from torch.utils.tensorboard import SummaryWriter

    return SummaryWriter(str(out / "tb"))

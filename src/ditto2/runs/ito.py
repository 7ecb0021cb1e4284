"""`ditto2 ito --config experiments/ito/<control>.yaml [key=value ...]`: one ITO run of B items.

Config (validated before any compute) -> models -> controls + targets (the registry) -> ITO (the
Lightning ``ITOModule`` by default, or the plain ``optimize_noise`` loop) -> report callbacks (decode,
vocode, CLAP / FAD, one grader per control, summary) -> a run folder with its resolved config.yaml.
"""
from __future__ import annotations

import contextlib
import dataclasses
import difflib
import inspect
import json
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import torch
from omegaconf import OmegaConf

from ditto2.audio.mel import MelConfig, MelNormalizer
from ditto2.controls import CONTROLS, CompositeControl, MelContext, build_control
from ditto2.data.heldout import held_out_clips
from ditto2.ito.optimize import (
    ADAM_BETAS,
    LR_DECAYS,
    candidate_noises,
    check_betas,
    check_start_candidates,
    check_update_pool,
    initial_noise,
    optimize_noise,
)
from ditto2.ito.optimizers import check_optimizer
from ditto2.ito.options import all_options
from ditto2.ito.surrogates import BaseModelSurrogate, StudentSurrogate, m_schedule, parse_m
from ditto2.models.bundle import bundle_stem, load_bundle
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
    # graders no control optimizes (issue 14): a second in-domain CLAP with another audio tower and seed
    # (checkpoints/<preset>/clap-judge: clap_judge_score, fad_judge) and the genre / mood / tempo tagger
    # (checkpoints/<preset>/tagger: genre_acc, mood_acc, tempo_bucket_acc vs each item's caption)
    clap_judge: Optional[str] = None
    tagger: Optional[str] = None
    # held-out test clips for the FAD reference set (an int, or "all"); 0 = no FAD. FAD needs more
    # generations (batch) than CLAP dimensions; `ditto2 bench` pools runs for it.
    fad_reference: Any = 0
    w: float = 2.0
    steps: int = 70  # K; 0 = no optimization: decode the initial noise (plain sampling)
    lr: float = 5e-3
    lr_decay: str = "constant"  # Adam's step size over the K steps: constant | cosine (from lr towards 0)
    # Adam's (β1, β2); the interactive preset's few steps use a shorter memory (experiments/serve/interactive.yaml)
    adam_betas: list = field(default_factory=lambda: list(ADAM_BETAS))
    # adam: the paper's; adam-item: Adam with one second moment per item (``ito.optimizers.ItemAdam``), whose step
    # follows the gradient's direction within an item instead of moving every element by about the step size. On 160
    # validation items (results/bench-optimizer) intensity's control is the same (0.20 against 0.22 dB²) and FAD worse
    # (0.425 against 0.372), so adam stays the default
    optimizer: str = "adam"
    m: Any = 1  # surrogate steps while optimizing: int, "adaptive" or a schedule "M:share,...,M" (ito.surrogates.parse_m)
    decode_steps: int = 2  # T for students; the DITTO baseline always uses base_steps
    base_steps: int = 20
    gamma: float = 0.2
    # students only: renoise the T-step decode to this σ and let the base model finish it with its own guided sampler
    # (the tail of its base_steps grid; SDEdit-style, ``diffusion.samplers.refine_guided``); 0 = the student's decode as is
    refine_sigma: float = 0.0
    batch: int = 4
    seed: int = 0
    prior_weight: float = 0.0
    # keep the spectral envelope of the un-optimized output up to a level: + weight · (variance over mel bins of the
    # change of each bin's time-mean log-mel; ``ito.optimize.envelope_change``); 0 = off, the default. Intensity through
    # a 1-step student lowers mostly the loud low bins (a brighter timbre than DITTO's), but keeping the un-optimized
    # envelope did not lower FAD on validation items (0.372 at 0 -> 0.422 / 0.430 / 0.443 at 30 / 100 / 300:
    # results/bench-envelope), so it stays an option
    envelope_weight: float = 0.0
    # keep the noise near where it started: + weight · mean over elements of (z − z0)² (``ito.optimize.anchor_distance``);
    # 0 = off, the default. Among the noises that meet the control, the optimization then takes a near one, as DITTO's
    # small steps through the teacher do (16 validation items: DITTO moved z by 0.06 RMS per element, DITTO-2 by 0.11).
    # It keeps intensity's control and raises the CLAP score, but raises FAD on 160 validation items (0.372 at 0 ->
    # 0.406 / 0.433 / 0.452 at 100 / 300 / 1000: the outputs' spread shrinks; results/bench-anchor), so it stays an option
    anchor_weight: float = 0.0
    # best-of-n start: draw n − 1 further Gaussian noises per item (``ito.optimize.candidate_noises``, fixed by the seed)
    # and start the optimization from the one whose M-step output already meets the control best (one forward pass
    # each, no gradients; timed with the optimization); 1 = off, the default (initial_noise(seed) alone). On 160
    # validation items (results/bench-starts) intensity's control improves (0.22 -> 0.12 dB² at n = 16) and FAD does not
    # (0.372 -> 0.371; 0.400 at n = 64), so it stays an option
    start_candidates: int = 1
    # randomized smoothing: each step reads the control at z + σ·ε (ε fresh each step, fixed by the seed;
    # ``ito.optimize.smoothing_noise``), so the step follows the control averaged over a neighbourhood of z rather than
    # the 1-step student's local quirks; 0 = off, the default. On 160 validation items it loosens intensity's control and
    # does not lower FAD (σ = 0 / 0.3 / 0.6: 0.22 / 0.63 / 1.23 dB², FAD 0.372 / 0.374 / 0.404; results/bench-smooth),
    # so it stays an option
    smooth_sigma: float = 0.0
    # teacher prior (score distillation): + weight · mean squared distance of each step's output from the teacher's
    # guided denoised estimate of it renoised to σ = teacher_sigma (ε fresh each step, fixed by the seed; no backward
    # through the teacher; ``ito.optimize.teacher_distance``): keeps the 1-step student's outputs where the teacher
    # would take them; costs one guided teacher call per step (1.7x the step). On 160 validation items it keeps
    # intensity's control and raises the CLAP score, but not FAD (0.373 without -> 0.376 / 0.396 / 0.412 at
    # (30, 0.5) / (30, 2) / (10, 5): its covariance term rises; results/bench-teacher), so it stays an option, 0 = off
    teacher_weight: float = 0.0
    teacher_sigma: float = 1.0
    # move the noise only in blocks of update_pool × update_pool (mel bin, frame): each step's gradient is averaged over
    # the blocks (``ito.optimize.pooled_gradient``), so the optimization changes the noise's coarse components and leaves
    # the fine ones as drawn. On 160 validation items it keeps intensity's control and does not lower FAD (p = 1 / 4 / 16:
    # 0.373 / 0.381 / 0.388; results/bench-pool), so it stays an option, 1 = off
    update_pool: int = 1
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
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    engine: str = "lightning"  # lightning: ITOModule + Trainer (TensorBoard per step); loop: optimize_noise
    tensorboard: bool = True
    progress_bar: bool = False


def load_config(path: Optional[str], overrides: list[str] = ()) -> ITOConfig:
    """A YAML file (or none) with ``key=value`` overrides over the defaults, then the file's
    ``defaults_by_method`` entry for the chosen method under the overrides; checked before any compute."""
    base = OmegaConf.structured(ITOConfig)
    layers = [base]
    if path:
        if not Path(path).is_file():
            raise FileNotFoundError(f"config {path} does not exist (the ITO configs are experiments/ito/<control>.yaml)")
        layers.append(OmegaConf.load(path))
    layers.append(parse_overrides(overrides))
    with readable_config_errors():
        merged = OmegaConf.merge(*layers)
        per_method = merged.defaults_by_method.get(merged.method) if merged.defaults_by_method else None
        if per_method:
            merged = OmegaConf.merge(*layers[:-1], per_method, layers[-1])
        merged.controls = [OmegaConf.merge(OmegaConf.structured(ControlSpec), c) for c in merged.controls]
        return check_config(OmegaConf.to_object(merged))


def parse_overrides(overrides) -> Any:
    """``key=value`` strings (values are YAML) -> a config; a malformed one is named."""
    for o in overrides:
        if "=" not in o:
            raise ValueError(f"override {o!r} is not key=value (e.g. steps=70, controls=[{{name: melody}}])")
        try:
            OmegaConf.from_dotlist([o])
        except Exception as e:  # the YAML / grammar parsers raise several types
            raise ValueError(f"override {o!r} is not valid YAML after '=': {str(e).splitlines()[0]}") from None
    return OmegaConf.from_dotlist(list(overrides))


@contextlib.contextmanager
def readable_config_errors():
    """OmegaConf's key and type errors as one line that names the key (and the closest known one)."""
    from omegaconf.errors import ConfigKeyError, ValidationError

    try:
        yield
    except ConfigKeyError as e:
        key = getattr(e, "key", None) or str(e).split("'")[1]
        fields = [f.name for f in dataclasses.fields(ITOConfig)] + [f.name for f in dataclasses.fields(ControlSpec)]
        raise ValueError(f"unknown config key {key!r}{did_you_mean(str(key), fields)}") from None
    except ValidationError as e:
        raise ValueError(f"bad config value: {str(e).splitlines()[0]}") from None


def did_you_mean(name: str, known) -> str:
    close = difflib.get_close_matches(name, list(known), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


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
    with readable_config_errors():
        merged = OmegaConf.merge(OmegaConf.structured(cfg), parse_overrides(overrides))
        merged.controls = [OmegaConf.merge(OmegaConf.structured(ControlSpec), c) for c in merged.controls]
        return check_config(OmegaConf.to_object(merged))


def check_config(cfg: ITOConfig) -> ITOConfig:
    if cfg.method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {cfg.method!r}{did_you_mean(cfg.method, METHODS)}")
    if cfg.steps < 0 or cfg.batch < 1:
        raise ValueError("steps (K) must be >= 0 and batch >= 1")
    if cfg.split not in ("val", "test"):
        raise ValueError(f"split must be 'val' (choosing defaults) or 'test' (grading), got {cfg.split!r}")
    unknown = set(cfg.defaults_by_method) - set(METHODS)
    if unknown:
        raise ValueError(f"defaults_by_method has unknown methods {sorted(unknown)}; known: {METHODS}")
    if cfg.device not in ("auto", "cpu", "cuda") and not re.fullmatch(r"cuda:\d+", str(cfg.device)):
        raise ValueError(f"device must be auto, cpu, cuda or cuda:N, got {cfg.device!r}")
    if cfg.envelope_weight < 0:
        raise ValueError(f"envelope_weight must be >= 0 (0 = off), got {cfg.envelope_weight}")
    if cfg.anchor_weight < 0:
        raise ValueError(f"anchor_weight must be >= 0 (0 = off), got {cfg.anchor_weight}")
    if cfg.smooth_sigma < 0:
        raise ValueError(f"smooth_sigma must be >= 0 (0 = off), got {cfg.smooth_sigma}")
    if cfg.teacher_weight < 0:
        raise ValueError(f"teacher_weight must be >= 0 (0 = off), got {cfg.teacher_weight}")
    if cfg.teacher_sigma <= 0:
        raise ValueError(f"teacher_sigma must be > 0 (the noise level the teacher denoises), got {cfg.teacher_sigma}")
    if isinstance(cfg.update_pool, bool) or int(cfg.update_pool) != cfg.update_pool or cfg.update_pool < 1:
        raise ValueError(f"update_pool must be an integer >= 1 (1 = off), got {cfg.update_pool}")
    if check_start_candidates(cfg.start_candidates) > 1 and cfg.steps == 0:
        raise ValueError("start_candidates > 1 chooses a start for the optimization: it needs steps (K) >= 1")
    if cfg.refine_sigma < 0:
        raise ValueError(f"refine_sigma must be >= 0 (0 = no refinement), got {cfg.refine_sigma}")
    if cfg.lr_decay not in LR_DECAYS:
        raise ValueError(f"lr_decay must be one of {LR_DECAYS}, got {cfg.lr_decay!r}")
    check_betas(cfg.adam_betas)
    check_optimizer(cfg.optimizer)
    parse_m(cfg.m)
    if cfg.engine not in ENGINES:
        raise ValueError(f"engine must be one of {ENGINES}, got {cfg.engine!r}")
    for spec in cfg.controls:
        if spec.name not in CONTROLS:
            raise ValueError(f"unknown control {spec.name!r}{did_you_mean(spec.name, CONTROLS)}; "
                             f"the controls are {sorted(CONTROLS)}")
    if cfg.laion_clap:
        from ditto2.clap.load import is_laion_dir

        if not is_laion_dir(cfg.laion_clap):
            raise ValueError(f"laion_clap={cfg.laion_clap!r} is no folder with a ClapModel (config.json)")
    for key in ("clap_judge", "tagger"):
        path = getattr(cfg, key)
        if path and not bundle_stem(path).with_suffix(".json").is_file():
            raise FileNotFoundError(f"{key}={path!r}: no bundle there (make {key.replace('_', '-')} trains and exports one)")
    if cfg.fad_reference and (not cfg.clap or not cfg.shards):
        raise ValueError("fad_reference needs clap (the embedding) and shards (the held-out clips)")
    if cfg.fad_reference not in (0, None, "all") and not (isinstance(cfg.fad_reference, int) and cfg.fad_reference >= 2):
        raise ValueError(f"fad_reference must be 0, 'all' or a clip count >= 2, got {cfg.fad_reference!r}")
    return cfg


def resolved_config(cfg: ITOConfig) -> dict:
    """What a run folder's config.yaml holds: the run's values, with ``defaults_by_method`` emptied (its entry for the
    method is already in them; kept, loading the file would apply it again over values the run chose otherwise, e.g.
    the interactive preset's step)."""
    return {**OmegaConf.to_container(OmegaConf.structured(cfg)), "defaults_by_method": {}}


def save_config(cfg: ITOConfig, path: Path) -> None:
    """The resolved config, loadable with ``ditto2 ito --config``: any run is reproducible from its folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(OmegaConf.to_yaml(OmegaConf.create(resolved_config(cfg))))


def save_targets(cfg: ITOConfig, target_sets: list, path: Path) -> None:
    """The targets the run used, one tensor per control (painting: ``<name>.values`` + ``<name>.mask``; text:
    the caption embeddings, captions in the metadata), beside config.yaml."""
    from safetensors.torch import save_file

    tensors, meta = {}, {}
    for spec, ts in zip(cfg.controls, target_sets):
        t = ts.target
        if hasattr(t, "mask"):
            tensors[f"{spec.name}.values"], tensors[f"{spec.name}.mask"] = t.values, t.mask.to(torch.uint8)
        elif isinstance(t, torch.Tensor):
            tensors[spec.name] = t
        meta[spec.name] = json.dumps(ts.descriptions)
        if "captions" in ts.extra:
            meta[f"{spec.name}.captions"] = json.dumps(ts.extra["captions"])
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, str(path), metadata=meta)


DECODE_KEYS = ("m", "decode_steps", "gamma")
# the ITOConfig field that names a student method's bundle
STUDENT_FIELD = {"ditto2-ctm": "ctm", "ditto2-cm": "cm"}


def student_of(cfg: ITOConfig) -> Optional[str]:
    """The student bundle a config's method decodes with; None for DITTO (the teacher)."""
    return getattr(cfg, STUDENT_FIELD[cfg.method]) if cfg.method in STUDENT_FIELD else None


def control_defaults(path: str, method: str) -> dict:
    """What a student method of a table or the demo takes from the control's YAML for ``method`` (its top-level values
    with its ``defaults_by_method`` entry over them): its (M, T, γ), its Adam step size, its options (``ito.options``:
    priors, best-of-n start, optimizer, smoothing) and its student bundle (``ctm`` or ``cm``), all chosen per control
    on validation items; DITTO keeps the table's step size."""
    cfg = load_config(path, [f"method={method}"])
    return {**{k: getattr(cfg, k) for k in DECODE_KEYS}, "lr": cfg.lr, **all_options(cfg),
            **({STUDENT_FIELD[method]: student_of(cfg)} if method in STUDENT_FIELD else {})}


def baseline_step(path: str) -> dict:
    """DITTO's own step size from the control's YAML, ``{"lr": ...}``, where its ``defaults_by_method`` has a
    ``ditto`` entry with one (tuned like the students', e.g. by ``experiments/gpu/win-run.sh`` PART=ditto-lr); else
    ``{}``: the baseline keeps the table's (DESIGN.md's) step size."""
    cfg = load_config(path, ["method=ditto"])  # the same merge as control_defaults and `ditto2 ito --config`
    return {"lr": cfg.lr} if "lr" in (cfg.defaults_by_method.get("ditto") or {}) else {}


def decode_defaults(path: str, method: str) -> dict:
    """The (M, T, γ) of ``control_defaults``."""
    return {k: v for k, v in control_defaults(path, method).items() if k in DECODE_KEYS}


def build_surrogate(cfg: ITOConfig, tags_spec, clips: Optional[list] = None, gen=None,
                    students: Optional[dict] = None):
    """The method's surrogate for the tags; ``students``: a dict that keeps loaded student bundles by path (a server
    answering many requests loads each once)."""
    gen = gen or load_generator(cfg.teacher)
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
    path, cache = student_of(cfg), ({} if students is None else students)
    if path not in cache:
        cache[path] = load_bundle(path)
    student, meta = cache[path]
    if meta["data"]["mel"] != gen.meta["data"]["mel"]:
        raise ValueError("student and teacher bundles have different mel configs")
    uses_teacher = cfg.refine_sigma > 0 or cfg.teacher_weight > 0
    return StudentSurrogate(student, tags, cfg.w, cfg.decode_steps, cfg.gamma, meta.get("grid_steps", 20), cfg.seed,
                            teacher=gen.denoiser if uses_teacher else None, refine_sigma=cfg.refine_sigma,
                            base_steps=cfg.base_steps), gen


def check_shards_match(shards: str, gen, teacher: str) -> None:
    """Reference clips must be in the model's mel config and normalized with its statistics, else every
    target drawn from them is silently wrong."""
    index = json.loads((Path(shards) / "index.json").read_text())
    fix = f"build them with `ditto2 shards folder --audio-dir DIR --stats-of {teacher}`"
    if MelConfig.from_dict(index["mel"]) != gen.mel:
        raise ValueError(f"shards {shards} have another mel config than the model {teacher}: {fix}")
    stats = MelNormalizer.from_dict(index["stats"])
    if not stats.matches(gen.normalizer):
        raise ValueError(f"shards {shards} are normalized with other statistics (mean {stats.mean:.3f}, std {stats.std:.3f}) "
                         f"than the model {teacher} (mean {gen.normalizer.mean:.3f}, std {gen.normalizer.std:.3f}): {fix}")


def run_context(cfg: ITOConfig, gen) -> MelContext:
    """The controls' mel context of a run: the model's mel config and statistics, the config's NNLS iterations
    (``control_nnls_iters``; MelContext's own default is for grading-quality magnitudes, not ITO steps)."""
    return MelContext(gen.mel, gen.normalizer, nnls_iters=cfg.control_nnls_iters)


def reference_clips(cfg: ITOConfig, gen=None):
    """Held-out clips (mels + index rows) when the config uses them, else (None, None); checked against the
    model's mel config and statistics when ``gen`` is given."""
    used = cfg.tags == "reference" or any(CONTROLS[c.name].uses_references(c.source) for c in cfg.controls)
    if cfg.shards and used:
        if gen is not None:
            check_shards_match(cfg.shards, gen, cfg.teacher)
        return held_out_clips(cfg.shards, cfg.batch, cfg.seed, cfg.split)
    return None, None


def build_control_and_targets(cfg: ITOConfig, ctx: MelContext, refs=None, clips=None):
    """Every target is built and checked here, before the optimizer takes a step."""
    terms, target_sets = [], []
    for spec in cfg.controls:
        kwargs, target_kw = {**CONTROLS[spec.name].run_options(cfg), **spec.kwargs}, dict(spec.target)
        if "captions" in kwargs:  # older configs gave the text control's captions among its kwargs
            target_kw["captions"] = kwargs.pop("captions")
        control = build_control(spec.name, ctx, domain=spec.domain, **kwargs)
        check_target_keys(control, target_kw)
        ts = control.targets(cfg.batch, cfg.seed, refs, clips=clips,
                             **({"source": spec.source} if spec.source else {}), **target_kw)
        terms.append((control, ts.target, spec.weight))
        target_sets.append(ts)
    return CompositeControl(terms, batch_size=cfg.batch), target_sets, refs


def check_target_keys(control, target_kw: dict) -> None:
    """Target arguments the control's ``targets`` does not take fail with the ones it does."""
    params = inspect.signature(control.targets).parameters
    known = [k for k in params if k not in ("n", "seed", "references", "clips", "source")]
    unknown = sorted(set(target_kw) - set(known))
    if unknown:
        raise ValueError(f"{control.name} target has unknown keys {unknown}; it takes {known}")


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
                     out: Path, mel: Optional[torch.Tensor] = None, clips: Optional[list] = None) -> list:
    """The run's report, in order: decode (shared), CLAP / FAD (shared, when a CLAP is configured), one
    grader per control (from the registry), summary (shared, last)."""
    from ditto2.lit.report import AudioReport, ControlReport, DecodeReport, RunOutputs, SummaryReport, TagReport

    outputs = RunOutputs(out, cfg.report_items)
    claps = {k: p for k, p in (("clap", cfg.clap), ("laion", cfg.laion_clap), ("judge", cfg.clap_judge)) if p}
    same = lambda path: bundle_stem(path).resolve()  # noqa: E731  (two names of one bundle compare equal)
    optimized = {same(c.embedder_path) for c in composite.controls if getattr(c, "embedder_path", None)}
    self_graded = {k for k, p in claps.items() if same(p) in optimized}
    callbacks = [DecodeReport(outputs, gen, mel)]
    if claps:
        exclude = [c["clip_id"] for c in clips or []]
        callbacks.append(AudioReport(outputs, claps, captions, cfg.shards, cfg.fad_reference, exclude, self_graded))
    callbacks += [ControlReport(outputs, c, ts, cfg.method) for c, ts in zip(composite.controls, target_sets)]
    if cfg.tagger:
        callbacks.append(TagReport(outputs, cfg.tagger, captions))
    return callbacks + [SummaryReport(outputs, cfg, target_sets)]


def run_device(cfg: ITOConfig) -> str:
    """"cuda", "cuda:N" or "cpu": the config's device, "auto" meaning CUDA when there is one."""
    if cfg.device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return cfg.device


@dataclass
class RunParts:
    """What a run optimizes with and against: the base model, the surrogate, the controls with their targets, and the
    held-out clips they came from (None without shards)."""

    gen: Any
    surrogate: Any
    composite: CompositeControl
    target_sets: list
    refs: Optional[torch.Tensor]
    clips: Optional[list]


def build_run(cfg: ITOConfig, gen=None, students: Optional[dict] = None) -> RunParts:
    """A config's models, surrogate, controls and targets (every target checked here, before any step): the runner,
    the interactive bench and the page build a run this one way."""
    gen = gen or load_generator(cfg.teacher)
    check_update_pool(cfg.update_pool, gen.mel.n_mels, gen.mel.frames)  # before any compute, not at the first step
    refs, clips = reference_clips(cfg, gen)
    surrogate, gen = build_surrogate(cfg, cfg.tags, clips, gen, students)
    composite, target_sets, refs = build_control_and_targets(cfg, run_context(cfg, gen), refs, clips)
    return RunParts(gen, surrogate, composite, target_sets, refs, clips)


def run_ito(cfg: ITOConfig) -> dict:
    t_setup = time.perf_counter()
    check_config(cfg)
    parts = build_run(cfg)
    gen, surrogate, composite, target_sets, clips = (parts.gen, parts.surrogate, parts.composite, parts.target_sets,
                                                     parts.clips)
    captions = item_captions(cfg, clips, target_sets)
    shape = (cfg.batch, 1, gen.mel.n_mels, gen.mel.frames)
    out = Path(cfg.out)
    (out / "summary.json").unlink(missing_ok=True)  # written last: its presence says this config's run finished
    save_config(cfg, out / "config.yaml")
    save_targets(cfg, target_sets, out / "targets.safetensors")
    device = run_device(cfg)
    setup_s = time.perf_counter() - t_setup
    callbacks = lambda mel=None: report_callbacks(cfg, gen, composite, target_sets, captions, out, mel, clips)
    if cfg.steps > 0 and cfg.engine == "lightning":
        summary = _run_lightning(cfg, surrogate, composite, shape, device, callbacks(), out)
    else:
        summary = _run_loop(cfg, surrogate.to(device), composite.to(device), shape, device, callbacks, out)
    summary["setup_s"] = round(setup_s, 3)
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    return summary


def step_options(cfg: ITOConfig) -> dict:
    """The settings of the optimization's steps that ``optimize_noise`` and ``ITOModule`` both take, by their names:
    one place to add the next one."""
    return {"lr": cfg.lr, "prior_weight": cfg.prior_weight, "lr_decay": cfg.lr_decay, "betas": cfg.adam_betas,
            # every option of ``ito.options``; the best-of-n start reaches the engines as its candidates (start_others)
            **{k: v for k, v in all_options(cfg).items() if k != "start_candidates"}}


def start_others(cfg: ITOConfig, shape: tuple, seed: Optional[int] = None) -> Optional[torch.Tensor]:
    """The further candidate starts of a run with ``start_candidates`` > 1 (``candidate_noises`` of ``seed``, the
    config's by default); None when off."""
    seed = cfg.seed if seed is None else seed
    return candidate_noises(shape, seed, cfg.start_candidates) if cfg.start_candidates > 1 else None


def _run_lightning(cfg: ITOConfig, surrogate, composite, shape, device: str, callbacks: list, out: Path) -> dict:
    import pytorch_lightning as pl

    from ditto2.lit.ito import ITOModule

    module = ITOModule(surrogate, composite, shape, steps=cfg.steps, m=cfg.m, seed=cfg.seed,
                       start_others=start_others(cfg, shape), **step_options(cfg))
    logger = pl.loggers.TensorBoardLogger(str(out), name="tb", version="") if cfg.tensorboard else False
    gpu = device.startswith("cuda")
    trainer = pl.Trainer(max_steps=cfg.steps, accelerator="gpu" if gpu else "cpu",
                         devices=[int(device.split(":")[1])] if gpu and ":" in device else 1, logger=logger,
                         callbacks=callbacks, enable_checkpointing=False,
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
                         gradient_clip=cfg.gradient_clip, on_step=log, seed=cfg.seed,
                         start_others=start_others(cfg, shape),  # K = 0 with n > 1 is refused by check_config
                         **step_options(cfg))
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

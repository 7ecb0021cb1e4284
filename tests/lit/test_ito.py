"""ITO (paper Alg. 1) on small random models and synth shards: what is trained, what changes, and
that every control's loss goes down from the same start against the same target."""
import json

import pytest
import torch

from ditto2.controls import ControlTargetError, MelContext, build_control
from ditto2.ito.surrogates import BaseModelSurrogate, Surrogate, m_mean, m_schedule, parse_m
from ditto2.lit.ito import ITOModule
from ditto2.models.generator import load_generator
from ditto2.runs.ito import build_control_and_targets, build_surrogate, load_config, run_ito


class Identity(Surrogate):
    """A surrogate whose output is the noise itself: the ITO loop's arithmetic without a model."""

    def optimize_forward(self, z, m):
        return z

    def decode(self, z):
        return z


def config(synth_tiny, teacher_tiny, student_bundles, tmp_path, control="intensity", **kw):
    over = [f"teacher={teacher_tiny}", f"cm={student_bundles['cm']}", f"ctm={student_bundles['ctm']}",
            f"shards={synth_tiny}", "batch=2", "steps=6", "lr=0.05", f"out={tmp_path}", "tensorboard=false"]
    over += [f"{k}={v}" for k, v in kw.items()]
    cfg = load_config(None, over)
    cfg.controls[0].name = control
    return cfg


def test_adaptive_schedule_counts():
    s = m_schedule(70, "adaptive")
    assert (s.count(1), s.count(2), s.count(4)) == (35, 26, 9) and len(s) == 70
    assert m_schedule(5, 2) == [2] * 5
    with pytest.raises(ValueError):
        m_schedule(5, 0)


def test_m_schedule_spec():
    """'M:share,...,M': ⌊share·K⌋ steps per part in order, the last part the rest; the paper's adaptive
    schedule is one such spec; the mean M is what a step costs."""
    assert m_schedule(10, "1:0.8,2") == [1] * 8 + [2] * 2
    assert m_schedule(7, "1:0.5,4") == [1] * 3 + [4] * 4
    assert m_schedule(70, "1:0.5,2:0.375,4") == m_schedule(70, "adaptive")
    assert m_schedule(4, "3") == [3] * 4
    assert m_schedule(100, "1:0.29,2").count(1) == 29  # ⌊share·K⌋ without float round-down (0.29·100 = 28.999…)
    assert m_mean("1:0.8,2") == pytest.approx(1.2) and m_mean("adaptive") == pytest.approx(1.75) and m_mean(2) == 2
    for bad in ("1:0.8", "1:1.5,2", "1:0.6,2:0.6,4", "0:0.5,1", "1;2", "", True, 1.5):
        with pytest.raises(ValueError, match="M must be"):
            parse_m(bad)


@pytest.mark.parametrize("method", ["ditto2-ctm", "ditto2-cm"])
def test_noise_is_the_only_parameter_and_models_do_not_change(method, synth_tiny, teacher_tiny, student_bundles, tmp_path):
    cfg = config(synth_tiny, teacher_tiny, student_bundles, tmp_path, method=method)
    surrogate, gen = build_surrogate(cfg, {})
    composite, _, _ = build_control_and_targets(cfg, MelContext(gen.mel, gen.normalizer))
    module = ITOModule(surrogate, composite, (2, 1, 64, 256), steps=3, lr=0.05)
    trainable = [n for n, p in module.named_parameters() if p.requires_grad]
    assert trainable == ["z"]
    before = {k: v.clone() for k, v in module.surrogate.state_dict().items()}
    z0 = module.z.detach().clone()
    import pytorch_lightning as pl

    pl.Trainer(max_steps=3, logger=False, enable_checkpointing=False, enable_progress_bar=False,
               enable_model_summary=False).fit(module)
    assert all(torch.equal(before[k], v) for k, v in module.surrogate.state_dict().items())
    assert not torch.equal(z0, module.z.detach())
    assert not module.surrogate.training


@pytest.mark.parametrize("control", ["intensity", "melody", "structure", "outpainting", "inpainting"])
def test_ito_lowers_each_controls_loss(control, synth_tiny, teacher_tiny, student_bundles, tmp_path):
    cfg = config(synth_tiny, teacher_tiny, student_bundles, tmp_path, control)
    summary = run_ito(cfg)
    assert summary["loss_end"] < summary["loss_start"], summary
    item = json.loads((tmp_path / "item_00" / "result.json").read_text())
    assert len(item["loss_per_step"]) == cfg.steps and item["metrics"]
    assert (tmp_path / "item_00" / "ito.wav").exists() and (tmp_path / "item_00" / f"{control}.png").exists()
    assert summary["optimize_s"] > 0 and summary["decode_s"] > 0


def test_ditto_baseline_runs_and_its_checkpointed_gradient_is_exact(synth_tiny, teacher_tiny, student_bundles, tmp_path):
    gen = load_generator(str(teacher_tiny))
    tags = gen.encode_tags({}, 1)
    z = torch.randn(1, 1, 64, 256, generator=torch.Generator().manual_seed(0))
    grads = []
    for ckpt in (True, False):
        s = BaseModelSurrogate(gen.denoiser, tags, steps=4, checkpoint=ckpt)
        zz = z.clone().requires_grad_(True)
        s.optimize_forward(zz).square().mean().backward()
        grads.append(zz.grad)
    assert torch.allclose(grads[0], grads[1], atol=1e-6, rtol=1e-5)
    cfg = config(synth_tiny, teacher_tiny, student_bundles, tmp_path, method="ditto", base_steps=3, steps=3)
    summary = run_ito(cfg)
    assert summary["method"] == "ditto" and summary["T"] == 3


def test_bad_targets_and_configs_fail_before_compute(synth_tiny, teacher_tiny, student_bundles, tmp_path):
    gen = load_generator(str(teacher_tiny))
    ctx = MelContext(gen.mel, gen.normalizer)
    melody = build_control("melody", ctx)
    with pytest.raises(ControlTargetError):
        melody.check_target(torch.full((256,), 12))
    with pytest.raises(ControlTargetError):
        melody.check_target(torch.zeros(100, dtype=torch.long))
    intensity = build_control("intensity", ctx)
    with pytest.raises(ControlTargetError):
        intensity.check_target(torch.full((256,), float("nan")))
    from ditto2.controls import form_ssm

    with pytest.raises(ControlTargetError):
        form_ssm("A-B", 64)
    with pytest.raises(ValueError, match="method"):
        load_config(None, ["method=dito"])
    with pytest.raises(ValueError, match="unknown control"):
        run_ito(config(synth_tiny, teacher_tiny, student_bundles, tmp_path, "loudness"))
    cfg = config(synth_tiny, teacher_tiny, student_bundles, tmp_path, decode_steps=25)
    with pytest.raises(ValueError, match="steps must be in"):
        run_ito(cfg)


def test_text_control_with_reference_tags_and_clap_scores(synth_tiny, teacher_tiny, student_bundles, clap_bundle, tmp_path):
    cfg = config(synth_tiny, teacher_tiny, student_bundles, tmp_path, "text", tags="reference", clap=str(clap_bundle))
    cfg.controls[0].kwargs = {"embedder": str(clap_bundle), "judge": None}
    summary = run_ito(cfg)
    assert summary["loss_end"] < summary["loss_start"], summary
    item = json.loads((tmp_path / "item_00" / "result.json").read_text())
    from safetensors.torch import load_file

    emb = load_file(str(tmp_path / "embeddings.safetensors"))  # the score is the cosine of the saved embeddings
    cos = torch.nn.functional.cosine_similarity(emb["audio"][0], emb["text"][0], dim=0)
    # the run's grading CLAP is the one its text control optimized: the score is kept, under a key that says so
    assert "clap_score" not in item["metrics"] and "text_clap_cosine_self_graded" in item["metrics"]
    assert item["metrics"]["clap_score_self_graded"] == pytest.approx(float(cos), abs=1e-4)
    assert json.loads((tmp_path / "summary.json").read_text())["self_graded_claps"] == ["clap"]
    assert item["caption"].endswith("beats per minute.") and item["targets"]["text"].startswith("caption: ")
    import re

    from ditto2.metrics.control import tempo_errors  # the independent tempo grade, from the caption's BPM

    target_bpm = float(re.search(r"(\d+(?:\.\d+)?) beats per minute", item["caption"]).group(1))
    m = item["metrics"]
    assert m["text_tempo_error_pct"] == pytest.approx(tempo_errors(m["text_tempo_bpm"], target_bpm)["error_pct"], abs=0.02)


def test_report_computes_fad_and_clap_and_logs_them(synth_eval, teacher_tiny, student_bundles, clap_bundle, tmp_path):
    """One run of 17 items (> the 16-d CLAP): FAD against every held-out clip, CLAP scores, TensorBoard
    scalars; only report_items items get files; K = 0 grades plain sampling the same way."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    over = dict(tags="reference", clap=str(clap_bundle), fad_reference="all", batch=17, report_items=1,
                tensorboard="true", shards=str(synth_eval))
    cfg = config(synth_eval, teacher_tiny, student_bundles, tmp_path, "intensity", **over)
    summary = run_ito(cfg)
    assert summary["fad"] is not None and summary["fad"] > 0 and "17 generations" in summary["fad_note"]
    assert len(summary["items"]) == 17 and all(-1 <= m["clap_score"] <= 1 for m in summary["items"])
    assert sorted(p.name for p in tmp_path.glob("item_*")) == ["item_00"]
    ea = EventAccumulator(str(next(tmp_path.glob("tb/**/events.out.tfevents.*")).parent))
    ea.Reload()
    assert {"metric/fad", "metric/clap_score", "metric/intensity_mse_db2"} <= set(ea.Tags()["scalars"])
    base = run_ito(config(synth_eval, teacher_tiny, student_bundles, tmp_path / "k0", "intensity",
                          **{**over, "steps": 0, "tensorboard": "false"}))
    assert base["K"] == 0 and base["optimize_s"] == 0 and base["loss_start"] == base["loss_end"]
    assert base["fad"] is not None


def test_fad_is_left_out_with_a_reason_when_the_batch_is_small(synth_eval, teacher_tiny, student_bundles, clap_bundle,
                                                              tmp_path):
    cfg = config(synth_eval, teacher_tiny, student_bundles, tmp_path, "intensity", clap=str(clap_bundle),
                 fad_reference=20, shards=str(synth_eval))
    summary = run_ito(cfg)
    assert summary["fad"] is None and "needs more than 16 generations" in summary["fad_note"]
    with pytest.raises(ValueError, match="fad_reference needs clap"):
        load_config(None, ["fad_reference=all"])
    with pytest.raises(ValueError, match="laion_clap"):
        load_config(None, [f"laion_clap={tmp_path}"])


@pytest.mark.parametrize("path", sorted(__import__("pathlib").Path("experiments/ito").glob("*.yaml")), ids=lambda p: p.name)
def test_every_ito_yaml_parses_and_names_known_controls(path):
    from ditto2.controls import CONTROLS

    cfg = load_config(str(path))
    assert cfg.controls and all(c.name in CONTROLS for c in cfg.controls)


def test_bench_yamls_only_use_known_keys(tmp_path):
    from ditto2.bench.ito import load_bench_config

    for path in __import__("pathlib").Path("experiments/bench").glob("*.yaml"):
        cfg = load_bench_config(str(path))  # unknown keys and wrong types fail here
        assert set(cfg.controls or {}) <= {"intensity", "melody", "structure", "outpainting", "inpainting", "text"}
        for row in (cfg.text or {}).get("rows", []):  # [label, method, K or null, tags]
            assert len(row) == 4 and row[1] in ("ditto", "ditto2-cm", "ditto2-ctm") and row[3] in ("reference", "null"), path
    bad = tmp_path / "bad.yaml"
    bad.write_text("n: 4\nbatchsize: 2\n")
    with pytest.raises(ValueError, match="unknown benchmark keys"):
        load_bench_config(str(bad))


def test_the_plain_loop_and_the_lightning_module_take_the_same_steps(synth_tiny, teacher_tiny, student_bundles, tmp_path):
    """``optimize_noise`` (no Lightning) and ``ITOModule`` under a Trainer: same seed -> same losses and noise."""
    import pytorch_lightning as pl

    from ditto2.ito.optimize import initial_noise, optimize_noise

    cfg = config(synth_tiny, teacher_tiny, student_bundles, tmp_path)
    surrogate, gen = build_surrogate(cfg, {})
    composite, _, _ = build_control_and_targets(cfg, MelContext(gen.mel, gen.normalizer))
    shape = (2, 1, gen.mel.n_mels, gen.mel.frames)
    module = ITOModule(surrogate, composite, shape, steps=4, m=1, lr=0.05, seed=3)
    pl.Trainer(max_steps=4, logger=False, enable_checkpointing=False, enable_progress_bar=False,
               enable_model_summary=False).fit(module)
    run = optimize_noise(surrogate, composite, initial_noise(shape, 3), m_schedule(4, 1), lr=0.05)
    assert len(run.history) == 4 and run.history[-1] != run.history[0]
    assert torch.allclose(torch.tensor(run.history), torch.tensor(module.history), rtol=1e-5, atol=1e-6)
    assert torch.allclose(run.z, module.z, atol=1e-6)


def test_a_run_folder_holds_its_config_and_both_engines_agree(synth_tiny, teacher_tiny, student_bundles, tmp_path):
    from ditto2.runs.ito import load_config as load

    results = {}
    for engine in ("lightning", "loop"):
        cfg = config(synth_tiny, teacher_tiny, student_bundles, tmp_path / engine, steps=3, engine=engine)
        results[engine] = run_ito(cfg)
        again = load(str(tmp_path / engine / "config.yaml"))  # the run is reproducible from its folder
        assert again == cfg
    a, b = (results[e]["items"] for e in ("lightning", "loop"))
    for x, y in zip(a, b):
        assert x.keys() == y.keys() and all(abs(x[k] - y[k]) <= 1e-3 * max(1.0, abs(x[k])) for k in x)


def test_the_runner_starts_from_the_best_of_n_in_both_engines(synth_tiny, teacher_tiny, student_bundles, tmp_path):
    """start_candidates reaches both engines: they agree, the run records it, and each item's first loss is at most the
    plain start's (candidate 0 is the plain start)."""
    plain = run_ito(config(synth_tiny, teacher_tiny, student_bundles, tmp_path / "plain", steps=2, engine="loop"))
    runs = {e: run_ito(config(synth_tiny, teacher_tiny, student_bundles, tmp_path / e, steps=2, engine=e,
                              start_candidates=4)) for e in ("lightning", "loop")}
    assert runs["loop"]["start_candidates"] == 4 and "start_candidates" not in plain
    assert runs["loop"]["loss_start"] == pytest.approx(runs["lightning"]["loss_start"], rel=1e-4)
    assert runs["loop"]["loss_start"] < plain["loss_start"]  # (these seeds: a further candidate wins)


@pytest.mark.parametrize("m, expected", [(2, [2] * 8), ("adaptive", [1] * 4 + [2] * 3 + [4] * 1)])
def test_each_step_uses_the_schedules_m(m, expected):
    """The surrogate is asked for M steps at step k exactly as ``m_schedule`` says, in both engines."""
    import pytorch_lightning as pl

    from ditto2.ito.optimize import initial_noise, optimize_noise

    class Recording(Surrogate):
        sigma_max = 80.0

        def __init__(self):
            super().__init__()
            self.asked = []

        def optimize_forward(self, z, m):
            self.asked.append(m)
            return z * m

        def decode(self, z):
            return z

    loss = lambda mel: mel.pow(2).flatten(1).mean(1)  # noqa: E731
    s1, s2 = Recording(), Recording()
    module = ITOModule(s1, loss, (2, 1, 4, 4), steps=8, m=m, lr=0.1)
    pl.Trainer(max_steps=8, logger=False, enable_checkpointing=False, enable_progress_bar=False,
               enable_model_summary=False).fit(module)
    optimize_noise(s2, loss, initial_noise((2, 1, 4, 4), 0), m_schedule(8, m), lr=0.1)
    assert s1.asked == s2.asked == expected


def test_text_control_graded_by_a_judge_and_a_tagger(synth_tiny, teacher_tiny, student_bundles, clap_bundle,
                                                    clap_judge_bundle, tagger_bundle, tmp_path):
    """Graders no control optimizes: the judging CLAP (the control's grade and clap_judge_score, one number from two
    roads), the tagger's genre / mood / tempo bucket against each caption, FAD-free and self-grading-free keys."""
    from ditto2.metrics.tags import caption_tags, load_tagger

    cfg = config(synth_tiny, teacher_tiny, student_bundles, tmp_path, "text", tags="reference", clap=str(clap_bundle),
                 clap_judge=str(clap_judge_bundle), tagger=str(tagger_bundle))
    cfg.controls[0].kwargs = {"embedder": str(clap_bundle)}  # the judge comes from the run (TextControl.run_options)
    summary = run_ito(cfg)
    for m, caption in zip(summary["items"], json.loads((tmp_path / "items.json").read_text())):
        assert m["text_clap_judge_cosine"] == pytest.approx(m["clap_judge_score"], abs=2e-4)
        assert "text_clap_cosine_self_graded" not in m and "clap_score_self_graded" in m
        named = caption_tags(caption["target"].removeprefix("caption: "), load_tagger(tagger_bundle).values)
        assert {k.rsplit("_", 1)[0] for k in m if k.endswith("_acc")} == set(named)
        assert all(m[f"{f}_acc"] in (0.0, 1.0) and 0 <= m[f"{f}_prob"] <= 1 for f in named)
    assert summary["self_graded_claps"] == ["clap"]


def test_a_judge_that_is_the_optimized_clap_is_refused(synth_tiny, teacher_tiny, student_bundles, clap_bundle,
                                                      clap_judge_bundle, tmp_path):
    # the control's own judge kwarg wins over the run's clap_judge, and is refused: it is the CLAP being optimized
    cfg = config(synth_tiny, teacher_tiny, student_bundles, tmp_path, "text", tags="reference",
                 clap_judge=str(clap_judge_bundle))
    cfg.controls[0].kwargs = {"embedder": str(clap_bundle), "judge": str(clap_bundle).removesuffix(".safetensors")}
    with pytest.raises(ValueError, match="is the CLAP it optimizes"):
        run_ito(cfg)


def test_step_sizes_constant_and_cosine():
    import math

    from ditto2.ito.optimize import step_sizes

    assert step_sizes(0.02, 3) == [0.02] * 3
    cos = step_sizes(0.02, 4, "cosine")  # lr·½(1 + cos(πi/4)), i = 0..3
    assert cos == pytest.approx([0.02, 0.01 * (1 + math.sqrt(0.5)), 0.01, 0.01 * (1 - math.sqrt(0.5))])
    with pytest.raises(ValueError, match="lr_decay must be one of"):
        step_sizes(0.02, 4, "linear")


@pytest.mark.parametrize("decay", ["constant", "cosine"])
def test_both_engines_step_with_the_schedules_sizes(decay):
    """A loss with a constant gradient (sum of z): Adam moves every entry by exactly the step size at each step, so
    after K steps z = z0 − Σ sizes — in the plain loop and in the Lightning module."""
    import pytorch_lightning as pl

    from ditto2.ito.optimize import initial_noise, optimize_noise, step_sizes

    loss = lambda mel: mel.flatten(1).sum(1)  # noqa: E731
    z0 = initial_noise((2, 1, 4, 4), 0)
    expected = z0 - sum(step_sizes(0.1, 6, decay))
    run = optimize_noise(Identity(), loss, z0, m_schedule(6, 1), lr=0.1, lr_decay=decay)
    module = ITOModule(Identity(), loss, (2, 1, 4, 4), steps=6, m=1, lr=0.1, lr_decay=decay)
    pl.Trainer(max_steps=6, logger=False, enable_checkpointing=False, enable_progress_bar=False,
               enable_model_summary=False).fit(module)
    assert torch.allclose(run.z.detach(), expected, atol=1e-5)
    assert torch.allclose(module.z.detach(), expected, atol=1e-5)


def test_adam_betas_reach_both_engines_and_bad_pairs_fail_before_compute():
    """A quadratic loss ½‖z‖²: both engines take the same steps as a hand-written Adam with the given (β1, β2), which
    differ from the default betas' steps; a pair outside [0, 1) is one line naming adam_betas, in the config too."""
    import pytorch_lightning as pl

    from ditto2.ito.optimize import check_betas, initial_noise, optimize_noise
    from ditto2.runs.ito import load_config

    def hand_adam(z, lr, b1, b2, k, eps=1e-8):
        m, v = torch.zeros_like(z), torch.zeros_like(z)
        for t in range(1, k + 1):
            g = z  # the gradient of ½‖z‖²
            m, v = b1 * m + (1 - b1) * g, b2 * v + (1 - b2) * g * g
            z = z - lr * (m / (1 - b1**t)) / ((v / (1 - b2**t)).sqrt() + eps)
        return z

    loss = lambda mel: 0.5 * mel.flatten(1).pow(2).sum(1)  # noqa: E731
    z0 = initial_noise((2, 1, 4, 4), 0)
    expected = hand_adam(z0, 0.1, 0.5, 0.9, 5)
    assert not torch.allclose(expected, hand_adam(z0, 0.1, 0.9, 0.999, 5), atol=1e-3)
    run = optimize_noise(Identity(), loss, z0, m_schedule(5, 1), lr=0.1, betas=(0.5, 0.9))
    module = ITOModule(Identity(), loss, (2, 1, 4, 4), steps=5, m=1, lr=0.1, betas=[0.5, 0.9])
    pl.Trainer(max_steps=5, logger=False, enable_checkpointing=False, enable_progress_bar=False,
               enable_model_summary=False).fit(module)
    assert torch.allclose(run.z.detach(), expected, atol=1e-5)
    assert torch.allclose(module.z.detach(), expected, atol=1e-5)
    assert check_betas([0, 0.5]) == (0.0, 0.5)
    for bad in ([1.0, 0.9], [0.5], [0.5, -0.1]):
        with pytest.raises(ValueError, match="adam_betas must be two numbers in"):
            check_betas(bad)
    assert load_config(None, ["adam_betas=[0.5,0.9]"]).adam_betas == [0.5, 0.9]
    with pytest.raises(ValueError, match="adam_betas"):
        load_config(None, ["adam_betas=[0.5,1.5]"])


def test_refined_decode_is_the_students_decode_finished_by_the_teacher(synth_tiny, teacher_tiny, student_bundles,
                                                                      tmp_path):
    from ditto2.diffusion.guidance import guided_denoise
    from ditto2.diffusion.samplers import base_sigmas, refine_guided

    z = torch.randn(2, 1, 64, 256, generator=torch.Generator().manual_seed(3))
    plain, _ = build_surrogate(config(synth_tiny, teacher_tiny, student_bundles, tmp_path, decode_steps=1), {})
    refined, gen = build_surrogate(config(synth_tiny, teacher_tiny, student_bundles, tmp_path, decode_steps=1,
                                          refine_sigma=0.4, base_steps=10), {})
    assert plain.teacher is None and refined.teacher is gen.denoiser
    with pytest.raises(ValueError, match="teacher prior needs the base model"):
        plain.teacher_denoise(torch.zeros(1, 1, 64, 256), 1.0)
    guided, gen = build_surrogate(config(synth_tiny, teacher_tiny, student_bundles, tmp_path, decode_steps=1,
                                         teacher_weight=1.0), {})
    assert guided.teacher is gen.denoiser and torch.equal(guided.decode(z), plain.decode(z))  # no refinement
    noisy = z * 0.5
    assert torch.allclose(guided.teacher_denoise(noisy, 0.5),
                          guided_denoise(gen.denoiser, noisy, 0.5, guided.tags.expand(2, -1), guided.w))
    x = plain.decode(z)
    grid = base_sigmas(10, gen.denoiser.sigma_min, gen.denoiser.sigma_max)
    assert refined.refine_grid[0] == pytest.approx(0.4) and len(refined.refine_grid) == int((grid < 0.4).sum()) + 1
    expect = refine_guided(gen.denoiser, x, refined.tags.expand(2, -1), 2.0, refined.refine_grid,
                           torch.Generator().manual_seed(refined.seed + 2000))
    assert torch.allclose(refined.decode(z), expect) and not torch.allclose(expect, x, atol=1e-3)
    # optimizing never touches the teacher: the refined surrogate's M-step map is the plain one's
    assert torch.equal(refined.optimize_forward(z, 1), plain.optimize_forward(z, 1))
    with pytest.raises(ValueError, match="refine_sigma"):
        load_config(None, ["refine_sigma=-0.1"])


def test_envelope_change_ignores_a_level_and_measures_a_tilt():
    """envelope_change: 0 for a level added to every bin; for a tilt a·f over F bins, the variance of a·f over f
    (a²(F²−1)/12), whatever the time course; per item."""
    from ditto2.ito.optimize import envelope, envelope_change

    x = torch.randn(3, 1, 8, 16, generator=torch.Generator().manual_seed(0))
    start = envelope(x)
    assert envelope_change(x, start).abs().max() < 1e-12
    assert envelope_change(x + torch.tensor([-3.0, 0.5, 7.0]).view(3, 1, 1, 1), start).abs().max() < 1e-10
    a = torch.tensor([0.1, 0.0, -0.4])
    tilted = x + a.view(3, 1, 1, 1) * torch.arange(8.0).view(1, 1, 8, 1) + torch.randn(3, 1, 1, 16)  # + a time course
    assert torch.allclose(envelope_change(tilted, start), a.pow(2) * (8**2 - 1) / 12, atol=1e-5)


def test_envelope_prior_moves_every_bin_and_both_engines_take_the_same_steps():
    """A control that asks only bin 0 to get louder. Without the envelope prior only bin 0 moves (a new timbre); with it
    the other bins follow (a level), step 0's loss is the control's alone (the start envelope is z0's), and the loop and
    the Lightning module take the same steps; the prior without its start envelope is refused."""
    import pytorch_lightning as pl

    from ditto2.ito.optimize import envelope, initial_noise, objective, optimize_noise

    loss = lambda mel: (mel[:, 0, 0].mean(-1) - 2.0).pow(2)  # noqa: E731
    z0 = initial_noise((2, 1, 6, 8), 0)
    plain = optimize_noise(Identity(), loss, z0, m_schedule(20, 1), lr=0.05)
    kept = optimize_noise(Identity(), loss, z0, m_schedule(20, 1), lr=0.05, envelope_weight=10.0)
    rise = lambda run: (envelope(run.z.detach()) - envelope(z0))  # noqa: E731
    assert rise(plain)[:, 1:].abs().max() < 1e-6 and rise(plain)[:, 0].min() > 0.5
    assert rise(kept)[:, 1:].min() > 0.1
    assert kept.history[0] == pytest.approx(loss(z0).tolist())
    module = ITOModule(Identity(), loss, (2, 1, 6, 8), steps=20, m=1, lr=0.05, envelope_weight=10.0)
    pl.Trainer(max_steps=20, logger=False, enable_checkpointing=False, enable_progress_bar=False,
               enable_model_summary=False).fit(module)
    assert torch.allclose(module.z.detach(), kept.z.detach(), atol=1e-5)
    with pytest.raises(ValueError, match="start envelope"):
        objective(Identity(), loss, z0, 1, envelope_weight=1.0)
    with pytest.raises(ValueError, match="envelope_weight"):
        load_config(None, ["envelope_weight=-1"])


def test_anchor_prior_takes_the_nearest_noise_that_meets_the_control_and_both_engines_agree():
    """objective's anchor term is weight · mean over elements of (z − z0)², 0 at z0. With the control (mean(z) − c)² the
    minimum of the sum is the uniform shift z0 + (c − mean(z0)) / (1 + weight): Adam finds it, the prior's absence gives
    the full shift; the loop and the Lightning module take the same steps; the prior without z0 is refused."""
    import pytorch_lightning as pl

    from ditto2.ito.optimize import anchor_distance, initial_noise, objective, optimize_noise

    c, weight, shape = 1.5, 3.0, (2, 1, 4, 5)
    loss = lambda mel: (mel.flatten(1).mean(1) - c).pow(2)  # noqa: E731
    z0 = initial_noise(shape, 0)
    z = z0 + torch.linspace(-1, 1, 40).view(1, 1, 4, 10)[..., :5]
    expected = loss(z) + weight * (z - z0).pow(2).flatten(1).sum(1) / 20
    assert torch.allclose(objective(Identity(), loss, z, 1, anchor_weight=weight, z_start=z0), expected)
    assert anchor_distance(z0, z0).abs().max() == 0
    shift = lambda run: (run.z.detach() - z0)  # noqa: E731
    target = (c - z0.flatten(1).mean(1)).view(2, 1, 1, 1)
    free = optimize_noise(Identity(), loss, z0, m_schedule(600, 1), lr=0.01)
    anchored = optimize_noise(Identity(), loss, z0, m_schedule(600, 1), lr=0.01, anchor_weight=weight)
    assert torch.allclose(shift(anchored), (target / (1 + weight)).expand(shape), atol=0.02)
    assert shift(free).flatten(1).mean(1).sub(target.flatten()).abs().max() < 0.02
    assert anchored.history[0] == pytest.approx(loss(z0).tolist())  # nothing to pay at the start
    module = ITOModule(Identity(), loss, shape, steps=30, m=1, lr=0.01, anchor_weight=weight)
    pl.Trainer(max_steps=30, logger=False, enable_checkpointing=False, enable_progress_bar=False,
               enable_model_summary=False).fit(module)
    loop = optimize_noise(Identity(), loss, z0, m_schedule(30, 1), lr=0.01, anchor_weight=weight)
    assert torch.allclose(module.z.detach(), loop.z.detach(), atol=1e-6)
    with pytest.raises(ValueError, match="initial noise"):
        objective(Identity(), loss, z0, 1, anchor_weight=1.0)
    with pytest.raises(ValueError, match="anchor_weight"):
        load_config(None, ["anchor_weight=-1"])


def test_best_of_n_start_picks_each_items_best_candidate_and_both_engines_agree():
    """candidate_noises is fixed by (seed, j) and never the run's own initial noise; best_start returns, per item, the
    candidate whose surrogate output has the lowest control loss (checked against a loop over candidates), with the
    (n, B) losses; optimize_noise starts from that candidate (its first loss is the chosen one's), n = 1 changes nothing,
    and the Lightning module takes the same steps as the loop; K = 0 and n < 1 are refused before any compute."""
    import pytorch_lightning as pl

    from ditto2.ito.optimize import best_start, candidate_noises, initial_noise, optimize_noise

    shape, c = (3, 1, 4, 5), 0.4
    loss = lambda mel: (mel.flatten(1).mean(1) - c).pow(2)  # noqa: E731
    z0, others = initial_noise(shape, 7), candidate_noises(shape, 7, 16)
    assert others.shape == (15, *shape) and torch.equal(others, candidate_noises(shape, 7, 16))
    assert not torch.equal(others[0], candidate_noises(shape, 8, 2)[0])  # another seed, other candidates
    # no candidate is any small seed's initial noise (torch's generator reads only a seed's low 32 bits, so seed
    # arithmetic past 2³² would repeat them: candidate j of seed 0 was once initial_noise(j))
    starts = [initial_noise(shape, s) for s in range(64)]
    assert not any(torch.equal(c, s) for c in candidate_noises(shape, 0, 16) for s in starts)
    assert all(not torch.equal(o, initial_noise(shape, s)) for o in others for s in range(8))
    chosen, losses = best_start(Identity(), loss, z0, others, 1)
    pool = torch.cat([z0.unsqueeze(0), others])
    for b in range(shape[0]):
        by_hand = min(range(16), key=lambda j: float(loss(pool[j])[b]))
        assert torch.equal(chosen[b], pool[by_hand, b]) and losses[by_hand, b] == losses[:, b].min()
    assert losses[:, :].min(0).values.max() < loss(z0).max()  # 16 draws start nearer than the first alone here
    picked = optimize_noise(Identity(), loss, z0, m_schedule(5, 1), lr=0.01, start_others=others)
    assert picked.history[0] == pytest.approx(loss(chosen).tolist())
    plain = optimize_noise(Identity(), loss, z0, m_schedule(5, 1), lr=0.01, start_others=candidate_noises(shape, 7, 1))
    assert plain.history[0] == pytest.approx(loss(z0).tolist())
    module = ITOModule(Identity(), loss, shape, steps=5, m=1, lr=0.01, seed=7, start_others=others)
    pl.Trainer(max_steps=5, logger=False, enable_checkpointing=False, enable_progress_bar=False,
               enable_model_summary=False).fit(module)
    assert torch.allclose(module.z.detach(), picked.z.detach(), atol=1e-6)
    assert module.history[0] == pytest.approx(picked.history[0])
    with pytest.raises(ValueError, match="start_candidates"):
        load_config(None, ["start_candidates=0"])
    with pytest.raises(ValueError, match="steps"):
        load_config(None, ["start_candidates=4", "steps=0"])


def test_the_noise_optimizer_reaches_both_engines_and_bad_names_fail_before_compute():
    """optimizer=adam-item: the loop and the Lightning module take ItemAdam's steps (not Adam's); a name outside
    ito.optimizers.OPTIMIZERS is one line naming optimizer, in the config too."""
    import pytorch_lightning as pl

    from ditto2.ito.optimize import initial_noise, optimize_noise
    from ditto2.ito.optimizers import ItemAdam

    shape = (2, 1, 4, 5)
    w = torch.linspace(0.1, 2.0, 20).view(1, 1, 4, 5)
    loss = lambda mel: (w * (mel - 0.5).pow(2)).flatten(1).sum(1)  # noqa: E731
    z0 = initial_noise(shape, 0)
    z = torch.nn.Parameter(z0.clone())
    opt = ItemAdam([z], lr=0.05)
    for _ in range(8):
        opt.zero_grad()
        loss(z).sum().backward()
        opt.step()
    run = optimize_noise(Identity(), loss, z0, m_schedule(8, 1), lr=0.05, optimizer="adam-item")
    adam = optimize_noise(Identity(), loss, z0, m_schedule(8, 1), lr=0.05)
    module = ITOModule(Identity(), loss, shape, steps=8, m=1, lr=0.05, optimizer="adam-item")
    pl.Trainer(max_steps=8, logger=False, enable_checkpointing=False, enable_progress_bar=False,
               enable_model_summary=False).fit(module)
    assert torch.allclose(run.z.detach(), z.detach(), atol=1e-6)
    assert torch.allclose(module.z.detach(), z.detach(), atol=1e-6)
    assert not torch.allclose(adam.z.detach(), z.detach(), atol=1e-3)
    assert load_config(None, ["optimizer=adam-item"]).optimizer == "adam-item"
    with pytest.raises(ValueError, match="optimizer must be one of"):
        load_config(None, ["optimizer=sgd"])


def test_smoothing_reads_the_control_near_z_and_steps_over_ripples_both_engines_agree():
    """smoothing_noise is σ·ε fixed by (seed, step) and fresh each step (None at σ = 0); objective reads the control at
    z + perturb and the priors at z; a run's first loss is the control at z0 + its first draw. On a loss with fast ripples
    over a bowl, plain Adam stops in the ripple nearest its start and smoothing (σ well above the ripples' period) walks
    to the bowl's floor; the loop and the Lightning module take the same steps; σ < 0 is refused."""
    import pytorch_lightning as pl

    from ditto2.ito.optimize import initial_noise, objective, optimize_noise, smoothing_noise

    shape = (8, 1, 1, 1)
    assert smoothing_noise(shape, 3, 0, 0.0) is None
    p0, p1 = smoothing_noise(shape, 3, 0, 0.5), smoothing_noise(shape, 3, 1, 0.5)
    assert torch.equal(p0, smoothing_noise(shape, 3, 0, 0.5)) and not torch.equal(p0, p1)
    assert torch.allclose(smoothing_noise(shape, 3, 0, 1.0) * 0.5, p0)
    assert not torch.equal(smoothing_noise(shape, 3, 0, 1.0), initial_noise(shape, 3))  # its own stream
    level = lambda mel: mel.flatten(1).mean(1)  # noqa: E731
    ripples = lambda mel: level(mel).pow(2) + 0.05 * torch.sin(50 * level(mel))  # noqa: E731
    z0 = initial_noise(shape, 3)
    assert torch.allclose(objective(Identity(), ripples, z0, 1, prior_weight=2.0, perturb=p0),
                          ripples(z0 + p0) + 2.0 * (z0.pow(2).flatten(1).mean(1) - 1).pow(2))
    first = optimize_noise(Identity(), ripples, z0, m_schedule(1, 1), smooth_sigma=0.5, seed=3)
    assert first.history[0] == pytest.approx(ripples(z0 + p0).tolist())
    plain, smooth = (optimize_noise(Identity(), ripples, z0, m_schedule(1500, 1), lr=0.02, lr_decay="cosine",
                                    smooth_sigma=s, seed=3) for s in (0.0, 0.3))
    assert level(smooth.z.detach()).abs().max() < 0.1
    assert level(plain.z.detach()).abs().mean() > 0.3  # stuck near where each item started (|z0| ≈ 0.56 on average)
    module = ITOModule(Identity(), ripples, shape, steps=30, m=1, lr=0.01, seed=3, smooth_sigma=0.3)
    pl.Trainer(max_steps=30, logger=False, enable_checkpointing=False, enable_progress_bar=False,
               enable_model_summary=False).fit(module)
    loop = optimize_noise(Identity(), ripples, z0, m_schedule(30, 1), lr=0.01, smooth_sigma=0.3, seed=3)
    assert torch.allclose(module.z.detach(), loop.z.detach(), atol=1e-6)
    with pytest.raises(ValueError, match="smooth_sigma"):
        load_config(None, ["smooth_sigma=-1"])


class GaussianTeacher(Identity):
    """Identity whose teacher is the exact denoiser of data N(μ, s²) per element: D(x; σ) = μ + s²/(s² + σ²)·(x − μ)."""

    mu, s2 = 0.7, 0.04

    def teacher_denoise(self, x, sigma):
        assert not x.requires_grad  # the teacher is called outside the graph: no backward through it
        return self.mu + self.s2 / (self.s2 + sigma ** 2) * (x - self.mu)


def test_teacher_prior_is_score_distillation_pulls_outputs_to_the_teachers_data_both_engines_agree():
    """teacher_noise is ε fixed by (seed, step), fresh each step, its own stream (None at weight 0); the objective adds
    weight · mean (mel − D(mel + σε; σ))², D held fixed, so its gradient is weight · 2(mel − D)/d; with a Gaussian
    teacher the prior alone takes every item's output to the data mean μ; the loop and the Lightning module take the same
    steps; bad weights and σ's are refused before compute."""
    import pytorch_lightning as pl

    from ditto2.ito.optimize import initial_noise, objective, optimize_noise, smoothing_noise, teacher_noise

    shape = (4, 1, 2, 3)
    assert teacher_noise(shape, 3, 0, 0.0) is None
    e0, e1 = teacher_noise(shape, 3, 0, 5.0), teacher_noise(shape, 3, 1, 5.0)
    assert torch.equal(e0, teacher_noise(shape, 3, 0, 1.0)) and not torch.equal(e0, e1)  # ε does not scale with weight
    assert not any(torch.equal(e0, other) for other in [smoothing_noise(shape, 3, 0, 1.0)] +
                   [initial_noise(shape, s) for s in range(64)])  # its own stream
    teacher, zero = GaussianTeacher(), (lambda mel: mel.flatten(1).sum(1) * 0.0)
    z = initial_noise(shape, 3).requires_grad_(True)
    loss = objective(teacher, zero, z, 1, teacher_weight=2.0, teacher_sigma=0.5, teacher_eps=e0)
    target = teacher.teacher_denoise((z + 0.5 * e0).detach(), 0.5)
    assert torch.allclose(loss, 2.0 * (z - target).pow(2).flatten(1).mean(1))
    loss.sum().backward()
    assert torch.allclose(z.grad, 2.0 * 2 * (z - target).detach() / 6)
    with pytest.raises(ValueError, match="teacher noise"):
        objective(teacher, zero, z, 1, teacher_weight=1.0)
    z0 = initial_noise(shape, 3)
    run = optimize_noise(teacher, zero, z0, m_schedule(600, 1), lr=0.02, lr_decay="cosine", seed=3, teacher_weight=1.0,
                         teacher_sigma=0.5)
    assert (z0 - GaussianTeacher.mu).abs().mean() > 0.5
    assert (run.z.detach() - GaussianTeacher.mu).abs().max() < 0.1
    module = ITOModule(teacher, zero, shape, steps=20, m=1, lr=0.01, seed=3, teacher_weight=1.0, teacher_sigma=0.5)
    pl.Trainer(max_steps=20, logger=False, enable_checkpointing=False, enable_progress_bar=False,
               enable_model_summary=False).fit(module)
    loop = optimize_noise(teacher, zero, z0, m_schedule(20, 1), lr=0.01, seed=3, teacher_weight=1.0, teacher_sigma=0.5)
    assert torch.allclose(module.z.detach(), loop.z.detach(), atol=1e-6)
    for bad in (["teacher_weight=-1"], ["teacher_sigma=0"]):
        with pytest.raises(ValueError, match=bad[0].split("=")[0]):
            load_config(None, bad)


def test_every_ito_option_is_a_config_field_off_by_default_and_reaches_both_engines():
    """ito.options lists each option with its "off" value: each is an ITOConfig field with that default, every step
    setting the runner hands on is a keyword of both engines, and only options that are on (with their companions) are
    recorded."""
    import inspect

    from ditto2.ito.optimize import optimize_noise
    from ditto2.ito.options import OFF, WITH, all_options, options_on
    from ditto2.runs.ito import step_options

    cfg = load_config(None, [])
    assert all(getattr(cfg, name) == off for name, off in OFF.items())
    assert all(hasattr(cfg, c) for cs in WITH.values() for c in cs)
    for engine in (optimize_noise, ITOModule.__init__):
        assert set(step_options(cfg)) <= set(inspect.signature(engine).parameters), engine
    assert set(all_options(cfg)) - set(step_options(cfg)) == {"start_candidates"}  # reaches them as start_others
    assert options_on(vars(cfg)) == {}
    row = {**vars(cfg), "teacher_weight": 2.0, "teacher_sigma": 0.5, "start_candidates": None, "optimizer": "adam-item"}
    assert options_on(row) == {"teacher_weight": 2.0, "teacher_sigma": 0.5, "optimizer": "adam-item"}


def test_pooled_update_moves_the_noise_in_blocks_both_engines_agree(synth_tiny, teacher_tiny, student_bundles, tmp_path):
    """pooled_gradient averages over pool × pool blocks (a loop over blocks gives the same) and is the identity at 1;
    with it, optimize_noise changes z only by a block-constant update, the Lightning module takes the same steps, and a
    pool that does not divide the model's mel shape is refused before compute."""
    import pytorch_lightning as pl

    from ditto2.ito.optimize import initial_noise, optimize_noise, pooled_gradient

    g = torch.randn(2, 1, 4, 8, generator=torch.Generator().manual_seed(0))
    assert pooled_gradient(g, 1) is g
    pooled = pooled_gradient(g, 2)
    for i in range(0, 4, 2):
        for j in range(0, 8, 2):
            block = g[..., i:i + 2, j:j + 2].mean(dim=(-2, -1), keepdim=True)
            assert torch.allclose(pooled[..., i:i + 2, j:j + 2], block.expand(-1, -1, 2, 2))
    with pytest.raises(ValueError, match="update_pool"):
        pooled_gradient(g, 3)
    shape = (2, 1, 4, 8)
    target = torch.randn(shape, generator=torch.Generator().manual_seed(1))
    loss = lambda mel: (mel - target).pow(2).flatten(1).mean(1)  # noqa: E731
    z0 = initial_noise(shape, 3)
    run = optimize_noise(Identity(), loss, z0, m_schedule(40, 1), lr=0.05, update_pool=2)
    moved = run.z.detach() - z0
    assert moved.abs().max() > 0.5 and torch.allclose(moved, pooled_gradient(moved, 2), atol=1e-6)
    assert run.history[-1][0] < run.history[0][0]
    module = ITOModule(Identity(), loss, shape, steps=20, m=1, lr=0.05, seed=3, update_pool=2)
    pl.Trainer(max_steps=20, logger=False, enable_checkpointing=False, enable_progress_bar=False,
               enable_model_summary=False).fit(module)
    loop = optimize_noise(Identity(), loss, z0, m_schedule(20, 1), lr=0.05, update_pool=2)
    assert torch.allclose(module.z.detach(), loop.z.detach(), atol=1e-6)
    with pytest.raises(ValueError, match="update_pool"):
        load_config(None, ["update_pool=0"])
    with pytest.raises(ValueError, match="update_pool 3 must divide"):
        run_ito(config(synth_tiny, teacher_tiny, student_bundles, tmp_path, update_pool=3))

"""``ditto2 serve``: a local page where you draw a loudness curve, type a melody or a form, drop a MIDI file or a
recording, or type a caption, and hear DITTO-2 steer the committed tiny models in about a second — beside the
uncontrolled sample from the same noise, the target-vs-achieved plot, the control's grade and the wall time. The
DITTO baseline runs on request (progress bar, Cancel). Bad uploads end in a message on the page; the server keeps
serving.

    ditto2 serve [--models checkpoints/tiny] [--port 7860] [--out results/serve]
"""
from __future__ import annotations

import argparse
import logging
import os
import threading
import traceback
from pathlib import Path

log = logging.getLogger("ditto2.serve")

GRADE_HELP = {"intensity": "intensity: loudness error vs your curve, dB² (librosa RMS)",
              "melody": "melody: frames whose strongest pitch class is your note, % (librosa chroma)",
              "structure": "structure: distance of the MFCC self-similarity to your form's",
              "outpainting": "outpainting: mel distance to the recording where it is kept",
              "inpainting": "inpainting: mel distance to the recording where it is kept",
              "text": "text: caption match in the judging CLAP, not the one optimized"}
WHAT_TO_HEAR = {"intensity": "the loudness follows your curve", "melody": "your notes become the tune",
                "structure": "sections repeat as your form says", "outpainting": "the music continues your recording",
                "inpainting": "the gap in your recording is filled", "text": "it sounds like your caption"}


def user_errors() -> tuple:
    from ditto2.runs.errors import user_errors as input_errors

    return (*input_errors(), OSError, RuntimeError)  # an unreadable upload (OSError, a decoder's RuntimeError)


def page_fields(points, notes, melody_file, form, structure_file, recording, offset, caption) -> dict:
    return {"intensity_points": points, "melody_notes": notes, "melody_file": melody_file, "form": form,
            "structure_file": structure_file, "recording": recording, "offset": offset or 0.0, "caption": caption}


def tags_of(genre, mood, tempo) -> dict:
    tags = {"genre": genre or "", "mood": mood or ""}
    if tempo:
        tags["tempo"] = float(tempo)
    return tags


def grade_lines(outcome) -> str:
    """The grades as a small Markdown table: what was measured, which way is better, before -> after."""
    rows = ["| control | grade | uncontrolled | controlled |", "|---|---|---|---|"]
    for g in outcome.grades:
        arrow = "↑" if g["higher_is_better"] else "↓"
        before, after = g["uncontrolled"], g["controlled"]
        better = before is None or (after >= before if g["higher_is_better"] else after <= before)
        rows.append(f"| {g['control']} | {g['metric']} {arrow} | {'–' if before is None else f'{before:.4g}'} | "
                    f"**{after:.4g}**{' ✓' if better and before is not None else ''} |")
    return "\n".join(rows) + "\n\n" + " · ".join(GRADE_HELP.get(g["control"], "") for g in outcome.grades)


def time_line(outcome) -> str:
    t = outcome.timing
    warm = " (warm start)" if outcome.warm_start else ""
    return (f"**{outcome.method}**, K = {outcome.steps}{warm}: generation **{t['generation_s']:.2f} s** "
            f"(optimize {t['optimize_s']:.2f} s + decode {t['decode_s']:.2f} s); with vocoding and grading "
            f"{t['total_s']:.2f} s")


class Handlers:
    """What the page's buttons call (plain functions of the page's fields, tested without a browser): every
    outcome is something to show, never an exception."""

    def __init__(self, studio):
        self.studio = studio
        self.cancel_ditto = threading.Event()

    def generate(self, control, points, notes, melody_file, form, structure_file, recording, offset, caption, genre,
                 mood, tempo, seed, preset, warm):
        """-> (status, uncontrolled wav, DITTO-2 wav, plot, grades, downloads, the run's config path)."""
        studio = self.studio
        try:
            run_dir = studio.new_run_dir()
            cfg = studio.config(control, page_fields(points, notes, melody_file, form, structure_file, recording,
                                                     offset, caption), tags_of(genre, mood, tempo), int(seed or 0),
                                preset, run_dir)
            out = studio.generate(cfg, warm=bool(warm))
        except user_errors() as e:
            return f"⚠️ {one_line(e)}", None, None, None, "", None, None
        except Exception as e:  # never a stack trace on the page; the console keeps it
            log.error("generation failed:\n%s", traceback.format_exc())
            return f"⚠️ internal error ({type(e).__name__}): {one_line(e)}", None, None, None, "", None, None
        status = f"{time_line(out)}  \nListen for: {WHAT_TO_HEAR.get(control.split('+')[0], '')}."
        files = [str(out.wavs["ditto2"]), str(out.config)]
        return (status, str(out.wavs["uncontrolled"]), str(out.wavs["ditto2"]), str(out.plot), grade_lines(out), files,
                str(out.config))

    def ditto(self, last_config, progress=None):
        """A generator of (status, DITTO wav, grades): progress while the base model runs, then its result. Closing
        it (the page's Cancel) stops the run at its next step."""
        from ditto2.runs.ito import load_config
        from ditto2.serve.studio import Cancelled

        if not last_config:
            yield "⚠️ press Generate first: the DITTO baseline repeats the last request with the base model.", None, ""
            return
        try:
            cfg = self.studio.ditto_config(load_config(last_config))
        except user_errors() as e:
            yield f"⚠️ {one_line(e)}", None, ""
            return
        self.cancel_ditto.clear()
        box: dict = {"k": 0}

        def work():
            try:
                box["out"] = self.studio.generate(cfg, on_step=lambda k, n: box.update(k=k), cancel=self.cancel_ditto)
            except Exception as e:  # Cancelled, or a real error: reported below
                box["err"] = e

        thread = threading.Thread(target=work, daemon=True)
        thread.start()
        try:
            while thread.is_alive():
                thread.join(0.5)
                if progress is not None:
                    progress((box["k"], cfg.steps), desc="DITTO baseline", unit="steps")
                yield (f"DITTO baseline: step {box['k']} of {cfg.steps} (the base model, {cfg.base_steps} sampler steps "
                       "each) …"), None, ""
        finally:
            self.cancel_ditto.set()  # Cancel closed this generator, or the run is over: either way stop the thread
        thread.join()
        if isinstance(box.get("err"), Cancelled):
            yield f"DITTO baseline cancelled at step {box['k']} of {cfg.steps}.", None, ""
        elif "err" in box:
            log.error("DITTO baseline failed: %r", box["err"])
            yield f"⚠️ DITTO baseline failed: {one_line(box['err'])}", None, ""
        else:
            yield time_line(box["out"]), str(box["out"].wavs["ditto"]), grade_lines(box["out"])


def curve_preview(points: str, seconds: float):
    """The intensity target the points make, as the page draws it while you type (None while they do not parse)."""
    from ditto2.controls import ControlTargetError
    from ditto2.serve.inputs import parse_points, points_curve
    from ditto2.viz import plt  # the Agg backend: the page draws in worker threads

    try:
        curve = points_curve(points, seconds, 256)
        times, levels = parse_points(points, seconds)
    except ControlTargetError:
        return None
    fig, ax = plt.subplots(figsize=(6, 1.8))
    ax.plot([i * seconds / 256 for i in range(256)], curve, lw=2)
    ax.plot(times, levels, "o")
    ax.set(xlim=(0, seconds), ylim=(min(-60.0, min(curve) - 3), 0), xlabel="s", ylabel="dB")
    fig.tight_layout()
    plt.close(fig)
    return fig


def one_line(e: Exception) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


def build_app(studio, default_preset: str = "interactive"):
    import gradio as gr

    from ditto2.serve.inputs import PAGE_CONTROLS, intensity_shapes

    shapes = intensity_shapes(studio.seconds)
    vocab = studio.vocabulary
    handlers = Handlers(studio)

    def ditto(last_config, progress=gr.Progress()):
        yield from handlers.ditto(last_config, progress)

    def show_fields(control):
        parts = set(control.split("+"))
        painting = bool(parts & {"outpainting", "inpainting"})
        return [gr.update(visible=name in parts) for name in ("intensity", "melody", "structure")] + \
            [gr.update(visible=painting), gr.update(visible="text" in parts)]

    with gr.Blocks(title="DITTO-2 — steer music at inference time") as app:
        gr.Markdown("# DITTO-2 · steer music while you listen\nOptimizes only the starting noise of a distilled "
                    "diffusion model (DITTO-2), with the committed tiny models. Pick a control, set a target, press "
                    "**Generate**: the left player is the same noise without control.")
        with gr.Row():
            with gr.Column(scale=2):
                control = gr.Radio(list(PAGE_CONTROLS), value="intensity", label="Control", elem_id="control")
                with gr.Group(visible=True) as g_int:
                    shape = gr.Dropdown(list(shapes), value="crescendo", label="Intensity shape (fills the points)")
                    points = gr.Textbox(shapes["crescendo"], label="Points, seconds:dB (edit freely)",
                                        elem_id="points")
                    preview = gr.Plot(curve_preview(shapes["crescendo"], studio.seconds), label="Your curve",
                                      show_label=False)
                with gr.Group(visible=False) as g_mel:
                    notes = gr.Textbox("C4 E4 G4 C5 G4 E4 C4 -", label="Notes (C4 E4 G4 …, - rest, :2 longer)",
                                       elem_id="notes")
                    melody_file = gr.File(label="…or a MIDI / audio file", file_types=[".mid", ".midi", ".wav", ".flac",
                                                                                       ".ogg", ".mp3"],
                                          elem_id="melody_file")
                with gr.Group(visible=False) as g_str:
                    form = gr.Textbox("ABBA", label="Form (letters, e.g. ABA, ABBA)", elem_id="form")
                    structure_file = gr.File(label="…or a reference recording", file_types=[".wav", ".flac", ".ogg",
                                                                                             ".mp3"])
                with gr.Group(visible=False) as g_paint:
                    recording = gr.File(label="Your recording (outpainting continues it, inpainting fills its middle)",
                                        file_types=[".wav", ".flac", ".ogg", ".mp3"], elem_id="recording")
                with gr.Group(visible=False) as g_text:
                    caption = gr.Textbox("A calm ambient song at 70 beats per minute.", label="Caption",
                                         elem_id="caption")
                offset = gr.Number(0.0, label="Offset into an uploaded file (s)", minimum=0)
            with gr.Column(scale=1):
                genre = gr.Dropdown([""] + vocab.get("genre", []), value="", label="Genre (blank = none)")
                mood = gr.Dropdown([""] + vocab.get("mood", []), value="", label="Mood (blank = none)")
                tempo = gr.Number(0, label="Tempo, BPM (0 = none)", minimum=0, maximum=300)
                seed = gr.Number(0, label="Seed (the noise)", precision=0)
                preset = gr.Radio(["interactive", "full"], value=default_preset, label="Preset",
                                  info="interactive: few large steps (experiments/serve/interactive.yaml); full: the "
                                       "control's own K (70, 150 for melody and structure)")
                warm = gr.Checkbox(False, label="Warm start from the last result (same control, tags and seed)")
        with gr.Row():
            go = gr.Button("Generate", variant="primary", elem_id="generate")
            ditto_btn = gr.Button("DITTO baseline (slow)", elem_id="ditto")
            cancel = gr.Button("Cancel", elem_id="cancel")
        status = gr.Markdown(elem_id="status")
        with gr.Row():
            plain_audio = gr.Audio(label="Uncontrolled (same noise)", type="filepath", elem_id="uncontrolled")
            ditto2_audio = gr.Audio(label="DITTO-2", type="filepath", elem_id="ditto2_audio")
        with gr.Row():
            plot = gr.Image(label="Target vs achieved", type="filepath", elem_id="plot")
            with gr.Column():
                grades = gr.Markdown(elem_id="grades")
                files = gr.File(label="Download: the wav and the run's config (ditto2 ito --config config.yaml)",
                                file_count="multiple", elem_id="downloads")
        with gr.Row():
            ditto_status = gr.Markdown(elem_id="ditto_status")
            ditto_audio = gr.Audio(label="DITTO baseline", type="filepath", elem_id="ditto_audio")
            ditto_grades = gr.Markdown()
        last_config = gr.State(None)

        control.change(show_fields, control, [g_int, g_mel, g_str, g_paint, g_text])
        shape.change(lambda s: shapes[s], shape, points)
        points.change(lambda text: curve_preview(text, studio.seconds), points, preview)
        inputs = [control, points, notes, melody_file, form, structure_file, recording, offset, caption, genre, mood,
                  tempo, seed, preset, warm]
        go.click(handlers.generate, inputs, [status, plain_audio, ditto2_audio, plot, grades, files, last_config],
                 concurrency_limit=1)
        ditto_event = ditto_btn.click(ditto, last_config, [ditto_status, ditto_audio, ditto_grades],
                                      concurrency_limit=1)
        cancel.click(handlers.cancel_ditto.set, None, None, cancels=[ditto_event])
    return app


def add_arguments(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    p.add_argument("--models", default="checkpoints/tiny", help="teacher, ctm, cm, clap (and clap-judge) bundles")
    p.add_argument("--out", default="results/serve", help="one folder per generation (wavs, plot, config.yaml)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=7860)
    p.add_argument("--preset", default="interactive", choices=["interactive", "full"], help="the page's default")
    p.add_argument("--preset-file", default="experiments/serve/interactive.yaml")
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    return p


def serve(args) -> int:
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # nothing leaves this machine
    logging.getLogger("httpx").setLevel(logging.WARNING)  # Gradio's own start-up requests, one line each
    from ditto2.serve.studio import Studio

    studio = Studio(args.models, args.out, preset_file=args.preset_file, threads=args.threads)
    studio.preset("intensity")  # a missing or broken preset file fails here, before the page is up
    app = build_app(studio, args.preset)
    Path(args.out).mkdir(parents=True, exist_ok=True)
    print(f"ditto2 serve: http://{args.host}:{args.port}  (Ctrl+C stops)", flush=True)
    app.queue().launch(server_name=args.host, server_port=args.port, allowed_paths=[str(Path(args.out).resolve())],
                       show_error=False, quiet=True, footer_links=[])
    return 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="ditto2 serve", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    return serve(add_arguments(p).parse_args(argv))

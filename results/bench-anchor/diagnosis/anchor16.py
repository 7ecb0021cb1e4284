"""The anchor prior on the 16 validation items of optimize16.py, with a custom Adam loop: for each "weight,step" argument,
70 steps of DITTO-2's intensity objective + weight · mean (z − z0)², then the control loss, the noise's RMS move, the
in-domain CLAP score, the mean term of the outputs' CLAP embeddings against 250 validation clips, the lowest of 8 mel
bands (envelope, level removed) and the std over time of each frame's mean log-mel.
Run from the repository root: python results/bench-anchor/diagnosis/anchor16.py 0,0.02 10,0.02 100,0.02 1000,0.02 0,0.005"""
import sys, torch
import torch.nn.functional as F
from ditto2.ito.optimize import initial_noise
from ditto2.runs.ito import load_config, build_run, item_captions
from ditto2.audio.vocoder import GriffinLimVocoder
from ditto2.clap.load import load_embedder
from ditto2.metrics.captions import audio_text_embeddings
from ditto2.metrics.reference import reference_embeddings
B = 16
base = ["tags=reference", "shards=data/shards/debian-tiny", "split=val", f"batch={B}", "seed=1000", "ctm=checkpoints/tiny/ctm-decode"]
cfg_s = load_config("experiments/ito/intensity.yaml", base + ["method=ditto2-ctm"])
ps = build_run(cfg_s)
caps = item_captions(cfg_s, ps.clips, ps.target_sets)
z0 = initial_noise((B, 1, ps.gen.mel.n_mels, ps.gen.mel.frames), cfg_s.seed)
clap = load_embedder("checkpoints/tiny/clap"); voc = GriffinLimVocoder(ps.gen.mel, ps.gen.normalizer)
ref = reference_embeddings("data/shards/debian-tiny", "checkpoints/tiny/clap", 250, split="val", progress=False,
                           exclude=[c["clip_id"] for c in ps.clips]); mr = ref.mean(0)
for spec in sys.argv[1:]:
    lam, lr = map(float, spec.split(","))
    z = torch.nn.Parameter(z0.clone()); opt = torch.optim.Adam([z], lr=lr)
    for k in range(70):
        opt.zero_grad()
        l = ps.composite(ps.surrogate.optimize_forward(z, 1)) + lam * (z - z0).pow(2).flatten(1).mean(1)
        l.sum().backward(); opt.step()
    with torch.no_grad():
        mel = ps.surrogate.optimize_forward(z, 1); loss = ps.composite(mel)
        a, t = audio_text_embeddings(clap, voc(mel).numpy(), ps.gen.mel.sample_rate, caps)
        env = mel.squeeze(1).mean(2); env = env - env.mean(1, keepdim=True)
        b0 = env.chunk(8, 1)[0].mean()
    dz = ((z - z0).flatten(1).norm(dim=1) / z0[0].numel() ** 0.5).mean()
    print(f"lam {lam} lr {lr}: loss {loss.mean():.2f} med {loss.median():.2f} |dz| {dz:.3f} clap {F.cosine_similarity(a, t).mean():.3f} "
          f"|mu-mu_ref|2 {((a.mean(0)-mr)**2).sum():.3f} band0 {b0:+.2f} frame-std {mel.squeeze(1).mean(1).std(1).mean():.3f}", flush=True)

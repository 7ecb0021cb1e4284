"""Where DITTO and DITTO-2 end on the 16 items of optimize16.py: how far each moved the noise (RMS per element) and how
alike the two moves are, and for the teacher's and the student's outputs of z0, DITTO's z and DITTO-2's z: the control
loss, the in-domain CLAP score, the mean term of their CLAP embeddings against 250 validation clips, spectral flux, the
std over time of each frame's mean log-mel, the envelope over 8 mel bands (level removed), and each output's CLAP
cosine to DITTO's output of the same item. Run from the repository root:
    python results/bench-anchor/diagnosis/compare16.py /tmp/ditto2-z16.pt"""
import sys, torch
import torch.nn.functional as F
from ditto2.runs.ito import load_config, build_run, item_captions
from ditto2.audio.vocoder import GriffinLimVocoder
from ditto2.clap.load import load_embedder
from ditto2.metrics.captions import audio_text_embeddings
from ditto2.metrics.reference import reference_embeddings
B = 16
base = ["tags=reference", "shards=data/shards/debian-tiny", "split=val", f"batch={B}", "seed=1000", "ctm=checkpoints/tiny/ctm-decode"]
cfg_s = load_config("experiments/ito/intensity.yaml", base + ["method=ditto2-ctm"])
cfg_t = load_config("experiments/ito/intensity.yaml", base + ["method=ditto"])
ps = build_run(cfg_s); pt = build_run(cfg_t, gen=ps.gen)
caps = item_captions(cfg_s, ps.clips, ps.target_sets)
Z = torch.load(sys.argv[1] if len(sys.argv) > 1 else "/tmp/ditto2-z16.pt")
z0, z1, z2 = Z["z0"], Z["z1"], Z["z2"]
n = z0[0].numel()
rms = lambda d: d.flatten(1).norm(dim=1) / n**0.5
cos = lambda a, b: F.cosine_similarity(a.flatten(1), b.flatten(1), dim=1)
d1, d2 = z1 - z0, z2 - z0
print(f"|dz| DITTO {rms(d1).mean():.3f}  DITTO-2 {rms(d2).mean():.3f}; cos(dz1,dz2) {cos(d1,d2).mean():.3f}")
for name, d in (("DITTO", d1), ("DITTO-2", d2)):
    shares = [float((F.avg_pool2d(d, k, k).pow(2).sum() * k * k / d.pow(2).sum())) for k in (2, 4, 8, 16)]
    print(name, "energy share of dz at pooled scales 2/4/8/16:", " ".join(f"{s:.2f}" for s in shares))
clap = load_embedder("checkpoints/tiny/clap")
voc = GriffinLimVocoder(ps.gen.mel, ps.gen.normalizer)
ref = reference_embeddings("data/shards/debian-tiny", "checkpoints/tiny/clap", 250, split="val", progress=False,
                           exclude=[c["clip_id"] for c in ps.clips])
mr = ref.mean(0)
ctrl = ps.composite
with torch.no_grad():
    outs = {"teacher@z0": pt.surrogate.decode(z0), "student@z0": ps.surrogate.optimize_forward(z0, 1),
            "DITTO teacher@z1": pt.surrogate.decode(z1), "student@z1": ps.surrogate.optimize_forward(z1, 1),
            "DITTO-2 student@z2": ps.surrogate.optimize_forward(z2, 1), "teacher@z2": pt.surrogate.decode(z2)}
    ref_mel = ps.refs
    embs = {}
    for k, mel in outs.items():
        a, t = audio_text_embeddings(clap, voc(mel).numpy(), ps.gen.mel.sample_rate, caps)
        embs[k] = a
        lm = mel.squeeze(1)  # normalized log-mel (B, F, T)
        env = lm.mean(2); env = env - env.mean(1, keepdim=True)
        bands = torch.stack([c.mean(1) for c in env.chunk(8, 1)], 1).mean(0)
        frame = lm.mean(1)  # mean log-mel per frame
        flux = (lm[..., 1:] - lm[..., :-1]).abs().mean()
        print(f"{k:20s} loss {ctrl(mel).mean():6.2f} med {ctrl(mel).median():5.2f} | clap {F.cosine_similarity(a, t).mean():.3f} "
              f"| |mu-mu_ref|2 {((a.mean(0)-mr)**2).sum():.3f} dist {(a-mr).norm(dim=1).mean():.3f} | flux {flux:.3f} "
              f"frame-std {frame.std(1).mean():.3f} | bands " + " ".join(f"{b:+.2f}" for b in bands))
    lm = ref_mel.squeeze(1) if ref_mel.dim() == 4 else ref_mel
    print("target clips (real): flux %.3f frame-std %.3f" % ((lm[..., 1:] - lm[..., :-1]).abs().mean(), lm.mean(1).std(1).mean()))
    for k in embs:
        print(f"paired cos to DITTO output: {k:20s} {F.cosine_similarity(embs[k], embs['DITTO teacher@z1']).mean():.3f}")

"""`python results/bench-win-cpu-160/fad_plain.py THREADS STUDENT...` (output: fad_plain.txt). FAD of plain generations (no ITO): teacher 20 steps vs students at 1/2 steps, against a disjoint real reference,
with the real-vs-real floor. Tags: the floor clips' own tags (generations are paired with real clips' tags)."""
import sys, torch
torch.set_num_threads(int(sys.argv[1]) if len(sys.argv) > 1 else 1)
from ditto2.models.generator import load_generator
from ditto2.models.bundle import load_bundle
from ditto2.metrics.reference import reference_set, vocode, embed_waves
from ditto2.metrics.fad import fad_against
from ditto2.metrics.bootstrap import fad_ci
from ditto2.clap.load import load_embedder
from ditto2.audio.vocoder import GriffinLimVocoder
from ditto2.diffusion.edm import karras_sigmas
from ditto2.diffusion.consistency import decode_sigmas
N = 192
shards, clap = "data/shards/eval-512", "checkpoints/tiny/clap"
ref = reference_set(shards, {"clap": clap}, n=N, progress=False).embeddings["clap"]
fl = reference_set(shards, {"clap": clap}, n=N, skip=N, progress=False)
print("floor", round(fad_against(ref, fl.embeddings["clap"]), 4), flush=True)
gen = load_generator("checkpoints/tiny/teacher")
tags = torch.tensor([gen.vocab.encode(c["tags"]) for c in fl.rows], dtype=torch.long)
cfg = gen.mel; e = gen.meta["edm"]
noise = torch.randn((N, 1, cfg.n_mels, cfg.frames), generator=torch.Generator().manual_seed(5))
voc = GriffinLimVocoder(cfg, gen.normalizer); emb = load_embedder(clap)
def score(name, mels):
    z = embed_waves(vocode(mels, voc), emb, cfg.sample_rate)
    v = fad_against(ref, z); ci = fad_ci(ref, z)
    print(f"{name}: FAD {v:.4f} [{ci[0]:.3f}, {ci[1]:.3f}]", flush=True)
def chunks(fn):
    return torch.cat([fn(noise[i:i+32], tags[i:i+32]) for i in range(0, N, 32)])
grid = karras_sigmas(20, e["sigma_min"], e["sigma_max"])
with torch.no_grad():
    score("teacher 20 steps", chunks(lambda z, c: gen.sample(z, c, w=2.0, steps=20)))
    for path in sys.argv[2:]:
        st, meta = load_bundle(path)
        for k in (1, 2):
            score(f"{path} {k}-step", chunks(lambda z, c: st.sample(z, decode_sigmas(k, grid), c, 2.0, gamma=0.0)))

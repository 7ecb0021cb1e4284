"""`python results/bench-win-cpu-160/fad_all512.py BENCH_DIR`: FAD of each cell's generations against results/bench-gpu's reference (all 512 held-out clips of eval-512, the rule
before issue 14: it overlaps the target clips), so the CPU DITTO-2 cells compare with bench-gpu's DITTO cells."""
import sys, json, torch
from pathlib import Path
from ditto2.metrics.reference import reference_set
from ditto2.metrics.fad import fad_against
from ditto2.metrics.bootstrap import fad_ci
ref = reference_set("data/shards/eval-512", {"clap": "checkpoints/tiny/clap"}, n=None, progress=False).embeddings["clap"]
print("reference", tuple(ref.shape))
out = {}
for d in sorted(Path(sys.argv[1]).glob("runs/*/embeddings.pt")):
    z = torch.load(d)
    v, ci = fad_against(ref, z), fad_ci(ref, z)
    out[d.parent.name] = {"fad_all512": round(v, 5), "ci95": [round(x, 5) for x in ci], "n": z.shape[0]}
    print(d.parent.name, out[d.parent.name], flush=True)
Path(sys.argv[1], "fad-all512.json").write_text(json.dumps(out, indent=1))

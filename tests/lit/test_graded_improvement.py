"""On the committed tiny models (fixed seed, each control's shipped YAML), ITO improves the control's GRADED metric --
an instrument on the decoded, vocoded audio that is not the control's loss -- over the unoptimized start from the same
noise and the same targets. The optimized loss falling is tested elsewhere; this is what a user hears."""
import json
from pathlib import Path

import pytest

from ditto2.bench.defaults import higher_is_better
from ditto2.runs.ito import load_config, run_ito

ROOT = Path(__file__).resolve().parents[2]
MODELS = ROOT / "checkpoints" / "tiny"
CONTROLS = ["intensity", "melody", "structure", "outpainting", "inpainting", "text"]


@pytest.fixture(scope="module")
def held_out(tmp_path_factory):
    """Synth tracks the committed models never saw, in the committed teacher's mel config and statistics."""
    from ditto2.audio.mel import mel_preset
    from ditto2.data.shards import ShardOptions, build_shards
    from ditto2.data.sources.synth import synth_tracks

    contract = json.loads((MODELS / "teacher.json").read_text())["data"]
    out = tmp_path_factory.mktemp("held-out")
    build_shards(synth_tracks(3, seed=5, duration_s=14.0), out, mel_preset("tiny"), ShardOptions(), progress=False,
                 reuse=contract, held_out_only=False)
    return out


@pytest.mark.parametrize("control", CONTROLS)
def test_ito_improves_the_graded_metric_over_the_start(control, held_out, tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)  # the YAMLs name the committed models relative to the repository
    over = [f"shards={held_out}", "batch=2", "seed=1", "tensorboard=false", "report_items=0", "engine=loop",
            f"clap_judge={MODELS / 'clap-judge'}"]
    runs = {}
    for k in (0, 30):
        cfg = load_config(f"experiments/ito/{control}.yaml", [*over, f"steps={k}", f"out={tmp_path / str(k)}"])
        runs[k] = run_ito(cfg)
    key = next(m for m in runs[30]["metrics_mean"] if m.startswith(f"{control}_"))
    assert "self_graded" not in key  # text is graded by the judging CLAP, not the CLAP it optimizes
    before, after = runs[0]["metrics_mean"][key], runs[30]["metrics_mean"][key]
    assert (after > before) if higher_is_better(key) else (after < before), (key, before, after)

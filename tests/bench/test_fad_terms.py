import json

import pytest
import torch
from safetensors.torch import save_file

from ditto2.bench.fad_terms import read_cell, terms_table


def _cell(folder, emb, scores):
    for j in range(2):  # two runs, items in run order
        run = folder / f"run{j:02d}"
        run.mkdir(parents=True)
        half = slice(j * len(emb) // 2, (j + 1) * len(emb) // 2)
        save_file({"audio": emb[half].contiguous()}, str(run / "embeddings.safetensors"))
        (run / "summary.json").write_text(json.dumps({"items": [{"clap_score": s} for s in scores[half]]}))


def test_fad_terms_of_bench_cells_split_a_shift_and_pair_with_the_first(tmp_path):
    """A cell shifted by 0.5 in every one of D dimensions has mean term D·0.25 more than the unshifted one; cells are read
    run by run in order; the paired interval against itself is exactly 0; an unfinished last run is left out, a cell whose
    first run is unfinished is refused."""
    g = torch.Generator().manual_seed(0)
    ref, emb = torch.randn(300, 8, generator=g), torch.randn(200, 8, generator=g)
    _cell(tmp_path / "a", emb, [0.5] * 200)
    _cell(tmp_path / "b", emb + 0.5, [0.25] * 200)
    a, b = read_cell(tmp_path / "a"), read_cell(tmp_path / "b")
    assert torch.equal(a[0], emb) and len(a[1]) == 200
    lines = terms_table(ref, {"plain": a, "shifted": b, "again": (a[0].clone(), a[1])}, n_boot=20)
    mean = lambda line: float(line.split("mean term ")[1].split()[0])  # noqa: E731
    assert mean(lines[2]) - mean(lines[1]) == pytest.approx(8 * 0.25 + 2 * 0.5 * float((emb.mean(0) - ref.mean(0)).sum()),
                                                            abs=2e-3)
    assert "CLAP score 0.500" in lines[1] and "CLAP score 0.250" in lines[2]
    assert "[+0.000, +0.000]" in lines[3] and "paired" not in lines[1]
    assert lines[1].startswith("plain (200 items): FAD")
    # a cell no larger than the embedding's dimension (a partial one) still gets its mean term, and no FAD
    few = terms_table(ref, {"few": (emb[:8], [])})[1]
    assert few.startswith("few (8 items): FAD needs more than 8 items, mean term ") and "paired" not in few
    (tmp_path / "a" / "run01" / "summary.json").unlink()
    emb_a, items_a = read_cell(tmp_path / "a")
    assert torch.equal(emb_a, emb[:100]) and len(items_a) == 100
    (tmp_path / "a" / "run00" / "summary.json").unlink()
    with pytest.raises(SystemExit, match="needs its first runs finished"):
        read_cell(tmp_path / "a")

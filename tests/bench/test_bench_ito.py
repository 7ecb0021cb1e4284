"""The ITO benchmark runner end to end on small random models: well-formed tables and speed-ups."""
import json

from ditto2.bench.ito import main


def test_bench_ito_writes_tables(synth_tiny, teacher_tiny, student_bundles, tmp_path):
    cfg = tmp_path / "bench.yaml"
    cfg.write_text(
        "controls: {intensity: 2}\nthreads: 1\n"
        f"out: {tmp_path / 'out'}\n"
        "sweep: {control: intensity, method: ditto2-ctm, mt: [[adaptive, 2]]}\n"
        "domains: {controls: [intensity], method: ditto2-ctm}\n"
        f"overrides: [teacher={teacher_tiny}, cm={student_bundles['cm']}, ctm={student_bundles['ctm']}, "
        f"shards={synth_tiny}, base_steps=3]\n")
    assert main(["--config", str(cfg)]) == 0
    rows = json.loads((tmp_path / "out" / "results.json").read_text())["rows"]
    assert [r["method"] for r in rows] == ["ditto", "ditto2-cm", "ditto2-ctm", "ditto2-ctm", "ditto2-ctm"]
    assert rows[-1]["table"] == "domain" and rows[-1]["domain"] == "audio"
    assert rows[0]["speedup_vs_ditto"] == 1.0 and all(r["seconds_per_item"] > 0 for r in rows)
    assert rows[-2]["table"] == "sweep" and rows[-2]["M"] == "adaptive"
    assert (tmp_path / "out" / "fig4_intensity.png").exists()
    md = (tmp_path / "out" / "results.md").read_text()
    assert "Table 1" in md and "Table 2" in md and md.count("| intensity |") == 5

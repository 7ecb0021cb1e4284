"""`make bench-distill` on small models: the fidelity table has the bias columns, and the jump
attribution's rows reproduce the student / teacher compositions they name."""
import json

from ditto2.bench.distill import main


def test_fidelity_table_and_attribution(teacher_tiny, student_bundles, tmp_path):
    out = tmp_path / "out"
    assert main(["--teacher", str(teacher_tiny), "--cm", str(student_bundles["cm"]), "--ctm", str(student_bundles["ctm"]),
                 "--n", "2", "--chunk", "2", "--steps", "1", "2", "--gammas", "0.0", "--null-tags", "--out", str(out)]) == 0
    rows = json.loads((out / "results.json").read_text())["rows"]
    assert {r["model"] for r in rows} == {"teacher (Euler, no distillation)", "teacher's output, 3×3 box blur",
                                          "teacher's output, 5×5 box blur", "CM", "CTM"}
    for r in rows:
        assert set(r) >= {"mse", "level_db", "level_abs_db", "chroma_agree", "ssm_mse", "detail_ratio"}
        assert abs(r["level_db"]) <= r["level_abs_db"] + 1e-6 and 0 <= r["chroma_agree"] <= 1
    blur = [r for r in rows if "blur" in r["model"]]  # a blur removes detail, the wider one more
    assert 0 < blur[1]["detail_ratio"] < blur[0]["detail_ratio"] < 1 and 0 < blur[0]["mse"] < blur[1]["mse"]
    # a fresh CTM student is the teacher's Euler jump: its 1-step output IS the teacher's 2-point Euler sample
    ctm1 = next(r for r in rows if r["model"] == "CTM" and r["steps"] == 1)
    euler2 = next(r for r in rows if r["model"].startswith("teacher") and r["steps"] == 2)
    assert abs(ctm1["mse"] - euler2["mse"]) < 1e-4 and abs(ctm1["level_db"] - euler2["level_db"]) < 1e-2

    # several CTM bundles on the same noises: one set of rows each, named by bundle, with the level's standard error
    ctm = str(student_bundles["ctm"])
    assert main(["--teacher", str(teacher_tiny), "--cm", "absent", "--ctm", ctm, ctm, "--n", "4", "--chunk", "2",
                 "--steps", "1", "--gammas", "0.0", "--null-tags", "--out", str(out)]) == 0
    both = [r for r in json.loads((out / "results.json").read_text())["rows"] if r["model"] == f"CTM {ctm}"]
    assert len(both) == 2 and both[0] == both[1] and both[0]["level_se_db"] >= 0

    assert main(["--teacher", str(teacher_tiny), "--ctm", str(student_bundles["ctm"]), "--n", "2", "--attribute",
                 "--out", str(out)]) == 0
    att = {r["path"]: r for r in json.loads((out / "attribution.json").read_text())["rows"]}
    assert "S(0-10)T(10-19)" in att and "T(0-14)S(14-19)" in att
    # the attribution's paths are the decodes they name: S(0-19) is the 1-step decode, S(0-10)S(10-19) the
    # deterministic 2-step decode (grid points 0, 10, 19), from the same noise and tags
    ctm2 = next(r for r in rows if r["model"] == "CTM" and r["steps"] == 2)
    assert abs(att["S(0-19)"]["mse"] - ctm1["mse"]) < 1e-5
    assert abs(att["S(0-10)S(10-19)"]["mse"] - ctm2["mse"]) < 1e-5

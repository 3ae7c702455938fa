"The papermill entry point runs the selection/distillation methods, not only IID (the CLI and torchrun are in test_trainer)."
import json, math, os, subprocess, sys
from pathlib import Path
import pytest

ROOT = Path(__file__).parent.parent
BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def teacher(tmp_path_factory):
    "A tiny teacher trained briefly on clean pairs through `aced-lab teacher` (cached in a temporary folder)."
    d = tmp_path_factory.mktemp("teacher")
    res = subprocess.run([str(BIN / "aced-lab"), "teacher", "--root", str(d / "teachers"), "--data_root", str(d / "data"),
                          "--data", "shapes", "--model", "ACED-Tiny-32", "--steps", "40", "--batch_size", "32", "--warmup", "5", "--n_train", "768",
                          "--n_eval", "200", "--shard_size", "256", "--num_workers", "0", "--eval_max_samples", "200"],
                         capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    path = Path(res.stdout.splitlines()[0])
    assert path.name == "teacher.safetensors" and path.is_file()
    assert "mean_zeroshot_top1" in res.stdout
    return path


@pytest.mark.parametrize("method", ["kd", "acid", "aced", "optima"])
def test_train_notebook_runs_method(tmp_path, teacher, method):
    "Each method's short run ends cleanly, closing checks included (iid: nbdev_test runs the notebook itself)."
    cwd = tmp_path / "nbs"; cwd.mkdir()  # under IN_TEST the notebook writes to ../runs/_nbtest_train
    env = {**os.environ, "IN_TEST": "1", "TMPDIR": str(tmp_path)}
    models = ["-p", "reference", str(teacher), "-p", "reference_model", "ACED-Tiny-32"] if method != "optima" else \
             ["-p", "teacher", str(teacher), "-p", "teacher_model", "ACED-Tiny-32", "-p", "module_episode", "5"]
    res = subprocess.run([str(BIN / "papermill"), str(ROOT / "nbs" / "train.ipynb"), str(tmp_path / "out.ipynb"), "--cwd", str(cwd),
                          "-p", "method", method, *models, "-p", "reference_cache", str(tmp_path / "refcache"), "-p", "selection_every", "5"],
                         capture_output=True, text=True, env=env, timeout=900)
    assert res.returncode == 0, res.stderr[-4000:]
    run = tmp_path / "runs" / "_nbtest_train"
    cfg = json.loads((run / "config.json").read_text())["config"]
    assert cfg["method"] == method and str(teacher) in (cfg["reference"], cfg["teacher"])
    rec = [json.loads(l) for l in (run / "metrics.jsonl").read_text().splitlines()]
    selects, kd, modules = method in ("acid", "aced"), method in ("kd", "aced"), method == "optima"
    assert all(("kd_loss" in r) == kd and ("module_loss" in r) == modules and (r.get("gflops_learner_score", 0) > 0) == selects
               for r in rec)  # each method adds what it should, and only that
    assert len(list((run / "selection").glob("step-*.npz"))) == (len(rec) // 5 if selects else 0)
    if modules: assert (run / "bandit.jsonl").read_text().count("\n") == len(rec) // 5
    if selects:  # the reference's health is logged every step, and warned about iff some window of it is near chance
        from aced_lab.reference_health import blind_reference, BLIND_WINDOW
        B = math.ceil(cfg["batch_size"] / (1 - cfg["filter_ratio"]))
        windows = [rec[i - BLIND_WINDOW:i] for i in range(BLIND_WINDOW, len(rec) + 1)]
        blind = any(blind_reference(*(sum(r[k] for r in w) / len(w) for k in ("ref_top1", "ref_median_loss")), B) for w in windows)
        assert blind == ("cannot tell the pairs of this data apart" in res.stderr + (tmp_path / "out.ipynb").read_text())

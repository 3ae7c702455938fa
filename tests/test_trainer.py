"Trainer integration: the CLI, torchrun with 2 CPU processes (DDP/gloo), kill -9 and resume, papermill parameters."
import json, os, signal, subprocess, sys, time
from pathlib import Path
import pytest

ROOT = Path(__file__).parent.parent
BIN = Path(sys.executable).parent
SMALL = ["--n_train", "1024", "--shard_size", "256", "--n_eval", "200", "--batch_size", "32", "--warmup", "3", "--num_workers", "1",
         "--eval_max_samples", "200", "--tensorboard", "false"]

def records(run):
    return [json.loads(l) for l in (run / "metrics.jsonl").read_text().splitlines() if l.strip()]

@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    return str(tmp_path_factory.mktemp("data"))

def run_cli(args, **kw):
    return subprocess.run([str(BIN / "aced-lab"), "train", *args], capture_output=True, text=True, **kw)

def test_cli_trains_and_beats_random_init(tmp_path, data_root):
    run = tmp_path / "run"
    res = run_cli([*SMALL, "--data", "shapes", "--model", "ACED-Tiny-32", "--steps", "120", "--n_train", "3000", "--batch_size", "64", "--lr", "2e-3",
                   "--data_root", data_root + "/big", "--out_dir", str(run)], timeout=900)
    assert res.returncode == 0, res.stderr[-4000:]
    rec = records(run)
    assert len(rec) == 120 and rec[-1]["step"] == 120
    assert sum(r["loss"] for r in rec[-10:]) < sum(r["loss"] for r in rec[:10])
    ev = {(r["task"], r["metric"]): r["value"] for r in json.loads((run / "eval.json").read_text())["results"]}
    # random init sits at chance: colour 1/7, size 1/2; training on 30% mismatched pairs still learns colour
    assert ev[("zeroshot/colour", "top1")] > 0.5, ev
    assert ev[("summary", "mean_zeroshot_top1")] > 0.4, ev
    assert "zeroshot/colour" in res.stdout  # the CLI prints the eval table

def test_cli_rejects_unknown_and_bad_parameters(tmp_path):
    res = run_cli(["--stpes", "3", "--out_dir", str(tmp_path / "x")])
    assert res.returncode == 2 and "Did you mean '--steps'" in res.stderr
    res = run_cli(["--loss", "sigmoid", "--out_dir", str(tmp_path / "x")])
    assert res.returncode == 2 and "'clip', 'siglip'" in res.stderr
    assert not (tmp_path / "x").exists()  # nothing ran

def test_cli_resampled_data_trains(tmp_path, data_root):
    run = tmp_path / "run"
    res = run_cli([*SMALL, "--steps", "6", "--data_resampled", "true", "--epoch_samples", "64", "--threads", "1",
                   "--data_root", data_root, "--out_dir", str(run)], timeout=600)
    assert res.returncode == 0, res.stderr[-4000:]
    assert [r["step"] for r in records(run)] == list(range(1, 7))  # epochs of 2 batches: three of them
    assert json.loads((run / "config.json").read_text())["config"]["data_resampled"] is True
    res = run_cli(["--epoch_samples", "64", "--out_dir", str(tmp_path / "x")])
    assert res.returncode == 2 and "needs data_resampled=True" in res.stderr

def test_sigkill_then_resume_finishes(tmp_path, data_root):
    run = tmp_path / "run"
    args = [*SMALL, "--steps", "40", "--ckpt_every", "5", "--data_root", data_root, "--out_dir", str(run)]
    p = subprocess.Popen([str(BIN / "aced-lab"), "train", *args], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    latest = run / "checkpoints" / "latest.json"
    deadline = time.time() + 600
    while time.time() < deadline and p.poll() is None:
        if latest.exists() and json.loads(latest.read_text())["step"] >= 10: break
        time.sleep(0.2)
    assert p.poll() is None, "the run finished before it could be killed"
    p.send_signal(signal.SIGKILL); p.wait()
    killed_at = json.loads(latest.read_text())["step"]
    assert 10 <= killed_at < 40
    res = run_cli([*args, "--resume", "latest"], timeout=600)
    assert res.returncode == 0, res.stderr[-4000:]
    rec = records(run)
    assert [r["step"] for r in rec] == list(range(1, 41))  # no gap, no duplicate after the resume
    assert json.loads(latest.read_text())["step"] == 40

def test_torchrun_two_cpu_processes(tmp_path, data_root):
    run = tmp_path / "ddp"
    cmd = [str(BIN / "torchrun"), "--nproc_per_node=2", "--master_port", "29517", "-m", "aced_lab.cli", "train",
           *SMALL, "--steps", "30", "--ckpt_every", "15", "--data_root", data_root, "--out_dir", str(run),
           "--threads", "1"]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=900, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert res.returncode == 0, res.stderr[-4000:]
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["world_size"] == 2
    rec = records(run)
    assert [r["step"] for r in rec] == list(range(1, 31))  # rank 0 alone writes the log
    assert sum(r["loss"] for r in rec[-5:]) < sum(r["loss"] for r in rec[:5])
    assert rec[0]["samples_per_s"] > 0 and (run / "eval.json").exists()
    # resume under torchrun continues from the step-30 checkpoint to step 40
    cmd2 = [c if c != "30" else "40" for c in cmd] + ["--resume", "latest"]
    res = subprocess.run(cmd2, capture_output=True, text=True, timeout=900, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert res.returncode == 0, res.stderr[-4000:]
    assert [r["step"] for r in records(run)] == list(range(1, 41))

def test_papermill_rejects_unknown_parameter_before_training(tmp_path):
    out = tmp_path / "out.ipynb"
    res = subprocess.run([str(BIN / "papermill"), str(ROOT / "nbs" / "train.ipynb"), str(out),
                          "-p", "stpes", "5", "-p", "out_dir", str(tmp_path / "run")],
                         capture_output=True, text=True, timeout=600)
    assert res.returncode != 0
    assert "unknown parameter 'stpes'" in res.stderr and "Did you mean 'steps'" in res.stderr
    assert not (tmp_path / "run").exists()

def test_aced_under_torchrun_reads_the_reference_store(tmp_path):
    "`cache-reference` fills the store under torchrun (each rank its shards); an ACED run with 2 CPU processes reads it, one "
    "shard's rows deleted and another shard rewritten in place: those samples run the live reference, counted over ranks."
    import numpy as np
    sys.path.insert(0, str(ROOT / "tests"))
    from shard_helpers import rewrite_images
    from aced_lab.models import create, save_weights
    ref = save_weights(create("ACED-Tiny-64").model, tmp_path / "ref.safetensors")
    data, store, run = tmp_path / "data", tmp_path / "store", tmp_path / "aced"
    common = [*SMALL, "--batch_size", "16", "--filter_ratio", "0.5", "--n_chunks", "4", "--method", "aced", "--reference", str(ref),
              "--reference_model", "ACED-Tiny-64", "--reference_cache", str(store), "--data_root", str(data), "--threads", "1"]
    torchrun = [str(BIN / "torchrun"), "--nproc_per_node=2", "--master_port", "29519", "-m", "aced_lab.cli"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    res = subprocess.run([*torchrun, "cache-reference", *common], capture_output=True, text=True, timeout=900, env=env)
    assert res.returncode == 0, res.stderr[-4000:]
    assert "computed 1024 samples (4 shards missing, 0 stale)" in res.stdout  # totals over both ranks, printed once
    rows = sorted(store.glob("*/train-*.npy"))
    assert [p.name for p in rows] == [f"train-00000{k}.npy" for k in range(4)]
    rows[0].unlink(); rewrite_images(data / "train-000001.tar")
    res = subprocess.run([*torchrun, "train", *common, "--steps", "6", "--selection_every", "3", "--reference_cache_fill", "false",
                          "--out_dir", str(run)], capture_output=True, text=True, timeout=900, env=env)
    assert res.returncode == 0, res.stderr[-4000:]
    rec = records(run)
    assert [r["step"] for r in rec] == list(range(1, 7))
    assert sum(r["ref_cache_missing"] for r in rec) > 0 and sum(r["ref_cache_stale"] for r in rec) > 0  # both ranks' samples
    assert all("kd_loss" in r and (r["ref_cache_hit"] == 1) == ("gflops_ref_score" not in r) for r in rec)
    assert "have no stored embeddings" in res.stderr and "hold other content" in res.stderr
    z = np.load(run / "selection" / "step-0000003.npz")
    assert len(z["id"]) == 32 and z["selected"].sum() == 16

"""IID training throughput of aced_lab's trainer side by side with open_clip_train (shipped in the open_clip_torch
wheel): same model, same images and captions, same batch size, same machine, measured in one run.

open_clip_train's webdataset reader does not run with webdataset 1.0.2 (KeyError 'fname' in its
group_by_keys_nothrow), so both trainers read the same images through a CSV (open_clip_train's tab-separated
filepath/title format; aced_lab's filepath,caption); aced_lab is also measured on the webdataset shards.

    python bench/bench_train.py [--model ACED-Tiny-32] [--batch_size 64] [--steps 150] [--workers 2]

Prints samples/s of each (median over steps after a warm-up, excluding evaluation and checkpointing) and the ratio.
"""
import argparse, json, os, re, statistics, subprocess, sys, tempfile, time
from pathlib import Path

p = argparse.ArgumentParser()
p.add_argument("--model", default="ACED-Tiny-32"); p.add_argument("--batch_size", type=int, default=64)
p.add_argument("--steps", type=int, default=150); p.add_argument("--workers", type=int, default=2)
p.add_argument("--warmup_steps", type=int, default=20, help="steps excluded from the measurement")
p.add_argument("--rounds", type=int, default=2, help="alternating rounds of each (the machine is noisy)")
a = p.parse_args()

from aced_lab.synthetic import make_shapes
from aced_lab.models import CONFIG_DIR
tmp = Path(tempfile.mkdtemp(prefix="bench_train_"))
n = a.batch_size * (a.steps + 5)
man = make_shapes(tmp / "data", n_train=n, n_eval=200, shard_size=max(256, n // 8), progress=False)
print(f"data: {n} shapes pairs in {man['train']}", flush=True)
# the same samples as PNG files + CSV files for the CSV path of both trainers
from PIL import Image
from aced_lab.synthetic import read_samples
from aced_lab.data import expand_urls
(tmp / "png").mkdir()
rows = []
for url in expand_urls(man["train"]):
    for smp in read_samples(url):
        f = tmp / "png" / f"{smp['key']}.png"; Image.fromarray(smp["image"]).save(f); rows.append((str(f), smp["caption"]))
(tmp / "oc.csv").write_text("filepath\ttitle\n" + "".join(f"{f}\t{c}\n" for f, c in rows))
(tmp / "aced.csv").write_text("filepath,caption\n" + "".join(f'{f},"{c}"\n' for f, c in rows))

def run_aced(i, data):
    out = tmp / f"aced{i}"
    cmd = [sys.executable, "-m", "aced_lab.cli", "train", "--data", data, "--model", a.model,
           "--batch_size", str(a.batch_size), "--steps", str(a.steps), "--num_workers", str(a.workers),
           "--warmup", "10", "--ckpt_every", "0", "--tensorboard", "false", "--device", "cpu", "--out_dir", str(out)]
    subprocess.run(cmd, check=True, capture_output=True)
    rec = [json.loads(l) for l in (out / "metrics.jsonl").read_text().splitlines()]
    return statistics.median(r["samples_per_s"] for r in rec[a.warmup_steps:])

OC = """
import sys, open_clip
open_clip.add_model_config(sys.argv[1])
from open_clip_train.main import main
main(sys.argv[2:])
"""
def run_open_clip(i):
    cmd = [sys.executable, "-c", OC, str(CONFIG_DIR), "--train-data", str(tmp / "oc.csv"), "--dataset-type", "csv",
           "--train-num-samples", str(a.batch_size * a.steps), "--batch-size", str(a.batch_size),
           "--workers", str(a.workers), "--model", a.model, "--epochs", "1", "--lr", "1e-3", "--warmup", "10",
           "--precision", "fp32", "--device", "cpu", "--logs", str(tmp / f"oc{i}"), "--name", "b",
           "--log-every-n-steps", "1", "--save-frequency", "0", "--zeroshot-frequency", "0", "--val-frequency", "0",
           "--report-to", "", "--seed", "0"]
    res = subprocess.run(cmd, capture_output=True, text=True)
    log = res.stdout + res.stderr + "".join(f.read_text() for f in (tmp / f"oc{i}").rglob("*.log"))
    sps = [float(x) for x in re.findall(r"Batch \(t\): [\d.]+, ([\d.]+)/s,", log)]
    if not sps: raise RuntimeError(f"open_clip_train printed no throughput (exit {res.returncode}):\n" + res.stderr[-3000:])
    # logged every step from the last batch's time: the same per-step figure as aced_lab's records
    return statistics.median(sps[a.warmup_steps:])

aced, wds_, oc = [], [], []
for i in range(a.rounds):
    aced.append(run_aced(f"csv{i}", str(tmp / "aced.csv"))); oc.append(run_open_clip(i))
    wds_.append(run_aced(f"wds{i}", man["train"]))
    print(f"round {i}: aced_lab csv {aced[-1]:.1f}  open_clip_train csv {oc[-1]:.1f}  aced_lab shards {wds_[-1]:.1f} samples/s", flush=True)
ra, ro, rw = statistics.median(aced), statistics.median(oc), statistics.median(wds_)
print(f"\n{a.model}, batch {a.batch_size}, {a.workers} workers, {len(os.sched_getaffinity(0))} cores, median of per-step samples/s:")
print(f"aced_lab trainer (CSV)     {ra:8.1f} samples/s")
print(f"open_clip_train  (CSV)     {ro:8.1f} samples/s")
print(f"aced_lab trainer (shards)  {rw:8.1f} samples/s")
print(f"ratio aced_lab / open_clip_train, same CSV data: {ra / ro:.2f}")
print(f"ratio aced_lab shards / open_clip_train CSV:     {rw / ro:.2f}")

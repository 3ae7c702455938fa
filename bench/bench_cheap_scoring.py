"""Cheap scoring on the default benchmark: each scoring view's step time, FLOPs, corrupted share trained on, and
agreement with full scoring, side by side with IID and offline filtering, in one run.

    python bench/bench_cheap_scoring.py                # scenes, the shipped teacher as reference, b = 64, f = 0.8
    python bench/bench_cheap_scoring.py --steps 100 --threads 1

Every selecting run reads the same filled reference store, so no step runs the reference (as in a long run).
Agreement is measured on fresh super-batches with the full-scoring ACED run's final learner: Spearman's rank
correlation of the learnability scores, the overlap of the joint selection (same random draw), and the corrupted
share each view would train on. Targets (#15): the best cheap-scoring ACED step <= 1.5x an IID step.
Printed, not asserted: timings depend on the machine and its load.
"""
import argparse, statistics, tempfile, warnings
from pathlib import Path
import numpy as np
import pandas as pd
import torch

p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
p.add_argument("--steps", type=int, default=60); p.add_argument("--skip", type=int, default=10)
p.add_argument("--b", type=int, default=64); p.add_argument("--threads", type=int, default=None)
p.add_argument("--num_workers", type=int, default=2); p.add_argument("--agreement_batches", type=int, default=4)
a = p.parse_args()
warnings.simplefilter("ignore")

from aced_lab.acid import score_super_batch, select
from aced_lab.data import ImageTextLoader
from aced_lab.models import create, inference_flops
from aced_lab.scoring_views import score_agreement, view_forward, view_gflops
from aced_lab.synthetic import default_data
from aced_lab.teacher import embedded_teacher
from aced_lab.trainer import train, cache_reference, load_records

tmp = Path(tempfile.mkdtemp(prefix="bench_cheap_scoring_"))
teacher = str(embedded_teacher("scenes", build=False))
common = dict(data="scenes", model="ACED-Tiny-64", reference=teacher, reference_model="ACED-Tiny-64", batch_size=a.b,
              steps=a.steps, warmup=5, num_workers=a.num_workers, ckpt_every=0, tensorboard=False, eval_max_samples=100,
              selection_every=0, reference_cache=str(tmp / "store"), threads=a.threads)
cache_reference({**common, "method": "acid"})  # the one-time pass, outside every timed run
VIEWS = {"full": {}, "res 0.75": dict(score_resolution=0.75), "FLIP 0.75": dict(score_patch_keep=0.75),
         "res 0.5": dict(score_resolution=0.5), "FLIP 0.5": dict(score_patch_keep=0.5)}
RUNS = {"IID": dict(method="iid"), **{f"ACED {v}": dict(method="aced", **kw) for v, kw in VIEWS.items()},
        "ACED full, f=0.5": dict(method="aced", filter_ratio=0.5),
        "ACED res 0.5, f=0.5": dict(method="aced", filter_ratio=0.5, score_resolution=0.5),
        "offline filtering": dict(method="acid", score="easy_reference", selection="topk")}
rows = []
for name, kw in RUNS.items():
    out = tmp / name.replace(" ", "_").replace(",", "").replace("=", "")
    train({**common, **kw, "out_dir": str(out)})
    r = load_records(out)[a.skip:]
    rows.append({"run": name, "step_s": statistics.median(x["step_time"] for x in r),
                 "gflops_per_step": statistics.median(x["gflops_total"] - y["gflops_total"] for x, y in zip(r[1:], r)),
                 "learner_score_gflops": statistics.median(x.get("gflops_learner_score", 0) for x in r),
                 "trained_corrupt": np.mean([x["trained_corrupt_frac"] for x in r])})
    print(rows[-1], flush=True)
t = pd.DataFrame(rows).set_index("run")
t["step / IID step"] = t["step_s"] / t.loc["IID", "step_s"]
t["GFLOPs / IID"] = t["gflops_per_step"] / t.loc["IID", "gflops_per_step"]

# agreement with full scoring, on fresh super-batches, with the full ACED run's learner against the teacher
learner = create("ACED-Tiny-64", str(sorted((tmp / "ACED_full" / "checkpoints").glob("step-*.pt"))[-1])).model.eval()
ref = create("ACED-Tiny-64", teacher).model.eval()
b = create("ACED-Tiny-64")
B = a.b * 5
man = default_data("scenes", progress=False)
agree = {}
for k, batch in enumerate(ImageTextLoader(man["train"], b.preprocess, b.tokenizer, B, seed=123).epoch(0)):
    if k == a.agreement_batches: break
    bad = np.array([m["corruption"] != "clean" for m in batch["meta"]])
    with torch.no_grad():
        ro = ref(batch["image"], batch["text"])
        def scored(**kw):
            s = score_super_batch(view_forward(learner, batch["image"], batch["text"], seed=k, **kw), ro, "softmax", "learnability")
            return s, select("joint", a.b, s["score"], s["learner_logits"], s["ref_logits"], 1.0, torch.Generator().manual_seed(k),
                             n_chunks=16, loss="softmax", score="learnability", ref_context="batch")
        full, chosen = scored()
        for v, kw in VIEWS.items():
            s, c = scored(**{k2.removeprefix("score_"): x for k2, x in kw.items()})
            agree.setdefault(f"ACED {v}", []).append(score_agreement(full["score"], s["score"], chosen, c, bad))
ag = pd.DataFrame({k: pd.DataFrame(v).mean() for k, v in agree.items()}).T
t = t.join(ag[["spearman", "overlap", "corrupted_cheap"]].rename(columns={"corrupted_cheap": "corrupt_chosen"}))
m = b.model
g = inference_flops(m)
print(f"\nACED-Tiny-64 forward GFLOPs: image {g['image_gflops']:.4f}, text {g['text_gflops']:.4f}; image tower through each "
      "view: " + ", ".join(f"{v} {view_gflops(m, kw.get('score_patch_keep', 1), kw.get('score_resolution', 1)) / g['image_gflops']:.2f}x"
                           for v, kw in VIEWS.items()))
print(f"b = {a.b}, B = {B} (f = 0.8 unless stated), {a.steps} steps (median of the last {a.steps - a.skip}); agreement on "
      f"{a.agreement_batches} super-batches of {B}; data: scenes, 35% corrupted\n")
print(t.round(3).to_string())
cheap = t.loc[[r for r in RUNS if r.startswith("ACED") and r != "ACED full"], "step / IID step"]
print(f"\nbest cheap-scoring ACED step / IID step = {cheap.min():.2f} ({cheap.idxmin()}); target <= 1.5")

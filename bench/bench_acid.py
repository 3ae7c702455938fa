"""ACID overheads, measured side by side in one run (issue targets, CPU by default):

- with a warm reference cache, ACID step time / (IID step time + learner forward on the super-batch B) <= 1.10
- joint selection itself <= 3% of the ACID step at b = 256, f = 0.8

    python bench/bench_acid.py [--b 256] [--filter_ratio 0.8] [--steps 12] [--model ACED-Tiny-32]

The reference weights are random (timing does not depend on them); its cache is filled before the ACID runs.
"""
import argparse, json, statistics, tempfile, time
from pathlib import Path
import torch

p = argparse.ArgumentParser()
p.add_argument("--b", type=int, default=256); p.add_argument("--filter_ratio", type=float, default=0.8)
p.add_argument("--steps", type=int, default=12); p.add_argument("--skip", type=int, default=3, help="warm-up steps left out")
p.add_argument("--model", default="ACED-Tiny-32"); p.add_argument("--reference_model", default="ACED-Teacher-32")
p.add_argument("--rounds", type=int, default=2)
a = p.parse_args()

from aced_lab.models import create, save_weights
from aced_lab.trainer import train, cache_reference, load_records
import math
tmp = Path(tempfile.mkdtemp(prefix="bench_acid_"))
B = math.ceil(a.b / (1 - a.filter_ratio))
n = B * (a.steps + 2)
ref = save_weights(create(a.reference_model).model, tmp / "ref.safetensors")
common = dict(data_root=str(tmp / "data"), n_train=n, n_eval=200, shard_size=max(500, n // 8), model=a.model,
              batch_size=a.b, steps=a.steps, warmup=2, num_workers=2, ckpt_every=0, tensorboard=False,
              eval_max_samples=200, reference=str(ref), reference_model=a.reference_model,
              reference_cache=str(tmp / "refcache"), filter_ratio=a.filter_ratio, selection_every=0)
print(f"b={a.b}, f={a.filter_ratio}, B={B}; filling the reference cache ({n} samples)...", flush=True)
cache_reference({**common, "method": "acid"})

def step_times(method, i):
    out = tmp / f"{method}{i}"
    train({**common, "method": method, "out_dir": str(out)})
    return load_records(out)[a.skip:]

@torch.no_grad()
def learner_forward_B():
    m = create(a.model).model.eval()
    x, y = torch.randn(B, 3, 32, 32), torch.randint(0, 49408, (B, m.context_length))
    ts = []
    for _ in range(a.steps):
        t0 = time.perf_counter(); m(x, y); ts.append(time.perf_counter() - t0)
    return statistics.median(ts[a.skip:])

iid, fwd, acid, sel = [], [], [], []
for i in range(a.rounds):
    r = step_times("iid", i); iid.append(statistics.median(x["step_time"] for x in r))
    fwd.append(learner_forward_B())
    r = step_times("acid", i)
    assert all(x["ref_cache_hit"] for x in r), "the cache should be warm"
    acid.append(statistics.median(x["step_time"] for x in r)); sel.append(statistics.median(x["select_time"] for x in r))
    print(f"round {i}: IID step {iid[-1]:.3f}s  learner fwd on B {fwd[-1]:.3f}s  ACID step {acid[-1]:.3f}s  "
          f"joint selection {sel[-1] * 1000:.1f}ms", flush=True)
mi, mf, ma, ms = map(statistics.median, (iid, fwd, acid, sel))
print(f"\nACID step / (IID step + learner forward on B) = {ma:.3f} / ({mi:.3f} + {mf:.3f}) = {ma / (mi + mf):.3f}  (target <= 1.10)")
print(f"joint selection / ACID step = {ms * 1000:.1f}ms / {ma * 1000:.0f}ms = {100 * ms / ma:.2f}%  (target <= 3%)")

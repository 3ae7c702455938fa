"""ACID overheads, measured side by side in one run (issue targets, CPU by default):

- with a filled reference store, ACID step time / (IID step time + learner forward on the super-batch B) <= 1.10
- joint selection itself <= 3% of the ACID step at b = 256, f = 0.8
- offline filtering (score easy_reference, warm cache: no learner and no reference forward) / IID step ~ 1
  (what is left is decoding B images instead of b, and top-k)

    python bench/bench_acid.py [--b 256] [--filter_ratio 0.8] [--steps 12] [--model ACED-Tiny-32] [--num_workers 2]

ACID decodes B = b / (1 - f) images per step where IID decodes b; on a 2-core CPU the loader's workers and the
model share the cores, so that extra decoding shows in the step time. With --num_workers 0 decoding runs in the
main process and is timed apart (`data_time`), and the ratio is also printed without it: the selection machinery's
own overhead.

The reference weights are random (timing does not depend on them); its cache is filled before the ACID runs.

Measured 2026-12-02 on the 2-core CPU machine, idle, defaults with --num_workers 0 (b = 256, B = 1281 then; the
trainer now draws 1280), two rounds: IID 1.356 s, learner forward on B 2.160 s, ACID 4.375 s: ratio 1.244, and
1.073 without data loading (target 1.10 met there; the rest is decoding and tokenizing 5x the samples in-process);
joint selection 31 ms, 0.72% of the step; offline filtering / IID 1.45 (1.00 without data loading).
"""
import argparse, statistics, tempfile, time
from pathlib import Path
import torch

p = argparse.ArgumentParser()
p.add_argument("--b", type=int, default=256); p.add_argument("--filter_ratio", type=float, default=0.8)
p.add_argument("--steps", type=int, default=12); p.add_argument("--skip", type=int, default=3, help="warm-up steps left out")
p.add_argument("--model", default="ACED-Tiny-32"); p.add_argument("--reference_model", default="ACED-Teacher-32")
p.add_argument("--rounds", type=int, default=2); p.add_argument("--num_workers", type=int, default=2)
a = p.parse_args()

from aced_lab.core import get_device, autocast
from aced_lab.models import create, save_weights
from aced_lab.trainer import train, cache_reference, load_records
from aced_lab.acid import super_batch
tmp = Path(tempfile.mkdtemp(prefix="bench_acid_"))
dev = get_device()  # the trainer's device="auto"
B = super_batch(a.b, a.filter_ratio)  # as the trainer draws it
n = B * (a.steps + 2)
ref = save_weights(create(a.reference_model).model, tmp / "ref.safetensors")
common = dict(data="shapes", data_root=str(tmp / "data"), n_train=n, n_eval=200, shard_size=max(500, n // 8), model=a.model,
              batch_size=a.b, steps=a.steps, warmup=2, num_workers=a.num_workers, ckpt_every=0, tensorboard=False,
              eval_max_samples=200, reference=str(ref), reference_model=a.reference_model,
              reference_cache=str(tmp / "refcache"), filter_ratio=a.filter_ratio, selection_every=0)
print(f"b={a.b}, f={a.filter_ratio}, B={B}; filling the reference store ({n} samples)...", flush=True)
cache_reference({**common, "method": "acid"})

def step_times(method, i, **kw):
    out = tmp / f"{method}{'-'.join(map(str, kw.values()))}{i}"
    train({**common, "method": method, "out_dir": str(out), **kw})
    return load_records(out)[a.skip:]

@torch.no_grad()
def learner_forward_B():
    "The learner's forward on B examples, where and how the trainer runs it (device, autocast)."
    m = create(a.model, device=dev).model.eval()
    x, y = torch.randn(B, 3, 32, 32, device=dev), torch.randint(0, 49408, (B, m.context_length), device=dev)
    ts = []
    for _ in range(a.steps):
        t0 = time.perf_counter()
        with autocast(dev): m(x, y)
        if dev.type == "cuda": torch.cuda.synchronize()
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts[a.skip:])

iid, fwd, acid, sel, iid_c, acid_c, easy, easy_c = [], [], [], [], [], [], [], []
compute = lambda r: statistics.median(x["step_time"] - x["data_time"] for x in r)  # step time without waiting for data
for i in range(a.rounds):
    r = step_times("iid", i); iid.append(statistics.median(x["step_time"] for x in r)); iid_c.append(compute(r))
    fwd.append(learner_forward_B())
    r = step_times("acid", i)
    assert all(x["ref_cache_hit"] for x in r), "the store should be filled"
    acid.append(statistics.median(x["step_time"] for x in r)); sel.append(statistics.median(x["select_time"] for x in r))
    acid_c.append(compute(r))
    r = step_times("acid", i, score="easy_reference", selection="topk")
    assert all(x["ref_cache_hit"] and "gflops_learner_score" not in x for x in r), "offline filtering runs no forward"
    easy.append(statistics.median(x["step_time"] for x in r)); easy_c.append(compute(r))
    print(f"round {i}: IID step {iid[-1]:.3f}s  learner fwd on B {fwd[-1]:.3f}s  ACID step {acid[-1]:.3f}s  "
          f"joint selection {sel[-1] * 1000:.1f}ms  offline filtering step {easy[-1]:.3f}s", flush=True)
mi, mf, ma, ms = map(statistics.median, (iid, fwd, acid, sel))
print(f"\nACID step / (IID step + learner forward on B) = {ma:.3f} / ({mi:.3f} + {mf:.3f}) = {ma / (mi + mf):.3f}  (target <= 1.10)")
mic, mac = statistics.median(iid_c), statistics.median(acid_c)
print(f"  excluding data loading: {mac:.3f} / ({mic:.3f} + {mf:.3f}) = {mac / (mic + mf):.3f}"
      + ("" if a.num_workers == 0 else "  (with workers, decoding overlaps the step: use --num_workers 0 to time it apart)"))
print(f"joint selection / ACID step = {ms * 1000:.1f}ms / {ma * 1000:.0f}ms = {100 * ms / ma:.2f}%  (target <= 3%)")
me, mec = statistics.median(easy), statistics.median(easy_c)
print(f"offline filtering (easy_reference, warm cache) step / IID step = {me:.3f} / {mi:.3f} = {me / mi:.3f}; "
      f"excluding data loading {mec / mic:.3f}")

"""Joint (JEST) selection time at the papers' sizes, per loss, against the target of at most 3% of an ACID step.

    python bench/bench_joint.py                      # B = 1280, b = 256, n_chunks = 16
    python bench/bench_joint.py --B 640 --b 128 --threads 1

Printed, not asserted: timings depend on the machine and its load (on a CPU shared with another busy process,
torch's multi-threaded small kernels can be many times slower; `select_joint` drops to one thread on CPU).
"""
import argparse, time
import torch
from aced_lab.acid import LOSSES, select_joint

p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
p.add_argument("--B", type=int, default=1280); p.add_argument("--b", type=int, default=256)
p.add_argument("--n_chunks", type=int, default=16); p.add_argument("--repeats", type=int, default=5)
p.add_argument("--threads", type=int, default=None)
a = p.parse_args()
if a.threads: torch.set_num_threads(a.threads)
g = torch.Generator().manual_seed(0)
xl, xr = torch.randn(a.B, a.B, generator=g), torch.randn(a.B, a.B, generator=g)  # (B,B) learner / reference logits
for loss in LOSSES:
    select_joint(xl, xr, a.b, a.n_chunks, loss, generator=torch.Generator().manual_seed(0))  # warm-up
    t = time.perf_counter()
    for i in range(a.repeats): select_joint(xl, xr, a.b, a.n_chunks, loss, generator=torch.Generator().manual_seed(i))
    print(f"select_joint B={a.B} b={a.b} n_chunks={a.n_chunks} {loss}: {(time.perf_counter() - t) / a.repeats * 1e3:.1f} ms")

"""Joint (JEST) selection time and ATen ops at the papers' sizes, per loss, against the target of at most 3% of an ACID step.

    python bench/bench_joint.py                      # B = 1280, b = 256, n_chunks = 16
    python bench/bench_joint.py --B 640 --b 128 --threads 1 --ref_context chosen

Printed, not asserted: timings depend on the machine and its load (on a CPU shared with another busy process,
torch's multi-threaded small kernels can be many times slower; `select_joint` drops to one thread on CPU).
The ops per selection (`count_ops`, views left out) are the same on any machine: on a GPU, where each round's
kernels are tiny, they are what the selection costs. Before issue #15's kernel diet (B=160, b=32, 16 rounds):
466 (sigmoid) and 455 (softmax) with ref_context="batch", 618 and 588 with "chosen".
"""
import argparse, time
import torch
from aced_lab.acid import LOSSES, REF_CONTEXTS, count_ops, select_joint

p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
p.add_argument("--B", type=int, default=1280); p.add_argument("--b", type=int, default=256)
p.add_argument("--n_chunks", type=int, default=16); p.add_argument("--repeats", type=int, default=5)
p.add_argument("--threads", type=int, default=None); p.add_argument("--ref_context", default="batch", choices=REF_CONTEXTS)
p.add_argument("--device", default="cpu")
a = p.parse_args()
if a.threads: torch.set_num_threads(a.threads)
dev = torch.device(a.device)
sync = torch.cuda.synchronize if dev.type == "cuda" else lambda: None
g = torch.Generator().manual_seed(0)
xl, xr = (torch.randn(a.B, a.B, generator=g).to(dev) for _ in range(2))  # (B,B) learner / reference logits
for loss in LOSSES:
    run = lambda i: select_joint(xl, xr, a.b, a.n_chunks, loss, generator=torch.Generator(dev).manual_seed(i), ref_context=a.ref_context)
    run(0); sync()  # warm-up
    t = time.perf_counter()
    for i in range(a.repeats): run(i)
    sync(); ms = (time.perf_counter() - t) / a.repeats * 1e3
    print(f"select_joint B={a.B} b={a.b} n_chunks={a.n_chunks} {loss} ref_context={a.ref_context}: {ms:.1f} ms, "
          f"{count_ops(run, 0)} ATen ops")

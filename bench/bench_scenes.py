"""Benchmark: generate N 64 px scenes (default config, shards written to a temporary folder) and print samples/s.
Usage: python bench/bench_scenes.py [--n 100000] [--workers N] [--image-size 64] [--shard-size 1000]"""
import argparse, tempfile, time
from aced_lab.scenes import make_scenes

if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n", type=int, default=100_000, help="total samples (train + 1%% eval)")
    ap.add_argument("--workers", type=int, default=None, help="processes (default: one per core)")
    ap.add_argument("--image-size", type=int, default=64)
    ap.add_argument("--shard-size", type=int, default=1000)
    a = ap.parse_args()
    n_eval = max(1, a.n // 100)
    with tempfile.TemporaryDirectory() as d:
        t0 = time.perf_counter()
        man = make_scenes(d, n_train=a.n - n_eval, n_eval=n_eval, image_size=a.image_size, shard_size=a.shard_size,
                          num_workers=a.workers)
        dt = time.perf_counter() - t0
    n = man["n_train"] + man["n_eval"]
    print(f"{n:,} samples of {a.image_size} px in {dt:.2f} s: {n / dt:,.0f} samples/s")
    print("train corruption counts:", man["corruption_counts"])

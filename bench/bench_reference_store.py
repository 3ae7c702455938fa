"""Reference store at scale: open time, resident memory, and what attaching rows costs the loader.

    python bench/bench_reference_store.py                  # 1M rows (2.1 GB on disk), D = 512, shards of 10k
    python bench/bench_reference_store.py --n 10000000     # the issue's 10M rows (21 GB on disk)
    python bench/bench_reference_store.py --n 100000 --size 224   # the loader part on 224 px images

Targets (#16): opening the store and reading its first row < 1 s; resident memory added by reading rows from every
shard <= 256 MB whatever the size; attaching rows adds <= 5% to the loader's cost per sample at 2 workers.
The scale part writes synthetic rows (random fp16) and reads them back in a fresh process the way the loader's
workers do (shard after shard, random rows within each, a few shard files open at a time). The loader part reads
real webdataset shards (64 px PNG, batch 256) with and without their stored rows attached, alternately, and prints
both CPU-seconds per sample (the cost, robust to a busy machine) and samples/s.
"""
import argparse, os, random, resource, shutil, subprocess, sys, tempfile, time, warnings
from pathlib import Path
import numpy as np
import torch
import open_clip
from aced_lab.data import ImageTextLoader, fast_preprocess
from aced_lab.reference_cache import ReferenceStore, StoreReader

sys.path.insert(0, str(Path(__file__).parent))
from bench_loader import write_shards


def rss_mb() -> float:
    "This process's resident memory now (MB)."
    with open("/proc/self/statm") as f: return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def write_store(root, n, dim, shard):
    "n synthetic rows in shards of `shard` (keys k<i>, random digests and fp16 embeddings)."
    store, rng = ReferenceStore(root, "bench"), np.random.default_rng(0)
    emb = rng.standard_normal((shard, dim)).astype(np.float16)  # one block, reused: the content does not matter here
    for s in range(-(-n // shard)):
        m = min(shard, n - s * shard)
        store.write(f"/data/train-{s:06d}.tar", [f"k{i:09d}" for i in range(s * shard, s * shard + m)],
                    [f"{i:032x}" for i in range(s * shard, s * shard + m)], emb[:m], emb[:m], None)
    return store


def read_back(root, n, shard, per_shard):
    "In this (fresh) process: open the store, then read `per_shard` random rows of every shard as a worker would."
    rss0, t0 = rss_mb(), time.perf_counter()
    reader = StoreReader(ReferenceStore(root, "bench"))
    first = reader("train-000000/k000000000", f"{0:032x}")
    t_open, peak, t1, rows = time.perf_counter() - t0, rss_mb(), time.perf_counter(), 0
    assert first["ref_status"] == 0
    rng = random.Random(0)
    for s in range(-(-n // shard)):
        for i in rng.sample(range(s * shard, min(n, (s + 1) * shard)), per_shard):
            assert reader(f"train-{s:06d}/k{i:09d}", f"{i:032x}")["ref_status"] == 0
            rows += 1
        peak = max(peak, rss_mb())
    print(f"open + first row {t_open * 1000:.0f} ms; {rows} rows read from {-(-n // shard)} shards at "
          f"{rows / (time.perf_counter() - t1):,.0f} rows/s; resident memory added: {peak - rss0:.0f} MB at most")
    return t_open, peak - rss0


def fill_random(store, spec, dim, size=64):
    "Rows for real shards: their keys and content digests (read by the loader), random embeddings."
    tok = open_clip.get_tokenizer("ViT-B-32")
    rows = {}
    for b in ImageTextLoader(spec, fast_preprocess(size), tok, 256, shuffle=False, drop_last=False).epoch(0):
        for i, d in zip(b["id"], b["digest"]): rows.setdefault(i.split("/")[0], []).append((i.split("/", 1)[1], d))
    for stem, kd in rows.items():
        e = np.random.default_rng(0).standard_normal((len(kd), dim)).astype(np.float16)
        store.write(f"/x/{stem}.tar", [k for k, _ in kd], [d for _, d in kd], e, e, None)


def loader_cost(spec, attach, workers, size=64, epochs=1):
    "CPU-seconds per sample (this process and its workers) and samples/s over full epochs, after a warm-up epoch."
    dl = ImageTextLoader(spec, fast_preprocess(size), open_clip.get_tokenizer("ViT-B-32"), 256, num_workers=workers,
                         seed=0, attach=attach)
    sum(len(b["id"]) for b in dl.epoch(0))
    cpu = lambda: sum(getattr(resource.getrusage(w), f) for w in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)
                      for f in ("ru_utime", "ru_stime"))
    t, c, n = time.perf_counter(), cpu(), 0
    for e in range(1, 1 + epochs):
        for b in dl.epoch(e):
            assert (attach is None) == ("ref_features" not in b) and (attach is None or int(b["ref_status"].max()) == 0)
            n += len(b["id"])
    return (cpu() - c) / n, n / (time.perf_counter() - t)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=1_000_000); p.add_argument("--dim", type=int, default=512)
    p.add_argument("--shard", type=int, default=10_000); p.add_argument("--per_shard", type=int, default=1000)
    p.add_argument("--loader_n", type=int, default=10_000); p.add_argument("--workers", type=int, default=2)
    p.add_argument("--size", type=int, default=64, help="image side of the loader part (PNG)")
    p.add_argument("--rounds", type=int, default=3); p.add_argument("--dir", default=None)
    p.add_argument("--read_back", action="store_true", help=argparse.SUPPRESS)  # the fresh process of the scale part
    a = p.parse_args()
    if a.read_back: read_back(a.dir, a.n, a.shard, a.per_shard); return
    torch.set_num_threads(1); warnings.simplefilter("ignore", UserWarning)
    tmp = Path(a.dir or tempfile.mkdtemp(prefix="bench_store_"))
    print(f"load average {os.getloadavg()[0]:.1f}, cores {len(os.sched_getaffinity(0))}; {tmp}")
    try:
        t = time.perf_counter(); write_store(tmp / "scale", a.n, a.dim, a.shard)
        gb = sum(f.stat().st_size for f in (tmp / "scale").rglob("*")) / 1e9
        print(f"scale: wrote {a.n:,} rows (D = {a.dim}, fp16) in {-(-a.n // a.shard)} shard files, {gb:.1f} GB, "
              f"in {time.perf_counter() - t:.0f} s")
        subprocess.run([sys.executable, __file__, "--read_back", "--dir", str(tmp / "scale"), "--n", str(a.n),
                        "--shard", str(a.shard), "--per_shard", str(a.per_shard)], check=True)
        shutil.rmtree(tmp / "scale")
        (tmp / "data").mkdir(); spec = write_shards(str(tmp / "data"), a.loader_n, 10, a.size)
        store = ReferenceStore(tmp / "store", "bench"); fill_random(store, spec, a.dim, a.size)
        plain, attached = [], []
        for r in range(a.rounds):  # alternately, so that load changes hit both alike
            plain.append(loader_cost(spec, None, a.workers, a.size))
            attached.append(loader_cost(spec, StoreReader(store), a.workers, a.size))
            print(f"round {r}: plain {plain[-1][0] * 1e6:.0f} µs CPU/sample ({plain[-1][1]:,.0f} samples/s), "
                  f"rows attached {attached[-1][0] * 1e6:.0f} µs CPU/sample ({attached[-1][1]:,.0f} samples/s)", flush=True)
        c0, c1 = np.median([x[0] for x in plain]), np.median([x[0] for x in attached])
        s0, s1 = np.median([x[1] for x in plain]), np.median([x[1] for x in attached])
        print(f"\nloader ({a.loader_n} samples of {a.size} px, {a.workers} workers): attaching rows costs {c1 / c0 - 1:+.1%} CPU per sample "
              f"(target <= +5%); samples/s {s1:,.0f} vs {s0:,.0f} ({s1 / s0 - 1:+.1%})")
    finally:
        if a.dir is None: shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()

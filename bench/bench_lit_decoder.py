"""LiT-Decoder: cached encoder tokens vs running the frozen encoder every step, side by side in one run
(issue target: >= 2x faster decoder training with the teacher's encoder, CPU by default):

    python bench/bench_lit_decoder.py [--steps 30] [--batch_size 64] [--width 128] [--layers 2] [--threads 1]

On the shapes data, for each encoder — its embedded teacher (ACED-Small-32, trained once and cached) and a student (ACED-Tiny-32: the
weights of `--student` when given, e.g. runs/compare/aced-seed0, else random init; timing does not depend on
them) — the same decoder trains twice through the real trainer loop (`aced_lab.lit_decoder.lit_decoder`): once on
tokens cached ahead of training, once running the frozen encoder on every batch. Printed: median step time of each
(warm-up steps left out), their ratio, and the one-off cost of filling the cache (and after how many steps it pays).
"""
import argparse, statistics, tempfile, time
from pathlib import Path

p = argparse.ArgumentParser()
p.add_argument("--steps", type=int, default=30); p.add_argument("--skip", type=int, default=5, help="warm-up steps left out")
p.add_argument("--batch_size", type=int, default=64); p.add_argument("--width", type=int, default=128)
p.add_argument("--layers", type=int, default=2); p.add_argument("--threads", type=int, default=None)
p.add_argument("--student", default=None, help="student weights (run folder or checkpoint); default: random ACED-Tiny-32")
p.add_argument("--device", default="cpu")
a = p.parse_args()

from aced_lab.lit_decoder import lit_decoder
from aced_lab.trainer import load_records
from aced_lab.teacher import embedded_teacher

tmp = Path(tempfile.mkdtemp(prefix="bench_lit_"))
common = dict(data="shapes", n_train=2000, n_eval=50, steps=a.steps, batch_size=a.batch_size, width=a.width, layers=a.layers, warmup=2,
              ckpt_every=0, tensorboard=False, eval_max_samples=8, max_len=4, threads=a.threads, device=a.device,
              data_root=str(tmp / "data"))
encoders = {"teacher (ACED-Small-32)": dict(encoder_weights=str(embedded_teacher("shapes"))),
            "student (ACED-Tiny-32)": dict(encoder="ACED-Tiny-32" if a.student is None else "auto", encoder_weights=a.student)}

def med_step(run) -> float:
    return statistics.median(r["step_time"] for r in load_records(run)[a.skip:])

rows = []
for name, enc in encoders.items():
    t0 = time.perf_counter()
    lit_decoder({**common, **enc, "token_cache": str(tmp / "tokens" / name[:7]), "steps": 1, "out_dir": str(tmp / f"fill-{name[:7]}")})
    fill = time.perf_counter() - t0  # tokens of 2,050 images + a 1-step run
    lit_decoder({**common, **enc, "token_cache": str(tmp / "tokens" / name[:7]), "out_dir": str(tmp / f"cached-{name[:7]}")})
    lit_decoder({**common, **enc, "token_cache": None, "out_dir": str(tmp / f"live-{name[:7]}")})
    c, l = med_step(tmp / f"cached-{name[:7]}"), med_step(tmp / f"live-{name[:7]}")
    rows.append((name, c, l, l / c, fill, fill / max(l - c, 1e-9)))

print(f"\nbatch {a.batch_size}, decoder {a.layers} x {a.width}, device {a.device}, threads {a.threads or 'all'}")
print(f"{'encoder':26s} {'cached ms/step':>15s} {'live ms/step':>13s} {'speed-up':>9s} {'cache fill s':>13s} {'pays after':>11s}")
for name, c, l, r, fill, be in rows:
    print(f"{name:26s} {c * 1e3:15.1f} {l * 1e3:13.1f} {r:8.1f}x {fill:13.1f} {be:8.0f} steps")

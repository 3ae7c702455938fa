"""How much a live dashboard slows training (issue target: at most 5%), CPU by default:

    python bench/bench_dashboard.py [--method aced|optima] [--steps 60] [--batch_size 32] [--repeats 3] [--kernel]

The same short run, with and without the dashboard's callback attached, interleaved (off, on, off, on, ...) in one
process so that drift in machine load hits both alike. The time measured is the training loop itself: from
`before_fit` (which includes the dashboard's first draw) to the last step's record (which includes its redraws), not
set-up or evaluation. The ratio printed is the median loop time with the dashboard over the median without. On a shared machine that
ratio is noisy, so the time spent inside the dashboard's callback (its exact in-process cost) is printed too, as a
percentage of the loop time without it.
`--method aced` attaches the selection dashboard, `--method optima` the bandit dashboard.

Without `--kernel` the widgets update in-process with no frontend: every figure update is still built and
serialised, but nothing is sent. With `--kernel` the whole benchmark runs inside a Jupyter kernel (through
nbclient), so every widget update also goes out over the kernel's messaging, as it does in JupyterLab.
The reference/teacher weights are random: timing does not depend on them.

Seen here (2 shared CPU cores, threads=1, 40 steps x 3 interleaved repeats, default DashboardConfig: every 5 steps,
at most 2 redraws/s, 2% time budget; about 9-10 redraws per run):
- aced + selection dashboard (B = 160, b = 32), --kernel: loop ratio on/off 1.002; the callback took 0.57 s of
  ~43 s (1.35%); without --kernel: ratio 0.968 (machine noise), callback 1.05%.
- optima + bandit dashboard (b = 32, episode 5), --kernel: ratio 1.030; callback 0.79%.
A redraw costs about 50-60 ms (selection: histogram, 160 points with captions, trends, 12 thumbnails) and 12 ms (bandit).
"""
import argparse, json, os, statistics, sys, tempfile, time
from pathlib import Path

p = argparse.ArgumentParser()
p.add_argument("--method", default="aced", choices=("aced", "optima"))
p.add_argument("--steps", type=int, default=60); p.add_argument("--batch_size", type=int, default=32)
p.add_argument("--repeats", type=int, default=3); p.add_argument("--threads", type=int, default=1)
p.add_argument("--every", type=int, default=5, help="DashboardConfig.every"); p.add_argument("--model", default="ACED-Tiny-32")
p.add_argument("--reference_model", default="ACED-Tiny-32", help="fast steps are the hard case")
p.add_argument("--kernel", action="store_true", help="run inside a Jupyter kernel (widget messages really sent)")
a = p.parse_args()

if a.kernel:  # re-run this script, without --kernel, as the one cell of a notebook executed by a real kernel
    import nbformat
    from nbclient import NotebookClient
    args = [x for x in sys.argv[1:] if x != "--kernel"]
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(f"%run {Path(__file__).resolve()} {' '.join(args)}")])
    NotebookClient(nb, timeout=3600, kernel_name="python3").execute()
    print("".join(o.get("text", "") for o in nb.cells[0].outputs if o.get("name") == "stdout"))
    sys.exit(0)

from aced_lab.models import create, save_weights
from aced_lab.synthetic import default_data
from aced_lab.trainer import train, Callback
from aced_lab.dashboards import SelectionDashboard, BanditDashboard, DashboardConfig, DashboardCallback

cb_time = [0.0]  # time spent inside the dashboard callback's events during the loop: its exact in-process cost
def timed(f):
    def g(self, t):
        t0 = time.perf_counter(); f(self, t); cb_time[0] += time.perf_counter() - t0
    return g
for ev in ("before_fit", "select", "after_bandit", "after_record"): setattr(DashboardCallback, ev, timed(getattr(DashboardCallback, ev)))

class LoopTimer(Callback):
    "Wall time of the training loop: from before_fit (set by `Start`) to the last after_record."
    order = 99  # after the dashboard (95): its redraw at a step is inside the loop time
    def after_record(self, t): self.t1 = time.perf_counter()

class Start(Callback):
    order = -1  # before the dashboard's first draw
    def __init__(self, timer): self.timer = timer
    def before_fit(self, t): self.timer.t0 = time.perf_counter()

tmp = Path(tempfile.mkdtemp(prefix="bench_dashboard_"))
sel = a.method == "aced"
B = a.batch_size * 5 if sel else a.batch_size  # f = 0.8
n = B * (a.steps + 2)
spec = default_data("shapes", root=tmp / "data", n_train=n, n_eval=16, shard_size=max(256, n // 4))["train"]  # a spec: no eval
ref = save_weights(create(a.reference_model).model, tmp / "ref.safetensors")
cfg = dict(data=spec, model=a.model, batch_size=a.batch_size, steps=a.steps, warmup=2, num_workers=0, threads=a.threads,
           ckpt_every=0, tensorboard=False)
cfg.update(dict(method="aced", reference=str(ref), reference_model=a.reference_model, reference_cache=None) if sel else
           dict(method="optima", teacher=str(ref), teacher_model=a.reference_model, module_episode=5))

times, draws, draw_s, cb_s = {False: [], True: []}, [], [], []
for rep in range(a.repeats):
    for on in (False, True):
        timer = LoopTimer(); cb_time[0] = 0.0
        cbs = [Start(timer), timer]
        if on:
            dash = (SelectionDashboard if sel else BanditDashboard)(DashboardConfig(every=a.every))
            cbs.append(dash.callback())
        train({**cfg, "out_dir": str(tmp / f"run-{rep}-{int(on)}")}, callbacks=cbs)
        times[on].append(timer.t1 - timer.t0)
        if on: draws.append(dash.n_draws); draw_s.append(dash.draw_seconds); cb_s.append(cb_time[0])
        print(f"repeat {rep} dashboard {'on ' if on else 'off'}: {times[on][-1]:.2f} s" + (f" ({dash.n_draws} draws; {cb_time[0]:.2f} s in the dashboard's callback)" if on else ""), flush=True)

off, on = statistics.median(times[False]), statistics.median(times[True])
print(json.dumps({"method": a.method, "dashboard": "selection" if sel else "bandit", "steps": a.steps, "batch_size": a.batch_size,
                  "super_batch": B, "every": a.every, "kernel": "ipykernel" if "ipykernel" in sys.modules else None,
                  "loop_s_off": times[False], "loop_s_on": times[True], "draws": draws, "draw_s": draw_s, "callback_s": cb_s,
                  "callback_pct_of_loop_off": round(100 * statistics.median(cb_s) / off, 2),
                  "ratio_on_off": round(on / off, 4), "overhead_pct": round(100 * (on / off - 1), 2)}))

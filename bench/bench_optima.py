"""OPTIMA overheads, measured side by side in one run (issue target, CPU by default):

- bandit update + selection <= 1% of a training step

    python bench/bench_optima.py [--batch_size 64] [--steps 40] [--episode 10] [--model ACED-Tiny-32] [--teacher_model ACED-Small-32]

One IID run and one `method="optima"` run of the same size, then the bandit's own work (update, posterior, P(best),
select: everything the policy does per decision) replayed with the run's own rewards and timed per decision.
It is printed per decision (the bandit decides once per episode of K steps) and amortised per step. Also printed:
the whole episode end (probe forward on rank 0 + bandit + record) and the per-step cost of module distillation
itself (hooks, teacher forward, projections, loss), which are the price of the method rather than of the bandit.

The teacher's weights are random: timing does not depend on them.
"""
import argparse, json, statistics, tempfile, time
from pathlib import Path

p = argparse.ArgumentParser()
p.add_argument("--batch_size", type=int, default=64); p.add_argument("--steps", type=int, default=40)
p.add_argument("--episode", type=int, default=10); p.add_argument("--skip", type=int, default=3, help="warm-up steps left out")
p.add_argument("--model", default="ACED-Tiny-32"); p.add_argument("--teacher_model", default="ACED-Small-32")
p.add_argument("--num_workers", type=int, default=2); p.add_argument("--repeats", type=int, default=200)
a = p.parse_args()

from aced_lab import optima
from aced_lab.models import create, save_weights
from aced_lab.synthetic import default_data
from aced_lab.trainer import train
from aced_lab.records import load_records, load_bandit_records

tmp = Path(tempfile.mkdtemp(prefix="bench_optima_"))
n = a.batch_size * (a.steps + 2)
spec = default_data("shapes", root=tmp / "data", n_train=n, n_eval=16, shard_size=max(256, n // 8))["train"]
teacher = save_weights(create(a.teacher_model).model, tmp / "teacher.safetensors")
common = dict(data=spec, model=a.model, batch_size=a.batch_size, steps=a.steps, warmup=2, num_workers=a.num_workers,
              ckpt_every=0, tensorboard=False)

end_times = []  # the whole episode end, as the trainer runs it
_end = optima.ModuleDistill._end_episode
def timed_end(self, t):
    t0 = time.perf_counter(); _end(self, t); end_times.append(time.perf_counter() - t0)
optima.ModuleDistill._end_episode = timed_end

med = lambda xs: statistics.median(xs)
train({**common, "out_dir": str(tmp / "iid")})
iid = med([r["step_time"] for r in load_records(tmp / "iid")[a.skip:]])
train({**common, "out_dir": str(tmp / "optima"), "method": "optima", "teacher": str(teacher),
       "teacher_model": a.teacher_model, "module_episode": a.episode})
recs = load_records(tmp / "optima")
step = med([r["step_time"] for r in recs[a.skip:]])
brecs = load_bandit_records(tmp / "optima")
rewards, n_arms = [(x["arm"], x["reward"]) for x in brecs], len(brecs[0]["arms"])
probe = json.loads((tmp / "optima" / "config.json").read_text())["config"]["module_probe_size"]

def decisions(policy):
    "Time each decision of the run replayed: update with the episode's reward, then posterior, P(best), select."
    ts = []
    for arm, r in rewards:
        t0 = time.perf_counter()
        policy.update(arm, r); policy.posterior(); policy.p_best(); policy.select()
        ts.append(time.perf_counter() - t0)
    return ts
bandit = []
for i in range(max(1, a.repeats // max(1, len(rewards)))):
    policy = optima.make_policy("optima", n_arms, seed=i)
    policy.select()  # the first decision, made before the first episode
    bandit += decisions(policy)
b = med(bandit)

print(f"model {a.model}, teacher {a.teacher_model}, batch {a.batch_size}, K = {a.episode} steps per episode, "
      f"{len(rewards)} bandit decisions in {a.steps} steps")
print(f"training step: IID {iid * 1000:.0f} ms, OPTIMA {step * 1000:.0f} ms "
      f"(module distillation: hooks + teacher forward + projections + loss = {100 * (step / iid - 1):.0f}% more)")
print(f"bandit update + posterior + P(best) + select: {b * 1e6:.0f} µs per decision = {100 * b / step:.3f}% of an OPTIMA step, "
      f"{100 * b / step / a.episode:.4f}% amortised over K steps  (target < 1%)")
if end_times:
    e = med(end_times)
    print(f"whole episode end (probe forward on {probe} examples + bandit + record): "
          f"{e * 1000:.1f} ms = {100 * e / step:.1f}% of a step, {100 * e / step / a.episode:.2f}% amortised over K steps")

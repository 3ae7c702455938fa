"Dashboards without a browser: the view models on a hand-written run directory, replay, HTML snapshots, papermill."
import json, os, re, subprocess, sys
from pathlib import Path
import numpy as np
import pytest
from aced_lab import dashboards as D, views as V
from aced_lab.synthetic import default_data, read_samples

ROOT = Path(__file__).parent.parent
BIN = Path(sys.executable).parent

@pytest.fixture(scope="module")
def run(tmp_path_factory):
    "A run directory written by hand in the trainer's format: config.json, metrics.jsonl, selection/*.npz, bandit.jsonl."
    d = tmp_path_factory.mktemp("dash") / "run"
    man = default_data("shapes", root=d.parent / "data", n_train=64, n_eval=16, shard_size=32, mismatch_frac=0.5)
    samples = [s for shard in ("train-000000", "train-000001") for s in read_samples(d.parent / "data" / f"{shard}.tar")]
    ids = np.array([f"train-{i // 32:06d}/{s['key']}" for i, s in enumerate(samples)])
    kinds = np.array([s["meta"]["corruption"] for s in samples])
    rng = np.random.default_rng(0)
    (d / "selection").mkdir(parents=True)
    for step in (10, 20, 30):
        pick = rng.choice(64, 40, replace=False)
        ll, rl = rng.uniform(1, 5, 40), np.where(kinds[pick] == "mismatch", 6.0, 1.0) + rng.uniform(0, 1, 40)
        sel = np.zeros(40, bool); sel[np.argsort(-(ll - rl))[:8]] = True
        np.savez_compressed(d / "selection" / f"step-{step:07d}.npz", step=step, id=ids[pick], learner_loss=ll, ref_loss=rl,
                            score=ll - rl, selected=sel, corruption=kinds[pick])
    (d / "metrics.jsonl").write_text("".join(json.dumps({"step": s, "loss": 1.0, "trained_corrupt_frac": 0.1}) + "\n" for s in range(1, 31)))
    (d / "config.json").write_text(json.dumps({"config": {"steps": 30}, "data": {"train": man["train"]}}))
    arms = ["image[0:2]", "text[0:2]", "heads"]
    lines = []
    for k, step in enumerate((10, 20, 30)):
        lines.append({"step": step, "episode": k, "policy": "optima", "arm": k, "arm_name": arms[k], "reward": 0.1 * k,
                      "module": [{"name": arms[k], "tower": arms[k].split("[")[0], "blocks": [0, 1] if k < 2 else [],
                                  "teacher_blocks": [0, 2] if k < 2 else []}],
                      "arms": arms, "mean": [0.1, 0.2, 0.3], "std": [0.5, 0.6, 0.7], "pulls": [1, int(k >= 1), int(k >= 2)],
                      "p_best": [0.2, 0.3, 0.5], "next_arm": (k + 1) % 3})
    (d / "bandit.jsonl").write_text("".join(json.dumps(l) + "\n" for l in lines))
    return d

def test_view_models_on_run_files(run):
    recs = V.load_selection(run)
    assert [r["step"] for r in recs] == [10, 20, 30] and all(len(r["id"]) == 40 for r in recs)
    h = V.score_histogram(recs[0], bins=10)
    assert h["selected"].sum() == 8 and h["selected"].sum() + h["rejected"].sum() == 40
    assert V.score_histogram(recs[0], bins=10, kind="mismatch")["rejected"].sum() == (recs[0]["corruption"] == "mismatch").sum()
    ot = V.selection_over_time(recs)
    assert ot["score_q"].shape == (5, 3) and (np.diff(ot["score_q"], axis=0) >= 0).all()  # quantiles are ordered
    np.testing.assert_allclose(ot["corrupt_pool"], [(r["corruption"] != "clean").mean() for r in recs])
    e = V.extremes(recs[1], 5)
    assert (recs[1]["score"][e["top"]] >= recs[1]["score"][e["bottom"]].max()).all()
    with pytest.raises(ValueError, match="unknown corruption kind 'bogus'"): V.kind_mask(recs[0], "bogus")
    b = V.load_bandit(run)
    bt = V.bandit_over_time(b)
    assert bt["pulls"].tolist() == [[1, 0, 0], [1, 1, 0], [1, 1, 1]] and bt["p_best"].shape == (3, 3)
    pc = V.posterior_curves(b[-1])
    assert pc["density"].shape == (3, 200) and np.allclose(pc["density"].sum(1) * np.diff(pc["x"])[0], 1, atol=1e-3)
    assert [m["teacher_blocks"] for m in V.arm_modules(b)] == [[0, 2], [0, 2], []]

def test_replay_and_snapshot(run, tmp_path):
    sd = D.SelectionDashboard.from_run(run)
    assert sd.index == 2 and "step 30 / 30" in sd.status.value
    assert sum(len(t.x) for t in sd.tr.group("scatter/")) == 40 and list(sd.tr["time/corrupt/trained"].x) == list(range(1, 31))
    caps = [t for tr in sd.tr.group("scatter/") for t in (tr.hovertext or ())]
    assert len(caps) == 40 and all(re.match(r"\w", c) for c in caps)  # hover texts start with the caption
    assert sd.gallery.value.count("<img") == 2 * sd.cfg.top_k
    sd.slider.value = 0; assert "step <b>10</b>" in sd.step_label.value
    sd.filter.value = "mismatch"
    assert {tr.name.split(" · ")[0] for tr in sd.tr.group("scatter/") if len(tr.x)} == {"mismatch"}
    page = sd.save_html(tmp_path / "s.html").read_text()
    assert page.count("Plotly.newPlot") == 1  # one figure holds every plot
    assert not re.search(r"<script[^>]+src=", page)  # self-contained: no script is fetched
    bd = D.BanditDashboard.from_run(run)
    assert len(bd.tr.group("posterior/")) == 3 and "pulled <b>heads</b>" in bd.step_label.value
    out = bd.save_html(); assert out == run / "dashboards" / "bandit.html" and out.stat().st_size > 1e6

def test_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="has no selection records"): D.SelectionDashboard.from_run(tmp_path)
    with pytest.raises(FileNotFoundError, match="has no bandit records"): D.BanditDashboard.from_run(tmp_path)
    with pytest.raises(FileNotFoundError, match="run directory not found"): V.load_selection(tmp_path / "missing")
    with pytest.raises(ValueError, match="save_html needs a path"): D.BanditDashboard().save_html()

def test_explore_under_papermill(tmp_path):
    "Headless (no frontend): the explore notebook runs under papermill and leaves HTML snapshots next to its runs."
    out = tmp_path / "explore"
    res = subprocess.run([str(BIN / "papermill"), str(ROOT / "nbs/explore.ipynb"), str(tmp_path / "out.ipynb"), "--cwd",
                          str(ROOT / "nbs"), "-p", "tiny", "True", "-p", "out_root", str(out)],
                         capture_output=True, text=True, timeout=600, env={**os.environ, "IN_TEST": ""})
    assert res.returncode == 0, res.stderr[-4000:]
    assert sorted(p.relative_to(out).as_posix() for p in out.glob("*/dashboards/*.html")) == [
        "aced/dashboards/selection.html", "optima/dashboards/bandit.html"]

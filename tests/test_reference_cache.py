"The reference store serves a sample's embeddings only for that sample's content (never another dataset's, never a rewritten shard's); samples without a good row run the live reference, counted."
import shutil, warnings
from pathlib import Path
import numpy as np
import pytest
from aced_lab.models import create, save_weights
from aced_lab.records import load_records
from aced_lab.trainer import train
from shard_helpers import rewrite_images

SMALL = dict(n_train=256, n_eval=64, shard_size=64, eval_max_samples=64, batch_size=16, filter_ratio=0.5, n_chunks=4,
             steps=3, warmup=1, num_workers=0, ckpt_every=0, tensorboard=False, selection_every=0, method="acid",
             data="shapes", reference_model="ACED-Tiny-64", threads=1)  # shapes: two datasets that differ in every sample


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    "A random-init reference, one shared store folder, and two shapes datasets that differ only in their corruption rate."
    d = tmp_path_factory.mktemp("refcache")
    ref = save_weights(create("ACED-Tiny-64").model, d / "ref.safetensors")
    return {"dir": d, "base": {**SMALL, "reference": str(ref), "reference_cache": str(d / "store")}}


def run(env, name, **kw):
    "Train a short ACID run; return its per-step records and the warnings it raised."
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        train({**env["base"], "out_dir": str(env["dir"] / name), **kw})
    return load_records(env["dir"] / name), [str(x.message) for x in w]


def losses(recs): return [r["loss"] for r in recs]


def test_two_datasets_one_store_never_share_embeddings(env):
    a = dict(data_root=str(env["dir"] / "a"), mismatch_frac=0.3)
    b = dict(data_root=str(env["dir"] / "b"), mismatch_frac=0.5)  # another dataset under the same shard and key names
    ra, _ = run(env, "a1", **a)
    assert [r["ref_cache_hit"] for r in ra] == [1, 1, 1] and ra[0]["gflops_ref_cache"] > 0  # filled before step 1, charged to it
    rb, w = run(env, "b-nofill", **b, reference_cache_fill=False)  # the store holds a's rows under b's shard names and keys
    assert [r["ref_cache_hit"] for r in rb] == [0, 0, 0], "dataset b was scored with dataset a's reference embeddings"
    # the pairs b shares with a (same seed, same clean pairs) are served; each other one is counted ...
    assert all(0 < r["ref_cache_stale"] < 32 and r["ref_cache_missing"] == 0 for r in rb)
    assert sum("hold other content" in m for m in w) == 1  # ... and warned about, once
    rb_live, _ = run(env, "b-live", **b, reference_cache=None)
    assert losses(rb) == pytest.approx(losses(rb_live), abs=1e-4)  # what the live reference gives
    rb2, _ = run(env, "b-fill", **b)  # filling finds b's shards changed since a's rows were stored, and recomputes them
    assert [r["ref_cache_hit"] for r in rb2] == [1, 1, 1] and rb2[0]["gflops_ref_cache"] > 0
    assert losses(rb2) == pytest.approx(losses(rb_live), abs=1e-4)


def test_a_copied_dataset_brings_its_store(env):
    "reference_cache='auto' keeps the store beside the shards: a copy of the folder (times kept) needs no recomputing."
    a = env["dir"] / "auto-a"
    r1, _ = run(env, "auto1", data_root=str(a), reference_cache="auto")
    assert list(a.glob("reference/*/train-000000.npy")) and r1[0]["gflops_ref_cache"] > 0
    copy = shutil.copytree(a, env["dir"] / "auto-copy")  # copy2: modification times kept
    r2, _ = run(env, "auto2", data_root=str(copy), reference_cache="auto")
    assert [r["ref_cache_hit"] for r in r2] == [1, 1, 1] and "gflops_ref_cache" not in r2[0]
    assert losses(r2) == pytest.approx(losses(r1), abs=1e-6)


def test_missing_rows_and_a_rewritten_shard_run_live(env):
    "A shard whose rows were lost and a shard rewritten in place: those samples run the live reference, counted; filling recomputes both."
    from aced_lab.models import create, pair_gflops
    kw = dict(data_root=str(env["dir"] / "c"), mismatch_frac=0.3, reference_cache=str(env["dir"] / "store-c"))
    run(env, "c1", **kw)  # fills the store for these shards
    rows = sorted((env["dir"] / "store-c").glob("*/train-*.npy"))
    assert len(rows) == 4
    rows[2].unlink()                                                 # train-000002's rows lost
    rewrite_images(next(Path(kw["data_root"]).glob("train-000001.tar")))  # train-000001 re-rendered in place
    again, w = run(env, "c2", **kw, reference_cache_fill=False)
    assert sum(r["ref_cache_stale"] for r in again) > 0 and sum(r["ref_cache_missing"] for r in again) > 0
    g = pair_gflops(create("ACED-Tiny-64").model)
    for r in again:  # the reference ran on exactly the samples without a good stored row
        n = r["ref_cache_stale"] + r["ref_cache_missing"]
        assert r.get("gflops_ref_score", 0) == pytest.approx(g * n) and r["ref_cache_hit"] == (n == 0)
    assert sum("hold other content" in m for m in w) == 1 and sum("have no stored embeddings" in m for m in w) == 1
    live, _ = run(env, "c-live", **{**kw, "reference_cache": None})
    assert losses(again) == pytest.approx(losses(live), abs=1e-4)
    filled, _ = run(env, "c3", **kw)  # filling recomputes exactly the two shards: 2 x 64 samples
    assert filled[0]["gflops_ref_cache"] == pytest.approx(g * 128) and all(r["ref_cache_hit"] for r in filled)


def test_a_blind_reference_is_caught(env):
    "A reference that cannot tell this data's pairs apart (random init) is measured every step and warned about once."
    from aced_lab.reference_health import BLIND_WINDOW
    recs, w = run(env, "blind", data_root=str(env["dir"] / "a"), mismatch_frac=0.3, steps=BLIND_WINDOW + 1, reference_cache=None)
    B = 2 * SMALL["batch_size"]  # filter_ratio 0.5
    assert all(0 <= r["ref_top1"] <= 1 and r["ref_median_loss"] > 0 for r in recs)
    assert sum(r["ref_top1"] for r in recs) / len(recs) < 3 / B
    blind = [m for m in w if "cannot tell the pairs of this data apart" in m]
    assert len(blind) == 1 and f"chance {1 / B:.3f}" in blind[0] and "aced-lab teacher" in blind[0]


def test_offline_filtering_with_a_warm_cache_costs_one_training_step(env):
    "A score that reads only the reference (easy_reference) runs no learner forward; with a warm cache, no reference one either."
    from aced_lab.acid import reselect
    from aced_lab.dashboards import SelectionDashboard
    kw = dict(data_root=str(env["dir"] / "a"), mismatch_frac=0.3, score="easy_reference", selection="topk", selection_every=1)
    run(env, "easy1", **kw)  # fills the cache (or finds it warm)
    recs, _ = run(env, "easy2", **kw)
    assert [r["ref_cache_hit"] for r in recs] == [1, 1, 1]
    assert [r["gflops_total"] for r in recs] == pytest.approx(np.cumsum([r["gflops_train"] for r in recs]))
    assert not any("gflops_learner_score" in r or "gflops_ref_score" in r for r in recs)
    dash = SelectionDashboard.from_run(env["dir"] / "easy2")  # the records hold no learner losses, and still replay
    assert np.isnan(dash.records[0]["learner_loss"]).all() and dash.records[0]["selected"].sum() == SMALL["batch_size"]
    assert (dash.whatif(0)["selected"] == dash.records[0]["selected"]).all()
    with pytest.raises(ValueError, match="needs the learner"): dash.whatif(0, score="learnability")


def test_reference_embedded_resolves_to_the_cached_teacher(tmp_path, monkeypatch):
    "`reference='embedded'` trains aced_lab's teacher once (here a tiny one), caches it, and runs with its weights and architecture."
    import json
    from aced_lab import teacher
    from aced_lab.core import tiny_config
    monkeypatch.setenv("ACED_LAB_CACHE", str(tmp_path / "cache"))
    tiny = {k: v for k, v in tiny_config(tmp_path).items() if k != "data_root"}
    monkeypatch.setattr(teacher, "TEACHER_DEFAULTS", {**teacher.TEACHER_DEFAULTS, "scenes": {**teacher.TEACHER_DEFAULTS["scenes"], **tiny, "model": "ACED-Tiny-64", "steps": 4}})
    monkeypatch.setattr(teacher, "TEACHER_IMAGE_PRETRAIN", {"scenes": {**teacher.TEACHER_IMAGE_PRETRAIN["scenes"], "steps": 4, "batch_size": 16}})
    cfg = {**tiny, "method": "aced", "reference": "embedded", "steps": 2, "data_root": str(tmp_path / "data"), "reference_cache": None}
    for run in ("r1", "r2"):
        train({**cfg, "out_dir": str(tmp_path / run)})
        c = json.loads((tmp_path / run / "config.json").read_text())["config"]
        assert Path(c["reference"]).parent.parent == tmp_path / "cache" / "teachers" and c["reference_model"] == "ACED-Tiny-64"
    assert len(list((tmp_path / "cache" / "teachers").glob("*/teacher.safetensors"))) == 1  # trained once, then reused

"The reference cache serves a sample's embeddings only for that sample's content: never another dataset's, never a rewritten shard's."
import io, shutil, tarfile, warnings
from pathlib import Path
import numpy as np
import pytest
from PIL import Image
from aced_lab.models import create, save_weights
from aced_lab.records import load_records
from aced_lab.trainer import train

SMALL = dict(n_train=256, n_eval=64, shard_size=64, eval_max_samples=64, batch_size=16, filter_ratio=0.5, n_chunks=4,
             steps=3, warmup=1, num_workers=0, ckpt_every=0, tensorboard=False, selection_every=0, method="acid",
             data="shapes", reference_model="ACED-Tiny-64", threads=1)  # shapes: two datasets that differ in every sample


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    "A random-init reference, one shared cache folder, and two shapes datasets that differ only in their corruption rate."
    d = tmp_path_factory.mktemp("refcache")
    ref = save_weights(create("ACED-Tiny-64").model, d / "ref.safetensors")
    return {"dir": d, "base": {**SMALL, "reference": str(ref), "reference_cache": str(d / "cache")}}


def run(env, name, **kw):
    "Train a short ACID run; return its per-step records and the warnings it raised."
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        train({**env["base"], "out_dir": str(env["dir"] / name), **kw})
    return load_records(env["dir"] / name), [str(x.message) for x in w]


def losses(recs): return [r["loss"] for r in recs]


def test_two_datasets_one_cache_never_share_embeddings(env):
    a = dict(data_root=str(env["dir"] / "a"), mismatch_frac=0.3)
    b = dict(data_root=str(env["dir"] / "b"), mismatch_frac=0.5)  # another dataset under the same shard and key names
    ra, _ = run(env, "a1", **a)
    assert [r["ref_cache_hit"] for r in ra] == [0, 0, 0]  # a cold cache
    rb, w = run(env, "b1", **b)
    assert [r["ref_cache_hit"] for r in rb] == [0, 0, 0], "dataset b was scored with dataset a's reference embeddings"
    assert all(r["ref_cache_stale"] > 0 for r in rb)  # ids the cache holds for a's content: counted ...
    assert sum("holds for other content" in m for m in w) == 1  # ... and warned about, once
    rb_live, _ = run(env, "b-live", **b, reference_cache=None)
    assert losses(rb) == pytest.approx(losses(rb_live), abs=1e-5)  # what the live reference gives
    for name, data in (("a2", a), ("a-copy", {**a, "data_root": str(shutil.copytree(a["data_root"], env["dir"] / "a-copy"))})):
        r2, w2 = run(env, name, **data)  # the same data read again, from where it was or from a copy: every step hits
        assert [r["ref_cache_hit"] for r in r2] == [1, 1, 1] and all(r["ref_cache_stale"] == 0 for r in r2)
        assert losses(r2) == pytest.approx(losses(ra), abs=1e-4) and not any("other content" in m for m in w2)


def rewrite_images(shard: Path):
    "Rewrite a shard in place with the same keys and captions and re-rendered (inverted) images."
    members = []
    with tarfile.open(shard) as tf:
        for m in tf:
            data = tf.extractfile(m).read()
            if m.name.endswith(".png"):
                img = 255 - np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
                b = io.BytesIO(); Image.fromarray(img).save(b, format="PNG"); data = b.getvalue()
            members.append((m.name, data))
    with tarfile.open(shard, "w") as tf:
        for name, data in members:
            ti = tarfile.TarInfo(name); ti.size = len(data); tf.addfile(ti, io.BytesIO(data))


def test_shard_rewritten_in_place_is_recomputed(env):
    root = env["dir"] / "c"
    run(env, "c1", data_root=str(root), mismatch_frac=0.3)  # fills the cache for these shards
    shards = sorted(Path(root).rglob("train-*.tar"))
    assert len(shards) == 4
    for s in shards: rewrite_images(s)
    again, w = run(env, "c2", data_root=str(root), mismatch_frac=0.3)
    assert [r["ref_cache_hit"] for r in again] == [0, 0, 0], "the rewritten shards were served their old embeddings"
    assert [r["ref_cache_stale"] for r in again] == [32, 32, 32]  # every id of every super-batch now holds other pixels
    assert sum("holds for other content" in m for m in w) == 1
    live, _ = run(env, "c-live", data_root=str(root), mismatch_frac=0.3, reference_cache=None)
    assert losses(again) == pytest.approx(losses(live), abs=1e-5)


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
    cfg = {**tiny, "method": "aced", "reference": "embedded", "steps": 2, "data_root": str(tmp_path / "data"), "reference_cache": None}
    for run in ("r1", "r2"):
        train({**cfg, "out_dir": str(tmp_path / run)})
        c = json.loads((tmp_path / run / "config.json").read_text())["config"]
        assert Path(c["reference"]).parent.parent == tmp_path / "cache" / "teachers" and c["reference_model"] == "ACED-Tiny-64"
    assert len(list((tmp_path / "cache" / "teachers").glob("*/teacher.safetensors"))) == 1  # trained once, then reused

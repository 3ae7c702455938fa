"Cheaper scoring views of a trained model agree with full scoring, and a run scoring through one charges its measured FLOPs."
import numpy as np
import pytest
import torch
from aced_lab.acid import score_super_batch, select
from aced_lab.core import tiny_config
from aced_lab.data import ImageTextLoader
from aced_lab.models import create, inference_flops, save_weights
from aced_lab.records import load_records
from aced_lab.scoring_views import score_agreement, view_forward, view_gflops
from aced_lab.synthetic import default_data
from aced_lab.teacher import embedded_teacher
from aced_lab.trainer import train


def test_cheap_views_of_the_teacher_agree_with_full_scoring(tmp_path):
    "The shipped scenes teacher as the learner: its hardest pairs of a 35%-corrupted super-batch, full view vs cheaper ones."
    b = create("ACED-Tiny-64", embedded_teacher("scenes", build=False))
    m = b.model.eval()
    man = default_data("scenes", root=tmp_path / "data", progress=False, n_train=320, n_eval=32, shard_size=160)
    batch = next(ImageTextLoader(man["train"], b.preprocess, b.tokenizer, 160, shuffle=False).epoch(0))
    bad = np.array([x["corruption"] != "clean" for x in batch["meta"]])
    with torch.no_grad():
        full = score_super_batch(m(batch["image"], batch["text"]), None, "softmax", "hard_learner")["score"]  # (B,)
        pick = lambda s: select("topk", 32, s, None, None, 1.0, None, score="hard_learner")
        res = {}
        views = {"full": {}, "res 0.75": dict(resolution=0.75), "FLIP 0.75": dict(patch_keep=0.75),
                 "res 0.5": dict(resolution=0.5), "FLIP 0.5": dict(patch_keep=0.5)}
        for name, kw in views.items():
            s = score_super_batch(view_forward(m, batch["image"], batch["text"], seed=0, **kw), None, "softmax", "hard_learner")["score"]
            res[name] = score_agreement(full, s, pick(full), pick(s), bad)
    assert res["full"]["spearman"] == pytest.approx(1) and res["full"]["overlap"] == 1
    # measured with the shipped teacher (v4) on 2 x 160 pairs: spearman res 0.75 0.78 / 0.80, FLIP 0.75 0.95 / 0.94, FLIP 0.5 0.82 / 0.79
    for name in ("res 0.75", "FLIP 0.75", "FLIP 0.5"):
        r = res[name]
        assert r["spearman"] > 0.6 and r["overlap"] > 0.5, (name, r)
        assert r["corrupted_cheap"] > bad.mean() + 0.2, (name, r)  # it still finds the corrupted pairs hardest
    # half the resolution (objects 9-13 px, under two 8 px patches) loses this teacher's ranking: spearman 0.12 / 0.19
    assert res["res 0.5"]["spearman"] < res["FLIP 0.5"]["spearman"] - 0.3, res
    g = inference_flops(m)["image_gflops"]
    assert view_gflops(m, resolution=0.5) < 0.3 * g and view_gflops(m, patch_keep=0.5) < 0.6 * g


def test_a_run_scores_through_the_view_and_charges_its_flops(tmp_path):
    ref = save_weights(create("ACED-Tiny-64").model, tmp_path / "ref.safetensors")
    cfg = tiny_config(tmp_path, method="acid", reference=str(ref), reference_model="ACED-Tiny-64", reference_cache=None,
                      filter_ratio=0.5, n_chunks=4, steps=3)
    full, half = [], []
    for out, recs, kw in (("full", full, {}), ("half", half, dict(score_resolution=0.5, score_patch_keep=0.5))):
        train({**cfg, **kw, "out_dir": str(tmp_path / out)}); recs += load_records(tmp_path / out)
    m = create("ACED-Tiny-64").model
    f = inference_flops(m)
    B = 2 * cfg["batch_size"]
    assert full[0]["gflops_learner_score"] == pytest.approx((f["image_gflops"] + f["text_gflops"]) * B)
    assert half[0]["gflops_learner_score"] == pytest.approx((view_gflops(m, 0.5, 0.5) + f["text_gflops"]) * B)
    assert half[0]["gflops_learner_score"] < 0.7 * full[0]["gflops_learner_score"]

"Tests for aced_lab.synthetic: determinism, corruption kinds and fractions, caption_attrs, digits, prompts, caching."
import json, tarfile
from pathlib import Path
import numpy as np
import pytest
import webdataset as wds
from aced_lab.core import ConfigError
from aced_lab.synthetic import (ATTRIBUTES, CAPTION_TEMPLATES, CORRUPTIONS, COLOURS, DIGITS, ShapesConfig, make_shapes,
                                make_digits, default_data, zero_shot_prompts, render_shapes)
from shard_helpers import member_digest, all_samples

FRACS = dict(mismatch_frac=0.3, near_dup_frac=0.1, attr_swap_frac=0.1)
SMALL = dict(n_train=1500, n_eval=200, shard_size=500, progress=False, **FRACS)


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    return make_shapes(tmp_path_factory.mktemp("shapes"), num_workers=1, **SMALL)


def test_determinism_across_runs_and_workers(shapes, tmp_path):
    make_shapes(tmp_path / "b", num_workers=2, **SMALL)
    assert member_digest(shapes["root"]) == member_digest(tmp_path / "b")
    for p in sorted(Path(shapes["root"]).glob("*.tar")):  # whole files too (fixed mtime)
        assert p.read_bytes() == (tmp_path / "b" / p.name).read_bytes()
    make_shapes(tmp_path / "c", num_workers=1, **{**SMALL, "seed": 1})
    assert member_digest(tmp_path / "c") != member_digest(tmp_path / "b")


def test_files_and_manifest(shapes):
    root = Path(shapes["root"])
    assert sorted(p.name for p in root.glob("*.tar")) == ["eval-000000.tar", "train-000000.tar", "train-000001.tar", "train-000002.tar"]
    man = json.loads((root / "manifest.json").read_text())
    assert man == shapes and man["name"] == "shapes"
    assert man["train"] == f"{root}/train-{{000000..000002}}.tar" and man["eval"] == f"{root}/eval-{{000000..000000}}.tar"
    assert man["attributes"] == {k: list(v) for k, v in ATTRIBUTES.items()}
    with tarfile.open(root / "train-000000.tar") as tf: names = tf.getnames()
    assert names[:3] == ["train00000000.json", "train00000000.png", "train00000000.txt"] and len(names) == 1500
    first = next(iter(wds.WebDataset(man["train"], shardshuffle=False).decode("rgb8")))
    assert first["png"].shape == (32, 32, 3) and isinstance(first["txt"], str) and first["json"]["corruption"] in CORRUPTIONS


def test_corruption_kinds_and_fractions(shapes):
    train = all_samples(shapes, "train")
    counts = {k: sum(s["meta"]["corruption"] == k for s in train) for k in CORRUPTIONS}
    assert counts == shapes["corruption_counts"]
    assert len(train) == 1500 and len({s["key"] for s in train}) == 1500
    for k, f in (("mismatch", 0.3), ("near_duplicate", 0.1), ("attr_swap", 0.1)):
        assert abs(counts[k] / 1500 - f) < 0.01, (k, counts)
    assert {s["meta"]["corruption"] for s in all_samples(shapes, "eval")} == {"clean"}


def test_caption_attrs_consistency(shapes):
    train = all_samples(shapes, "train"); by_key = {s["key"]: s for s in train}
    for s in train:
        m = s["meta"]; truth = {k: m[k] for k in ATTRIBUTES}; ca = m["caption_attrs"]
        assert s["caption"] == CAPTION_TEMPLATES[m["template"]].format(**ca)
        ndiff = sum(truth[k] != ca[k] for k in ATTRIBUTES)
        kind = m["corruption"]
        if kind in ("clean", "near_duplicate"): assert ndiff == 0
        elif kind == "attr_swap": assert ndiff == 1
        elif kind == "mismatch": assert ndiff >= 1
        if kind in ("mismatch", "near_duplicate"):
            src = by_key[m["source"]]
            assert src["key"][:5] == "train" and src["key"] != s["key"]
            src_truth = {k: src["meta"][k] for k in ATTRIBUTES}
            assert (ca if kind == "mismatch" else truth) == src_truth
        if kind == "near_duplicate":
            d = np.abs(s["image"].astype(float) - src["image"]).mean()
            assert 0 < d < 8 and s["caption"] == src["caption"]
        if kind in ("clean", "attr_swap"): assert m["source"] is None


def test_pixels_match_ground_truth():
    combos = np.array(np.meshgrid(*[range(len(v)) for v in ATTRIBUTES.values()], indexing="ij")).reshape(4, -1).T
    imgs = render_shapes(combos, 32, np.random.default_rng(5))
    table = np.array(list(COLOURS.values()), float)
    for a, img in zip(combos, imgs):
        x = img.astype(float); dist = np.abs(x - np.median(x.reshape(-1, 3), 0)).sum(-1); core = dist > 0.7 * dist.max()
        assert list(COLOURS)[np.argmin(((table - x[core].mean(0)) ** 2).sum(1))] == ATTRIBUTES["colour"][a[1]]
        ys, xs = np.nonzero(core); pos = ATTRIBUTES["position"][a[2]]
        if pos != "centre": assert (xs.mean() < 15.5) == ("left" in pos) and (ys.mean() < 15.5) == ("top" in pos)


def test_reuse_and_regenerate(shapes, tmp_path):
    root = Path(shapes["root"]); stamp = (root / "train-000000.tar").stat().st_mtime_ns
    assert make_shapes(root, **SMALL) == shapes
    assert (root / "train-000000.tar").stat().st_mtime_ns == stamp  # not regenerated
    other = make_shapes(tmp_path / "x", n_train=10, n_eval=5, progress=False)
    again = make_shapes(tmp_path / "x", n_train=20, n_eval=5, shard_size=8, progress=False)
    assert other["n_train"] == 10 and again["n_train"] == 20
    assert sorted(p.name for p in (tmp_path / "x").glob("*.tar")) == ["eval-000000.tar", "train-000000.tar", "train-000001.tar", "train-000002.tar"]


def test_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="Did you mean 'near_dup_frac'"): make_shapes(tmp_path, near_dupe_frac=0.1)
    with pytest.raises(ConfigError, match="sum to more than 1"): ShapesConfig(mismatch_frac=0.7, near_dup_frac=0.4)
    assert not (tmp_path / "manifest.json").exists()


def test_digits(tmp_path):
    man = make_digits(tmp_path / "d", image_size=24, progress=False)
    assert (man["n_train"], man["n_eval"]) == (1438, 359) and man["attributes"] == {"digit": list(DIGITS)}
    samples = list(wds.WebDataset(man["train"], shardshuffle=False).decode("rgb8"))
    assert len(samples) == 1438
    for s in samples[:200]:
        m = s["json"]
        assert s["png"].shape == (24, 24, 3) and DIGITS[m["label"]] == m["digit"] and m["digit"] in s["txt"]
        assert m["corruption"] == "clean" and m["caption_attrs"] == {"digit": m["digit"]}
    ev = {s["meta"]["sklearn_index"] for s in all_samples(man, "eval")}
    assert len(ev) == 359 and not ev & {s["json"]["sklearn_index"] for s in samples}
    man2 = make_digits(tmp_path / "d2", image_size=24, progress=False)
    assert member_digest(tmp_path / "d") == member_digest(tmp_path / "d2")


def test_zero_shot_prompts(shapes):
    names, templates = zero_shot_prompts(shapes, "colour")
    assert names == list(ATTRIBUTES["colour"]) and len(templates) == 64 == len(set(templates))
    for t in templates:
        assert t.count("{}") == 1 and not set(names) & set(t.replace(",", " ").split())  # the class is left open
    assert zero_shot_prompts(shapes, "colour") == (names, templates)
    assert len(zero_shot_prompts(shapes, "shape", max_templates=5)[1]) == 5
    with pytest.raises(ConfigError): zero_shot_prompts(shapes, "count")


def test_default_data(tmp_path, monkeypatch):
    monkeypatch.setenv("ACED_LAB_CACHE", str(tmp_path / "cache"))
    m = default_data("shapes", n_train=50, n_eval=10, progress=False)
    assert Path(m["root"]).parent == tmp_path / "cache" / "data" and Path(m["root"]).name.startswith("shapes-")
    assert default_data("shapes", n_train=50, n_eval=10, progress=False)["root"] == m["root"]
    assert default_data("shapes", root=tmp_path / "own", n_train=50, n_eval=10, progress=False)["root"] == str(tmp_path / "own")
    with pytest.raises(ConfigError): default_data("mnist")

"Tests for aced_lab.scenes: determinism, what each corruption kind really is, rates, pixels, captions, loader, prompts."
import re, tarfile
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from aced_lab.core import ConfigError
from aced_lab.scene_parts import (BACKGROUNDS, CAPTION_TEMPLATES, COLOURS, GRID, MAX_WORDS, RELATIONS, SCENE_ATTRIBUTES,
                                  SCENE_CORRUPTIONS, SHAPES, SIZES, caption_holds, relation_holds, render_caption, scene_masks)
from aced_lab.scenes import ScenesConfig, make_scenes, scene_prompts
from shard_helpers import member_digest, all_samples

SMALL = dict(n_train=3000, n_eval=200, shard_size=1000, progress=False)
ATTRS = tuple(SCENE_ATTRIBUTES)


@pytest.fixture(scope="module")
def scenes(tmp_path_factory):
    return make_scenes(tmp_path_factory.mktemp("scenes"), num_workers=1, **SMALL)


@pytest.fixture(scope="module")
def train(scenes):
    return all_samples(scenes, "train")


def test_determinism(scenes, tmp_path):
    make_scenes(tmp_path / "b", num_workers=2, **SMALL)  # other processes, other order: the same bytes
    for p in sorted(Path(scenes["root"]).glob("*.tar")):
        assert p.read_bytes() == (tmp_path / "b" / p.name).read_bytes(), p.name
    make_scenes(tmp_path / "c", num_workers=1, **{**SMALL, "seed": 1})
    assert member_digest(tmp_path / "c") != member_digest(tmp_path / "b")


def test_files_and_manifest(scenes):
    root = Path(scenes["root"])
    assert sorted(p.name for p in root.glob("*.tar")) == ["eval-000000.tar", "train-000000.tar", "train-000001.tar", "train-000002.tar"]
    assert scenes["name"] == "scenes" and scenes["train"] == f"{root}/train-{{000000..000002}}.tar"
    assert scenes["attributes"] == {k: list(v) for k, v in SCENE_ATTRIBUTES.items()}
    assert list(scenes["corruption_counts"]) == list(SCENE_CORRUPTIONS) and SCENE_CORRUPTIONS[0] == "clean"
    with tarfile.open(root / "train-000000.tar") as tf: names = tf.getnames()
    assert names[:3] == ["train00000000.json", "train00000000.png", "train00000000.txt"] and len(names) == 3000


def test_rates(scenes, train):
    cfg = ScenesConfig(**{k: v for k, v in SMALL.items() if k != "progress"})
    counts = Counter(s["meta"]["corruption"] for s in train)
    assert dict(counts) == {k: v for k, v in scenes["corruption_counts"].items() if v}
    for k, rate in cfg.rates.items():
        assert abs(counts[k] / len(train) - rate) < 0.005, (k, counts[k])
    assert abs(counts["clean"] / len(train) - (1 - sum(cfg.rates.values()))) < 0.01
    assert {s["meta"]["corruption"] for s in all_samples(scenes, "eval")} == {"clean"}


def n_diffs(spec, objects):
    "How many (described object, attribute) pairs of a caption differ from the object they were made from."
    return sum(d[a] != objects[d["ref"]][a] for d in spec["objects"] for a in ATTRS if a in d)


def test_each_corruption_is_what_it_says(train):
    by_key = {s["key"]: s for s in train}
    seen = Counter()
    for s in train:
        m = s["meta"]; kind, spec, objs = m["corruption"], m["caption_spec"], m["objects"]
        seen[kind] += 1
        assert s["caption"] == render_caption(spec) and m["n_objects"] == len(objs)
        src = by_key[m["source"]] if m["source"] else None
        assert (src is not None) == (kind in ("mismatch", "near_duplicate")), s
        if kind == "clean":
            assert caption_holds(spec, objs) and s["caption"] == m["clean_caption"] and spec["family"] != "uninformative"
            if spec["family"] != "count": assert n_diffs(spec, objs) == 0
        elif kind == "mismatch":  # another (clean) sample's caption, false here, true there
            assert src["meta"]["corruption"] == "clean" and src["key"] != s["key"] and s["caption"] == src["caption"]
            assert not caption_holds(spec, objs) and caption_holds(spec, src["meta"]["objects"])
        elif kind == "attr_swap":  # exactly one attribute of one described object differs from the truth
            assert n_diffs(spec, objs) == 1 and not caption_holds(spec, objs)
        elif kind == "relation_flip":  # the relation contradicts the rendered positions of the two objects it names
            a, b = (objs[d["ref"]] for d in spec["objects"])
            assert spec["family"] == "relation" and n_diffs(spec, objs) == 0
            assert not relation_holds(spec["relation"], a, b) and relation_holds(RELATIONS[spec["relation"]], a, b)
            assert not caption_holds(spec, objs)
            unflipped = render_caption({**spec, "relation": RELATIONS[spec["relation"]]})  # the clean caption, unless
            assert unflipped == m["clean_caption"] or all(set(ATTRS[:3]) <= set(d) for d in spec["objects"])  # made exact
        elif kind == "wrong_count":  # the number is not the number of objects that fit the description
            d = spec["objects"][0]; true_n = sum(all(o[a] == d[a] for a in d) for o in objs)
            assert spec["family"] == "count" and spec["count"] != true_n and true_n >= 2
            assert m["clean_caption"].replace("three", "two") == s["caption"].replace("three", "two")
        elif kind == "uninformative":
            values = {w for vs in SCENE_ATTRIBUTES.values() for v in vs for w in v.split()}
            assert spec["family"] == "uninformative" and not set(s["caption"].split()) & values and objs
        elif kind == "junk_image":  # blank or noise pixels, no objects, a normal caption
            assert objs == [] and m["background"] in ("blank", "noise") and s["caption"] == m["clean_caption"]
            assert spec["family"] != "uninformative" and not caption_holds(spec, objs)
            x = s["image"].astype(float)
            if m["background"] == "blank": assert x.std((0, 1)).max() < 4
            else: assert x.std() > 60 and abs(np.corrcoef(x[:, :-1].ravel(), x[:, 1:].ravel())[0, 1]) < 0.1
        elif kind == "near_duplicate":  # the same caption and objects as a clean sample, the image jittered
            assert src["meta"]["corruption"] == "clean" and s["caption"] == src["caption"] and objs == src["meta"]["objects"]
            diff = np.abs(s["image"].astype(float) - src["image"]).mean(); assert 0 < diff < 12, diff
            assert caption_holds(spec, objs)
        if kind != "junk_image": assert m["background"] in BACKGROUNDS and 1 <= len(objs) <= 3
    assert set(seen) == set(SCENE_CORRUPTIONS)


def test_captions(train):
    caps = [s["caption"] for s in train]
    assert max(len(c.split()) for c in caps) <= MAX_WORDS
    assert not [c for c in caps if re.search(r"\ba [aeiou]", c)]  # "an orange ...", never "a orange ..."
    fams = Counter(s["meta"]["caption_spec"]["family"] for s in train if s["meta"]["corruption"] == "clean")
    assert set(fams) == {"full", "partial", "relation", "count"} and min(fams.values()) > 100, fams
    assert len(set(caps)) > 0.6 * len(caps)
    # every caption fits the models' 32-token context (open_clip's tokenizer adds start and end tokens)
    import open_clip
    tok = open_clip.SimpleTokenizer()
    assert max(len(tok.encode(c)) for c in set(caps)) + 2 <= 32


def test_pixels_match_ground_truth(train):
    S = 64; mk = scene_masks(S); D = mk.shape[-1]; c = D // 2
    table = np.array(list(COLOURS.values()), float)
    for s in train[:400]:
        if s["meta"]["corruption"] == "junk_image": continue
        pad = np.pad(s["image"].astype(float), ((D, D), (D, D), (0, 0)))
        for o in s["meta"]["objects"]:
            ix, iy = int(o["x"] * S), int(o["y"] * S)
            patch = pad[iy - c + D:iy + c + 1 + D, ix - c + D:ix + c + 1 + D]
            core = patch[c - 1:c + 2, c - 1:c + 2].reshape(-1, 3).mean(0)
            assert list(COLOURS)[np.argmin(((table - core) ** 2).sum(1))] == o["colour"]
            fg = np.abs(patch - core).sum(-1) < 60; j = list(SIZES).index(o["size"])
            iou = [(fg & (mk[i, j] > 0.5)).sum() / (fg | (mk[i, j] > 0.5)).sum() for i in range(len(SHAPES))]
            assert SHAPES[int(np.argmax(iou))] == o["shape"], (s["key"], o)
            k = SCENE_ATTRIBUTES["position"].index(o["position"])
            assert (int(o["x"] * GRID), int(o["y"] * GRID)) == (k % GRID, k // GRID)


def test_loader_reads_shards(scenes):
    import open_clip, torch
    from aced_lab.data import ImageTextLoader
    pre, tok = open_clip.image_transform(64, is_train=False), open_clip.SimpleTokenizer(context_length=32)
    dl = ImageTextLoader(scenes["train"], pre, tok, batch_size=100, num_workers=2, drop_last=False)
    assert dl.n_samples == 3000  # from the manifest
    ids, kinds = [], Counter()
    for b in dl.epoch(0):
        assert b["image"].shape[1:] == (3, 64, 64) and b["text"].shape[1] == 32 and b["text"].dtype == torch.long
        ids += b["id"]; kinds.update(m["corruption"] for m in b["meta"])
    assert len(ids) == len(set(ids)) == 3000 and dl.skipped == Counter()
    assert dict(kinds) == {k: v for k, v in scenes["corruption_counts"].items() if v}


def test_reuse_and_config_errors(scenes, tmp_path):
    root = Path(scenes["root"]); stamp = (root / "train-000000.tar").stat().st_mtime_ns
    assert make_scenes(root, **SMALL) == scenes and (root / "train-000000.tar").stat().st_mtime_ns == stamp
    with pytest.raises(ConfigError, match="Did you mean 'relation_flip_frac'"): make_scenes(tmp_path, relation_flips_frac=0.1)
    with pytest.raises(ConfigError, match="sum to more than 1"): ScenesConfig(mismatch_frac=0.9, junk_image_frac=0.2)
    with pytest.raises(ConfigError, match="object_counts"): ScenesConfig(object_counts=(0.2, 0.2, 0.2, 0.4))
    assert not (tmp_path / "manifest.json").exists()


def test_scene_prompts():
    for a in SCENE_ATTRIBUTES:
        names, templates = scene_prompts(a)
        assert names == list(SCENE_ATTRIBUTES[a]) and 2 <= len(templates) == len(set(templates)) <= 9
        for t in templates:  # one object, named by the classified attribute alone
            assert t.count("{}") == 1 and len(t.format(names[0]).split()) <= MAX_WORDS
            assert not re.search(r"\ba [aeiou]", " ".join(t.format(n) for n in names))
            assert not any(v in t for b in SCENE_ATTRIBUTES if b != a for v in SCENE_ATTRIBUTES[b]), t
    assert scene_prompts("count") == (["two", "three"], [t.format(n="{}", things="shapes") for t in CAPTION_TEMPLATES["count"]])
    assert len(scene_prompts("size", max_templates=3)[1]) == 3
    with pytest.raises(ConfigError): scene_prompts("relation")

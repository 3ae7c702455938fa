"Tests of aced_lab.data on real shard and CSV files: bad data, stable ids, resume, CSV, DDP splitting."
import io, json, os, warnings
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import webdataset as wds
from PIL import Image
import open_clip

from aced_lab.data import (ImageTextLoader, SkippedSamplesWarning, collate, count_samples, decode_sample,
                           expand_urls, fast_preprocess, shard_stem)

SIZE = 32
PRE = open_clip.image_transform(SIZE, is_train=False)
TOK = open_clip.SimpleTokenizer(context_length=32)


def png(rng, size=SIZE) -> bytes:
    b = io.BytesIO(); Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(b, format="PNG")
    return b.getvalue()


def write_shards(root, name, n_shards, per_shard, bad=()):
    "Shards root/name-%06d.tar with PNG + txt + json; `bad` maps sample index -> 'image' | 'caption'."
    rng = np.random.default_rng(len(name)); bad = dict(bad); os.makedirs(root, exist_ok=True)
    with wds.ShardWriter(f"{root}/{name}-%06d.tar", maxcount=per_shard, verbose=0) as w:
        for i in range(n_shards * per_shard):
            img, cap = png(rng), f"caption of sample {i}"
            if bad.get(i) == "image": img = b"\x89PNG\r\n\x1a\n this is not a png"
            if bad.get(i) == "caption": cap = " \n\t"
            w.write({"__key__": f"k{i:06d}", "png": img, "txt": cap, "json": {"i": i}})
    return f"{root}/{name}-{{000000..{n_shards - 1:06d}}}.tar"


def ids_of(name, n_shards, per_shard, skip=()):
    return {f"{name}-{i // per_shard:06d}/k{i:06d}" for i in range(n_shards * per_shard)} - set(skip)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    clean = write_shards(root / "clean", "clean", 4, 12)  # 48 good samples
    dirty = write_shards(root / "dirty", "dirty", 3, 10, bad={2: "image", 13: "caption", 27: "image"})
    return root, clean, dirty


def epoch_ids(loader, e=0):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SkippedSamplesWarning)
        return [i for b in loader.epoch(e) for i in b["id"]]


# --- specs and bad inputs ---------------------------------------------------------------------------

def test_expand_urls(data):
    root, clean, _ = data
    urls = expand_urls(clean)
    assert [Path(u).name for u in urls] == [f"clean-{i:06d}.tar" for i in range(4)]
    assert expand_urls(f"{urls[0]}::{urls[1]}") == urls[:2]
    assert expand_urls([urls[0], f"{root}/clean/clean-{{000001..000003}}.tar"]) == urls
    assert expand_urls(f"{root}/clean") == urls == expand_urls(f"{root}/clean/*.tar")
    assert expand_urls("pipe:curl -s https://h/s-{0..2}.tar")[2] == "pipe:curl -s https://h/s-2.tar"
    assert shard_stem("pipe:curl -s https://h/s-2.tar") == "s-2"


def test_missing_shard_names_path(data):
    root, _, _ = data
    spec = f"{root}/clean/clean-{{000000..000005}}.tar"  # 4 and 5 do not exist
    with pytest.raises(FileNotFoundError) as e:
        ImageTextLoader(spec, PRE, TOK, 4, num_workers=2)  # fails in the constructor, before any worker
    assert e.value.filename.endswith("clean-000004.tar") and "1 more" in str(e.value)


def test_missing_csv_names_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothere.csv"):
        ImageTextLoader(tmp_path / "nothere.csv", PRE, TOK, 4)


@pytest.mark.parametrize("spec", ["{root}/clean/nomatch-*.tar", "{root}/empty_dir", "", "::"])
def test_spec_matching_nothing(data, spec):
    root, _, _ = data
    (root / "empty_dir").mkdir(exist_ok=True)
    spec = spec.format(root=root)
    with pytest.raises(ValueError, match="matches no files") as e:
        ImageTextLoader(spec, PRE, TOK, 4)
    assert repr(spec) in str(e.value)


# --- samples, batches, bad data -----------------------------------------------------------------------

def test_batch_format(data):
    _, clean, _ = data
    dl = ImageTextLoader(clean, PRE, TOK, batch_size=8, num_workers=2)
    batches = list(dl.epoch(0))
    assert len(batches) == 48 // 8 and dl.dropped == 0
    b = batches[0]
    assert b["image"].shape == (8, 3, SIZE, SIZE) and b["image"].dtype == torch.float32
    assert b["text"].shape == (8, 32) and b["text"].dtype == torch.long
    assert set(b) == {"image", "text", "id", "digest", "caption", "meta"}
    assert len(set(b["digest"])) == 8 and all(len(d) == 32 for d in b["digest"])  # 128-bit content digests, one per sample
    i = int(b["id"][0].split("/k")[1])
    assert b["caption"][0] == f"caption of sample {i}" and b["meta"][0] == {"i": i}
    assert torch.equal(b["text"][0], TOK([b["caption"][0]])[0])


def test_bad_samples_skipped_counted_warned(data):
    _, _, dirty = data
    dl = ImageTextLoader(dirty, PRE, TOK, batch_size=4, num_workers=2, drop_last=False)
    with warnings.catch_warnings(record=True) as ws:
        warnings.simplefilter("always")
        ids = [i for b in dl.epoch(0) for i in b["id"]]
    assert sorted(ids) == sorted(ids_of("dirty", 3, 10, {"dirty-000000/k000002", "dirty-000001/k000013", "dirty-000002/k000027"}))
    assert dict(dl.skipped) == {"corrupt_image": 2, "empty_caption": 1}  # counted in the workers, summed here
    msgs = [str(w.message) for w in ws if issubclass(w.category, SkippedSamplesWarning)]
    assert len(msgs) == 1 and "skipped 3" in msgs[0] and "corrupt_image=2" in msgs[0] and "empty_caption=1" in msgs[0]
    epoch_ids(dl, 1)
    assert dl.skipped_total == Counter(corrupt_image=4, empty_caption=2)  # two epochs


def test_truncated_shard_counted_not_raised(data, tmp_path):
    _, clean, _ = data
    urls = expand_urls(clean)
    raw = Path(urls[0]).read_bytes()
    (tmp_path / "cut-000000.tar").write_bytes(raw[: len(raw) // 2])
    dl = ImageTextLoader(f"{tmp_path}/cut-000000.tar::{urls[1]}", PRE, TOK, 4, num_workers=2, drop_last=False)
    ids = epoch_ids(dl)
    assert dl.skipped["unreadable_shard"] == 1
    assert {i for i in ids if i.startswith("clean-000001/")} == ids_of("clean", 4, 12) & {f"clean-000001/k{i:06d}" for i in range(12, 24)}
    assert 0 < sum(i.startswith("cut-") for i in ids) < 12


def test_all_bad_iter_raises_instead_of_looping(tmp_path):
    spec = write_shards(tmp_path, "allbad", 1, 4, bad={i: "caption" for i in range(4)})
    dl = ImageTextLoader(spec, PRE, TOK, 2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SkippedSamplesWarning)
        with pytest.raises(RuntimeError, match="no batches"):
            next(iter(dl))


def test_decode_and_collate():
    rng = np.random.default_rng(0)
    s = decode_sample("x/1", png(rng), b"hello\n", b'{"a": 1}', PRE)
    assert s["caption"] == "hello" and s["meta"] == {"a": 1} and s["image"].shape == (3, SIZE, SIZE)
    b = collate([s, s], TOK)
    assert b["image"].shape == (2, 3, SIZE, SIZE) and b["text"].shape == (2, 32) and b["id"] == ["x/1", "x/1"]


# --- ids, shuffling, batching -------------------------------------------------------------------------

def test_ids_stable_across_workers_seeds_batch_sizes(data):
    _, clean, _ = data
    maps = []
    for workers, seed, bs, shuffle in [(0, 0, 5, True), (2, 0, 5, True), (2, 9, 7, True), (0, 1, 3, False)]:
        dl = ImageTextLoader(clean, PRE, TOK, batch_size=bs, num_workers=workers, seed=seed, shuffle=shuffle, drop_last=False)
        ids, m = [], {}
        for b in dl.epoch(0):
            ids += b["id"]; m.update(zip(b["id"], b["caption"]))
        assert len(ids) == len(set(ids)) == 48  # each id exactly once per epoch
        maps.append(m)
    assert all(m == maps[0] for m in maps) and set(maps[0]) == ids_of("clean", 4, 12)
    assert all(c == f"caption of sample {int(i.split('/k')[1])}" for i, c in maps[0].items())


def test_shuffle_seeded_and_per_epoch(data):
    _, clean, _ = data
    a = ImageTextLoader(clean, PRE, TOK, 4, num_workers=2, seed=0, drop_last=False)
    b = ImageTextLoader(clean, PRE, TOK, 4, num_workers=2, seed=0, drop_last=False)
    c = ImageTextLoader(clean, PRE, TOK, 4, num_workers=2, seed=1, drop_last=False)
    e0, e1 = epoch_ids(a, 0), epoch_ids(a, 1)
    assert e0 == epoch_ids(b, 0) and e1 == epoch_ids(b, 1)  # reproducible
    assert e0 != e1 and e0 != epoch_ids(c, 0)  # differs per epoch and per seed
    assert sorted(e0) == sorted(e1)


def test_drop_last_merges_worker_tails(data):
    _, clean, _ = data
    dl = ImageTextLoader(clean, PRE, TOK, batch_size=10, num_workers=2)  # 24 samples per worker: partial tails
    sizes = [len(b["id"]) for b in dl.epoch(0)]
    assert sizes == [10] * 4 and dl.dropped == 8  # 48 = 4*10 + 8 (plain webdataset would drop 2*4)
    dl = ImageTextLoader(clean, PRE, TOK, batch_size=10, num_workers=2, drop_last=False)
    assert sorted(len(b["id"]) for b in dl.epoch(0)) == [8, 10, 10, 10, 10]


@pytest.mark.filterwarnings("ignore:This DataLoader will create")
def test_more_workers_than_shards(data):
    _, clean, _ = data
    dl = ImageTextLoader(clean, PRE, TOK, 4, num_workers=7, drop_last=False)
    with pytest.warns(UserWarning, match="using 4 workers"):
        ids = epoch_ids(dl)
    assert sorted(ids) == sorted(ids_of("clean", 4, 12))


def test_remote_path_via_pipe(data):
    _, clean, _ = data
    urls = expand_urls(clean)
    dl = ImageTextLoader("::".join(f"pipe:cat {u}" for u in urls[:2]), PRE, TOK, 4, num_workers=2, drop_last=False)
    assert sorted(epoch_ids(dl)) == sorted(i for i in ids_of("clean", 4, 12) if i < "clean-000002")
    assert dl.n_samples is None


def test_n_samples(data, tmp_path):
    _, clean, dirty = data
    assert count_samples(clean) == 48 and ImageTextLoader(dirty, PRE, TOK, 4).n_samples == 30
    assert ImageTextLoader(clean, PRE, TOK, 4, n_samples=5).n_samples == 5


# --- resume ----------------------------------------------------------------------------------------

@pytest.mark.filterwarnings("ignore:This DataLoader will create")
@pytest.mark.parametrize("workers,bs,drop_last", [(2, 5, False), (2, 7, True), (0, 5, True), (3, 4, False)])
def test_resume_yields_exactly_the_remaining_batches(data, workers, bs, drop_last):
    _, clean, dirty = data
    spec = f"{clean}::{dirty}"
    kw = dict(batch_size=bs, num_workers=workers, seed=11, drop_last=drop_last)
    ref = ImageTextLoader(spec, PRE, TOK, **kw)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SkippedSamplesWarning)
        full0 = [b["id"] for b in ref.epoch(0)]
        full, n0 = full0 + [b["id"] for b in ref.epoch(1)], len(full0)
        for k in sorted({1, n0 // 2, n0 - 1, n0}):
            a = ImageTextLoader(spec, PRE, TOK, **kw)
            it = iter(a)
            got = [next(it)["id"] for _ in range(k)]
            state = json.loads(json.dumps(a.state_dict()))  # goes through a JSON checkpoint
            del it
            assert got == full[:k] and state["epoch"] == 0 and state["batch"] == k
            r = ImageTextLoader(spec, PRE, TOK, **kw)
            r.load_state_dict(state)
            it = iter(r)
            rest = [next(it)["id"] for _ in range(len(full) - k)]
            assert rest == full[k:], k  # the rest of epoch 0, then epoch 1, in the same order
            assert r.state == {"epoch": 1, "batch": len(full) - n0}
            assert next(it)["id"] == ImageTextLoader(spec, PRE, TOK, **kw).epoch(2).__next__()["id"]  # on into epoch 2
            assert r.skipped_total == ref.skipped_total  # skip counts carried in the state, not lost or doubled


def test_resume_with_epoch_method_and_other_layout(data):
    _, clean, _ = data
    a = ImageTextLoader(clean, PRE, TOK, 5, num_workers=2, drop_last=False)
    it = a.epoch(3)
    first = [next(it)["id"] for _ in range(3)]
    sd = a.state_dict(); del it
    full = epoch_ids(ImageTextLoader(clean, PRE, TOK, 5, num_workers=2, drop_last=False), 3)
    r = ImageTextLoader(clean, PRE, TOK, 5, num_workers=2, drop_last=False); r.load_state_dict(sd)
    assert sum(first, []) + epoch_ids(r, 3) == full
    r1 = ImageTextLoader(clean, PRE, TOK, 5, num_workers=1, drop_last=False); r1.load_state_dict(sd)
    with pytest.warns(UserWarning, match="layout differs"):
        assert len(epoch_ids(r1, 3)) == 48 - 15  # approximate: the consumed number of batches is skipped


# --- CSV -------------------------------------------------------------------------------------------

def test_csv(tmp_path):
    rng = np.random.default_rng(1)
    (tmp_path / "img").mkdir()
    lines = []
    for i in range(12):
        (tmp_path / "img" / f"{i}.png").write_bytes(png(rng))
        lines.append(f"img/{i}.png;caption {i};{i % 3}")
    lines[4] = "img/404.png;caption 4;1"  # missing file
    lines[6] = f"{tmp_path}/img/6.png;   ;0"  # absolute path, empty caption
    (tmp_path / "sub").mkdir()
    csv_path = tmp_path / "sub" / ".." / "pairs.csv"
    csv_path.write_text("filepath;caption;label\n" + "\n".join(lines) + "\n")
    with pytest.raises(ValueError, match="columns"):
        ImageTextLoader(csv_path, PRE, TOK, 4)  # wrong separator
    dl = ImageTextLoader(csv_path, PRE, TOK, 4, num_workers=2, sep=";", drop_last=False)
    assert dl.n_samples == 12
    with warnings.catch_warnings(record=True) as ws:
        warnings.simplefilter("always")
        batches = list(dl.epoch(0))
    got = {i: (c, m) for b in batches for i, c, m in zip(b["id"], b["caption"], b["meta"])}
    assert set(got) == {f"pairs/{i:08d}" for i in range(12)} - {"pairs/00000004", "pairs/00000006"}
    assert got["pairs/00000005"] == ("caption 5", {"label": "2"})
    assert dict(dl.skipped) == {"missing_file": 1, "empty_caption": 1}
    assert any(issubclass(w.category, SkippedSamplesWarning) and "missing_file=1" in str(w.message) for w in ws)
    # rows are shuffled per epoch (seeded), ids stay
    assert epoch_ids(dl, 0) != epoch_ids(dl, 1) and sorted(epoch_ids(dl, 0)) == sorted(epoch_ids(dl, 1))


# --- preprocess ------------------------------------------------------------------------------------

@pytest.mark.parametrize("shape", [(32, 32), (64, 64), (17, 17), (50, 32), (32, 71)])
def test_fast_preprocess_matches_open_clip(shape):
    im = Image.fromarray(np.random.default_rng(0).integers(0, 256, (*shape, 3), dtype=np.uint8))
    ref, got = open_clip.image_transform(32, is_train=False)(im), fast_preprocess(32)(im)
    assert got.shape == ref.shape == (3, 32, 32) and torch.allclose(ref, got, atol=1e-5)


# --- DDP: two gloo ranks ----------------------------------------------------------------------------

def _ddp_rank(rank, world, spec, out_dir, init_file):
    for k in ("RANK", "WORLD_SIZE"): os.environ.pop(k, None)  # wds.split_by_node must use torch.distributed
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        dl = ImageTextLoader(spec, PRE, TOK, batch_size=4, num_workers=2, seed=5, drop_last=False)
        ids = {e: epoch_ids(dl, e) for e in (0, 1)}
        Path(out_dir, f"rank{rank}.json").write_text(json.dumps(ids))
        dist.barrier()
    finally:
        dist.destroy_process_group()


def test_ddp_ranks_see_disjoint_shards(data, tmp_path):
    _, clean, _ = data
    mp.spawn(_ddp_rank, args=(2, clean, str(tmp_path), str(tmp_path / "init")), nprocs=2, join=True)
    r0, r1 = (json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1))
    for e in ("0", "1"):
        a, b = r0[e], r1[e]
        assert len(a) == len(set(a)) == 24 and len(b) == len(set(b)) == 24  # 2 shards of 12 each
        assert not set(a) & set(b) and set(a) | set(b) == ids_of("clean", 4, 12)
        assert not {i.split("/")[0] for i in a} & {i.split("/")[0] for i in b}  # split by whole shards
    assert r0["0"] != r0["1"]  # reshuffled each epoch, identically on both ranks (else the splits would overlap)


# --- resampled mode ----------------------------------------------------------------------------------

def batches_of(loader, e=0):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SkippedSamplesWarning)
        return [b["id"] for b in loader.epoch(e)]


def test_resampled_draws_shards_with_replacement(tmp_path):
    spec = write_shards(tmp_path, "many", 20, 3)  # 60 samples
    dl = ImageTextLoader(spec, PRE, TOK, 4, num_workers=2, resampled=True, seed=2)
    assert dl.epoch_batches == 15  # epoch_samples defaults to n_samples
    ids = Counter(i for b in batches_of(dl) for i in b)
    shards = {i.split("/")[0] for i in ids}
    assert sum(ids.values()) == 60 and max(ids.values()) > 1  # some shards drawn twice ...
    assert len(shards) < 20  # ... so, in an epoch of n_samples, some not at all
    assert shards <= {f"many-{s:06d}" for s in range(20)}


@pytest.mark.parametrize("workers", [0, 2])
@pytest.mark.parametrize("world,bs,epoch_samples,n", [(2, 5, None, 5), (2, 4, 100, 13), (3, 4, 48, 4)])
def test_resampled_epoch_exact_and_equal_across_ranks(data, monkeypatch, workers, world, bs, epoch_samples, n):
    _, clean, _ = data  # 4 shards: fewer than ranks × workers is fine here
    per_rank = []
    for rank in range(world):
        monkeypatch.setenv("RANK", str(rank)); monkeypatch.setenv("WORLD_SIZE", str(world))
        dl = ImageTextLoader(clean, PRE, TOK, bs, num_workers=workers, resampled=True, epoch_samples=epoch_samples, seed=4)
        assert dl.epoch_batches == n  # ceil(epoch_samples / (batch_size × ranks))
        per_rank.append(batches_of(dl))
        assert [len(b) for b in per_rank[-1]] == [bs] * n and dl.dropped == 0
    assert per_rank[0] != per_rank[1]  # each rank draws its own shards


def test_resampled_seeded_and_per_epoch(data):
    _, clean, dirty = data
    mk = lambda seed=0, **kw: ImageTextLoader(f"{clean}::{dirty}", PRE, TOK, 6, num_workers=2, resampled=True, seed=seed, **kw)
    e0 = batches_of(mk())
    assert len(e0) == 13 and batches_of(mk()) == e0  # ceil(78 / 6); same seed, same batches
    assert batches_of(mk(), 1) != e0 and batches_of(mk(seed=1)) != e0
    assert batches_of(mk(shuffle=False)) != e0  # no sample buffer: shards still drawn at random
    dl = mk(epoch_samples=12); it = iter(dl)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SkippedSamplesWarning)
        got = [next(it) for _ in range(5)]  # iterating goes on epoch after epoch: 2 batches each
    assert [len(b["id"]) for b in got] == [6] * 5 and dl.state == {"epoch": 2, "batch": 1}


@pytest.mark.filterwarnings("ignore:This DataLoader will create")
@pytest.mark.parametrize("workers", [0, 2])
def test_resampled_resume_draws_the_rest_afresh(data, workers):
    _, clean, dirty = data
    spec, kw = f"{clean}::{dirty}", dict(batch_size=5, num_workers=workers, resampled=True, seed=9)
    ref = ImageTextLoader(spec, PRE, TOK, **kw)
    full, n = batches_of(ref), ref.epoch_batches
    nxt = batches_of(ref, 1)
    assert n == 16 and len(full) == n
    for k in (1, n // 2, n - 1):
        a = ImageTextLoader(spec, PRE, TOK, **kw)
        it = iter(a)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SkippedSamplesWarning)
            head = [next(it)["id"] for _ in range(k)]
        state = json.loads(json.dumps(a.state_dict())); del it
        assert head == full[:k] and (state["epoch"], state["batch"]) == (0, k)
        r = ImageTextLoader(spec, PRE, TOK, **kw); r.load_state_dict(state)
        rest = batches_of(r)
        assert len(rest) == n - k and r._epoch_batches == n  # the epoch keeps its length
        assert rest != full[k:]  # fresh draws, not a replay of the interrupted order
        assert r.state == {"epoch": 1, "batch": 0} and batches_of(r, 1) == nxt  # and on as without the interruption


def test_resampled_bad_inputs(data, tmp_path):
    _, clean, _ = data
    (tmp_path / "x.csv").write_text("filepath,caption\na.png,a\n")
    with pytest.raises(ValueError, match="CSV"): ImageTextLoader(tmp_path / "x.csv", PRE, TOK, 4, resampled=True)
    with pytest.raises(ValueError, match="resampled=True"): ImageTextLoader(clean, PRE, TOK, 4, epoch_samples=10)
    with pytest.raises(ValueError, match=">= 1"): ImageTextLoader(clean, PRE, TOK, 4, resampled=True, epoch_samples=0)
    remote = "::".join(f"pipe:cat {u}" for u in expand_urls(clean))
    with pytest.raises(ValueError, match="epoch_samples"): ImageTextLoader(remote, PRE, TOK, 4, resampled=True)
    assert len(batches_of(ImageTextLoader(remote, PRE, TOK, 4, resampled=True, epoch_samples=8))) == 2
    assert ImageTextLoader(clean, PRE, TOK, 4).epoch_batches is None  # epoch mode: not known beforehand


@pytest.mark.parametrize("workers", [0, 2])
def test_resampled_unreadable_shards_raise_not_hang(tmp_path, workers):
    (tmp_path / "junk-0.tar").write_bytes(b"not a tar file" * 100)
    dl = ImageTextLoader(str(tmp_path / "junk-0.tar"), PRE, TOK, 4, num_workers=workers, resampled=True, epoch_samples=8)
    with pytest.raises(RuntimeError, match="no sample from the last 100 shards"): batches_of(dl)

"LiT-Decoder integration: the CLI end to end (and resume), frozen encoder weights, token-cache invalidation."
import json, os, subprocess, sys
from pathlib import Path
import pytest
import torch

from aced_lab.lit_decoder import LitConfig, lit_decoder, split_tokens, eval_summary
from aced_lab.lit_model import load_encoder, encoder_fingerprint, resolve_encoder
from aced_lab.trainer import load_records, train
from aced_lab.models import create, save_weights
from aced_lab import synthetic

TINY = dict(n_train=200, n_eval=40, shard_size=100, steps=6, batch_size=16, warmup=2, width=32, heads=2, layers=1,
            eval_max_samples=10, max_len=10, ckpt_every=3, tensorboard=False, threads=1)


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    "A private aced_lab cache (hermetic) for tiny datasets (scenes, the default, under `data`; shapes under `shapes`)."
    d = tmp_path_factory.mktemp("lit")
    old = os.environ.get("ACED_LAB_CACHE"); os.environ["ACED_LAB_CACHE"] = str(d / "cache")
    yield d
    if old is None: os.environ.pop("ACED_LAB_CACHE")
    else: os.environ["ACED_LAB_CACHE"] = old


def _cli(args, cache, cwd):
    env = {**os.environ, "ACED_LAB_CACHE": str(cache), "PYTHONUNBUFFERED": "1"}
    return subprocess.run([sys.executable, "-m", "aced_lab.cli", "lit-decoder", *args], capture_output=True, text=True,
                          env=env, cwd=cwd, timeout=600)


def test_cli_end_to_end_and_resume(env):
    flags = [x for k, v in TINY.items() for x in (f"--{k}", str(v))]
    out = env / "cli"
    r = _cli([*flags, "--out_dir", str(out), "--data_root", str(env / "data")], env / "cache", env)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "caption" in r.stdout and "majority_baseline" in r.stdout and "bleu4" in r.stdout
    s = eval_summary(out)
    assert 0 <= s["vqa/accuracy"] <= 1 and s["caption/cider"] >= 0
    assert "vqa/relation/accuracy" in s  # the default data is scenes, with its own question types
    assert json.loads((out / "config.json").read_text())["encoder"]["name"] == "ACED-Tiny-64"  # scenes' default architecture
    recs = load_records(out)
    assert [x["step"] for x in recs] == list(range(1, 7))
    # resume from the step-3 checkpoint: the same losses and the same final decoder
    ck = out / "checkpoints" / "step-0000003.pt"
    out2 = env / "cli2"
    out2.mkdir(); (out2 / "checkpoints").mkdir()
    r = _cli([*flags, "--out_dir", str(out2), "--data_root", str(env / "data"), "--resume", str(ck)], env / "cache", env)
    assert r.returncode == 0, r.stderr[-3000:]
    recs2 = load_records(out2)
    assert [x["step"] for x in recs2] == [4, 5, 6]
    assert recs2[-1]["loss"] == pytest.approx(recs[-1]["loss"], abs=1e-5)
    a = torch.load(out / "checkpoints" / "step-0000006.pt", weights_only=True)["state_dict"]
    b = torch.load(out2 / "checkpoints" / "step-0000006.pt", weights_only=True)["state_dict"]
    assert all(torch.allclose(a[k], b[k], atol=1e-5) for k in a)


def test_cli_errors(env):
    r = _cli(["--stpes", "3"], env / "cache", env)
    assert r.returncode == 2 and "Did you mean '--steps'" in r.stderr
    r = _cli(["--encoder_weights", "nonsense_tag", "--encoder", "ACED-Tiny-32"], env / "cache", env)
    assert r.returncode != 0 and "Known tags" in r.stderr


def test_frozen_encoder_from_a_trainer_run(env):
    "An aced_lab run folder as the encoder: architecture from its checkpoint; weights identical after decoder training."
    run = env / "student"
    train(dict(data="scenes", model="ACED-Tiny-64", n_train=200, n_eval=40, shard_size=100, data_root=str(env / "data_clip"),
               steps=2, batch_size=16, warmup=1, num_workers=0, eval_max_samples=40, tensorboard=False, out_dir=str(run), threads=1))
    name, weights = resolve_encoder("auto", str(run))
    assert name == "ACED-Tiny-64" and weights.endswith("step-0000002.pt")
    t = lit_decoder({**TINY, "encoder_weights": str(run), "data_root": str(env / "data"), "out_dir": str(env / "frozen")})
    before = create(name, weights).model.visual.state_dict()
    after = t.encoder.visual.state_dict()
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)
    assert not any(p.requires_grad for p in t.encoder.visual.parameters())
    assert t.encoder.fingerprint == encoder_fingerprint(t.encoder.visual, name)
    # the optimizer only holds decoder parameters
    enc_ids = {id(p) for p in t.encoder.visual.parameters()}
    assert not enc_ids & {id(p) for g in t.opt.param_groups for p in g["params"]}


def test_token_cache_invalidates_when_the_encoder_changes(env):
    man = synthetic.default_data("shapes", root=env / "shapes", n_train=200, n_eval=40, shard_size=100, mismatch_frac=0.0,
                                 progress=False)
    cache = env / "tokcache"
    w = env / "enc.safetensors"
    m = create("ACED-Tiny-32").model
    save_weights(m, w)
    e1 = load_encoder("ACED-Tiny-32", str(w))
    a = split_tokens(e1, man["eval"], cache)
    assert not a["hit"] and split_tokens(e1, man["eval"], cache)["hit"]
    # the same file, rewritten with changed weights: a new key, recomputed tokens
    with torch.no_grad(): m.visual.conv1.weight.add_(0.1)
    save_weights(m, w)
    e2 = load_encoder("ACED-Tiny-32", str(w))
    b = split_tokens(e2, man["eval"], cache)
    assert not b["hit"] and b["key"] != a["key"] and not torch.equal(a["tokens"], b["tokens"])
    # a change of the text tower only leaves the image tokens (and their key) alone
    with torch.no_grad(): m.token_embedding.weight.add_(0.1)
    save_weights(m, w)
    assert split_tokens(load_encoder("ACED-Tiny-32", str(w)), man["eval"], cache)["hit"]
    # other data: another key
    man2 = synthetic.default_data("shapes", root=env / "shapes2", n_train=100, n_eval=30, shard_size=100, mismatch_frac=0.0,
                                  progress=False)
    assert split_tokens(e2, man2["eval"], cache)["key"] != b["key"]


def test_bad_inputs(env, tmp_path):
    with pytest.raises(FileNotFoundError, match="no/such"):
        lit_decoder({**TINY, "encoder_weights": "/no/such/ckpt.pt", "out_dir": str(tmp_path / "x")})
    csv = tmp_path / "d.csv"
    from PIL import Image
    Image.new("RGB", (32, 32)).save(tmp_path / "a.png")
    csv.write_text("filepath,caption\na.png,\n")
    with pytest.raises(ValueError, match="no usable samples"):
        lit_decoder({**TINY, "data": str(csv), "eval_data": str(csv), "tasks": "caption", "out_dir": str(tmp_path / "y")})


def test_torchrun_two_cpu_processes(env):
    "DDP with 2 CPU processes (gloo): ranks share the token cache, the decoder's gradients are averaged, rank 0 evaluates."
    flags = [x for k, v in TINY.items() for x in (f"--{k}", str(v))]
    run = env / "ddp"
    cmd = [str(Path(sys.executable).parent / "torchrun"), "--nproc_per_node=2", "--master_port", "29541", "-m", "aced_lab.cli",
           "lit-decoder", *flags, "--data_root", str(env / "data"), "--token_cache", str(env / "ddp_tokens"), "--out_dir", str(run)]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=600,
                         env={**os.environ, "ACED_LAB_CACHE": str(env / "cache"), "OMP_NUM_THREADS": "1"})
    assert res.returncode == 0, res.stderr[-4000:]
    assert [r["step"] for r in load_records(run)] == list(range(1, 7))
    assert "vqa/accuracy" in eval_summary(run)
    entries = sorted(len(json.loads((d / "samples.json").read_text())["id"]) for d in (env / "ddp_tokens").iterdir())
    assert entries == [10, 200]  # eval + train tokens, made once for both ranks, of the whole split (not one rank's share)


def test_captioning_on_digits_and_on_a_csv(env, tmp_path):
    "Captioning-only runs on the digits data (references from its templates) and on a plain CSV of image-caption pairs."
    t = lit_decoder({**TINY, "data": "digits", "tasks": "caption", "data_root": str(env / "digits"), "out_dir": str(tmp_path / "dg")})
    s = eval_summary(tmp_path / "dg")
    assert set(s) == {"caption/bleu4", "caption/cider"}
    assert len(t.train_split["id"]) == 1438 and t.eval_set[0]["refs"][0].startswith("a handwritten digit")
    from PIL import Image
    rows = ["filepath,caption"]
    for i, (c, name) in enumerate([((255, 0, 0), "red"), ((0, 0, 255), "blue")] * 4):
        Image.new("RGB", (32, 32), c).save(tmp_path / f"{i}.png"); rows.append(f"{i}.png,a {name} square")
    (tmp_path / "d.csv").write_text("\n".join(rows) + "\n")
    lit_decoder({**TINY, "data": str(tmp_path / "d.csv"), "eval_data": str(tmp_path / "d.csv"), "tasks": "caption",
                 "batch_size": 4, "out_dir": str(tmp_path / "csv")})
    preds = [json.loads(l) for l in (tmp_path / "csv" / "predictions.jsonl").read_text().splitlines()]
    assert len(preds) == 8 and preds[0]["target"] == "a red square"

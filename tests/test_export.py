"`aced-lab export`: a trained run becomes open_clip's Hub folder, which open_clip loads offline in a process that never imports aced_lab."
import json, os, subprocess, sys
from pathlib import Path
import numpy as np
import pytest
import torch
from PIL import Image
from aced_lab.lit_model import resolve_encoder
from aced_lab.models import create, save_weights
from aced_lab.trainer import model_kwargs, train

BIN = Path(sys.executable).parent
TINY = dict(n_train=64, n_eval=16, shard_size=32, steps=2, warmup=1, batch_size=8, num_workers=0, tensorboard=False, threads=1,
            eval_max_samples=16, ckpt_every=0, selection_every=0)
CAPTIONS = ["a small red circle", "a large blue square"]

# Runs with only open_clip and torch: loads the folder, encodes the image file and CAPTIONS, prints the features as JSON.
FRESH = """
import json, sys, torch, open_clip
from PIL import Image
d, img = sys.argv[1], sys.argv[2]
model, _, preprocess = open_clip.create_model_and_transforms("local-dir:" + d)
tok = open_clip.get_tokenizer("local-dir:" + d)
model.eval()
with torch.no_grad():
    x = preprocess(Image.open(img)).unsqueeze(0)
    out = {"pixels": x.tolist(), "image": model.encode_image(x).tolist(), "text": model.encode_text(tok(%r)).tolist(),
           "logit_scale": model.logit_scale.item(),
           "logit_bias": None if getattr(model, "logit_bias", None) is None else model.logit_bias.item(),
           "tokenizer": type(tok).__name__}
assert "aced_lab" not in sys.modules, "open_clip pulled in aced_lab"
print(json.dumps(out))
""" % (CAPTIONS,)


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    return str(tmp_path_factory.mktemp("data"))


@pytest.fixture(scope="module")
def image(tmp_path_factory):
    p = tmp_path_factory.mktemp("img") / "x.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (48, 40, 3), dtype=np.uint8)).save(p)
    return p


def fresh_features(hub: Path, image: Path, cwd: Path) -> dict:
    "The features open_clip computes from `hub` in a new process that imports neither aced_lab nor the network."
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    env.pop("PYTHONPATH", None)
    res = subprocess.run([sys.executable, "-c", FRESH, str(hub), str(image)], capture_output=True, text=True, env=env,
                         cwd=cwd, timeout=300)
    assert res.returncode == 0, res.stderr[-4000:]
    return json.loads(res.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("kind", ["iid-siglip", "acid-clip"])
def test_exported_run_loads_in_open_clip_alone(tmp_path, data_root, image, kind):
    method, loss = kind.split("-")
    kw = {}
    if method == "acid":
        ref = save_weights(create("ACED-Tiny-64").model, tmp_path / "ref.safetensors")
        kw = dict(reference=str(ref), reference_model="ACED-Tiny-64", reference_cache=None, filter_ratio=0.5, n_chunks=4)
    run = tmp_path / "run"
    train({**TINY, **kw, "method": method, "loss": loss, "data_root": data_root, "out_dir": str(run)})
    hub = tmp_path / "hub"
    res = subprocess.run([str(BIN / "aced-lab"), "export", str(run), str(hub)], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-4000:]
    assert sorted(p.name for p in hub.iterdir()) == ["README.md", "open_clip_config.json", "open_clip_model.safetensors"]
    cfg = json.loads((hub / "open_clip_config.json").read_text())
    assert set(cfg) == {"model_cfg", "preprocess_cfg"} and "hf_tokenizer_name" not in cfg["model_cfg"]["text_cfg"]
    assert ("init_logit_bias" in cfg["model_cfg"]) == (loss == "siglip")

    got = fresh_features(hub, image, tmp_path)
    assert got["tokenizer"] == "SimpleTokenizer"
    arch, weights = resolve_encoder("auto", str(run))  # aced_lab's own view of the run: its latest checkpoint
    b = create(arch, weights, **model_kwargs(loss))
    b.model.eval()
    with torch.no_grad():
        x = b.preprocess(Image.open(image)).unsqueeze(0)
        img, txt = b.model.encode_image(x), b.model.encode_text(b.tokenizer(CAPTIONS))
    torch.testing.assert_close(torch.tensor(got["pixels"]), x)
    torch.testing.assert_close(torch.tensor(got["image"]), img, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(torch.tensor(got["text"]), txt, rtol=1e-5, atol=1e-5)
    assert got["logit_scale"] == pytest.approx(b.model.logit_scale.item())
    if loss == "siglip": assert got["logit_bias"] == pytest.approx(b.model.logit_bias.item())
    else: assert got["logit_bias"] is None
    h = create(f"local-dir:{hub}").model.eval()  # aced_lab takes the folder by name too (`aced-lab eval --model local-dir:...`)
    with torch.no_grad(): torch.testing.assert_close(h.encode_image(x), img, rtol=1e-5, atol=1e-5)

    card = (hub / "README.md").read_text()
    assert f"`{method}`" in card and "`scenes`" in card and "ACED-Tiny-64" in card
    assert "## Evaluation" in card and "No evaluation recorded" not in card  # the run's eval.json table
    if method == "acid": assert "reference" in card and str(ref) in card


def test_export_errors(tmp_path):
    res = subprocess.run([str(BIN / "aced-lab"), "export", str(tmp_path / "nope"), str(tmp_path / "hub")],
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 2 and "not found" in res.stderr
    (tmp_path / "empty").mkdir()
    res = subprocess.run([str(BIN / "aced-lab"), "export", str(tmp_path / "empty"), str(tmp_path / "hub")],
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 2 and "latest.json" in res.stderr

"clip_benchmark's webdataset sets: exported from the embedded suites, clip_benchmark 1.6.2 (in process and its CLI) scores what `aced_lab.wds_benchmarks` scores."
import json, os, subprocess, sys
from pathlib import Path
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from aced_lab.eval import evaluate
from aced_lab.models import create, export_hub, save_weights
from aced_lab.shards import read_samples
from aced_lab.synthetic import default_data
from aced_lab.wds_benchmarks import export_suite, write_wds_benchmark

cb_zs = pytest.importorskip("clip_benchmark.metrics.zeroshot_classification")
from clip_benchmark.metrics import zeroshot_retrieval as cb_ret  # noqa: E402
from clip_benchmark.datasets.builder import build_dataset  # noqa: E402
from clip_benchmark.models import load_clip  # noqa: E402

BIN = Path(sys.executable).parent
OFFLINE = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "OMP_NUM_THREADS": "1"}


def cb_accuracy(output, target, topk=(1,)):
    "clip_benchmark's `accuracy` with `.item()` where it calls `float()` on a 1-element array (an error from numpy 2.4)."
    pred = output.topk(max(topk), 1, True, True)[1].t()
    correct = pred.eq(target.view(1, -1).expand_as(pred))
    return [correct[:k].reshape(-1).float().sum(0).item() / len(target) for k in topk]


# clip_benchmark's CLI in a fresh process, `accuracy` replaced as above: argv[1] is a JSON list of argument lists, one run each.
RUNNER = """
import json, sys, torch
torch.set_num_threads(1)
import clip_benchmark.cli as cli
from clip_benchmark.metrics import zeroshot_classification as zs
def accuracy(output, target, topk=(1,)):
    pred = output.topk(max(topk), 1, True, True)[1].t()
    correct = pred.eq(target.view(1, -1).expand_as(pred))
    return [correct[:k].reshape(-1).float().sum(0).item() / len(target) for k in topk]
zs.accuracy = accuracy
for args in json.loads(sys.argv[1]):
    sys.argv = ["clip_benchmark"] + args
    cli.main()
assert "aced_lab" not in sys.modules
"""


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    "Shapes exported as clip_benchmark sets, a 2-captions-per-image retrieval set, and a briefly trained tiny model as a Hub folder."
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("wds")
    man = default_data("shapes", root=root / "shapes", n_train=64, n_eval=40, shard_size=32, progress=False)
    sets = export_suite(man, root / "cb", shard_size=16)
    ev = [s for i in range(2) for s in read_samples(root / "shapes" / f"eval-{i:06d}.tar")]
    multi = write_wds_benchmark(root / "cb" / "shapes_multi", [(s["image"], [f"{s['caption']}, picture {i}", f"picture {i}: {s['caption']}"])
                                                                for i, s in enumerate(ev)], shard_size=16)
    torch.manual_seed(0)
    b = create("ACED-Tiny-32")
    # 12 CLIP steps on the first train shard: enough for predictions that differ between images (a random init picks one class)
    tr = read_samples(root / "shapes" / "train-000000.tar")
    x = torch.stack([b.preprocess(Image.fromarray(s["image"])) for s in tr]); t = b.tokenizer([s["caption"] for s in tr])
    opt = torch.optim.AdamW(b.model.parameters(), lr=2e-3)
    for _ in range(12):
        out = b.model(x, t); logits = out["logit_scale"] * out["image_features"] @ out["text_features"].T  # (B, B)
        loss = (F.cross_entropy(logits, torch.arange(len(x))) + F.cross_entropy(logits.T, torch.arange(len(x)))) / 2
        opt.zero_grad(); loss.backward(); opt.step()
    b.model.eval()
    weights = save_weights(b.model, root / "tiny.safetensors")
    hub = export_hub(weights, root / "hub", model="ACED-Tiny-32")
    bundle = create("ACED-Tiny-32", weights)
    ours = evaluate(bundle, "clip_benchmark", ",".join(sets + [str(multi)]), batch_size=16, progress=False)
    return {"root": root, "sets": sets, "multi": str(multi), "hub": hub, "weights": weights, "ours": ours}


def ours_of(df, task) -> dict:
    return dict(zip(df[df.task == task].metric, df[df.task == task].value))


def expected(ours: dict, kind: str) -> dict:
    "Our metrics under clip_benchmark's names."
    if kind == "retrieval":
        return {f"text_retrieval_recall@{k}": ours[f"image_to_text_R@{k}"] for k in (1, 5, 10)} | \
               {f"image_retrieval_recall@{k}": ours[f"text_to_image_R@{k}"] for k in (1, 5, 10)}
    return {"acc1": ours["top1"], "mean_per_class_recall": ours["mean_per_class_recall"]} | ({"acc5": ours["top5"]} if "top5" in ours else {})


def test_clip_benchmark_functions_agree(setup, monkeypatch):
    monkeypatch.setattr(cb_zs, "accuracy", cb_accuracy)
    model, transform, tokenizer = load_clip("open_clip", f"local-dir:{setup['hub']}", "none", None, "cpu")
    model.eval()
    varied = 0
    for path in setup["sets"] + [setup["multi"]]:
        name = Path(path).name
        retrieval = name in ("shapes_retrieval", "shapes_multi")
        ds = build_dataset(f"wds/{name}", root=path, transform=transform, split="test",
                           task="zeroshot_retrieval" if retrieval else "zeroshot_classification")
        dl = torch.utils.data.DataLoader(ds.batched(16), batch_size=None, shuffle=False, num_workers=0)  # as clip_benchmark's CLI
        if retrieval:
            got = cb_ret.evaluate(model, dl, tokenizer, "cpu", amp=False, recall_k_list=[1, 5, 10])
            want = expected(ours_of(setup["ours"], f"retrieval/{name}"), "retrieval")
        else:
            got = cb_zs.evaluate(model, dl, tokenizer, ds.classes, ds.templates, "cpu", amp=False)
            want = expected(ours_of(setup["ours"], f"zeroshot/{name}"), "classification")
            varied += want["mean_per_class_recall"] != pytest.approx(1 / len(ds.classes))
            if len(ds.classes) < 5: assert np.isnan(got.pop("acc5"))
            elif len(ds.classes) == 5: assert got.pop("acc5") == 1.0  # reported by clip_benchmark from 5 classes, trivially 1
        assert got == pytest.approx(want, abs=1e-6), (name, got, want)
    assert varied >= 2  # the model tells images apart: the comparison is not between constant predictions


def test_clip_benchmark_cli_agrees(setup, tmp_path):
    root, names = Path(setup["sets"][0]).parent, [Path(p).name for p in setup["sets"]]
    common = ["--dataset_root", f"{root}/{{dataset}}", "--model", f"local-dir:{setup['hub']}", "--pretrained", "none",
              "--no_amp", "--num_workers", "0", "--batch_size", "16", "--output", f"{tmp_path}/{{dataset}}.json", "--quiet"]
    runs = [["eval", "--dataset", *[f"wds/{n}" for n in names if n != "shapes_retrieval"], *common],
            ["eval", "--dataset", "wds/shapes_retrieval", "wds/shapes_multi", "--task", "zeroshot_retrieval",
             "--recall_k", "1", "5", "10", *common]]
    env = {**os.environ, **OFFLINE}; env.pop("PYTHONPATH", None)
    res = subprocess.run([sys.executable, "-c", RUNNER, json.dumps(runs)], capture_output=True, text=True, env=env,
                         cwd=tmp_path, timeout=300)
    assert res.returncode == 0, res.stderr[-4000:]
    for n in names + ["shapes_multi"]:
        dump = json.loads((tmp_path / f"{n}.json").read_text())
        retrieval = n in ("shapes_retrieval", "shapes_multi")
        assert dump["task"] == ("zeroshot_retrieval" if retrieval else "zeroshot_classification")
        got = {k: v for k, v in dump["metrics"].items() if k != "acc5" or "top5" in ours_of(setup["ours"], f"zeroshot/{n}")}
        want = expected(ours_of(setup["ours"], f"{'retrieval' if retrieval else 'zeroshot'}/{n}"), "retrieval" if retrieval else "classification")
        assert got == pytest.approx(want, abs=1e-6), (n, got, want)


def test_eval_suite_in_training_and_cli(setup, tmp_path):
    from aced_lab.trainer import train
    spec = ",".join(setup["sets"][:2])
    t = train({"data": str(setup["root"] / "shapes" / "train-{000000..000001}.tar"), "eval_data": spec, "eval_suite": "clip_benchmark",
               "method": "iid", "steps": 1, "warmup": 1, "batch_size": 8, "num_workers": 0, "tensorboard": False, "threads": 1,
               "ckpt_every": 0, "selection_every": 0, "out_dir": str(tmp_path / "run")})
    rows = json.loads((tmp_path / "run" / "eval.json").read_text())
    assert rows["suite"] == "clip_benchmark"
    assert {r["task"] for r in rows["results"]} == {"zeroshot/shapes_shape", "zeroshot/shapes_colour", "summary"}
    assert t.eval_table is not None

    res = subprocess.run([str(BIN / "aced-lab"), "eval", "--model", "ACED-Tiny-32", "--pretrained", str(setup["weights"]),
                          "--suite", "clip_benchmark", "--data", spec], capture_output=True, text=True, timeout=300,
                         env={**os.environ, **OFFLINE})
    assert res.returncode == 0, res.stderr[-4000:]
    want = ours_of(setup["ours"], "zeroshot/shapes_colour")
    line = next(l for l in res.stdout.splitlines() if "zeroshot/shapes_colour" in l and " top1 " in l)
    assert float(line.split()[-1]) == pytest.approx(want["top1"], abs=1e-6)

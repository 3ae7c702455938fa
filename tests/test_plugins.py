"Plug-ins by name: a score and a selector defined in a user's module work from the CLI under torchrun and from papermill."
import json, os, subprocess, sys
from pathlib import Path
import numpy as np
import pytest

ROOT = Path(__file__).parent.parent
BIN = Path(sys.executable).parent
SMALL = ["--n_train", "512", "--shard_size", "128", "--n_eval", "64", "--eval_max_samples", "64", "--warmup", "1",
         "--num_workers", "0", "--tensorboard", "false", "--ckpt_every", "0", "--threads", "1"]
USER_RULES = '''
import torch
from aced_lab.acid import register_score, register_selector

@register_score("neg_learnability")
def neg_learnability(learner, ref): return ref - learner  # the opposite of learnability

@register_selector("first_b")
def first_b(b, scores=None, **_): return torch.arange(b, device=scores.device)  # the first b of the super-batch
'''


@pytest.fixture(scope="module")
def ref(tmp_path_factory):
    from aced_lab.models import create, save_weights
    return str(save_weights(create("ACED-Tiny-32").model, tmp_path_factory.mktemp("ref") / "ref.safetensors"))


def test_user_module_under_torchrun(tmp_path, ref):
    (tmp_path / "my_rules.py").write_text(USER_RULES)  # a module in the working directory, nothing else edited
    run = tmp_path / "run"
    cmd = [str(BIN / "torchrun"), "--nproc_per_node=2", "--master_port", "29523", "-m", "aced_lab.cli", "train", *SMALL,
           "--plugins", "my_rules", "--method", "acid", "--score", "neg_learnability", "--selection", "first_b",
           "--reference", ref, "--reference_model", "ACED-Tiny-32", "--model", "ACED-Tiny-32", "--reference_cache", "none", "--batch_size", "8",
           "--filter_ratio", "0.5", "--steps", "3", "--selection_every", "1", "--data_root", str(tmp_path / "data"),
           "--out_dir", str(run)]
    res = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=600, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert res.returncode == 0, res.stderr[-4000:]
    assert json.loads((run / "config.json").read_text())["config"]["plugins"] == "my_rules"
    for f in sorted((run / "selection").glob("*.npz")):
        z = np.load(f)
        assert np.allclose(z["score"], z["ref_loss"] - z["learner_loss"], atol=1e-5)  # the user's score
        assert z["selected"].tolist() == [True] * 8 + [False] * 8                      # the user's selector
    assert len(list((run / "selection").glob("*.npz"))) == 3


def test_unknown_plugin_names_fail_before_training(tmp_path):
    def cli(*args):
        return subprocess.run([str(BIN / "aced-lab"), "train", "--out_dir", str(tmp_path / "x"), *args],
                              capture_output=True, text=True, timeout=300)
    res = cli("--plugins", "aced_lab.rules", "--score", "loss_bnd")
    assert res.returncode == 2 and "Did you mean 'loss_band'" in res.stderr
    res = cli("--score", "loss_band")  # registered only when its module is imported
    assert res.returncode == 2 and "score='loss_band' is not valid" in res.stderr
    res = cli("--plugins", "no_such_rules")
    assert res.returncode == 2 and "cannot import 'no_such_rules'" in res.stderr
    assert not (tmp_path / "x").exists()


def test_papermill_with_plugins(tmp_path, ref):
    cwd = tmp_path / "nbs"; cwd.mkdir()  # under IN_TEST the notebook writes to ../runs/_nbtest_train
    res = subprocess.run([str(BIN / "papermill"), str(ROOT / "nbs" / "train.ipynb"), str(tmp_path / "out.ipynb"), "--cwd", str(cwd),
                          "-p", "plugins", "aced_lab.rules", "-p", "method", "acid", "-p", "score", "loss_band",
                          "-p", "selection", "topk_plus_random", "-p", "filter_ratio", "0.5", "-p", "reference", ref,
                          "-p", "reference_model", "ACED-Tiny-32", "-p", "reference_cache", str(tmp_path / "refcache"),
                          "-p", "selection_every", "10"],
                         capture_output=True, text=True, env={**os.environ, "IN_TEST": "1", "TMPDIR": str(tmp_path)}, timeout=900)
    assert res.returncode == 0, res.stderr[-4000:]
    run = tmp_path / "runs" / "_nbtest_train"
    cfg = json.loads((run / "config.json").read_text())["config"]
    assert (cfg["score"], cfg["selection"]) == ("loss_band", "topk_plus_random")
    z = np.load(sorted((run / "selection").glob("*.npz"))[-1])
    q = np.quantile(z["learner_loss"], [0.2, 0.8])
    band = -(np.maximum(q[0] - z["learner_loss"], 0) + np.maximum(z["learner_loss"] - q[1], 0))
    assert np.allclose(z["score"], band, atol=1e-4) and z["selected"].sum() == 32

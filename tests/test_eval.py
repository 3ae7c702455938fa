"Tests of aced_lab.eval: metric functions on constructed features, the task/suite registry, evaluate() end to end."
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from aced_lab.core import ConfigError
from aced_lab.eval import (SUITES, TASKS, EvalContext, RetrievalTask, ZeroShotTask, build_suite, encode, evaluate,
                           flat_results, make_task, retrieval_metrics, run_tasks, zero_shot_classifier, zero_shot_metrics)

DIGITS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]


# --- a model constructed to be perfect ---------------------------------------------------------------------------
class PerfectTok:
    "Token id c+1 for the c-th digit word, 0 for any other word: (N, 8)."
    def __call__(self, texts):
        ids = [[DIGITS.index(w) + 1 if w in DIGITS else 0 for w in t.replace(",", " ").split()] for t in texts]
        return torch.tensor([(i + [0] * 8)[:8] for i in ids])


class Perfect(torch.nn.Module):
    "Image: the class painted into pixel (0, 0); text: the digit word. Both embed as the class's one-hot code."
    def __init__(self):
        super().__init__(); self.p = torch.nn.Parameter(torch.zeros(1))
    def encode_image(self, x): return F.one_hot(x[:, 0, 0, 0].long(), 10).float()
    def encode_text(self, t): return F.one_hot(t.max(1).values - 1, 10).float()


def digit_batches(n, bs=16, seed=0, templates=("a handwritten digit {}", "the number {}, written by hand")):
    rng = np.random.default_rng(seed); ys = rng.integers(0, 10, n); tp = rng.integers(0, len(templates), n)
    caps = [templates[t].format(DIGITS[y]) for y, t in zip(ys, tp)]
    for s in range(0, n, bs):
        y = torch.as_tensor(ys[s:s + bs])
        yield {"image": y[:, None, None, None].float().expand(-1, 3, 4, 4), "text": PerfectTok()(caps[s:s + bs]),
               "id": [f"d/{i}" for i in range(s, s + len(y))], "caption": caps[s:s + bs],
               "meta": [{"digit": DIGITS[v], "corruption": "clean"} for v in y.tolist()]}


# --- metric functions on constructed features ---------------------------------------------------------------------
def test_perfect_embeddings_score_100():
    labels = torch.arange(60) % 7
    onehot = F.one_hot(labels, 7).float()  # image feature = one-hot of its class
    assert zero_shot_metrics(onehot, torch.eye(7), labels) == {"top1": 1.0, "top5": 1.0}
    r = retrieval_metrics(onehot, onehot, labels, chunk=8)
    assert set(r) == {f"{d}_R@{k}" for d in ("image_to_text", "text_to_image") for k in (1, 5, 10)}
    assert set(r.values()) == {1.0}


def test_worst_case_and_chance():
    labels = torch.arange(30) % 3
    onehot = F.one_hot(labels, 3).float()
    wrong = F.one_hot((labels + 1) % 3, 3).float()
    assert zero_shot_metrics(wrong, torch.eye(3), labels, topk=(1,))["top1"] == 0.0
    assert zero_shot_metrics(wrong, torch.eye(3), labels)["top5"] == 1.0  # top-5 capped at 3 classes
    r = retrieval_metrics(F.normalize(1 - onehot, dim=-1), onehot, labels, ks=(1, 2))
    assert set(r.values()) == {0.0}
    g = torch.Generator().manual_seed(1)
    rnd = [retrieval_metrics(F.normalize(torch.randn(1000, 32, generator=g), dim=-1),
                             F.normalize(torch.randn(1000, 32, generator=g), dim=-1), torch.arange(1000) % 10, ks=(1,))
           for _ in range(4)]
    assert abs(np.mean([x["image_to_text_R@1"] for x in rnd]) - 0.1) < 0.025


def test_group_retrieval_with_repeated_captions():
    # 12 pairs, 3 groups of 4 identical captions; each caption leans a hair towards the next image of its group
    g = torch.arange(12) % 3
    nxt = (torch.arange(12) + 3) % 12
    code = F.one_hot(g, 3).float()
    img = F.normalize(torch.cat([code, 0.1 * torch.eye(12)], 1), dim=-1)
    txt = F.normalize(torch.cat([code, 0.1 * torch.eye(12)[nxt]], 1), dim=-1)
    assert set(retrieval_metrics(img, txt, torch.arange(12), ks=(1,)).values()) == {0.0}  # exact index: all wrong
    assert set(retrieval_metrics(img, txt, g, ks=(1,)).values()) == {1.0}  # by ground truth: all right
    assert set(retrieval_metrics(img, txt, [("red", int(x)) for x in g], ks=(1,)).values()) == {1.0}  # tuple groups


def test_hand_checked_case():
    I = torch.tensor([[1., 0.], [0.8, 0.6], [0., 1.]])
    T = torch.tensor([[1., 0.], [0., 1.], [0.6, 0.8]])
    r = retrieval_metrics(I, T, ["A", "A", "B"], ks=(1, 2))
    assert r["image_to_text_R@1"] == pytest.approx(1 / 3) and r["text_to_image_R@1"] == pytest.approx(1 / 3)
    assert r["image_to_text_R@2"] == 1.0 and r["text_to_image_R@2"] == 1.0
    with pytest.raises(ValueError, match="lengths differ"): retrieval_metrics(I, T, ["A", "B"])


def test_zero_shot_classifier_recipe():
    m = Perfect()
    W = zero_shot_classifier(m, PerfectTok(), DIGITS, ["a {}", "the number {} here", "{}"], batch_size=7)
    assert W.shape == (10, 10)
    assert torch.allclose(W, torch.eye(10))  # every prompt of class c embeds at e_c


# --- encode, tasks, suites -----------------------------------------------------------------------------------------
def test_encode_contract():
    m = Perfect().train()
    enc = encode(m, digit_batches(40), max_samples=25, progress=False)
    assert enc["image_features"].shape == (25, 10) and enc["text_features"].dtype == torch.float32
    assert torch.allclose(enc["image_features"].norm(dim=-1), torch.ones(25))
    assert len(enc["meta"]) == len(enc["caption"]) == len(enc["id"]) == 25 and enc["id"][0] == "d/0"
    assert m.training  # mode restored
    with pytest.raises(ValueError, match="no samples"): encode(m, [], progress=False)


def test_perfect_model_end_to_end_100():
    df = evaluate(Perfect(), "digits", digit_batches(64), tokenizer=PerfectTok(), progress=False)
    assert list(df.columns) == ["task", "metric", "value"]
    assert set(df.value) == {1.0}
    assert list(df.task.unique()) == ["zeroshot/digit", "retrieval", "summary"]
    assert flat_results(df)["summary/mean_zeroshot_top1"] == 1.0


def test_unknown_names_list_the_valid_ones():
    with pytest.raises(ConfigError, match="Did you mean 'retrieval'") as e: make_task("retreival")
    assert all(repr(k) in str(e.value) for k in TASKS)
    with pytest.raises(ConfigError, match="group_keys"): make_task("retrieval", group_key=("digit",))
    with pytest.raises(ConfigError, match="Did you mean 'shapes'") as e: build_suite("shape", {})
    assert all(repr(k) in str(e.value) for k in SUITES)
    with pytest.raises(ConfigError, match="'shapes', 'digits'"):
        evaluate(Perfect(), "nope", digit_batches(4), tokenizer=PerfectTok(), progress=False)
    with pytest.raises(ValueError, match="name a suite"):
        evaluate(Perfect(), None, digit_batches(4), tokenizer=PerfectTok(), progress=False)


def test_task_errors_name_the_problem():
    enc = encode(Perfect(), digit_batches(20), progress=False)
    ctx = EvalContext(Perfect(), PerfectTok())
    with pytest.raises(ValueError, match="not among the classes"):
        run_tasks([ZeroShotTask("zs", "digit", DIGITS[:3], ["{}"])], enc, ctx)
    with pytest.raises(KeyError, match="no ground truth 'shape'"): run_tasks([RetrievalTask("r", ("shape",))], enc, ctx)
    with pytest.raises(ValueError, match="repeat"): run_tasks([RetrievalTask(), RetrievalTask()], enc, ctx)


# --- the real path: shards -> ImageTextLoader -> encode -> suite --------------------------------------------------
def test_evaluate_random_model_on_shapes(tmp_path):
    from aced_lab.models import create
    from aced_lab.synthetic import make_shapes
    torch.manual_seed(0)
    bundle = create("ACED-Tiny-32")
    man = make_shapes(tmp_path, n_train=50, n_eval=150, progress=False)
    df = evaluate(bundle, "shapes", man, batch_size=64, progress=False)
    assert df.attrs["n_samples"] == 150
    assert list(df.task.unique()) == ["zeroshot/shape", "zeroshot/colour", "zeroshot/position", "zeroshot/size",
                                      "retrieval", "summary"]
    assert sorted(df[df.task == "retrieval"].metric) == sorted(
        f"{d}_R@{k}" for d in ("image_to_text", "text_to_image") for k in (1, 5, 10))
    assert df.value.between(0, 1).all()
    top1 = df[df.metric == "top1"].set_index("task").value
    assert top1["zeroshot/shape"] <= 0.6 and top1["zeroshot/colour"] <= 0.6  # near chance (1/5, 1/7)
    assert df.value.iloc[-1] == pytest.approx(top1.mean())
    # the same eval split given as a shard spec with an explicit suite, capped: same structure
    df2 = evaluate(bundle, "shapes", man["eval"], batch_size=64, max_samples=40, progress=False)
    assert df2.attrs["n_samples"] == 40 and list(df2.task) == list(df.task)
    # the model is handed back in the mode it came in (the trainer evaluates mid-run)
    bundle.model.train()
    evaluate(bundle, "shapes", man, batch_size=64, max_samples=8, progress=False)
    assert bundle.model.training


def test_evaluate_random_model_on_digits(tmp_path):
    from aced_lab.models import create
    from aced_lab.synthetic import make_digits
    torch.manual_seed(0)
    man = make_digits(tmp_path, progress=False)
    df = evaluate(create("ACED-Tiny-32"), None, man, max_samples=120, progress=False)  # suite: the manifest's own
    assert df.attrs["n_samples"] == 120
    assert list(df.task.unique()) == ["zeroshot/digit", "retrieval", "summary"]
    top1 = df[(df.task == "zeroshot/digit") & (df.metric == "top1")].value.item()
    assert 0 <= top1 <= 0.5  # chance is 0.1

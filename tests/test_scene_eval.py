"Integration test of aced_lab.scene_eval: the 'scenes' suite, found by name through aced_lab.eval.evaluate."
import torch

from aced_lab.eval import evaluate
from aced_lab.models import create
from aced_lab.scenes import make_scenes


def test_scenes_suite_by_name(tmp_path):
    man = make_scenes(tmp_path / "scenes", n_train=10, n_eval=200, progress=False, num_workers=1)
    torch.manual_seed(0)
    df = evaluate(create("ACED-Tiny-32"), "scenes", man, batch_size=128, progress=False)
    assert list(df.columns) == ["task", "metric", "value"]
    assert list(df.task.unique()) == ["zeroshot/shape", "zeroshot/colour", "zeroshot/size", "zeroshot/position",
                                      "zeroshot/count", "pairwise/relation", "pairwise/binding", "retrieval", "summary"]
    assert set(df[df.task == "summary"].metric) == {"mean_zeroshot_top1", "mean_pairwise_accuracy"}
    assert set(df[df.task.str.startswith("pairwise")].metric) == {"accuracy"}
    assert len(df) == 14 and df.value.between(0, 1).all(), df  # top-5 only for colour (7 classes)

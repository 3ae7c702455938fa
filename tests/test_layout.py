"The package's structure: imports point down the flow, only entry points import the trainer, a run replays without it."
import ast, subprocess, sys
from pathlib import Path

PKG = Path(__file__).parent.parent / "aced_lab"
ENTRY_POINTS = {"cli", "teacher", "lit_decoder", "studies"}  # they train: the only modules that may import the trainer


def module_imports(path: Path, top_level_only: bool = True) -> set[str]:
    "The aced_lab modules a file imports (at module level, or anywhere)."
    tree = ast.parse(path.read_text())
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    out = set()
    for n in nodes:
        if isinstance(n, ast.ImportFrom) and n.module:
            mod = n.module if n.level == 0 else f"aced_lab.{n.module}"
            if mod.startswith("aced_lab."): out.add(mod.split(".")[1])
            elif mod == "aced_lab": out.update(a.name for a in n.names)
        elif isinstance(n, ast.Import):
            out.update(a.name.split(".")[1] for a in n.names if a.name.startswith("aced_lab."))
    return out


def graph(top_level_only=True) -> dict[str, set[str]]:
    mods = {p.stem: p for p in PKG.glob("*.py") if not p.stem.startswith("_")}
    return {m: module_imports(p, top_level_only) & set(mods) for m, p in mods.items()}


def test_no_import_cycles():
    g = graph()
    seen, done = set(), set()
    def visit(m, path):
        assert m not in seen or m in done, f"import cycle: {' -> '.join(path + [m])}"
        if m in done: return
        seen.add(m)
        for n in g[m]: visit(n, path + [m])
        done.add(m)
    for m in g: visit(m, [])


def test_only_entry_points_import_the_trainer():
    importers = {m for m, deps in graph(top_level_only=False).items() if "trainer" in deps}
    assert importers - ENTRY_POINTS <= {"live"}, importers  # live: only inside train_in_background
    top = {m for m, deps in graph().items() if "trainer" in deps}
    assert top <= ENTRY_POINTS, f"{top - ENTRY_POINTS} import the trainer at module level"
    for ground in ("samples", "shards", "scene_parts", "scenes", "scene_eval", "records", "callbacks", "acid", "reference_cache", "reference_health", "scoring_views", "bandits", "optima",
                   "config", "lit_model", "views", "rules", "wds_benchmarks"):
        assert "trainer" not in graph(top_level_only=False)[ground]


def third_party_imports(path: Path) -> set[str]:
    "The top-level packages a file imports (anywhere), relative imports left out."
    tree = ast.parse(path.read_text())
    names = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    return names | {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module and n.level == 0}


def test_bandits_are_pure_numpy():
    names = third_party_imports(PKG / "bandits.py")
    assert "torch" not in names and "numpy" in names, names


def test_views_have_no_widgets_and_no_torch():
    names = third_party_imports(PKG / "views.py")
    assert not names & {"ipywidgets", "torch"} and "numpy" in names, names


def test_dashboards_replay_a_run_without_the_trainer(tmp_path):
    from aced_lab.models import create, save_weights
    from aced_lab.trainer import train
    ref = save_weights(create("ACED-Tiny-64").model, tmp_path / "ref.safetensors")
    train({"method": "acid", "reference": str(ref), "reference_model": "ACED-Tiny-64", "reference_cache": None,
           "data_root": str(tmp_path / "data"), "n_train": 256, "n_eval": 64, "shard_size": 64, "eval_max_samples": 64,
           "batch_size": 16, "filter_ratio": 0.5, "steps": 2, "warmup": 1, "num_workers": 0, "ckpt_every": 0,
           "selection_every": 1, "tensorboard": False, "out_dir": str(tmp_path / "run")})
    code = ("import sys\nfrom aced_lab.dashboards import SelectionDashboard\n"
            f"d = SelectionDashboard.from_run({str(tmp_path / 'run')!r})\n"
            "assert [r['step'] for r in d.records] == [1, 2], d.records\n"
            "assert 'aced_lab.trainer' not in sys.modules\n"
            "print('replayed', len(d.records))")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0 and "replayed 2" in res.stdout, res.stderr[-3000:]

"Every notebook in nbs/ is a test: run each one through nbdev_test (default flags: no slow/gpu cells)."
import subprocess, sys
from pathlib import Path
import pytest

NBS = Path(__file__).parent.parent / "nbs"
notebooks = sorted(p.name for p in NBS.glob("*.ipynb") if not p.name.startswith(("_", ".")))

@pytest.mark.parametrize("nb", notebooks)
def test_notebook(nb):
    bindir = Path(sys.executable).parent
    res = subprocess.run([str(bindir / "nbdev_test"), "--path", str(NBS / nb), "--n_workers", "0"],
                         capture_output=True, text=True, cwd=NBS.parent)
    assert res.returncode == 0, f"nbdev_test failed for {nb}:\n{res.stdout[-6000:]}\n{res.stderr[-6000:]}"


@pytest.mark.parametrize("nb", notebooks)
def test_parameters_cell_is_tagged(nb):
    "A notebook run by papermill tags its parameters cell (else `-p` is silently overridden), and papermill can read each of them."
    import json
    cells = json.loads((NBS / nb).read_text())["cells"]
    params = [c for c in cells if c["cell_type"] == "code" and "_defined_above = set(globals())" in "".join(c["source"])]
    tagged = [c for c in cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert tagged == params, f"{nb}: the parameters cell must be the one tagged 'parameters' (papermill injects after it)"
    if params:  # papermill must read every parameter, or it warns "unknown parameter" on -p (e.g. a comment holding '=')
        import re
        from papermill.inspection import inspect_notebook
        names = set(re.findall(r"^([A-Za-z]\w*) *=", "".join(params[0]["source"]), re.M))
        read = {k for k in inspect_notebook(str(NBS / nb)) if not k.startswith("_")}
        assert read == names, f"{nb}: papermill cannot parse {sorted(names - read)}"

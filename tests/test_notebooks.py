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

"A built wheel installs into a clean environment and imports, with the shipped model configs inside."
import subprocess, sys, zipfile, venv
from pathlib import Path
import pytest

ROOT = Path(__file__).parent.parent

def test_wheel_builds_installs_and_imports(tmp_path):
    subprocess.run([sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(tmp_path / "dist")],
                   cwd=ROOT, check=True, capture_output=True)
    whl = next((tmp_path / "dist").glob("aced_lab-*.whl"))
    names = zipfile.ZipFile(whl).namelist()
    assert "aced_lab/model_configs/ACED-Tiny-32.json" in names and "aced_lab/models.py" in names
    assert any(n.startswith("aced_lab/teachers/scenes-") and n.endswith("/teacher.safetensors") for n in names)  # shipped teacher
    # a fresh venv that sees the already-installed dependencies (appended to its path, so its own
    # site-packages wins) but neither the source tree nor the editable install
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    py = env_dir / "bin" / "python"
    site = subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    deps = [p for p in sys.path if p.endswith("site-packages")]
    (Path(site) / "deps.pth").write_text("\n".join(deps) + "\n")
    subprocess.run([str(py), "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(whl)], check=True)
    code = ("import aced_lab, aced_lab.models as m; print(aced_lab.__file__); "
            "b = m.create('ACED-Tiny-32'); print('OK', aced_lab.__version__, b.image_size)")
    res = subprocess.run([str(py), "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-3000:]
    assert str(env_dir) in res.stdout and "OK 0.1.0 32" in res.stdout

"""The dashboards in a real browser: JupyterLab on loopback, Debian's Chromium driven by Playwright.

Opens a copy of nbs/explore.ipynb at tiny scale (IN_TEST), runs all cells, waits until the dashboards render and the
step counter advances while training runs, checks that the plots hold data, and saves screenshots under
$ACED_ARTIFACTS (default: tests/artifacts/). Needs the `chromium` apt package (`make test` installs it) and the
`playwright` Python package; Playwright's own browser download is not used.
"""
import json, os, re, secrets, shutil, socket, subprocess, sys, time, urllib.request
from pathlib import Path
import pytest

ROOT = Path(__file__).parent.parent
BIN = Path(sys.executable).parent
ARTIFACTS = Path(os.environ.get("ACED_ARTIFACTS", ROOT / "tests" / "artifacts"))
CHROMIUM = os.environ.get("CHROMIUM", shutil.which("chromium") or "/usr/bin/chromium")
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"]
STEP = re.compile(r"step (\d+) / (\d+)")
ACED_STEPS = 60

def free_port() -> int:
    with socket.socket() as s: s.bind(("127.0.0.1", 0)); return s.getsockname()[1]

@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    "JupyterLab on 127.0.0.1 serving a scratch folder with a copy of explore.ipynb; yields its base url and token."
    if not Path(CHROMIUM).exists():
        pytest.fail(f"Chromium not found at {CHROMIUM}: install Debian's package (apt-get install -y chromium); "
                    "`make test` does this before the tests when it runs as root")
    root = tmp_path_factory.mktemp("lab")
    # the notebook as papermill would run it, with more ACED steps than tiny's 20, so the counter has time to move
    subprocess.run([str(BIN / "papermill"), str(ROOT / "nbs" / "explore.ipynb"), str(root / "explore.ipynb"), "--prepare-only",
                    "-p", "aced_steps", str(ACED_STEPS)], check=True, capture_output=True)
    settings = root / "_settings" / "@jupyterlab" / "notebook-extension"
    settings.mkdir(parents=True)  # render every cell (no windowing), so all dashboards are in the page
    (settings / "tracker.jupyterlab-settings").write_text(json.dumps({"windowingMode": "none"}))
    news = root / "_settings" / "@jupyterlab" / "apputils-extension"
    news.mkdir(parents=True)  # no "get notified about news?" toast over the screenshots, no network
    (news / "notification.jupyterlab-settings").write_text(json.dumps({"fetchNews": "false", "checkForUpdates": False}))
    port, token = free_port(), secrets.token_hex(16)
    env = {**os.environ, "IN_TEST": "1", "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
           "JUPYTER_CONFIG_DIR": str(root / "_jupyter_config"), "JUPYTER_RUNTIME_DIR": str(root / "_runtime")}
    log = open(root / "_lab.log", "w")
    proc = subprocess.Popen([str(BIN / "jupyter"), "lab", "--no-browser", "--ServerApp.ip=127.0.0.1", f"--port={port}",
                             f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}", "--LabApp.expose_app_in_browser=True",
                             f"--LabApp.user_settings_dir={root / '_settings'}", f"--LabApp.workspaces_dir={root / '_workspaces'}",
                             "--ServerApp.port_retries=0", "--LabApp.extension_manager=readonly",
                             *(["--allow-root"] if hasattr(os, "geteuid") and os.geteuid() == 0 else [])], cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(120):
            if proc.poll() is not None: pytest.fail(f"jupyter lab exited:\n{(root / '_lab.log').read_text()[-3000:]}")
            try:
                urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=2); break
            except OSError: time.sleep(0.5)
        else: pytest.fail("jupyter lab did not start in 60 s")
        yield {"base": base, "token": token, "root": root}
    finally:
        proc.terminate()
        try: proc.wait(20)
        except subprocess.TimeoutExpired: proc.kill()
        log.close()
        if (root / "_lab.log").exists(): ARTIFACTS.mkdir(parents=True, exist_ok=True); shutil.copy(root / "_lab.log", ARTIFACTS / "jupyterlab.log")

def plot_data(page) -> list[list]:
    "For every plotly graph in the page: [trace name, number of points] for each of its traces, in order."
    return page.evaluate("""() => [...document.querySelectorAll('.js-plotly-plot')].map(
        gd => (gd.data || []).map((t, i) => [t.name || `trace ${i}`, (t.x || t.y || []).length]))""")

def test_explore_in_jupyterlab(lab):
    from playwright.sync_api import sync_playwright
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        page = browser.new_page(viewport={"width": 1500, "height": 1900})  # tall enough for a whole dashboard
        errors = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        try:
            page.goto(f"{lab['base']}/lab/tree/explore.ipynb?token={lab['token']}", timeout=60_000)
            page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=60_000)
            page.wait_for_function("() => window.jupyterapp && window.jupyterapp.shell.currentWidget && "
                                   "window.jupyterapp.shell.currentWidget.sessionContext && "
                                   "window.jupyterapp.shell.currentWidget.sessionContext.session && "
                                   "window.jupyterapp.shell.currentWidget.sessionContext.session.kernel", timeout=60_000)
            page.evaluate("() => { window.jupyterapp.commands.execute('notebook:run-all-cells'); }")  # don't await it

            # the selection dashboard renders, then its step counter advances while ACED trains
            t_run = time.time()
            counter = page.locator(".aced-step").first
            counter.wait_for(timeout=120_000)
            print(f"dashboard rendered {time.time() - t_run:.1f} s after run-all: {counter.inner_text()!r}")
            seen, t0 = [], time.time()
            while time.time() - t0 < 240:
                m = STEP.search(counter.inner_text())
                if m and (not seen or int(m[1]) != seen[-1]): seen.append(int(m[1]))
                if m and m[1] == m[2]: break
                time.sleep(0.1)
            print(f"steps seen {seen}, {time.time() - t_run:.1f} s after run-all")
            assert seen and seen[-1] == int(STEP.search(counter.inner_text())[2]), f"training did not finish: steps seen {seen}"
            assert len(seen) >= 3 and seen == sorted(seen), f"the step counter did not advance live: {seen}"
            page.locator(".jp-OutputArea-output:has(.aced-step)").first.screenshot(path=str(ARTIFACTS / "selection-live.png"))

            # then OPTIMA with the bandit dashboard, then the two replays; the last cell lists the HTML snapshots
            page.wait_for_function("() => document.querySelectorAll('.aced-step').length >= 4", timeout=240_000)
            page.wait_for_function("() => [...document.querySelectorAll('.jp-OutputArea-output')].some("
                                   "o => o.innerText.includes('optima/dashboards/bandit.html'))", timeout=240_000)
            texts = page.locator(".aced-step").all_inner_texts()
            assert all(STEP.search(t) and STEP.search(t)[1] == STEP.search(t)[2] for t in texts), texts
            time.sleep(1.0)  # let the last figure updates render

            data = plot_data(page)
            (ARTIFACTS / "plot_points.json").write_text(json.dumps(data, indent=1))
            # one plotly graph per dashboard: ACED live, OPTIMA live, and the two replays
            assert len(data) == 4, f"expected 4 dashboards' graphs, found {len(data)}"
            for traces in (data[0], data[2]):  # score histogram bars, the super-batch's points, the trends
                sel = {}
                for name, n in traces: sel.setdefault(name, n)  # the histogram's "selected"/"rejected" come first
                assert sel["selected"] > 0 and sel["rejected"] > 0, sel
                assert sum(n for k, n in sel.items() if " · " in k) > 0 and sel["trained on (every step)"] == ACED_STEPS, sel
            for traces in (data[1], data[3]):  # a posterior curve (200 points) per arm, pulls and P(best) of the 5 updates
                n = [k for _, k in traces]
                assert n.count(200) == 5 and n.count(5) == 10 and max(n) == 200, traces
            assert page.locator(".aced-gallery img").count() >= 12, "the gallery shows no thumbnails"
            assert page.locator(".aced-arms tr").count() >= 2, "the bandit's module table is empty"
            boxes = page.locator(".jp-OutputArea-output:has(.aced-step)")

            # the kernel is idle now: scrub the live selection dashboard back to its first record with the keyboard;
            # the kernel redraws, and the page shows step 5's super-batch
            first = boxes.nth(0)
            first.evaluate("e => e.scrollIntoView({block: 'start'})")
            handle = first.locator(".noUi-handle").first
            handle.focus(); page.keyboard.press("Home")
            page.wait_for_function("() => /^step 5\\b/.test(document.querySelector('.aced-record').innerText.trim())", timeout=30_000)
            time.sleep(0.5)
            boxes.nth(0).screenshot(path=str(ARTIFACTS / "selection-scrubbed.png"))
            handle.focus(); page.keyboard.press("End")
            for i, name in enumerate(["selection", "bandit", "selection-replay", "bandit-replay"]):
                boxes.nth(i).evaluate("e => e.scrollIntoView({block: 'start'})"); time.sleep(0.3)
                boxes.nth(i).screenshot(path=str(ARTIFACTS / f"{name}.png"))
            assert not [e for e in errors if "plotly" in e.lower() or "widget" in e.lower()], errors
        except Exception:
            page.screenshot(path=str(ARTIFACTS / "failure.png")); (ARTIFACTS / "failure.html").write_text(page.content()); raise
        finally:
            browser.close()

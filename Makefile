# Two commands do everything on a fresh machine: `make train` (the main job) and `make test` (all tests).
# Both create .venv and install the project with its dev extras on first use.
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
export PATH := $(abspath $(BIN)):$(PATH)
ARGS ?=

.PHONY: install train test readme export clean-nbs chromium
install: $(STAMP)
$(STAMP): settings.ini setup.py
	test -x $(BIN)/python || python3 -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -e ".[dev]"
	touch $(STAMP)

# the main job: papermill runs nbs/train.ipynb on the embedded default; ARGS='-p steps 100' overrides parameters
train: $(STAMP)
	mkdir -p runs
	papermill nbs/train.ipynb runs/train-output.ipynb --cwd . $(ARGS)

# all tests: every notebook through nbdev_test, plus the pytest integration tests in tests/
test: $(STAMP) chromium
	python -m pytest

# the browser test drives Debian's chromium (Playwright's own browser download does not work offline):
# installed here when this user can (root with apt-get), otherwise the one command to run is printed
CHROMIUM_HINT := the browser test needs Chromium: run 'sudo apt-get install -y chromium' (Debian/Ubuntu), then make test again
chromium:
	@command -v chromium >/dev/null || test -x "$${CHROMIUM:-/usr/bin/chromium}" || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "== installing Debian's chromium for the browser test"; \
	    (apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium) >/dev/null || { echo "$(CHROMIUM_HINT)"; exit 1; }; \
	  else echo "$(CHROMIUM_HINT)"; exit 1; fi; }

readme:
	jupyter nbconvert --to markdown nbs/index.ipynb --output-dir . --output README --log-level WARN

export:
	nbdev_export

# Two commands do all the set-up on a fresh machine:
#   make demo   build the Little Prince page (needs Stable Diffusion weights from the Hugging Face hub)
#   make test   run the test suite (offline, CPU only)
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# A pinned torch: on Linux PyPI serves a CUDA build of it; set TORCH to pick another build.
TORCH ?= torch==2.13.0
STORY ?= stories/little_prince.yaml

.PHONY: install browser demo preview lint test clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet $(TORCH)
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $@

demo: install
	$(BIN)/storyboard build $(STORY)

preview: install
	$(BIN)/storyboard build $(STORY) --renderer draft

# The browser tests open the built page in a real headless Chromium (Debian's package). As root with apt-get it is
# installed here; otherwise this says how, and those tests skip (under CI=true they fail instead).
browser:
	@if command -v chromium >/dev/null 2>&1 || [ -n "$$STORYBOARD_CHROMIUM" ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "Installing Debian's chromium for the browser tests..."; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	else \
		echo "chromium is not installed, so the browser tests will be skipped. Install it with:"; \
		echo "    sudo apt-get install chromium    (or set STORYBOARD_CHROMIUM to a Chrome/Chromium executable)"; \
	fi

# The layers of the package (import-linter's contracts in pyproject.toml) and ruff's checks.
lint: install
	$(BIN)/ruff check storyboard tests benchmarks
	$(BIN)/lint-imports

test: install browser lint
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest

clean:
	rm -rf build

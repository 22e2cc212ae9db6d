# Two commands do all the set-up on a fresh machine:
#   make demo   build the Little Prince page (needs Stable Diffusion weights from the Hugging Face hub)
#   make test   run the test suite (offline, CPU only)
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# A pinned torch: on Linux PyPI serves a CUDA build of it; set TORCH to pick another build.
TORCH ?= torch==2.13.0
STORY ?= stories/little_prince.yaml

.PHONY: install tools browser demo preview lint test clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet $(TORCH)
	$(BIN)/python -m pip install --quiet -e ".[dev,openvino]"
	touch $@

demo: install
	$(BIN)/storyboard build $(STORY)

preview: install
	$(BIN)/storyboard build $(STORY) --renderer draft

# Two tests need programs from Debian: the browser tests open the built page in a real headless Chromium, and the
# EPUB tests run epubcheck (with a Java runtime) on the e-books `storyboard export` writes. As root with apt-get they
# are installed here; otherwise this says how, and those tests skip (under CI=true they fail instead).
tools:
	@missing=""; \
	command -v chromium >/dev/null 2>&1 || [ -n "$$STORYBOARD_CHROMIUM" ] || missing="$$missing chromium"; \
	command -v epubcheck >/dev/null 2>&1 || missing="$$missing epubcheck"; \
	if [ -z "$$missing" ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "Installing Debian's$$missing for the browser and EPUB tests..."; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	else \
		echo "$$missing not installed, so their tests will be skipped. Install with:"; \
		echo "    sudo apt-get install$$missing    (or set STORYBOARD_CHROMIUM to a Chrome/Chromium executable)"; \
	fi

browser: tools

# The layers of the package (import-linter's contracts in pyproject.toml) and ruff's checks.
lint: install
	$(BIN)/ruff check storyboard tests benchmarks
	$(BIN)/lint-imports

test: install tools lint
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest

clean:
	rm -rf build

# Two commands do all the set-up on a fresh machine:
#   make demo   build the Little Prince page (needs Stable Diffusion weights from the Hugging Face hub)
#   make test   run the test suite (offline, CPU only)
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# A pinned torch: on Linux PyPI serves a CUDA build of it; set TORCH to pick another build.
TORCH ?= torch==2.13.0
STORY ?= stories/little_prince.yaml

.PHONY: install demo preview test clean

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

test: install
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest

clean:
	rm -rf build

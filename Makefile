# Two entry points for a fresh machine: `make demo` and `make test`. `make setup` is idempotent.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
# A CPU build of torch pinned first: an unpinned torch makes pip fetch a multi-GB CUDA build.
TORCH_SPEC ?= torch==2.13.0
FASHION_MNIST := /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz
RUN_DIR ?= runs/quickstart-vision

.PHONY: setup demo demo-text test test-all lint clean

setup: $(VENV)/.edgetl-setup $(FASHION_MNIST)

$(VENV)/.edgetl-setup: pyproject.toml requirements/assets.txt
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q "$(TORCH_SPEC)"
	$(BIN)/python -m pip install -q -e ".[all]"
	$(BIN)/python -m pip install -q --no-deps -r requirements/assets.txt
	touch $@

$(FASHION_MNIST):
	@if [ "$$(id -u)" = "0" ]; then \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist >/dev/null); \
	else \
		echo "Fashion-MNIST is missing: run 'sudo apt-get install -y dataset-fashion-mnist' (Debian package; files land in /usr/share/datasets/fashion-mnist/)."; \
		exit 2; \
	fi

demo: setup
	$(BIN)/edgetl compress recipes/quickstart-vision.yaml --out $(RUN_DIR)

demo-text: setup
	$(BIN)/edgetl compress recipes/quickstart-text.yaml --out runs/quickstart-text

test: setup
	$(BIN)/python -m pytest -q 

test-all: setup
	$(BIN)/python -m pytest -q

lint: setup
	$(BIN)/ruff check edgetl tests benchmarks

clean:
	rm -rf $(VENV) runs .pytest_cache

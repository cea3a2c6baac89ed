# Two commands set everything up on a fresh clone (README "Quick start"):
#   make demo   - install, train a tiny model briefly, evaluate it, draw its prior, run the live demo
#   make test   - install, check formatting, lint and the import layers, run the test suite (pytest,
#                 which also builds and runs the plugin's CTest)
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin
OUT ?= out

.PHONY: setup demo lint test clean

setup: $(VENV)/.installed

# torch is installed first and pinned: an unpinned torch would pull the CUDA build.
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e ".[train,convert,coreml,dev]"
	touch $@

demo: setup
	$(BIN)/ppl-edge train --preset tiny --config configs/cpu.yaml --data synthetic:humanoid --steps 300 --out $(OUT)/tiny
	$(BIN)/ppl-edge eval --checkpoint $(OUT)/tiny/latest.safetensors --data synthetic:humanoid --n-fit 500 --n-test 200 --iterations 2 --out $(OUT)/tiny/eval
	$(BIN)/ppl-edge prior --checkpoint $(OUT)/tiny/latest.safetensors --run $(OUT)/tiny --out $(OUT)/tiny/prior
	$(BIN)/ppl-edge demo --out $(OUT)/demo

CXX_SOURCES := $(wildcard convert/plugins/*/*.cpp convert/plugins/*/*.h convert/plugins/*/*.cu \
	convert/plugins/*/*.cuh samples/cpp_trt/*.cpp)

# Formatting, lint and the one-way import structure (docs/contracts.md, "Layers").
lint: setup
	$(BIN)/ruff format --check --quiet .
	$(BIN)/ruff check --quiet .
	$(BIN)/clang-format --dry-run -Werror $(CXX_SOURCES)
	$(BIN)/python -m ppl_edge.structure

test: lint
	$(BIN)/python -m pytest -q

clean:
	rm -rf $(OUT) build

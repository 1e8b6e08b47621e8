PY ?= .venv/bin/python
SEEDS ?= 3
WORLDS ?= 200

.PHONY: bench
bench:  ## all planners x shipped scenarios x seeds, then WORLDS generated worlds -> artifacts/bench/
	$(PY) benchmarks/run_bench.py --seeds $(SEEDS) --worlds $(WORLDS)

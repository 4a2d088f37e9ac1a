import os

import pytest
import torch
from hypothesis import settings

# derandomized: the suite passes or fails the same way every run (HYPOTHESIS_PROFILE=explore
# searches with fresh random examples, for finding new counterexamples locally)
settings.register_profile("ci", max_examples=60, deadline=None, derandomize=True)
settings.register_profile("explore", max_examples=500, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

# Under pytest-xdist each worker gets its share of the cores: torch's default (every core per
# process) oversubscribes the machine when the workers run side by side.
_WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
if _WORKERS > 1:
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // _WORKERS))


@pytest.fixture(autouse=True)
def _deterministic():
    torch.manual_seed(0)
    yield


@pytest.fixture(scope="session")
def digits():
    from isospike.data import load_digits

    return load_digits(seed=0)


@pytest.fixture(scope="session")
def trained_digits_cnn(digits):
    """A SmallCNN trained on digits (a few seconds), shared by the conversion tests."""
    from isospike.models import SmallCNN
    from isospike.train import fit_classifier

    torch.manual_seed(0)
    model = SmallCNN(input_size=8)
    fit_classifier(model, digits.train, epochs=20, seed=0, progress=False)
    return model

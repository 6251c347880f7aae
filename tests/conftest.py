import os

import pytest

# Keep unit tests deterministic and light on a 2-core machine.
os.environ.setdefault("TVQ_CACHE_DIR", os.path.join(os.path.dirname(__file__), "..", ".cache", "test-cache"))


@pytest.fixture(autouse=True)
def _seed_torch():
    try:
        import torch
    except ImportError:  # pragma: no cover
        yield
        return
    torch.manual_seed(0)
    yield

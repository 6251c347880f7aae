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
    # Tiny tensors gain nothing from a second thread and lose a lot when the cores are shared.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)

"""Shared fixtures. Tests may read ../shared (read-only reference data) and skip without it."""
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared"

# One thread: the suite's tensors are tiny, and on 2 shared cores a second thread made small
# convolutions 4-5x slower (thread hand-off dominates), measured on test_autoencoder.
torch.set_num_threads(1)


@pytest.fixture
def shared_data():
    """``../shared/data``; the test is skipped when the folder is absent."""
    path = SHARED / "data"
    if not path.is_dir():
        pytest.skip("../shared/data is not present")
    return path

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


@pytest.fixture(autouse=True)
def no_photo_pool(tmp_path_factory, monkeypatch):
    """Training sources see no photo pool, whether or not this machine has fetched one, so that
    tests give the same data everywhere; pool tests point ``pool_dir`` at a pool they build."""
    from deblurdiff.blur import photos

    empty = tmp_path_factory.mktemp("no-photo-pool")
    monkeypatch.setattr(photos, "pool_dir", lambda: empty)
    return empty

import os
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parent.parent


def data_root() -> Path:
    """Shared data sets: $NEUROFLOW_DATA, else ../shared/datasets beside the repo."""
    env = os.environ.get("NEUROFLOW_DATA")
    return Path(env) if env else REPO.parent / "shared" / "datasets"


@pytest.fixture
def rng(request) -> np.random.Generator:
    """Fresh random inputs each run; the seed is printed on failure so it can be replayed
    with NEUROFLOW_TEST_SEED=<seed>."""
    given = os.environ.get("NEUROFLOW_TEST_SEED")
    seed = int(given) if given else int.from_bytes(os.urandom(4), "little")
    request.node.user_properties.append(("seed", seed))
    print(f"rng seed {seed}")
    return np.random.default_rng(seed)


@pytest.fixture(scope="session")
def avatars_dir() -> Path:
    root = data_root() / "avatars"
    if not (root / "glasses").is_dir() or not (root / "noglasses").is_dir():
        pytest.skip(f"avatars not found at {root} (set NEUROFLOW_DATA to the shared datasets folder)")
    return root

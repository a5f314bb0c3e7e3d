"Shared fixtures: tiny image folders made on the fly, and the real ImageWoof sample when ../shared/data exists."
import os
# OpenMP threads that spin while waiting make torch 10-100x slower when another process shares the 2 cores
os.environ.setdefault('OMP_WAIT_POLICY', 'PASSIVE')
from pathlib import Path
import numpy as np, pytest, torch
from PIL import Image

torch.set_num_threads(2)
SHARED = Path(__file__).resolve().parents[1].parent/'shared'/'data'/'imagewoof2-160'

def make_image_folder(path, classes=('n02086240', 'n02087394', 'n02088364'), n_train=4, n_valid=2, size=40, seed=0):
    "A folder laid out like fastai's imagenette/imagewoof archives, with random JPEGs"
    rng = np.random.default_rng(seed)
    for split,n in (('train', n_train), ('val', n_valid)):
        for i,c in enumerate(classes):
            d = Path(path)/split/c
            d.mkdir(parents=True, exist_ok=True)
            for j in range(n):
                a = rng.integers(0, 255, (size, size + 8*j, 3), dtype=np.uint8)
                a[..., i % 3] = 255  # a colour per class, so there is something to learn
                Image.fromarray(a).save(d/f'{c}_{j}.JPEG')
    return Path(path)

@pytest.fixture(scope='session')
def tiny_folder(tmp_path_factory): return make_image_folder(tmp_path_factory.mktemp('tiny'))

@pytest.fixture(scope='session')
def woof_sample(tmp_path_factory):
    "A handful of real ImageWoof images (3 per class and split), linked from ../shared/data"
    if not SHARED.exists(): pytest.skip(f'real ImageWoof images not found at {SHARED}')
    dest = tmp_path_factory.mktemp('woof')
    for split,n in (('train', 3), ('val', 1)):
        for d in sorted((SHARED/split).iterdir()):
            (dest/split/d.name).mkdir(parents=True)
            for f in sorted(d.iterdir())[:n]: (dest/split/d.name/f.name).symlink_to(f)
    return dest

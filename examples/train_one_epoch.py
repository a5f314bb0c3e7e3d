"""Train fastmix's default MixNet for one epoch on an image folder and export it.

The folder: train/ and valid/ (or val/) folders of class folders, a folder of class folders (20% held out), or a copy
of ImageWoof/Imagenette. `python train_one_epoch.py my_images/` then `load_learner('model.pkl').predict('cat.jpg')`.
The same with the command line, several runs, checkpoints and resume: `fastmix-train --data my_images/ --runs 5`.
"""
import sys
from pathlib import Path
from fastai.vision.all import *
from fastmix.all import *

path = Path(sys.argv[1] if len(sys.argv) > 1 else '../shared/data/imagewoof2-160')
dls = folder_dls(path, size=128, bs=64)
print(f"{dls.layout} folder: {len(dls.train_ds)} training and {len(dls.valid_ds)} validation images of {len(dls.vocab)} classes")
learn = fastmix_learner(dls)  # `default_arch()`: MixNet-M
learn.fit_flat_cos(1, 4e-3)
learn.export(Path('model.pkl').absolute())

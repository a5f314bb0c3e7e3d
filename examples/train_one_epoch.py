"Train MixNet-S for one epoch on a local ImageWoof folder (train/ and val/ with WordNet-id folders)."
import sys
from fastai.vision.all import *
from fastmix.all import *

path = Path(sys.argv[1] if len(sys.argv) > 1 else '../shared/data/imagewoof2-160')
dls = ImageDataLoaders.from_folder(path, train='train', valid='val', item_tfms=RandomResizedCrop(128, min_scale=0.35),
                                   batch_tfms=[Flip(), Normalize.from_stats(*imagenet_stats)], bs=64)
learn = mixnet_learner(dls, 'mixnet_s')
learn.fit_flat_cos(1, 4e-3)

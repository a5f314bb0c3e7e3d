import pytest, torch
from torch import nn
from fastai.vision.all import ImageDataLoaders, Resize, Normalize, imagenet_stats, load_learner, Optimizer
from fastcore.test import test_eq as teq, test_fail as tfail
from fastmix.learner import mixnet_learner, fastmix_learner

def folder_dls(path, size=32, bs=4):
    return ImageDataLoaders.from_folder(path, train='train', valid='val', item_tfms=Resize(size), bs=bs, num_workers=0,
                                        batch_tfms=Normalize.from_stats(*imagenet_stats))

@pytest.fixture(scope='module')
def trained(tiny_folder):
    learn = mixnet_learner(folder_dls(tiny_folder), 'mixnet_s')
    learn.fit_flat_cos(1, 1e-3)
    return learn

def test_fits_one_epoch(trained):
    teq(len(trained.recorder.values), 1)
    teq(trained.model[1][-1].out_features, 3)
    assert isinstance(trained.opt, Optimizer)

def test_export_load_predict(trained, tiny_folder, tmp_path):
    trained.export(tmp_path/'export.pkl')
    learn = load_learner(tmp_path/'export.pkl')
    f = next((tiny_folder/'val').rglob('*.JPEG'))
    label,idx,probs = learn.predict(f)
    assert label in trained.dls.vocab
    teq(probs.shape, (3,))

def test_freeze_splits_body_head(tiny_folder):
    learn = mixnet_learner(folder_dls(tiny_folder), 'mixnet_s')
    teq(len(learn.opt.param_groups) if learn.opt else len(learn.splitter(learn.model)), 2)
    learn.freeze()
    assert not any(p.requires_grad for p in learn.model[0].parameters() if p.ndim > 1)
    assert all(p.requires_grad for p in learn.model[1].parameters())

def test_kwargs_routing(tiny_folder):
    learn = fastmix_learner(folder_dls(tiny_folder), 'mixnet_s', act_cls=nn.Mish, p=0.3, wd=0.05, n_out=5)
    teq(learn.wd, 0.05)
    teq(learn.model[1][2].p, 0.3)
    teq(learn.model[1][-1].out_features, 5)
    assert not any(isinstance(m, (nn.ReLU, nn.SiLU)) for m in learn.model.modules())

def test_bad_arch(tiny_folder): tfail(lambda: mixnet_learner(folder_dls(tiny_folder), 'mixnet_q'), contains='Known architectures')

def test_no_fastai_name_shadowed():
    import fastai.vision.all as fva, fastmix.all as fma
    teq([n for n in fma.__all__ if hasattr(fva, n) and getattr(fva, n) is not getattr(fma, n)], [])

def test_version_from_settings():
    import fastmix, configparser
    from pathlib import Path
    cfg = configparser.ConfigParser(); cfg.read(Path(__file__).parents[1]/'settings.ini')
    teq(fastmix.__version__, cfg['DEFAULT']['version'])

def test_channels_last_default_and_recompute(tiny_folder):
    from fastai.callback.channelslast import ChannelsLast
    learn = fastmix_learner(folder_dls(tiny_folder), 'mixnet_s', recompute=True)
    assert any(isinstance(cb, ChannelsLast) for cb in learn.cbs)
    assert learn.model[0][1][0].recompute
    learn.fit(1, 1e-3)
    assert learn.model[0][0][0].weight.is_contiguous(memory_format=torch.channels_last)
    assert not any(isinstance(cb, ChannelsLast) for cb in fastmix_learner(folder_dls(tiny_folder), 'mixnet_s', channels_last=False).cbs)

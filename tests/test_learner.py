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
    "Only torchvision's EfficientNets, which fastai re-exports, share a name with fastmix's registered builders"
    import fastai.vision.all as fva, fastmix.all as fma
    from fastmix.models import list_archs
    clash = [n for n in fma.__all__ if hasattr(fva, n) and getattr(fva, n) is not getattr(fma, n)]
    teq(clash, [f'efficientnet_b{i}' for i in range(6)])
    assert all(getattr(fva, n).__module__.startswith('torchvision.') and n in list_archs() for n in clash)

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

def test_model_sees_plain_tensors_and_results_still_decode(trained):
    import matplotlib; matplotlib.use('Agg')
    from fastai.vision.all import TensorImage, ClassificationInterpretation
    from fastmix.learner import plain_inputs
    seen = []
    h = trained.model[0][0].register_forward_pre_hook(lambda m, args: seen.append(type(args[0])))
    inp, preds, targs = trained.get_preds(with_input=True)
    h.remove()
    teq(set(seen), {torch.Tensor})
    teq(type(inp), TensorImage)  # the batch keeps its type, so it decodes for show_results
    trained.show_results(max_n=2)
    teq(ClassificationInterpretation.from_learner(trained).confusion_matrix().sum(), len(trained.dls.valid_ds))
    assert plain_inputs in trained.model._forward_pre_hooks.values()

def seeded_fit(path, n_epoch, **kwargs):
    "A MixNet-S learner without dropout, made and fitted after `set_seed(0)`, and its starting weights"
    from fastai.vision.all import set_seed
    set_seed(0)  # fastai's DataLoader seeds its shuffling when it is made
    learn = mixnet_learner(folder_dls(path), 'mixnet_s', p=0., **kwargs)
    start = {k: v.clone() for k,v in learn.model.state_dict().items()}
    with learn.no_bar(), learn.no_logging(): learn.fit(n_epoch, 1e-2)
    return learn, start

def test_ranger_by_default_same_steps_as_fastai(tiny_folder):
    from fastai.vision.all import ranger
    from fastmix.optimizer import Ranger
    (ours, start), (theirs, start2) = seeded_fit(tiny_folder, 2), seeded_fit(tiny_folder, 2, opt_func=ranger)
    teq(type(ours.opt), Ranger)
    for k in start: teq(start[k], start2[k])
    sd, sd2 = ours.model.state_dict(), theirs.model.state_dict()
    moved = max((sd[k] - start[k]).abs().max() for k in start if sd[k].is_floating_point())
    gap = max((sd[k] - sd2[k]).abs().max() for k in start if sd[k].is_floating_point())
    assert gap < 1e-3 and moved > 0.1, (gap, moved)  # rounding only: a different step (or batch order) gives > 0.05

def test_recipe_dropout_and_gc_reach_model_and_optimizer(tiny_folder, monkeypatch):
    import dataclasses, fastmix.learner as fl
    dls = folder_dls(tiny_folder)
    monkeypatch.setitem(fl.recipes, 'mixnet', dataclasses.replace(fl.recipes['mixnet'], p=0.37, gc=True))
    learn = mixnet_learner(dls, 'mixnet_s')
    learn.create_opt()
    teq((learn.model[1][2].p, learn.opt.gc), (0.37, True))
    learn = mixnet_learner(dls, 'mixnet_s', p=0.1)  # what is passed wins
    teq(learn.model[1][2].p, 0.1)
    monkeypatch.setitem(fl.recipes, 'mixnet', dataclasses.replace(fl.recipes['mixnet'], p=None, gc=False))
    learn = mixnet_learner(dls, 'mixnet_s'); learn.create_opt()
    teq((learn.model[1][2].p, learn.opt.gc), (0.2, False))  # None keeps MixNet-S's own dropout

def test_recipe_bn_zero_reaches_model(tiny_folder, monkeypatch):
    import dataclasses, fastmix.learner as fl
    from fastmix.models import residual_bns
    dls = folder_dls(tiny_folder)
    zero = residual_bns(mixnet_learner(dls, 'mixnet_s').model)
    assert zero and all(not b.weight.any() for b in zero)  # the shipped recipe: residual branches start at zero
    monkeypatch.setitem(fl.recipes, 'mixnet', dataclasses.replace(fl.recipes['mixnet'], bn_zero=False))
    teq(residual_bns(mixnet_learner(dls, 'mixnet_s').model), [])
    teq(len(residual_bns(mixnet_learner(dls, 'mixnet_s', bn_zero=True).model)), len(zero))  # what is passed wins

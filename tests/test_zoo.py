"Every registered architecture: builds, honours n_out, trains a step, swaps its activation, exports with a learner."
import pytest, torch
from torch import nn
from fastcore.test import test_eq as teq, test_fail as tfail
from fastai.vision.all import ImageDataLoaders, Resize, load_learner
from fastmix.all import list_archs, arch_info, create_model, fastmix_learner, act_counts, count_params

ARCHS = list_archs()
FAMILIES = {'mixnet', 'efficientnet', 'res2net', 'mxresnet', 'scarlet'}

def test_registry_complete():
    expected = ['mixnet_s', 'mixnet_m', 'mixnet_l', *[f'efficientnet_b{i}' for i in range(6)], 'res2net50',
                'mxresnet18', 'mxresnet34', 'mxresnet50', 'scarlet_a', 'scarlet_b', 'scarlet_c']
    teq(sorted(ARCHS), sorted(expected))
    teq({arch_info(a).family for a in ARCHS}, FAMILIES)

@pytest.fixture(scope='module', params=ARCHS)
def built(request):
    torch.manual_seed(0)
    return request.param, create_model(request.param, n_out=3)

def test_n_out_forward_backward(built):
    arch,m = built
    m.train()
    y = m(torch.randn(2, 3, 64, 64))
    teq(y.shape, (2, 3))
    y.logsumexp(1).sum().backward()
    grads = [p.grad for p in m.parameters()]
    assert all(g is not None for g in grads), f'{arch}: parameters without gradient'
    m.zero_grad()

def test_body_head_layout(built):
    arch,m = built
    teq(len(m), 2)
    teq(type(m[1][-1]), nn.Linear)
    teq(m[1][-1].out_features, 3)

@pytest.mark.parametrize('arch', ARCHS)
def test_act_cls_leaves_no_old_activation(arch):
    m = create_model(arch, n_out=3, act_cls=nn.Mish)
    teq(set(act_counts(m)), {'Mish'})
    gates = [g for n,g in m.named_modules() if n.endswith('gate')]
    teq(bool(gates), arch_info(arch).family in ('mixnet', 'efficientnet', 'scarlet'))  # SE gates exactly where SE is
    assert all(isinstance(g, (nn.Sigmoid, nn.Hardsigmoid)) for g in gates)  # gates kept
    m(torch.randn(2, 3, 32, 32)).sum().backward()

@pytest.mark.parametrize('arch', ARCHS)
def test_published_activation_kept(arch):
    counts = act_counts(create_model(arch))
    expect = dict(mixnet={'ReLU', 'SiLU'}, efficientnet={'SiLU'}, res2net={'ReLU'}, mxresnet={'Mish'},
                  scarlet={'ReLU6', 'Hardswish', 'ReLU'})[arch_info(arch).family]
    teq(set(counts), expect)

@pytest.fixture(scope='module')
def tiny_dls(tiny_folder):
    return ImageDataLoaders.from_folder(tiny_folder, train='train', valid='val', item_tfms=Resize(32), bs=4, num_workers=0)

@pytest.mark.parametrize('arch', ARCHS)
def test_export_load_predict(arch, tiny_dls, tiny_folder, tmp_path):
    learn = fastmix_learner(tiny_dls, arch)
    learn.export(tmp_path/'l.pkl')
    learn2 = load_learner(tmp_path/'l.pkl')
    teq(count_params(learn2.model), count_params(learn.model))
    label,_,probs = learn2.predict(next((tiny_folder/'val').rglob('*.JPEG')))
    assert label in tiny_dls.vocab and probs.shape == (3,)

def test_pretrained_without_weights():
    tfail(lambda: create_model('mxresnet18', pretrained=True), contains='no ImageNet weights in timm')
    tfail(lambda: create_model('scarlet_a', pretrained=True), contains='pretrained=False')

def test_fresh_net_passes_signal(built):
    "At init (train mode, as in the first step) images give different outputs: only residual branches start at zero"
    arch,m = built
    m.train()
    x = torch.randn(4, 3, 64, 64) * torch.tensor([1., .2, 3., .5]).view(4, 1, 1, 1)
    with torch.no_grad(): y = m(x)
    assert (y - y.mean(0)).abs().max() > 1e-3, f'{arch}: the untrained net gives every image the same output'

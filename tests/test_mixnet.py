import pytest, torch, timm
from torch import nn
from fastcore.test import test_eq as teq, test_fail as tfail
from fastmix.models import *
from fastmix.layers import SqueezeExcite

MIXNETS = list_archs('mixnet')
PAPER_PARAMS = {'mixnet_s': 4.1, 'mixnet_m': 5.0, 'mixnet_l': 7.3}  # Tan & Le 2019, Table 3 (millions)

@pytest.fixture(scope='module', params=MIXNETS)
def pair(request):
    "A fastmix MixNet with the weights of timm's, both in eval mode"
    tm = timm.create_model(request.param).eval()
    return request.param, load_timm_weights(create_model(request.param), tm.state_dict()).eval(), tm

def test_registry_has_mixnets(): teq(MIXNETS, ['mixnet_s', 'mixnet_m', 'mixnet_l'])

def test_param_counts(pair):
    arch,fm,tm = pair
    teq(count_params(fm), count_params(tm))
    assert abs(count_params(fm)/1e6 - PAPER_PARAMS[arch]) < 0.05

def test_madds_match_timm(pair):
    arch,fm,tm = pair
    teq(count_madds(fm, 64), count_madds(tm, 64))

def test_timm_weights_equal_outputs(pair):
    arch,fm,tm = pair
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad(): assert (fm(x) - tm(x)).abs().max() < 1e-5

def test_load_from_path(tmp_path):
    tm = timm.create_model('mixnet_s').eval()
    torch.save(tm.state_dict(), tmp_path/'w.pth')
    fm = load_timm_weights(mixnet_s(), tmp_path/'w.pth').eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad(): assert (fm(x) - tm(x)).abs().max() < 1e-5

def test_load_other_head_keeps_body():
    tm = timm.create_model('mixnet_s').eval()
    fm = load_timm_weights(mixnet_s(n_out=10), tm.state_dict()).eval()
    teq(fm[1][-1].out_features, 10)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad(): assert torch.allclose(fm[0](x).mean((2, 3)), tm.forward_head(tm.forward_features(x), pre_logits=True), atol=1e-5)

def test_load_wrong_arch_fails():
    tfail(lambda: load_timm_weights(mixnet_s(), timm.create_model('mixnet_m').state_dict()), contains='line up')
    tfail(lambda: load_timm_weights(mixnet_s(), 'no/such/file.pth'), contains='no/such/file.pth')

@pytest.mark.parametrize('arch', MIXNETS)
def test_act_cls_replaces_all(arch):
    m = create_model(arch, n_out=7, act_cls=nn.Mish)
    acts = [type(a) for a in m.modules() if isinstance(a, (nn.ReLU, nn.SiLU, nn.Mish, nn.ReLU6, nn.Hardswish))]
    assert acts and set(acts) == {nn.Mish}
    # the SE gates are untouched
    assert all(isinstance(se.gate, nn.Sigmoid) for se in m.modules() if isinstance(se, SqueezeExcite))
    y = m(torch.randn(2, 3, 32, 32))
    teq(y.shape, (2, 7))
    y.sum().backward()

def test_paper_activations():
    "act_cls=None keeps the paper's ReLU early and Swish later (MixNet-S: 1 stem + ds + 2 blocks of ReLU)"
    m = mixnet_s()
    teq(type(m[0][1][0].dw[2]), nn.ReLU)   # first stage (after the stem): ReLU
    teq(type(m[0][3][0].dw[2]), nn.SiLU)   # third stage (40 channels): Swish

def test_unknown_arch():
    tfail(lambda: create_model('mixnet_ss'), contains="Did you mean 'mixnet_s'")
    tfail(lambda: arch_info('resnet'), contains='mixnet_m')

import pytest, torch
from torch import nn
from fastcore.test import test_eq as teq, test_fail as tfail
from fastmix.layers import *

@pytest.mark.parametrize('c,g', [(16, 1), (24, 2), (30, 4), (200, 3), (264, 5), (7, 7)])
def test_split_channels(c, g):
    s = split_channels(c, g)
    teq(sum(s), c)
    teq(len(s), g)
    assert all(x == c // g for x in s[1:]) and s[0] == c // g + c % g

def test_split_channels_bad(): tfail(lambda: split_channels(3, 4), contains='groups')

@pytest.mark.parametrize('stride', [1, 2])
@pytest.mark.parametrize('ks', [(3,), (3, 5), (3, 5, 7, 9), (3, 5, 7, 9, 11)])
def test_mixconv_shapes(ks, stride):
    mc = MixConv(40, ks, stride=stride)
    teq(mc(torch.randn(2, 40, 15, 15)).shape, (2, 40, 8 if stride == 2 else 15, 8 if stride == 2 else 15))
    teq([c.kernel_size[0] for c in mc.convs], list(ks))
    teq([c.groups for c in mc.convs], split_channels(40, len(ks)))  # depthwise: one filter per channel

def test_mixconv_each_group_uses_its_kernel():
    "An impulse in each group spreads exactly over that group's kernel footprint, and only in its own channel"
    ks = (3, 5, 7, 9)
    mc = MixConv(8, ks)
    for c in mc.convs: nn.init.constant_(c.weight, 1.)
    splits = split_channels(8, len(ks))
    start = 0
    for k,n in zip(ks, splits):
        x = torch.zeros(1, 8, 13, 13); x[0, start, 6, 6] = 1.
        y = mc(x)
        teq((y[0, start] != 0).sum().item(), k*k)
        teq((y.abs().sum((2, 3))[0] != 0).nonzero().flatten().tolist(), [start])
        start += n

def test_mixconv_matches_per_group_conv():
    "The output of each group equals a separate depthwise conv of that group's channels"
    mc = MixConv(10, (3, 5)).eval()
    x = torch.randn(1, 10, 9, 9)
    y = mc(x)
    a,b = split_channels(10, 2)
    ref0 = nn.functional.conv2d(x[:, :a], mc.convs[0].weight, padding=1, groups=a)
    ref1 = nn.functional.conv2d(x[:, a:], mc.convs[1].weight, padding=2, groups=b)
    assert torch.allclose(y, torch.cat([ref0, ref1], 1), atol=1e-6)

def test_grouped_1x1():
    gc = GroupedConv1x1(25, 60, groups=2)
    teq(gc.in_splits, [13, 12]); teq(gc.out_splits, [30, 30])
    x = torch.randn(2, 25, 4, 4)
    y = gc(x)
    teq(y.shape, (2, 60, 4, 4))
    # the second group's outputs do not depend on the first group's inputs
    x2 = x.clone(); x2[:, :13] += 1
    assert torch.equal(gc(x2)[:, 30:], y[:, 30:])

def test_conv_bn_depthwise_check(): tfail(lambda: conv_bn(8, 16, [3, 5]), contains='depthwise')

@pytest.mark.parametrize('ni,nf,bias', [(24, 144, False), (240, 40, True)])
def test_grouped_1x1_one_conv_equals_split(ni, nf, bias):
    "Equal groups run as one grouped conv: the same as the per-group convs, and the same parameters"
    gc = GroupedConv1x1(ni, nf, groups=2, bias=bias)
    assert gc.equal
    x = torch.randn(2, ni, 5, 5).to(memory_format=torch.channels_last)
    ref = torch.cat([c(xi) for c, xi in zip(gc.convs, x.split(gc.in_splits, 1))], 1)
    assert torch.allclose(gc(x), ref, atol=1e-5)
    teq(len(list(gc.parameters())), 4 if bias else 2)
    gc(x).sum().backward()
    assert all(c.weight.grad is not None for c in gc.convs)

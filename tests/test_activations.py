"Tests of fastmix.activations: MishMe/SwishMe against torch, what autograd keeps, swap_act on fastmix/timm/fastai nets"
import io, pickle
from collections import Counter
import pytest, torch, timm
from torch import nn
from fastcore.test import test_eq as teq, test_close as tclose
import timm.layers.activations as ta, timm.layers.activations_me as tme
from fastmix.activations import MishMe, SwishMe, swap_act, act_counts, act_types, saved_bytes, _MishFn, _SwishFn

pairs = [(MishMe, nn.Mish), (SwishMe, nn.SiLU)]
ids = ['mish', 'swish']

def fwd_grad(act, x, dy):
    x = x.detach().clone().requires_grad_()
    y = act(x)
    y.backward(dy)
    return y.detach(), x.grad

@pytest.fixture
def xdy():
    g = torch.Generator().manual_seed(0)
    return torch.randn(2048, generator=g) * 3, torch.randn(2048, generator=g)

@pytest.mark.parametrize('me,ref', pairs, ids=ids)
def test_float32_matches_torch(me, ref, xdy):
    (y, g), (y0, g0) = fwd_grad(me(), *xdy), fwd_grad(ref(), *xdy)
    teq(y, y0)
    tclose(g, g0, eps=1e-6)

@pytest.mark.parametrize('me,ref', pairs, ids=ids)
def test_float32_extremes(me, ref):
    "Large |x| (softplus threshold, saturated sigmoid) stays finite and close to torch"
    x = torch.tensor([-1e4, -100., -30., -20., -1e-8, 0., 1e-8, 20., 30., 100., 1e4])
    (y, g), (y0, g0) = fwd_grad(me(), x, torch.ones_like(x)), fwd_grad(ref(), x, torch.ones_like(x))
    assert torch.isfinite(g).all()
    teq(y, y0)
    tclose(g, g0, eps=2e-6)

@pytest.mark.parametrize('dt', [torch.bfloat16, torch.float16], ids=['bf16', 'fp16'])
@pytest.mark.parametrize('me,ref', pairs, ids=ids)
def test_half_matches_torch(me, ref, dt, xdy):
    "Same dtype as torch's module; both compute in float32 and round once, so at most one ulp (eps relative) apart"
    x, dy = (t.to(dt) for t in xdy)
    try: fwd_grad(ref(), x, dy)
    except RuntimeError as e: pytest.skip(f'{dt} not supported by torch on this device: {e}')
    (y, g), (y0, g0) = fwd_grad(me(), x, dy), fwd_grad(ref(), x, dy)
    teq(y.dtype, dt); teq(g.dtype, dt)
    teq(y, y0)
    assert ((g.float() - g0.float()).abs() <= torch.finfo(dt).eps * g0.float().abs() + 1e-6).all()

@pytest.mark.parametrize('fn', [_MishFn.apply, _SwishFn.apply], ids=ids)
def test_gradcheck(fn):
    x = torch.randn(32, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(fn, x)
    assert torch.autograd.gradgradcheck(fn, x)

@pytest.mark.parametrize('me,ref', pairs, ids=ids)
def test_shapes_and_inplace_arg(me, ref):
    x = torch.randn(2, 3, 4, 5)
    teq(me(inplace=True)(x), ref()(x))  # `inplace` is accepted and ignored: the input is not changed
    teq(x, x.clone())

def test_saved_bytes_one_activation():
    x = torch.randn(100, requires_grad=True)
    for act in (MishMe(), SwishMe(), nn.Mish(), nn.SiLU()): teq(saved_bytes(act, x), 400)
    for act in (ta.Mish(), ta.Swish()): teq(saved_bytes(act, x), 800)  # chains of ops keep an intermediate too
    teq(saved_bytes(lambda t: t * 2, torch.randn(3)), 0)

def tiny(act=nn.ReLU):
    return nn.Sequential(nn.Conv2d(3, 8, 3, bias=False), nn.BatchNorm2d(8), act(),
                         nn.Conv2d(8, 8, 3, bias=False), nn.BatchNorm2d(8), act(), nn.Flatten(), nn.Linear(8 * 12 * 12, 4))

def test_saved_bytes_small_net():
    "MishMe keeps no more than torch's nn.Mish, and less than the chain of ops; parameters are not counted"
    xb = torch.randn(2, 3, 16, 16)
    sb = {k: saved_bytes(swap_act(tiny(), a), xb) for k, a in [('torch', nn.Mish), ('me', MishMe), ('chain', ta.Mish)]}
    teq(sb['me'], sb['torch'])
    act_bytes = 2 * 8 * 14 * 14 * 4 + 2 * 8 * 12 * 12 * 4  # the two chain intermediates, one per activation
    teq(sb['chain'] - sb['me'], act_bytes)

def test_saved_bytes_skips_parameters():
    "A Linear saves its input and a transposed view of its weight; only the input counts"
    teq(saved_bytes(nn.Linear(1000, 1000), torch.randn(1, 1000)), 4000)

def test_swap_act_timm_mixnet():
    "timm's act_layer misses MixNet's forced Swish blocks; swap_act reaches them and keeps the SE gates"
    m = timm.create_model('mixnet_s', act_layer=nn.Mish)
    before, plain = act_counts(m), act_counts(timm.create_model('mixnet_s'))
    teq(before, Counter(Mish=plain['ReLU'], SiLU=plain['SiLU']))  # act_layer reached the ReLUs only
    from fastmix.models import mixnet_s
    from fastmix.layers import SqueezeExcite
    n_sig = sum(isinstance(o, nn.Sigmoid) for o in m.modules())
    teq(n_sig, sum(isinstance(o, SqueezeExcite) for o in mixnet_s().modules()))  # one gate per SE block
    swap_act(m, MishMe)
    teq(act_counts(m), Counter(MishMe=sum(before.values())))
    teq(sum(isinstance(o, nn.Sigmoid) for o in m.modules()), n_sig)
    assert all(isinstance(o.gate, nn.Sigmoid) for o in m.modules() if hasattr(o, 'gate'))
    m.eval()
    teq(m(torch.randn(1, 3, 32, 32)).shape, (1, 1000))

def test_swap_act_timm_res2net_shared_relu():
    "Res2Net uses one relu module several times per block: swapping it changes every use"
    m = timm.create_model('res2net50_26w_4s')
    n = sum(act_counts(m).values())
    swap_act(m, SwishMe)
    teq(act_counts(m), Counter(SwishMe=n))
    calls = Counter()
    hooks = [o.register_forward_hook(lambda mod, i, out: calls.update([type(mod).__name__])) for o in m.modules()
             if isinstance(o, (nn.ReLU, SwishMe))]
    m.eval()
    with torch.no_grad(): m(torch.randn(1, 3, 32, 32))
    for h in hooks: h.remove()
    assert 'ReLU' not in calls and calls['SwishMe'] > n

def test_swap_act_fastai_xresnet():
    from fastai.vision.models.xresnet import xresnet18, xse_resnext18
    for m in (xresnet18(n_out=3), xse_resnext18(n_out=3)):
        n, n_sig = sum(act_counts(m).values()), sum(isinstance(o, nn.Sigmoid) for o in m.modules())
        swap_act(m, nn.Hardswish)
        teq(act_counts(m), Counter(Hardswish=n))
        teq(sum(isinstance(o, nn.Sigmoid) for o in m.modules()), n_sig)

def test_swap_act_fastmix_models():
    "Every architecture in fastmix's registry holds only `act_cls` after a swap, its SE gates untouched"
    import fastmix.models as models
    for name in models.list_archs():
        m = models.create_model(name, n_out=3)
        n, n_gate = sum(act_counts(m).values()), Counter(type(o.gate) for o in m.modules() if hasattr(o, 'gate'))
        swap_act(m, MishMe)
        teq(act_counts(m), Counter(MishMe=n))
        teq(Counter(type(o.gate) for o in m.modules() if hasattr(o, 'gate')), n_gate)

def test_swap_act_all_types_and_gate_name():
    acts = [t() for t in act_types]
    m = nn.Sequential(*acts, nn.Sigmoid(), nn.Hardsigmoid(), nn.Tanh())
    swap_act(m, MishMe)
    teq(act_counts(m), Counter(MishMe=len(acts)))
    teq([type(o) for o in m[-3:]], [nn.Sigmoid, nn.Hardsigmoid, nn.Tanh])

    class SE(nn.Module):
        def __init__(self): super().__init__(); self.act, self.gate = nn.ReLU(), nn.Hardswish()
    m = nn.ModuleDict(dict(se=SE(), out=nn.ReLU6()))
    swap_act(m, SwishMe)
    teq(type(m['se'].gate), nn.Hardswish)
    teq(act_counts(m), Counter(SwishMe=2))

def test_swap_act_none_and_root():
    m = tiny()
    assert swap_act(m, None) is m
    teq(act_counts(m), Counter(ReLU=2))
    assert isinstance(swap_act(nn.ReLU(), MishMe), MishMe)

def test_swap_act_partial_act_cls():
    from functools import partial
    m = swap_act(tiny(), partial(nn.LeakyReLU, 0.2))
    teq([o.negative_slope for o in m.modules() if isinstance(o, nn.LeakyReLU)], [0.2, 0.2])

def test_pickle_round_trip():
    "learn.export pickles the whole net: MishMe/SwishMe must be importable module-level classes"
    m = tiny(MishMe); m[-3] = SwishMe()
    buf = io.BytesIO(); torch.save(m, buf); buf.seek(0)
    m2 = torch.load(buf, weights_only=False)
    teq(act_counts(m2), Counter(MishMe=1, SwishMe=1))
    m.eval(); m2.eval()
    xb = torch.randn(2, 3, 16, 16)
    teq(m(xb), m2(xb))
    teq(act_counts(pickle.loads(pickle.dumps(m))), act_counts(m))

def test_training_step_grads_equal():
    "A whole training step gives the same weight gradients with MishMe as with nn.Mish"
    torch.manual_seed(0)
    m = tiny(nn.Mish)
    m2 = swap_act(pickle.loads(pickle.dumps(m)), MishMe)
    xb, yb = torch.randn(4, 3, 16, 16), torch.randint(0, 4, (4,))
    for net in (m, m2): nn.functional.cross_entropy(net(xb), yb).backward()
    for p, p2 in zip(m.parameters(), m2.parameters()): tclose(p.grad, p2.grad, eps=1e-5)

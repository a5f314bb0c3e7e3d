"""The one registry and `create_model`: complete on any import, every family alike (input channels, weights from a file or
the hub, activations), arguments checked at the learner, `learn.compile()`, and no global change on import."""
import os, subprocess, sys, time, inspect
import pytest, torch, timm
from torch import nn
from fastcore.test import test_eq as teq, test_fail as tfail, test_close as tclose
from fastai.vision.all import ImageDataLoaders, Resize, Normalize, load_learner
import fastmix.all as fma
from fastmix.models import list_archs, arch_info, create_model, default_arch, builder_args, pretrained_file
from fastmix.learner import fastmix_learner, mixnet_learner, efficientnet_learner

ARCHS = list_archs()
TIMM_ARCHS = [a for a in ARCHS if arch_info(a).timm_name]

def run_py(code, **env):
    "Run `code` in a fresh interpreter; its stdout"
    r = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, env={**os.environ, **env}, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    return r.stdout

@pytest.mark.parametrize('first', ['import fastmix', 'import fastmix.models', 'import fastmix.all'])
def test_registry_complete_whatever_is_imported(first):
    out = run_py(f"{first}\nfrom fastmix.models import list_archs, create_model\n"
                 "print(len(list_archs())); print(type(create_model('efficientnet_b0', n_out=2)).__name__)")
    teq(out.split(), ['16', 'Sequential'])

def test_builders_are_plain_exported_functions():
    for a in ARCHS:
        fn = arch_info(a).fn
        assert inspect.isfunction(fn) and fn.__name__ == a and fn.__module__.startswith('fastmix.'), a
        assert getattr(fma, a) is fn, f'{a} is not in fastmix.all'
    teq(sorted(a for a in ARCHS if arch_info(a).default),
        ['efficientnet_b0', 'mixnet_m', 'mxresnet50', 'res2net50', 'scarlet_a'])  # one usual member per family

@pytest.mark.parametrize('n_in', [1, 4])
@pytest.mark.parametrize('arch', ARCHS)
def test_n_in_every_family(arch, n_in):
    m = create_model(arch, n_out=3, n_in=n_in).eval()
    with torch.no_grad(): teq(m(torch.randn(2, n_in, 32, 32)).shape, (2, 3))
    tfail(lambda: m(torch.randn(2, 3, 32, 32)))  # the first conv really takes n_in channels

def test_unknown_builder_argument():
    tfail(lambda: create_model('mixnet_s', drop_rate=0.1), contains="takes no argument 'drop_rate'; it takes: p")
    teq(create_model('mxresnet18', p=0.3)[1][2].p, 0.3)

@pytest.mark.parametrize('arch', ['mixnet_s', 'efficientnet_b0', 'scarlet_a', 'res2net50', 'mxresnet18'])
def test_bn_zero_off_starts_residual_branches_at_one(arch):
    from fastmix.models import residual_bns
    m, m1 = create_model(arch, n_out=3), create_model(arch, n_out=3, bn_zero=False)
    zero = [n for n,b in m.named_modules() if isinstance(b, nn.BatchNorm2d) and not b.weight.any()]
    assert zero, arch
    bns = dict(m1.named_modules())
    for n in zero: teq(bool((bns[n].weight == 1).all()), True)
    teq(residual_bns(m1), [])
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad(): assert (m.eval()(x) - m1.eval()(x)).abs().max() > 1e-4  # the branches now add to the output

def _timm_from_file(arch, path, **kwargs):
    "timm's model loaded from the same file, the way timm loads a local weights file"
    return timm.create_model(arch_info(arch).timm_name, pretrained=True, pretrained_cfg_overlay=dict(file=str(path)), **kwargs).eval()

@pytest.mark.parametrize('arch', TIMM_ARCHS)
def test_pretrained_file_equals_timm(arch, tmp_path):
    torch.manual_seed(0)
    sd = timm.create_model(arch_info(arch).timm_name).state_dict()
    for k,v in sd.items():  # running stats away from 0/1, so that a BN loaded in the wrong place shows
        if 'running_var' in k: v.uniform_(0.5, 2.)
        elif 'running_mean' in k: v.normal_(0, 0.1)
    suffix = '.safetensors' if TIMM_ARCHS.index(arch) % 2 else '.pth'
    f = tmp_path/f'w{suffix}'
    if suffix == '.pth': torch.save(sd, f)
    else:
        from safetensors.torch import save_file
        save_file({k: v.contiguous() for k,v in sd.items()}, str(f))
    fm, tm = create_model(arch, pretrained=f).eval(), _timm_from_file(arch, f)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad(): tclose(fm(x), tm(x), eps=1e-4)
    with torch.no_grad(): assert (fm(x) - create_model(arch).eval()(x)).abs().max() > 1e-2  # the file made a difference

def test_pretrained_file_other_input_channels(tmp_path):
    "One input channel: the first conv's weights are adapted as timm adapts them"
    torch.save(timm.create_model('mixnet_s').state_dict(), tmp_path/'w.pth')
    fm, tm = create_model('mixnet_s', n_in=1, pretrained=tmp_path/'w.pth').eval(), _timm_from_file('mixnet_s', tmp_path/'w.pth', in_chans=1)
    x = torch.randn(2, 1, 32, 32)
    with torch.no_grad(): tclose(fm(x), tm(x), eps=1e-4)

def test_pretrained_file_errors(tmp_path):
    tfail(lambda: create_model('mixnet_s', pretrained=tmp_path/'none.pth'), contains='none.pth')
    torch.save(timm.create_model('mixnet_m').state_dict(), tmp_path/'m.pth')
    tfail(lambda: create_model('mixnet_s', pretrained=tmp_path/'m.pth'), contains='line up')
    tfail(lambda: create_model('mxresnet18', pretrained=True), contains='no ImageNet weights in timm')

def test_pretrained_hub_offline_fails_fast(tmp_path):
    "No network (a closed local port as the hub) and nothing cached: a clear error at once, not after retries"
    code = ("import time; from fastmix.models import create_model; t = time.time()\n"
            "try: create_model('mixnet_s', pretrained=True)\n"
            "except RuntimeError as e: print(round(time.time() - t, 1)); print(e)")
    out = run_py(code, HF_ENDPOINT='http://127.0.0.1:9', HF_HOME=str(tmp_path), HF_HUB_CACHE=str(tmp_path/'hub'))
    secs, msg = out.split('\n', 1)
    assert float(secs) < 10, secs
    assert "pretrained='/path/to/model.safetensors'" in msg and 'timm/mixnet_s' in msg, msg

def test_pretrained_hub_from_cache(tmp_path, monkeypatch):
    "Weights already in the Hugging Face cache load without the network"
    from safetensors.torch import save_file
    import huggingface_hub
    f = tmp_path/'model.safetensors'
    save_file(timm.create_model('mixnet_s').state_dict(), str(f))
    seen = []
    def from_cache(repo, fname, local_files_only=False, **kw):
        seen.append((repo, fname, local_files_only)); return str(f)
    monkeypatch.setattr(huggingface_hub, 'hf_hub_download', from_cache)
    teq(pretrained_file('mixnet_s'), f)
    teq(seen, [(timm.models.get_pretrained_cfg('mixnet_s').hf_hub_id, 'model.safetensors', True)])

@pytest.fixture(scope='module')
def dls(tiny_folder):
    return ImageDataLoaders.from_folder(tiny_folder, train='train', valid='val', item_tfms=Resize(32), bs=4, num_workers=0)

def test_learner_checks_arguments(dls):
    with pytest.raises(TypeError) as e: mixnet_learner(dls, 'mixnet_s', metric=None)
    msg = str(e.value)
    assert "'metric'" in msg and 'metrics' in msg and 'cbs' in msg and "mixnet_s's p" in msg, msg
    teq(fastmix_learner(dls, 'mixnet_s', p=0.4, wd=0.2).wd, 0.2)

def test_learner_defaults_from_registry(dls):
    teq(default_arch(), 'mixnet_m')
    teq(fastmix_learner(dls).model[0][0][0].out_channels, 24)  # MixNet-M's stem (MixNet-S has 16)
    teq(len(efficientnet_learner(dls).model[0]), 9)  # B0: stem, 7 stages, head conv

def test_learner_pretrained_file(tiny_folder, tmp_path):
    torch.save(timm.create_model('mixnet_s').state_dict(), tmp_path/'w.pth')
    dls = ImageDataLoaders.from_folder(tiny_folder, train='train', valid='val', item_tfms=Resize(32), bs=4, num_workers=0)
    learn = mixnet_learner(dls, 'mixnet_s', pretrained=tmp_path/'w.pth')
    teq(sum(isinstance(t, Normalize) for t in dls.after_batch), 1)
    ref = create_model('mixnet_s', n_out=3, pretrained=tmp_path/'w.pth')
    teq(learn.model[0][0][0].weight, ref[0][0][0].weight)
    teq(learn.opt.frozen_idx, 1)  # the body is frozen

def test_compile_keeps_learner_working(dls, tmp_path, tiny_folder):
    learn = mixnet_learner(dls, 'mixnet_s').compile(backend='eager')
    assert isinstance(learn.model, nn.Sequential)
    with learn.no_bar(), learn.no_logging():
        learn.freeze(); learn.fit(1, 1e-3)
        learn.unfreeze(); learn.fit(1, 1e-3)
    teq(len(learn.opt.param_groups), 2)
    learn.export(tmp_path/'c.pkl')
    label, _, probs = load_learner(tmp_path/'c.pkl').predict(next((tiny_folder/'val').rglob('*.JPEG')))
    assert label in dls.vocab and probs.shape == (3,)

def test_import_changes_nothing_global():
    "Importing fastmix only mends the gated fastai bugs (`fastmix.patches`) and adds methods; torch and matplotlib stay"
    code = '''
import matplotlib, torch, fastai.vision.all as fva
from fastai.distributed import DistributedDL
def snap():
    s = {f'{c.__name__}.{k}': v for c in (fva.Learner, fva.DataLoader, fva.DataLoaders, fva.Callback, fva.Optimizer, DistributedDL)
         for k,v in vars(c).items()}
    s.update(backend=matplotlib.get_backend(), dtype=torch.get_default_dtype(), threads=torch.get_num_threads(),
             grad=torch.is_grad_enabled(), defaults=dict(vars(fva.defaults)))
    return s
a = snap()
import fastmix.all
b = snap()
print(sorted(k for k in a if a[k] is not b.get(k) and a[k] != b.get(k)))
print(sorted(set(b) - set(a)))'''
    changed, added = [eval(l) for l in run_py(code).strip().split('\n')]
    teq(changed, ['DistributedDL._broadcast', 'Learner.fit_flat_cos'])
    assert set(added) <= {'Learner.compile', 'Learner.export_onnx'}, added

def test_patches_only_for_buggy_fastai():
    code = '''
import fastai; fastai.__version__ = '2.9.0'  # a release after the newest one known to have the bugs
from fastai.learner import Learner
import fastmix.patches as p
print(Learner.fit_flat_cos is p._stock_fit_flat_cos, Learner.fit_flat_cos is p._fit_flat_cos)'''
    teq(run_py(code).split(), ['True', 'False'])

"ONNX export: every architecture folds and exports to the same function; learners and the command line."
import json, subprocess, sys, os
from pathlib import Path
import numpy as np, pytest, torch
from torch import nn
from fastcore.test import test_eq as teq, test_close as tclose, test_fail as tfail
from fastmix.models import list_archs, create_model
from fastmix.export import fold_bn, to_onnx, ort_session, ExportError
from conftest import make_image_folder

def _random_stats(m, seed=0):
    "Batchnorm statistics and affine weights away from their initial values, so that a fold that drops one shows"
    g = torch.Generator().manual_seed(seed)
    for b in m.modules():
        if isinstance(b, nn.BatchNorm2d):
            for t,lo,hi in ((b.running_mean, -.1, .1), (b.running_var, .5, 2), (b.weight.data, .5, 1.5), (b.bias.data, -.1, .1)):
                t.copy_(torch.rand(t.shape, generator=g) * (hi - lo) + lo)
    return m.eval()

def _close(a, b, tol):
    "Equal to `tol`, absolute within ±1 and relative to the largest value beyond (fp32 rounding grows with the values)"
    a, b = np.asarray(a), np.asarray(b)
    assert np.abs(a - b).max() <= tol * max(1., np.abs(b).max()), (np.abs(a - b).max(), np.abs(b).max())

@pytest.mark.parametrize('arch', list_archs())
def test_fold_bn_same_function(arch):
    m = _random_stats(create_model(arch, n_out=5))
    f = fold_bn(m, size=32)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad(): _close(f(x), m(x), 1e-5)
    teq(sum(isinstance(b, nn.BatchNorm2d) for b in f.modules()), 0)
    assert any(isinstance(b, nn.BatchNorm2d) for b in m.modules())  # the model itself is not changed

@pytest.mark.parametrize('arch', list_archs())
def test_every_arch_exports_and_matches(arch, tmp_path):
    m = _random_stats(create_model(arch, n_out=5))
    r = to_onnx(m, tmp_path/f'{arch}.onnx', size=64)
    x = torch.randn(3, 3, 64, 64)  # another batch size than the check's: the batch axis is dynamic
    with torch.no_grad(): _close(ort_session(r.path).run(None, {'input': x.numpy()})[0], m(x).numpy(), 1e-4)

@pytest.mark.parametrize('form', ['split', 'padded', 'aligned'])
def test_mixconv_forms_export_the_same_function(form, tmp_path):
    m = _random_stats(create_model('mixnet_m', n_out=5))
    r = to_onnx(m, tmp_path/'m.onnx', size=64, form=form)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad(): _close(ort_session(r.path).run(None, {'input': x.numpy()})[0], m(x).numpy(), 1e-4)

class Spectral(nn.Module):  # torch's FFT has no ONNX op in opset 17
    def forward(self, x): return torch.fft.fft2(x).abs()

def test_unexportable_layer_is_named(tmp_path):
    m = create_model('mixnet_s', n_out=5).eval()
    m[0][4][1].se.gate = Spectral()
    tfail(lambda: to_onnx(m, tmp_path/'m.onnx', size=32), contains="layer '0.4.1.se.gate' (Spectral)")

@pytest.fixture(scope='module')
def exported(tmp_path_factory):
    "A tiny fastmix learner, and a run folder written by `fastmix-train`'s `train_run` (one epoch; its `model.pkl` is `learn.export`'s)"
    from fastai.vision.all import ImageDataLoaders, Resize, Normalize, imagenet_stats
    from fastmix.learner import fastmix_learner
    from fastmix.train import train_run
    tmp = tmp_path_factory.mktemp('learner')
    path = make_image_folder(tmp/'imgs')
    dls = ImageDataLoaders.from_folder(path, valid='val', item_tfms=Resize(32), bs=4, num_workers=0,
                                       batch_tfms=Normalize.from_stats(*imagenet_stats))
    train_run(dls, 'mixnet_s', epochs=1, lr=1e-3, seed=0, size=32, run_dir=tmp/'run', bars=False)
    return tmp, fastmix_learner(dls, 'mixnet_s')

def _cli(*args):
    exe = Path(sys.executable).parent/'fastmix-export'
    cmd = [str(exe)] if exe.exists() else [sys.executable, '-c', 'from fastmix.export import main; main()']
    return subprocess.run(cmd + [str(a) for a in args], capture_output=True, text=True, timeout=600,
                          env=dict(os.environ, OMP_WAIT_POLICY='PASSIVE', OMP_NUM_THREADS='2'))

def test_learner_export_onnx_json(exported, tmp_path):
    _, learn = exported
    r = learn.export_onnx(tmp_path/'m.onnx', size=32)
    meta = json.loads(r.meta.read_text())
    teq(meta['classes'], list(learn.dls.vocab))
    tclose(np.array(meta['std']), learn.dls.after_batch[-1].std.flatten().numpy(), eps=1e-6)
    teq(meta['checked']['real_images'], True)
    x = learn.dls.valid.one_batch()[0].as_subclass(torch.Tensor)
    learn.model.eval()
    with torch.no_grad(): _close(ort_session(r.path).run(None, {'input': x.numpy()})[0], learn.model(x).numpy(), 1e-4)

def test_cli_in_a_fresh_process(exported, tmp_path):
    tmp, learn = exported
    assert (tmp/'run'/'model.pkl').is_file()
    p = _cli(tmp/'run', '--out', tmp_path/'out'/'model.onnx', '--size', 32, '--images', tmp/'imgs'/'val')  # the run folder
    assert p.returncode == 0, p.stderr[-2000:]
    assert 'max abs difference onnxruntime vs PyTorch' in p.stdout and '6 images from' in p.stdout, p.stdout
    teq(json.loads((tmp_path/'out'/'model.json').read_text())['classes'], list(learn.dls.vocab))
    assert (tmp_path/'out'/'model.onnx').exists()

def test_learner_without_normalize_has_no_stats(tmp_path):
    from fastai.vision.all import ImageDataLoaders, Resize
    from fastmix.learner import fastmix_learner
    dls = ImageDataLoaders.from_folder(make_image_folder(tmp_path/'imgs'), valid='val', item_tfms=Resize(32), bs=4, num_workers=0)
    learn = fastmix_learner(dls, 'mixnet_s')
    meta = json.loads(learn.export_onnx(tmp_path/'m.onnx', size=32).meta.read_text())
    teq((meta['mean'], meta['std']), (None, None))
    teq(meta['classes'], list(dls.vocab))

def test_cli_bad_inputs(tmp_path):
    torch.save({'not': 'a learner'}, tmp_path/'d.pkl')
    (tmp_path/'t.pkl').write_text('hello')
    for args,msg in (([tmp_path/'nowhere.pkl'], 'No file at'), ([tmp_path/'d.pkl'], 'not an exported fastai Learner'),
                     ([tmp_path/'t.pkl'], 'not an exported fastai Learner'), ([tmp_path], '2 .pkl files')):
        p = _cli(*args)
        teq(p.returncode, 2)
        lines = p.stderr.strip().splitlines()
        teq(len(lines), 1)
        assert msg in lines[0] and lines[0].startswith('fastmix-export: error:'), lines

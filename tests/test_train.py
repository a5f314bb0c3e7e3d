"fastmix-train and fastmix-compare: the time budget, result rows, the command line, interrupted and distributed runs."
import os, subprocess, sys
from pathlib import Path
import pandas as pd, pytest, torch
from fastcore.test import test_eq as teq, test_close as tclose, test_fail as tfail
from fastai.vision.all import ImageDataLoaders, Resize, Normalize, imagenet_stats, TimmBody
from fastai.test_utils import synth_learner
import fastmix.train as ft
from fastmix.train import TimeBudget, append_result, result_cols, train_run, train_learner
from fastmix.models import count_params, count_madds, create_model
from fastmix.compare import summarize, markdown_table

ROOT = Path(__file__).resolve().parents[1]
ENV = dict(os.environ, CUDA_VISIBLE_DEVICES='', OMP_WAIT_POLICY='PASSIVE', OMP_NUM_THREADS='1', PYTHONUNBUFFERED='1')

@pytest.fixture(scope='module')
def tiny_dls(tiny_folder):
    return ImageDataLoaders.from_folder(tiny_folder, train='train', valid='val', item_tfms=Resize(32), bs=4, num_workers=0,
                                        batch_tfms=Normalize.from_stats(*imagenet_stats))

class FakeClock:
    "Each reading is `step` seconds after the last"
    def __init__(self, step): self.t, self.step = 0., step
    def __call__(self): self.t += self.step; return self.t

@pytest.mark.parametrize('minutes,expect', [(3, 3), (5.5, 5), (0.1, 1)])
def test_time_budget(minutes, expect):
    learn = synth_learner()
    learn.fit_flat_cos(100, 1e-2, cbs=TimeBudget(minutes, clock=FakeClock(60)))
    teq(len(learn.recorder.values), expect)
    # the schedule is the one a plain fit_flat_cos of that many epochs follows: the cosine part ends with the last epoch
    if expect == 1: tclose(learn.recorder.lrs, [1e-2] * len(learn.recorder.lrs))  # measured at the flat lr, then stopped
    else:
        ref = synth_learner()
        ref.fit_flat_cos(expect, 1e-2)
        tclose(learn.recorder.lrs, ref.recorder.lrs, eps=1e-9)

def test_time_budget_never_exceeds_epochs():
    learn = synth_learner()
    learn.fit_flat_cos(2, 1e-2, cbs=TimeBudget(100, clock=FakeClock(60)))
    teq(len(learn.recorder.values), 2)

def test_append_result(tmp_path):
    row = {c: i for i, c in enumerate(result_cols)}
    f = tmp_path/'sub'/'r.csv'
    append_result(f, row); append_result(f, dict(row, run=7))
    df = pd.read_csv(f)
    teq(list(df.columns), result_cols)
    teq(df.run.tolist(), [row['run'], 7])
    before = f.read_text()
    tfail(lambda: append_result(f, {'arch': 'mixnet_s'}), contains='lacks')
    teq(f.read_text(), before)

def test_train_run_row(tiny_dls):
    row = train_run(tiny_dls, 'mixnet_s', epochs=2, lr=1e-3, seed=0, size=32)
    assert set(result_cols) <= set(row)
    teq(row['epochs'], 2)
    teq(row['params'], count_params(create_model('mixnet_s', n_out=3)))
    teq(row['madds'], count_madds(create_model('mixnet_s', n_out=3), 32))
    assert 0 <= row['accuracy'] <= row['top5'] <= 1
    assert row['train_time'] > 0 and row['images_per_s'] > 0 and row['peak_mem_mb'] > 0

def test_seed_reproducible(tiny_dls):
    a = train_run(tiny_dls, 'mixnet_s', epochs=1, lr=1e-3, seed=3, size=32)
    b = train_run(tiny_dls, 'mixnet_s', epochs=1, lr=1e-3, seed=3, size=32)
    teq(a['accuracy'], b['accuracy'])

def test_options(tiny_dls):
    learn = train_learner(tiny_dls, 'mixnet_s', act='mish', opt='adam', label_smoothing=0.1)
    from fastmix.activations import act_counts
    teq(set(act_counts(learn.model)), {'MishMe'})
    teq(type(learn.loss_func).__name__, 'LabelSmoothingCrossEntropyFlat')
    row = train_run(tiny_dls, 'mixnet_s', epochs=1, lr=1e-3, mixup=0.4, channels_last=True, seed=0, size=32)
    teq((row['mixup'], row['channels_last']), (0.4, True))
    teq(train_run(tiny_dls, 'mixnet_s', epochs=1, impl='timm', seed=0, size=32)['channels_last'], False)
    tfail(lambda: train_run(tiny_dls, 'mixnet_s', epochs=1, fp16=True), contains='CUDA')
    tfail(lambda: train_learner(tiny_dls, 'mixnet_s', act='gelu'), contains='mish, swish, relu')
    tfail(lambda: train_learner(tiny_dls, 'mixnet_s', opt='sgd'), contains='ranger, rangerqh, adam')

def test_timm_impl(tiny_dls):
    "impl='timm' is what a fastai user does today: timm's model through vision_learner"
    learn = train_learner(tiny_dls, 'mixnet_s', impl='timm')
    assert isinstance(learn.model[0], TimmBody)
    teq(count_params(learn.model[0]), count_params(create_model('mixnet_s')[0]))
    tfail(lambda: train_learner(tiny_dls, 'mxresnet18', impl='timm'), contains="impl='timm' works for")

def _cli(*args, cwd=None, timeout=300):
    return subprocess.run([sys.executable, '-m', 'fastmix.train', *args], capture_output=True, text=True, env=ENV,
                          cwd=cwd, timeout=timeout)

def test_cli_runs(tiny_folder, tmp_path):
    out = tmp_path/'res.csv'
    r = _cli('--data', str(tiny_folder), '--size', '32', '--bs', '4', '--epochs', '1', '--runs', '2', '--workers', '0',
             '--arch', 'mixnet_s', '--lr', '1e-3', '--seed', '5', '--out', str(out))
    assert r.returncode == 0, r.stderr[-3000:]
    df = pd.read_csv(out)
    teq(len(df), 2); teq(df.seed.tolist(), [5, 6]); teq(df.run.tolist(), [0, 1])
    teq(set(df.arch), {'mixnet_s'}); teq(set(df['size']), {32})
    assert 'run 0: accuracy' in r.stdout and '+-' in r.stdout
    s = summarize(df)
    teq(len(s), 1); teq(s.runs[0], 2)
    assert '| mixnet_s |' in markdown_table(s)

def test_cli_bad_input(tmp_path):
    r = _cli('--arch', 'mixnet_q', '--data', str(tmp_path))
    assert r.returncode != 0 and "Did you mean 'mixnet_s'" in r.stderr
    r = _cli('--woof', '--nette')
    assert r.returncode != 0 and 'Pick one' in r.stderr

def test_interrupted_run_loses_only_itself(tiny_folder, tmp_path, monkeypatch):
    real = ft.train_run
    def flaky(*args, run=0, **kwargs):
        if run == 1: raise KeyboardInterrupt()
        return real(*args, run=run, **kwargs)
    monkeypatch.setattr(ft, 'train_run', flaky)
    out = tmp_path/'r.csv'
    with pytest.raises(KeyboardInterrupt):
        ft.main.__wrapped__(data=str(tiny_folder), size=32, bs=4, epochs=1, runs=3, workers=0, out=str(out))
    teq(pd.read_csv(out).run.tolist(), [0])

def test_distributed_two_cpu_processes(tiny_folder, tmp_path):
    "torchrun/accelerate start one process per device; on CPU they train over gloo and only rank 0 writes results"
    out = tmp_path/'d.csv'
    r = subprocess.run([sys.executable, '-m', 'torch.distributed.run', '--nproc_per_node', '2', '--master_port', '29561',
                        '-m', 'fastmix.train', '--data', str(tiny_folder), '--size', '32', '--bs', '4', '--epochs', '1',
                        '--workers', '0', '--out', str(out)], capture_output=True, text=True, env=ENV, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    df = pd.read_csv(out)
    teq(len(df), 1)
    teq(r.stdout.count('run 0: accuracy'), 1)

def test_compare_cli(tmp_path):
    "`fastmix-compare results.csv --out cmp.png` prints the table and writes the plot"
    rows = [dict({c: 0 for c in result_cols}, arch=a, impl='fastmix', act='default', opt='ranger', run=r, seed=r,
                 accuracy=acc + r / 100, top5=.9, train_time=10. + r, images_per_s=100., params=1e6, madds=1e7)
            for a, acc in (('mixnet_s', .5), ('efficientnet_b0', .6)) for r in range(3)]
    for row in rows: append_result(tmp_path/'r.csv', row)
    r = subprocess.run([sys.executable, '-m', 'fastmix.compare', str(tmp_path/'r.csv'), '--out', str(tmp_path/'cmp.png'),
                        '--md', str(tmp_path/'t.md')], capture_output=True, text=True, env=ENV, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    assert (tmp_path/'cmp.png').stat().st_size > 1000
    lines = (tmp_path/'t.md').read_text().splitlines()
    teq(len(lines), 4)
    assert lines[2].startswith('| efficientnet_b0 |') and '0.6100 +- 0.0100' in lines[2]
    r = subprocess.run([sys.executable, '-m', 'fastmix.compare', str(tmp_path/'none.csv')], capture_output=True, text=True,
                       env=ENV, timeout=120)
    assert r.returncode != 0 and 'fastmix-train --out' in r.stderr

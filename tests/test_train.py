"fastmix-train: result rows, one run, the command on each folder layout, bad input refused up front, resume after kill, signals."
import json, os, signal, subprocess, sys, time
from pathlib import Path
import pandas as pd, pytest, torch
from fastcore.test import test_eq as teq, test_close as tclose, test_fail as tfail
from fastai.learner import load_learner
from fastai.test_utils import synth_learner
from fastai.callback.core import Callback
from fastai.vision.learner import TimmBody
import fastmix.train as ft
from fastmix.train import append_result, result_cols, train_run, train_learner, read_results, check_results_csv
from fastmix.callbacks import TimeBudget
from fastmix.activations import act_names, act_counts
from fastmix.models import count_params, count_madds, create_model, list_archs
from fastmix.data import folder_dls
from conftest import make_image_folder

ROOT = Path(__file__).resolve().parents[1]
ENV = dict(os.environ, CUDA_VISIBLE_DEVICES='', OMP_WAIT_POLICY='PASSIVE', OMP_NUM_THREADS='1', PYTHONUNBUFFERED='1')
TINY = dict(size=32, bs=4, workers=0, arch='mixnet_s', lr=1e-3)  # the command's arguments for the tiny folders

def _args(d): return [a for k, v in d.items() for a in ([f"--{k.replace('_', '-')}"] + ([] if v is True else [str(v)]))]

@pytest.fixture(scope='module')
def layouts(tiny_folder, tmp_path_factory):
    "The three layouts `--data` takes: an archive copy (WordNet ids, val/), train/ + valid/ of any names, a flat folder"
    root = tmp_path_factory.mktemp('layouts')
    tv = make_image_folder(root/'tv', classes=('cat', 'dog', 'owl'))
    (tv/'val').rename(tv/'valid')
    flat = make_image_folder(root/'flat0', classes=('cat', 'dog', 'owl'), n_train=5)
    (flat/'train').rename(root/'flat')
    return dict(archive=tiny_folder, train_valid=tv, flat=root/'flat')

@pytest.fixture(scope='module')
def tiny_dls(tiny_folder): return folder_dls(tiny_folder, size=32, bs=4, num_workers=0)

# ---- time budget ----

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
    ref = synth_learner()
    if expect == 1: tclose(learn.recorder.lrs, [1e-2] * len(learn.recorder.lrs))  # measured at the flat lr, then stopped
    else:
        ref.fit_flat_cos(expect, 1e-2)
        tclose(learn.recorder.lrs, ref.recorder.lrs, eps=1e-9)

def test_time_budget_never_exceeds_epochs():
    learn = synth_learner()
    learn.fit_flat_cos(2, 1e-2, cbs=TimeBudget(100, clock=FakeClock(60)))
    teq(len(learn.recorder.values), 2)

# ---- the results CSV ----

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

def test_append_result_by_name_in_the_files_order(tmp_path):
    "A header in another order gets the values under their names, never by position"
    f = tmp_path/'r.csv'
    f.write_text(','.join(reversed(result_cols)) + '\n')
    append_result(f, {c: f'v_{c}' for c in result_cols})
    df = pd.read_csv(f)
    teq(list(df.columns), list(reversed(result_cols)))
    teq(df.accuracy[0], 'v_accuracy'); teq(df.top5[0], 'v_top5')

def test_append_result_migrates_an_older_header(tmp_path):
    f = tmp_path/'r.csv'
    old_cols = [c for c in result_cols if c not in ('cutmix', 'bf16', 'model', 'unreadable', 'valid_pct', 'budget')]
    f.write_text(','.join(old_cols) + '\n' + ','.join(f'old_{c}' for c in old_cols) + '\n')
    append_result(f, {c: f'new_{c}' for c in result_cols})
    df = pd.read_csv(f, keep_default_na=False)
    teq(list(df.columns), result_cols)
    teq(df.accuracy.tolist(), ['old_accuracy', 'new_accuracy'])
    teq(df.cutmix.tolist(), ['', 'new_cutmix'])
    teq([p.name for p in tmp_path.iterdir()], ['r.csv'])  # rewritten through a temporary file, which is gone

def test_refuses_a_foreign_csv(tmp_path):
    f = tmp_path/'other.csv'
    f.write_text('name,score\na,1\n')
    tfail(lambda: append_result(f, {c: 0 for c in result_cols}), contains='columns fastmix-train does not write')
    teq(f.read_text(), 'name,score\na,1\n')

def test_row_after_a_hand_edit_without_newline(tmp_path):
    f = tmp_path/'r.csv'
    append_result(f, {c: 1 for c in result_cols})
    f.write_text(f.read_text().rstrip('\n'))
    append_result(f, {c: 2 for c in result_cols})
    teq(pd.read_csv(f).run.tolist(), [1, 2])

# ---- one run ----

def test_train_run_row(tiny_dls, tmp_path):
    row = train_run(tiny_dls, 'mixnet_s', epochs=2, lr=1e-3, seed=0, size=32, run_dir=tmp_path/'run', bars=False)
    assert set(result_cols) <= set(row)
    teq(row['epochs'], 2)
    n_out = len(tiny_dls.vocab)
    teq(row['params'], count_params(create_model('mixnet_s', n_out=n_out)))
    teq(row['madds'], count_madds(create_model('mixnet_s', n_out=n_out), 32))
    hist = pd.read_csv(tmp_path/'run'/'history.csv')
    teq(hist.epoch.tolist(), [0, 1])
    tclose(row['accuracy'], hist.accuracy.iloc[-1]); tclose(row['top5'], hist.top5_accuracy.iloc[-1])
    assert row['accuracy'] <= row['top5'] <= 1
    # throughput: the images of both epochs (drop_last batches of 4) over the training seconds recorded per epoch
    teq(hist.n_imgs.tolist(), [len(tiny_dls.train) * 4, 2 * len(tiny_dls.train) * 4])
    tclose(row['images_per_s'], hist.n_imgs.iloc[-1] / hist.train_time.iloc[-1], eps=0.1)
    assert hist.train_time.iloc[1] > hist.train_time.iloc[0]
    teq(Path(row['model']), tmp_path/'run'/'model.pkl')

def test_a_finished_checkpoint_is_not_trained_again(tiny_dls, tmp_path):
    "Killed after its last checkpoint but before its row: the next call writes the row without training"
    kw = dict(arch='mixnet_s', epochs=1, lr=1e-3, seed=0, size=32, run_dir=tmp_path/'run', bars=False)
    row = train_run(tiny_dls, **kw)
    assert (tmp_path/'run'/'checkpoint.pth').exists()  # `main` removes it once the row is written
    (tmp_path/'run'/'model.pkl').unlink()
    fits = []
    class Count(Callback):
        def before_fit(self): fits.append(1)
    again = train_run(tiny_dls, cbs=Count(), **kw)
    teq(fits, [])
    teq(again['accuracy'], row['accuracy']); teq(again['train_time'], row['train_time'])
    assert (tmp_path/'run'/'model.pkl').is_file()

def test_seed_reproducible(tiny_dls, tmp_path):
    def weights(seed, name):
        train_run(tiny_dls, 'mixnet_s', epochs=1, lr=1e-3, seed=seed, size=32, run_dir=tmp_path/name, bars=False)
        return torch.cat([p.detach().flatten() for p in load_learner(tmp_path/name/'model.pkl').model.parameters()])
    a, b, c = weights(3, 'a'), weights(3, 'b'), weights(4, 'c')
    teq(a, b)
    assert (a - c).abs().max() > 1e-3

def test_options(tiny_dls):
    learn = train_learner(tiny_dls, 'mixnet_s', act='mish', opt='adam', label_smoothing=0.1)
    teq(set(act_counts(learn.model)), {act_names['mish'].__name__})
    teq(type(learn.loss_func).__name__, 'LabelSmoothingCrossEntropyFlat')
    row = train_run(tiny_dls, 'mixnet_s', epochs=1, lr=1e-3, cutmix=1.0, seed=0, size=32, bars=False)
    teq((row['cutmix'], row['mixup'], row['channels_last']), (1.0, 0., True))
    row = train_run(tiny_dls, 'mixnet_s', epochs=1, impl='timm', seed=0, size=32, bars=False)
    teq((row['channels_last'], row['dropout']), (False, None))  # the recipe's dropout is fastmix's classifier's, not fastai's head's
    tfail(lambda: train_run(tiny_dls, 'mixnet_s', epochs=1, fp16=True), contains='CUDA')
    tfail(lambda: train_run(tiny_dls, 'mixnet_s', epochs=1, bf16=True), contains='CUDA')
    tfail(lambda: train_run(tiny_dls, 'mixnet_s', epochs=1, mixup=.4, cutmix=1.), contains='pick one')
    tfail(lambda: train_learner(tiny_dls, 'mixnet_s', act='gelu2'), contains='relu')
    tfail(lambda: train_learner(tiny_dls, 'mixnet_s', opt='sgd'), contains='ranger, rangerqh, adam')

def test_timm_impl(tiny_dls):
    "impl='timm' is what a fastai user builds: timm's model through vision_learner"
    learn = train_learner(tiny_dls, 'mixnet_s', impl='timm')
    assert isinstance(learn.model[0], TimmBody)
    teq(count_params(learn.model[0]), count_params(create_model('mixnet_s')[0]))
    tfail(lambda: train_learner(tiny_dls, 'mxresnet18', impl='timm'), contains="impl='timm' works for")

# ---- the command ----

def _main(capsys=None, **kw):
    "`fastmix-train` in this process; returns (exit status, stdout, stderr)"
    try: code = ft.main(**kw) and 0
    except SystemExit as e: code = e.code
    out, err = capsys.readouterr() if capsys else ('', '')
    return code, out, err

@pytest.mark.parametrize('layout', ['archive', 'train_valid', 'flat'])
def test_each_layout_trains_one_epoch(layout, layouts, tmp_path, capsys):
    out = tmp_path/'res.csv'
    code, stdout, err = _main(capsys, data=str(layouts[layout]), epochs=1, out=str(out), **TINY)
    teq(code, 0)
    df = pd.read_csv(out)
    teq(len(df), 1); teq(df.epochs[0], 1)
    teq(df.data[0], f'{layout}:{layouts[layout].resolve()}')
    model = out.parent/df.model[0]
    assert model.is_file() and model.parent.parent == tmp_path/'res_runs'
    teq(len(pd.read_csv(model.parent/'history.csv')), 1)
    assert not (model.parent/'checkpoint.pth').exists()  # a finished run keeps its model, not its checkpoint
    assert 'run 0 epoch 1/1: train_loss' in stdout  # one line per epoch: the output is not a terminal

def test_same_command_again_skips_done_runs(layouts, tmp_path, capsys):
    kw = dict(data=str(layouts['flat']), epochs=1, runs=2, out=str(tmp_path/'r.csv'), **TINY)
    teq(_main(capsys, **kw)[0], 0)
    code, stdout, _ = _main(capsys, **kw)
    teq(code, 0)
    teq(stdout.count('skipped'), 2)
    teq(pd.read_csv(tmp_path/'r.csv').seed.tolist(), [0, 1])
    code, stdout, _ = _main(capsys, **dict(kw, runs=3))  # one more run: only the new seed trains
    teq(pd.read_csv(tmp_path/'r.csv').seed.tolist(), [0, 1, 2])

def _bad(tmp_path, layouts):
    "Each bad input, as (arguments, what the error says)"
    d = str(layouts['train_valid'])
    only_valid = make_image_folder(tmp_path/'only_valid', classes=('cat', 'dog'))
    make_image_folder(tmp_path/'ov_extra', classes=('owl',), n_train=0)
    (tmp_path/'ov_extra'/'val'/'owl').rename(only_valid/'val'/'owl')
    empty = tmp_path/'empty'; (empty/'cat').mkdir(parents=True); (empty/'dog').mkdir()
    corrupt = make_image_folder(tmp_path/'corrupt', classes=('cat', 'dog'))
    for f in sorted((corrupt/'train'/'cat').iterdir())[:3]: f.write_bytes(b'not an image')
    (tmp_path/'a_file').write_text('x')
    foreign = tmp_path/'foreign.csv'; foreign.write_text('name,score\na,1\n')
    return {
        'out is a folder': (dict(data=d, out=str(tmp_path)), 'is a folder'),
        'out below a file': (dict(data=d, out=str(tmp_path/'a_file'/'r.csv')), 'is a file'),
        'out with a foreign header': (dict(data=d, out=str(foreign)), 'columns fastmix-train does not write'),
        'bs above the training set': (dict(data=d, bs=13), ('13', '12 ')),  # the batch size and the images it exceeds
        'epochs 0': (dict(data=d, epochs=0), '--epochs must be at least 1'),
        'runs 0': (dict(data=d, runs=0), '--runs must be at least 1'),
        'size 0': (dict(data=d, size=0), '--size must be at least 1'),
        'a class only in validation': (dict(data=str(only_valid)), 'owl'),
        'class folders without images': (dict(data=str(empty)), 'no images'),
        'too many unreadable images': (dict(data=str(corrupt)), 'cat_0.JPEG'),
        'unknown arch': (dict(data=d, arch='mixnet_q'), 'Known architectures: mixnet_s, mixnet_m'),
        'unknown act': (dict(data=d, act='swishy'), 'use one of relu'),
        'unknown opt': (dict(data=d, opt='sgd'), 'use one of ranger'),
        'missing data folder': (dict(data=str(tmp_path/'nowhere')), 'no such folder'),
        'data is a file': (dict(data=str(tmp_path/'a_file')), 'is a file'),
        'res with data': (dict(data=d, res=320), '--res picks the archive to download'),
        'nette with data': (dict(data=d, nette=True), '--nette picks the archive'),
        'valid-pct without data': (dict(valid_pct=0.3), '--valid-pct splits a --data folder'),
        'fp16 on the CPU': (dict(data=d, fp16=True), 'needs a CUDA GPU'),
        'bf16 on the CPU': (dict(data=d, bf16=True), 'needs a CUDA GPU'),
        'mixup and cutmix': (dict(data=d, mixup=.4, cutmix=1.), 'pick one'),
        'save-dir is a file': (dict(data=d, save_dir=str(tmp_path/'a_file')), 'is a file'),
        'dropout 1': (dict(data=d, dropout=1.), '--dropout is a probability in [0, 1)'),
        'dropout with timm': (dict(data=d, dropout=.1, impl='timm'), 'drop it with --impl timm'),
        'min-scale 0': (dict(data=d, min_scale=0.), '--min-scale is a fraction'),
    }

BAD = ['out is a folder', 'out below a file', 'out with a foreign header', 'bs above the training set', 'epochs 0', 'runs 0',
       'size 0', 'a class only in validation', 'class folders without images', 'too many unreadable images', 'unknown arch',
       'unknown act', 'unknown opt', 'missing data folder', 'data is a file', 'res with data', 'nette with data',
       'valid-pct without data', 'fp16 on the CPU', 'bf16 on the CPU', 'mixup and cutmix', 'save-dir is a file',
       'dropout 1', 'dropout with timm', 'min-scale 0']

@pytest.mark.parametrize('case', BAD)
def test_bad_input_refused_before_training(case, layouts, tmp_path, capsys, monkeypatch):
    if case == 'fp16 on the CPU' and torch.cuda.is_available(): pytest.skip('a GPU is here')
    kw, says = _bad(tmp_path, layouts)[case]
    def no_training(*a, **k): raise AssertionError('trained')
    monkeypatch.setattr(ft, 'train_run', no_training)
    code, out, err = _main(capsys, **{**dict(TINY, epochs=1, out=str(tmp_path/'r.csv')), **kw})
    teq(code, 2)
    lines = err.strip().splitlines()
    teq(len(lines), 1)
    assert lines[0].startswith('fastmix-train: error: '), lines[0]
    for part in (says if isinstance(says, tuple) else (says,)): assert part in lines[0], lines[0]
    assert not (tmp_path/'r_runs').exists()

@pytest.mark.parametrize('tty,quiet,bars', [(True, False, True), (True, True, False), (False, False, False)])
def test_bars_on_a_terminal_one_line_per_epoch_otherwise(tty, quiet, bars, layouts, tmp_path, monkeypatch):
    seen = []
    def record(*a, bars=None, **k): seen.append(bars); raise SystemExit(0)
    monkeypatch.setattr(ft, 'train_run', record)
    monkeypatch.setattr(sys.stdout, 'isatty', lambda: tty)
    _main(data=str(layouts['flat']), quiet=quiet, out=str(tmp_path/'r.csv'), **TINY)
    teq(seen, [bars])

def test_what_is_not_given_comes_from_the_recipe(layouts, tmp_path, monkeypatch):
    import dataclasses, fastmix.learner as fl
    seen = []
    def record(*a, **k): seen.append(k); raise SystemExit(0)
    monkeypatch.setattr(ft, 'train_run', record)
    monkeypatch.setitem(fl.recipes, 'mxresnet', dataclasses.replace(fl.recipes['mxresnet'], lr=3e-3, label_smoothing=0.05))
    kw = dict(data=str(layouts['flat']), out=str(tmp_path/'r.csv'), size=32, bs=4, workers=0)
    _main(arch='mxresnet18', **kw)
    teq((seen[-1]['lr'], seen[-1]['label_smoothing']), (3e-3, 0.05))  # the family's recipe, read when the command runs
    _main(arch='mixnet_s', **kw)
    teq(seen[-1]['lr'], fl.recipes['mixnet'].lr)
    _main(arch='mixnet_s', lr=1e-3, label_smoothing=0., **kw)
    teq((seen[-1]['lr'], seen[-1]['label_smoothing']), (1e-3, 0.))

def test_dropout_and_min_scale_reach_the_run(layouts, tmp_path, capsys):
    "--dropout sets the classifier's dropout, --min-scale the training crop; both are in the row, so they tell runs apart"
    from fastmix.data import DraftResizedCrop
    kw = dict(data=str(layouts['flat']), epochs=1, out=str(tmp_path/'r.csv'), **TINY)
    teq(_main(capsys, dropout=0.05, min_scale=0.9, **kw)[0], 0)
    row = pd.read_csv(tmp_path/'r.csv').iloc[-1]
    teq((row.dropout, row.min_scale), (0.05, 0.9))
    learn = load_learner(tmp_path/row.model)
    teq(learn.model[1][2].p, 0.05)
    crops = [t for t in learn.dls.train.after_item.fs if isinstance(t, DraftResizedCrop)]
    teq([t.min_scale for t in crops], [0.9])
    code, out, _ = _main(capsys, dropout=0.1, min_scale=0.9, **kw)  # another dropout is another run, not a done one
    assert code == 0 and 'skipped' not in out
    teq(len(pd.read_csv(tmp_path/'r.csv')), 2)

def test_debug_shows_the_traceback(layouts, tmp_path):
    with pytest.raises(ValueError, match='must be at least 1'):
        ft.main(data=str(layouts['flat']), epochs=0, debug=True, out=str(tmp_path/'r.csv'))

def test_unreadable_images_counted_in_the_row(tmp_path, capsys):
    d = make_image_folder(tmp_path/'d', classes=('cat', 'dog'), n_train=30, n_valid=0, size=32)
    (d/'train'/'cat'/'cat_0.JPEG').write_bytes(b'not an image')  # 1 of 60: under the 2% that are tolerated
    code, out, _ = _main(capsys, data=str(d/'train'), epochs=1, out=str(tmp_path/'r.csv'), **dict(TINY, bs=8))
    teq(code, 0)
    assert '1 unreadable image(s) skipped' in out and 'cat_0.JPEG' in out
    teq(pd.read_csv(tmp_path/'r.csv').unreadable.tolist(), [1])

def test_help_lists_the_archs_and_imports_little():
    r = subprocess.run([sys.executable, '-m', 'fastmix.train', '--help'], capture_output=True, text=True, env=ENV, timeout=300)
    teq(r.returncode, 0)
    text = ' '.join(r.stdout.split())
    for a in list_archs(): assert a in text, a
    assert '--woof' not in text and '--channels-last' not in text and '--cutmix' in text and '--bf16' in text
    # the learners, the data pipeline and fastai's training loop are imported when a run starts, not for --help
    code = "import sys, fastmix.train; print(sorted(m for m in ('fastmix.learner', 'fastmix.data', 'fastmix.callbacks') if m in sys.modules))"
    teq(subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, env=ENV).stdout.strip(), '[]')

def test_exported_run_predicts_in_a_fresh_process(layouts, tmp_path, capsys):
    import shutil
    data = shutil.copytree(layouts['train_valid'], tmp_path/'data')
    teq(_main(capsys, data=str(data), epochs=1, out=str(tmp_path/'r.csv'), **TINY)[0], 0)
    model = tmp_path/pd.read_csv(tmp_path/'r.csv').model[0]
    img = shutil.copy(next((data/'valid'/'dog').iterdir()), tmp_path/'dog.jpg')
    shutil.rmtree(data)  # the training data is gone
    code = ("import sys; from fastai.learner import load_learner\n"
            "learn = load_learner(sys.argv[1]); label, i, probs = learn.predict(sys.argv[2])\n"
            "print('RESULT', label, len(probs), round(float(probs.sum()), 4))\n"
            "try: learn.predict(sys.argv[2] + '.missing'); print('RESULT answered')\n"
            "except Exception as e: print('RESULT raised', type(e).__name__)")
    r = subprocess.run([sys.executable, '-c', code, str(model), str(img)], capture_output=True, text=True, env=ENV, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    res = [l.split('RESULT ')[1] for l in r.stdout.splitlines() if 'RESULT ' in l]  # after predict's progress bar
    label, n, total = res[0].split()
    assert label in ('cat', 'dog', 'owl'); teq((n, total), ('3', '1.0'))
    teq(res[1], 'raised FileNotFoundError')  # a missing file is an error, not an answer

# ---- runs that survive being killed ----

KILLER = """
import json, os, signal, sys
import fastmix.train as ft
from fastmix.callbacks import Callback
class Kill(Callback):
    order = 99  # after the epoch's checkpoint is written
    def after_epoch(self):
        if self.epoch == 0: os.kill(os.getpid(), signal.SIGKILL)
real = ft.train_run
def train_run(*a, run=0, cbs=None, **k): return real(*a, run=run, cbs=[cbs, Kill()] if run == 1 else cbs, **k)
ft.train_run = train_run
ft.main(**json.loads(sys.argv[1]))
"""

def test_sigkill_then_same_command_equals_unbroken_run(layouts, tmp_path):
    "Killed (-9) after run 1's first epoch: run 0's row survives; the same command again resumes run 1 from its checkpoint"
    kw = dict(data=str(layouts['flat']), epochs=3, runs=2, **TINY)
    cmd = [sys.executable, '-m', 'fastmix.train', *_args(kw)]
    full = subprocess.run(cmd + ['--out', str(tmp_path/'full.csv')], capture_output=True, text=True, env=ENV, timeout=600)
    assert full.returncode == 0, full.stderr[-3000:]
    out = tmp_path/'broken.csv'
    r = subprocess.run([sys.executable, '-c', KILLER, json.dumps(dict(kw, out=str(out)))], capture_output=True, text=True,
                       env=ENV, timeout=600)
    teq(r.returncode, -signal.SIGKILL)
    teq(pd.read_csv(out).run.tolist(), [0])  # the CSV: run 0's row, whole
    ckpt, = (tmp_path/'broken_runs').glob('*seed1*/checkpoint.pth')
    teq(torch.load(ckpt, weights_only=False)['epoch'], 1)
    r = subprocess.run(cmd + ['--out', str(out)], capture_output=True, text=True, env=ENV, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    assert 'run 0 (seed 0): already in' in r.stdout and 'resuming from' in r.stdout and 'after epoch 1 of 3' in r.stdout
    a, b = pd.read_csv(tmp_path/'full.csv'), pd.read_csv(out)
    teq(b.run.tolist(), [0, 1])  # exactly one row per run
    tclose(a.accuracy.values, b.accuracy.values, eps=1e-4)
    ha = pd.read_csv(tmp_path/a.model[1].replace('model.pkl', 'history.csv'))
    hb = pd.read_csv(tmp_path/b.model[1].replace('model.pkl', 'history.csv'))
    teq(hb.epoch.tolist(), [0, 1, 2])
    for c in ('train_loss', 'valid_loss', 'accuracy'): tclose(ha[c].values, hb[c].values, eps=1e-6)  # epoch by epoch
    wa = load_learner(tmp_path/a.model[1]).model.state_dict()
    wb = load_learner(tmp_path/b.model[1]).model.state_dict()
    for k in wa: tclose(wa[k].float(), wb[k].float(), eps=1e-6)
    assert max((wa[k].float() - wb[k].float()).abs().max().item() for k in wa) < 1e-6

def test_sigint_stops_with_a_checkpoint_and_no_half_row(layouts, tmp_path):
    out = tmp_path/'r.csv'
    cmd = [sys.executable, '-m', 'fastmix.train', *_args(dict(data=str(layouts['flat']), epochs=30, runs=2, out=str(out), **TINY))]
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)
    t0 = time.time()
    while not list((tmp_path/'r_runs').glob('*seed0*/checkpoint.pth')):
        assert p.poll() is None and time.time() - t0 < 300, p.communicate()
        time.sleep(0.02)
    p.send_signal(signal.SIGINT)
    stdout, stderr = p.communicate(timeout=300)
    teq(p.returncode, 130)
    line, = [l for l in stderr.splitlines() if l.startswith('fastmix-train:')]
    assert 'stopped by SIGINT' in line and 'resume with: fastmix-train --arch mixnet_s' in line and '--epochs 30' in line, line
    ckpt, = (tmp_path/'r_runs').glob('*seed0*/checkpoint.pth')
    n = torch.load(ckpt, weights_only=False)['epoch']
    assert 1 <= n < 30
    teq(len(pd.read_csv(ckpt.parent/'history.csv')), n)
    assert not out.exists() or read_results(out) == []  # no row, not even half of one
    assert not list(ckpt.parent.glob('.*.tmp'))

def test_distributed_two_cpu_processes(tiny_folder, tmp_path):
    "torchrun/accelerate start one process per device; on CPU they train over gloo and only rank 0 writes results"
    out = tmp_path/'d.csv'
    r = subprocess.run([sys.executable, '-m', 'torch.distributed.run', '--standalone', '--nproc_per_node', '2',  # a free port
                        '-m', 'fastmix.train', *_args(dict(data=str(tiny_folder), epochs=1, out=str(out), **TINY))],
                       capture_output=True, text=True, env=ENV, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    df = pd.read_csv(out)
    teq(len(df), 1)
    teq(r.stdout.count('run 0: accuracy'), 1)
    assert (out.parent/df.model[0]).is_file()

"fastmix-sweep: a grid lands as one row per run, --tune never reads the validation folder, bad values are refused first."
import os, subprocess, sys
from pathlib import Path
import numpy as np, pandas as pd, pytest
from PIL import Image
from fastcore.test import test_eq as teq
from fastmix.sweep import sweep_grid

def sweep_cli(*args, cwd):
    env = {**os.environ, 'OMP_WAIT_POLICY': 'PASSIVE'}
    return subprocess.run([sys.executable, '-m', 'fastmix.sweep', *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=900)

@pytest.fixture(scope='module')
def folder(tmp_path_factory):
    "train/ with classes cat and dog; valid/ with other classes, which any read of the validation folder refuses"
    root, rng = tmp_path_factory.mktemp('sweep'), np.random.default_rng(0)
    for split, classes in (('train', ('cat', 'dog')), ('valid', ('owl', 'yak'))):
        for i,c in enumerate(classes):
            (root/split/c).mkdir(parents=True)
            for j in range(5):
                a = rng.integers(0, 255, (36, 36, 3), dtype=np.uint8); a[..., i] = 255
                Image.fromarray(a).save(root/split/c/f'{j}.jpg')
    return root

def test_grid_of_2x2_lands_as_4_rows_on_the_tuning_split(folder, tmp_path):
    r = sweep_cli('--arch', 'mixnet_s', '--lr', '1e-3,2e-3', '--bs', '2,4', '--epochs', '1', '--size', '32', '--workers', '0',
                  '--tune', '--quiet', '--data', str(folder), '--out', str(tmp_path/'s.csv'), cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    df = pd.read_csv(tmp_path/'s.csv')
    teq(len(df), 4)
    teq(sorted(zip(df.lr, df.bs)), [(1e-3, 2), (1e-3, 4), (2e-3, 2), (2e-3, 4)])
    teq(set(df.valid_pct), {0.2})
    teq(r.stdout.count('sweep '), 4)

def test_recipe_levers_are_grid_options(folder, tmp_path):
    r = sweep_cli('--arch', 'mixnet_s', '--dropout', '0,0.3', '--min-scale', '0.5', '--epochs', '1', '--size', '32', '--bs', '2',
                  '--workers', '0', '--tune', '--quiet', '--data', str(folder), '--out', str(tmp_path/'s.csv'), cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    df = pd.read_csv(tmp_path/'s.csv')
    teq(sorted(zip(df.dropout, df.min_scale)), [(0., 0.5), (0.3, 0.5)])

def test_without_tune_the_validation_folder_is_read(folder, tmp_path):
    "The same folder without --tune is refused, because its validation classes are not training classes: so --tune never read it"
    r = sweep_cli('--arch', 'mixnet_s', '--epochs', '1', '--size', '32', '--bs', '2', '--workers', '0', '--data', str(folder),
                  '--out', str(tmp_path/'s.csv'), cwd=tmp_path)
    teq(r.returncode, 2)
    assert 'owl' in r.stderr and 'Traceback' not in r.stderr, r.stderr

def test_bad_value_refused_before_any_training(folder, tmp_path):
    r = sweep_cli('--arch', 'mixnet_s,mixnet_q', '--epochs', '1', '--size', '32', '--bs', '2', '--tune', '--data', str(folder),
                  '--out', str(tmp_path/'s.csv'), cwd=tmp_path)
    teq(r.returncode, 2)
    errs = [l for l in r.stderr.splitlines() if l.startswith('fastmix-sweep: error:')]
    assert len(errs) == 1 and 'mixnet_q' in errs[0] and 'Traceback' not in r.stderr, r.stderr
    assert not (tmp_path/'s.csv').exists() and 'sweep 1/' not in r.stdout

def test_grid_order():
    teq(sweep_grid(arch=['a', 'b'], lr=[1]), [dict(arch='a', lr=1), dict(arch='b', lr=1)])

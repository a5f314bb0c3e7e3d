"fastmix-compare: each run counted once, older CSVs, labels that tell configurations apart, curves, matplotlib left alone."
import os, subprocess, sys
from pathlib import Path
import numpy as np, pandas as pd, pytest
from fastcore.test import test_eq as teq, test_fail as tfail
from fastmix.train import append_result, result_cols
from fastmix.compare import (summarize, dedupe, markdown_table, config_labels, load_histories, plot_comparison, plot_curves,
                             best_per_arch)

ENV = dict(os.environ, CUDA_VISIBLE_DEVICES='', OMP_WAIT_POLICY='PASSIVE', OMP_NUM_THREADS='1')

def rows(archs=(('mixnet_s', .5), ('efficientnet_b0', .6)), n=3, **kw):
    return [{**{c: 0 for c in result_cols}, **dict(arch=a, impl='fastmix', act='default', opt='ranger', size=64, run=r, seed=r,
             accuracy=acc + r / 100, top5=.9, train_time=10. + r, images_per_s=100., params=1e6, madds=1e7, model=''), **kw}
            for a, acc in archs for r in range(n)]

def _compare(*args):
    return subprocess.run([sys.executable, '-m', 'fastmix.compare', *map(str, args)], capture_output=True, text=True, env=ENV,
                          timeout=300)

def test_duplicates_counted_once(tmp_path):
    f = tmp_path/'r.csv'
    rs = rows()
    for row in rs + [dict(rs[0], accuracy=.9)]: append_result(f, row)  # the same run (config and seed 0) twice
    df = pd.read_csv(f)
    d, n = dedupe(df)
    teq(n, 1); teq(len(d), 6)
    s = summarize(df).set_index('arch')
    teq(s.runs['mixnet_s'], 3)
    # the last row of a run counts: seeds 0, 1, 2 with accuracies .9 (the rerun), .51, .52
    teq(round(s.acc_mean['mixnet_s'], 6), round(np.mean([.9, .51, .52]), 6))
    r = _compare(f, '--out', tmp_path/'c.png')
    assert r.returncode == 0, r.stderr[-2000:]
    assert '1 duplicate row(s)' in r.stderr
    assert '| mixnet_s ' in r.stdout and '3 |' in r.stdout

def test_older_csv_with_fewer_columns(tmp_path):
    "A CSV of an older fastmix: no impl, cutmix, bf16, model... columns; still summarised"
    old_cols = ['arch', 'act', 'opt', 'size', 'epochs', 'lr', 'bs', 'data', 'mixup', 'label_smoothing', 'fp16', 'channels_last',
                'run', 'seed', 'accuracy', 'top5', 'train_time', 'images_per_s', 'params', 'madds', 'peak_mem_mb']
    pd.DataFrame(rows())[old_cols].to_csv(tmp_path/'old.csv', index=False)
    s = summarize(pd.read_csv(tmp_path/'old.csv'))
    teq(sorted(s.arch), ['efficientnet_b0', 'mixnet_s']); teq(list(s.runs), [3, 3])
    r = _compare(tmp_path/'old.csv', '--out', tmp_path/'c.png', '--md', tmp_path/'t.md')
    assert r.returncode == 0, r.stderr[-2000:]
    lines = (tmp_path/'t.md').read_text().splitlines()
    teq(len(lines), 4)
    assert lines[2].startswith('| efficientnet_b0') and '0.6100 +- 0.0100' in lines[2]

def test_labels_tell_configurations_apart():
    df = pd.DataFrame(rows(archs=(('mixnet_s', .5),), act='relu') + rows(archs=(('mixnet_s', .6),), act='mish')
                      + [dict(r, size=128) for r in rows(archs=(('mixnet_s', .7),), act='mish')])
    s = summarize(df)
    teq(len(s), 3)
    labels = config_labels(s)
    teq(len(set(labels)), 3)
    teq(labels[0], 'mixnet_s act=mish size=128')
    assert any(l.startswith('| mixnet_s act=relu size=64 ') for l in markdown_table(s).splitlines())

def test_learning_curves_from_run_folders(tmp_path):
    rs = []
    for i, row in enumerate(rows(n=2)):
        run = tmp_path/'r_runs'/f'run{i}'; run.mkdir(parents=True)
        pd.DataFrame(dict(epoch=[0, 1, 2], accuracy=[.2, .3, row['accuracy']], train_time=[5., 10., 15.])).to_csv(run/'history.csv', index=False)
        rs.append(dict(row, model=f'r_runs/run{i}/model.pkl'))
    rs.append(dict(rs[0], seed=9, model='r_runs/gone/model.pkl'))  # a run folder that was deleted: no curve, no error
    for row in rs: append_result(tmp_path/'r.csv', row)
    h = load_histories(pd.read_csv(tmp_path/'r.csv'), tmp_path)
    teq(h.run_id.nunique(), 4); teq(len(h), 12)
    teq(sorted(set(h.config)), ['efficientnet_b0', 'mixnet_s'])
    r = _compare(tmp_path/'r.csv', '--out', tmp_path/'c.png')
    assert r.returncode == 0, r.stderr[-2000:]
    assert 'learning curves of 4 run(s)' in r.stdout
    assert (tmp_path/'c_curves.png').stat().st_size > 1000 and (tmp_path/'c.png').stat().st_size > 1000

def test_plotting_to_a_file_leaves_matplotlib_as_it_was(tmp_path):
    import matplotlib
    import matplotlib.pyplot as plt
    before = matplotlib.get_backend()
    matplotlib.use('svg')  # whatever a notebook or a script chose
    try:
        s = summarize(pd.DataFrame(rows()))
        plot_comparison(s, tmp_path/'c.png')
        plot_curves(pd.DataFrame(dict(epoch=[0, 1], accuracy=[.1, .2], train_time=[1., 2.], config='a', run_id=0)), tmp_path/'h.png')
        teq(matplotlib.get_backend(), 'svg')
        teq(plt.get_fignums(), [])  # no pyplot figure left open
        assert (tmp_path/'c.png').read_bytes()[:4] == b'\x89PNG'
    finally: matplotlib.use(before)

def test_compare_bad_input(tmp_path):
    r = _compare(tmp_path/'none.csv')
    teq(r.returncode, 2)
    line, = [l for l in r.stderr.splitlines() if 'fastmix-compare' in l]  # one line, no traceback
    assert line.startswith('fastmix-compare: error: ') and 'fastmix-train --out' in line
    assert 'Traceback' not in r.stderr
    (tmp_path/'x.csv').write_text('name,score\na,1\n')
    r = _compare(tmp_path/'x.csv')
    teq(r.returncode, 2); assert 'not a fastmix-train results file' in r.stderr

def test_best_per_arch(tmp_path):
    rs = rows(archs=(('mixnet_s', .5),), lr=2e-3) + rows(archs=(('mixnet_s', .6),), lr=4e-3) + rows(archs=(('mixnet_m', .55),), lr=2e-3)
    b = best_per_arch(summarize(pd.DataFrame(rs)))
    teq(b[['arch', 'lr']].values.tolist(), [['mixnet_s', 4e-3], ['mixnet_m', 2e-3]])
    for row in rs: append_result(tmp_path/'r.csv', row)
    r = _compare(tmp_path/'r.csv', '--out', tmp_path/'c.png', '--best', '--md', tmp_path/'t.md')
    assert r.returncode == 0, r.stderr[-2000:]
    lines = (tmp_path/'t.md').read_text().splitlines()
    teq(len(lines), 4)  # header, rule, one row per architecture
    assert lines[2].startswith('| mixnet_s lr=0.004') and lines[3].startswith('| mixnet_m lr=0.002'), lines

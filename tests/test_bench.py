import time, pytest, torch, numpy as np, pandas as pd
from types import SimpleNamespace
from torch import nn
from fastcore.test import test_eq as teq, test_close as tclose, test_fail as tfail
from fastmix.bench import time_fns, peak_mem, build, bench, plot_bench, write_table, bench_optimizer, bench_data, bench_onnx, main
from fastmix.models import create_model, recompute_blocks, count_params

def test_time_fns_alternates_and_ranks():
    calls = []
    t = time_fns({'a': lambda: (calls.append('a'), time.sleep(0.002)), 'b': lambda: (calls.append('b'), time.sleep(0.02))}, repeats=3, warmup=0)
    teq(calls, ['a', 'b'] * 3)
    assert t['b'] > 4 * t['a']

def test_peak_mem_scales_with_batch():
    m = nn.Sequential(nn.Conv2d(3, 16, 3), nn.BatchNorm2d(16), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 4))
    p = [peak_mem(m, torch.randn(b, 3, 32, 32), torch.zeros(b).long()) for b in (2, 8)]
    tclose(p[1] / p[0], 4, eps=0.6)

def test_build_contenders():
    fm, tm = build('mixnet_s', n_out=5), build('mixnet_s', 'timm', n_out=5)
    teq(count_params(fm), count_params(tm))
    assert fm[0][0][0].weight.is_contiguous(memory_format=torch.channels_last)
    assert not build('mixnet_s', 'fastmix_nchw')[0][0][0].weight.is_contiguous(memory_format=torch.channels_last)
    assert build('mixnet_s', 'fastmix_recompute')[0][1][0].recompute
    tfail(lambda: build('mixnet_s', 'keras'), contains='fastmix_recompute')
    tfail(lambda: build('mxresnet18', 'timm'), contains="impl='fastmix'")

class Sleepy(nn.Module):
    "A classifier whose forward takes `s` seconds"
    def __init__(self, s): super().__init__(); self.s, self.lin = s, nn.Linear(3, 1000)
    def forward(self, x): time.sleep(self.s); return self.lin(x.mean((2, 3)))

def test_bench_ratios_from_two_measurements(monkeypatch):
    import fastmix.bench as fb
    monkeypatch.setattr(fb, 'build', lambda arch, impl='fastmix', n_out=1000, device='cpu': Sleepy(.04 if impl == 'fastmix' else .02))
    df = bench(['mixnet_s'], size=16, bs=4, repeats=3)
    teq(list(df.impl), ['fastmix', 'timm'])
    tclose(df.infer_img_s_vs_timm[0], 0.5, eps=0.12)  # fastmix's forward takes twice timm's
    tclose(df.train_img_s_vs_timm[0], 0.5, eps=0.12)
    tclose(df.infer_img_s[1], 4 / .02, eps=40)

def test_bench_real_models_and_unknown_arch():
    df = bench(['mixnet_s'], size=32, bs=2, repeats=1)
    teq(df.params[0], df.params[1]); teq(df.madds[0], df.madds[1])
    tclose(df.peak_train_mb[0], df.peak_train_mb[1], eps=0.05 * df.peak_train_mb[1])  # same activations kept
    tfail(lambda: bench(['mixnet_xs'], size=32, bs=2, repeats=1), contains="Did you mean 'mixnet_s'")

def test_plot_to_file_keeps_backend(tmp_path):
    import matplotlib
    before = matplotlib.get_backend()
    matplotlib.use('pdf')  # a backend that is not Agg, so that a switch to Agg shows
    try:
        df = pd.DataFrame(dict(arch=['a', 'a'], impl=['fastmix', 'timm'], train_img_s=[2., 1.], infer_img_s=[4., 3.],
                               peak_train_mb=[10., 10.], device='cpu', amp=False, size=32, bs=2, mem_bs=2, repeats=1))
        fig = plot_bench(df, tmp_path/'p.png')
        teq(matplotlib.get_backend(), 'pdf')
        teq(len(fig.axes), 3)
        assert (tmp_path/'p.png').stat().st_size > 1000
    finally: matplotlib.use(before)

def test_write_table(tmp_path):
    txt = write_table(pd.DataFrame(dict(opt=['a', 'b'], ms=[1.5, 3.])), tmp_path/'t.md', 'Title', 'What was measured.')
    teq((tmp_path/'t.md').read_text(), txt)
    lines = txt.splitlines()
    teq(lines[:3], ['# Title', '', 'What was measured.'])
    assert '| opt   |   ms |' in lines and '| a     |  1.5 |' in lines, lines

def _sleeper(s): return lambda ps: SimpleNamespace(step=lambda: time.sleep(s))

def test_bench_optimizer_ratio():
    o = bench_optimizer(nn.Linear(2, 2), {'one': (_sleeper(.01), None), 'two': (_sleeper(.03), 'one')}, repeats=3, n_steps=2)
    tclose(o.vs_baseline[1], 3, eps=0.6)
    tclose(o.ms_per_step[0], 10, eps=3)
    assert np.isnan(o.vs_baseline[0])  # no baseline, no ratio

def test_bench_optimizer_real_steps_change_copies():
    m = nn.Linear(4, 4); w = m.weight.detach().clone()
    o = bench_optimizer(m, {'sgd': (lambda ps: torch.optim.SGD(ps, lr=.1), None), 'adam': (lambda ps: torch.optim.Adam(ps), 'sgd')}, repeats=2, n_steps=1)
    teq(list(o.optimizer), ['sgd', 'adam'])
    teq(m.weight, w)  # each optimizer stepped a copy

class SlowLoader:
    "Batches of 4 that take `s` seconds each"
    def __init__(self, s, n=3): self.s, self.n = s, n
    def __iter__(self):
        for _ in range(self.n): time.sleep(self.s); yield torch.zeros(4, 3), torch.zeros(4)

def test_bench_data_ratio(tmp_path):
    d = bench_data({'fast': SlowLoader(.01), 'slow': SlowLoader(.02)}, n_batches=4, repeats=3, fname=tmp_path/'d.md')  # runs over epochs
    tclose(d.vs_first[1], 0.5, eps=0.12)
    tclose(d.images_s[0], 4 / .01, eps=80)
    assert 'DataLoader throughput' in (tmp_path/'d.md').read_text()

def test_bench_onnx_mechanics(tmp_path):
    o = bench_onnx(['mixnet_s', 'mxresnet18'], size=32, bs=2, repeats=3, repeats_bs=2, n_out=5, folder=tmp_path)
    cpu = o[o.provider == 'cpu'].reset_index(drop=True)
    teq(list(cpu.impl), ['fastmix', 'timm', 'fastmix'])  # timm has no MXResNet
    tclose(cpu.onnx_b1_ms_vs_timm[0], cpu.onnx_b1_ms[0] / cpu.onnx_b1_ms[1], eps=1e-9)
    assert np.isnan(cpu.onnx_img_s_vs_timm[2])
    assert (tmp_path/'mixnet_s_fastmix.onnx').exists() and (tmp_path/'mixnet_s_timm.onnx').exists()

def test_cli_writes_csv_and_plot(tmp_path):
    out = tmp_path/'res'/'b.csv'
    main(archs='mxresnet18', size=32, bs=2, repeats=1, out=str(out))  # timm has no mxresnet18: fastmix alone
    df = pd.read_csv(out)
    teq(list(df.impl), ['fastmix'])
    assert out.with_suffix('.png').exists()
    assert '| mxresnet18 |' in out.with_suffix('.md').read_text()

def test_recompute_same_numbers_less_memory():
    a, r = create_model('mixnet_s', n_out=4, p=0.), create_model('mixnet_s', n_out=4, p=0.)
    r.load_state_dict(a.state_dict()); recompute_blocks(r)
    x, y = torch.randn(4, 3, 64, 64), torch.tensor([0, 1, 2, 3])
    for m in (a, r): nn.functional.cross_entropy(m(x), y).backward()
    for p, q in zip(a.parameters(), r.parameters()): tclose(q.grad, p.grad, eps=1e-5)
    for p, q in zip(a.buffers(), r.buffers()): teq(q, p)  # running stats and batch counts updated once
    assert peak_mem(r, x, y) < 0.75 * peak_mem(a, x, y)
    recompute_blocks(r, False)
    assert not r[0][1][0].recompute

import time, pytest, torch, pandas as pd
from torch import nn
from fastcore.test import test_eq as teq, test_close as tclose, test_fail as tfail
from fastmix.bench import time_fns, peak_mem, build, bench, main
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

def test_bench_tiny():
    df = bench(['mixnet_s'], size=32, bs=2, repeats=1)
    teq(list(df.impl), ['fastmix', 'timm'])
    teq(df.params[0], df.params[1]); teq(df.madds[0], df.madds[1])
    teq(df.train_img_s_vs_timm[1], 1.)
    assert (df[['infer_img_s', 'train_img_s', 'peak_train_mb']] > 0).all().all()
    tfail(lambda: bench(['mixnet_xs'], size=32, bs=2, repeats=1), contains="Did you mean 'mixnet_s'")

def test_cli_writes_csv_and_plot(tmp_path):
    out = tmp_path/'res'/'b.csv'
    main(archs='mxresnet18', size=32, bs=2, repeats=1, out=str(out))  # timm has no mxresnet18: fastmix alone
    df = pd.read_csv(out)
    teq(list(df.impl), ['fastmix'])
    assert out.with_suffix('.png').exists()

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

def test_fold_bn_same_function():
    from fastmix.bench import fold_bn
    m = build('mixnet_s', n_out=4).eval()
    for b in m.modules():
        if isinstance(b, nn.BatchNorm2d): b.running_mean.uniform_(-.1, .1); b.running_var.uniform_(.5, 2)
    f = fold_bn(m)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad(): tclose(f(x), m(x), eps=1e-4)
    teq(sum(isinstance(b, nn.BatchNorm2d) for b in f.modules()), 0)
    assert any(isinstance(b, nn.BatchNorm2d) for b in m.modules())

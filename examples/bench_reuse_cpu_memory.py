"""`ReuseCPUMemory` on and off: a MixNet-S fit on the CPU in a fresh process each time, alternating (ABBAAB), medians.

    python examples/bench_reuse_cpu_memory.py DATA_DIR [--size 128] [--out reuse_cpu_memory.md]
"""
import argparse, json, os, statistics, subprocess, sys

CHILD = """
import json, sys, time, resource, torch
from pathlib import Path
from fastmix.data import folder_dls
from fastmix.learner import fastmix_learner
from fastai.callback.progress import ProgressCallback
data, size, reuse = sys.argv[1], int(sys.argv[2]), sys.argv[3] == '1'
learn = fastmix_learner(folder_dls(data, size=size, bs=32, num_workers=0), 'mixnet_s', reuse_cpu_memory=reuse)
learn.remove_cb(ProgressCallback)
def rss(): return int(Path('/proc/self/statm').read_text().split()[1]) * resource.getpagesize() / 2**20
def faults(): return resource.getrusage(resource.RUSAGE_SELF).ru_minflt
with learn.no_logging(): learn.fit_flat_cos(1, 1e-3)  # warm-up
f0, t0 = faults(), time.perf_counter()
with learn.no_logging(): learn.fit_flat_cos(2, 1e-3)
dt, df, after = time.perf_counter() - t0, faults() - f0, rss()
f1 = faults()
for _ in range(5): x = torch.ones(16 * 2**20); del x  # 64 MB blocks, after the fit
print(json.dumps(dict(fit_s=dt, faults=df, peak_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                      rss_after_mb=after, faults_after=faults() - f1)))
"""

def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('data'); p.add_argument('--size', type=int, default=128); p.add_argument('--out', default='reuse_cpu_memory.md')
    a = p.parse_args()
    env = dict(os.environ, CUDA_VISIBLE_DEVICES='')
    res = {'0': [], '1': []}
    for r in '100110':
        out = subprocess.run([sys.executable, '-c', CHILD, a.data, str(a.size), r], capture_output=True, text=True, env=env)
        res[r].append(json.loads(out.stdout.strip().splitlines()[-1]))
    med = {r: {k: statistics.median(d[k] for d in v) for k in v[0]} for r, v in res.items()}
    off, on = med['0'], med['1']
    table = '\n'.join([f'MixNet-S, {a.size}px, batch 32, 2 epochs after a warm-up epoch, on {a.data}; medians of 3 fresh processes each.', '',
        '| | without | with |', '|---|---|---|',
        f"| fit (s) | {off['fit_s']:.2f} | {on['fit_s']:.2f} ({off['fit_s'] / on['fit_s']:.2f}x) |",
        f"| minor page faults in the fit | {off['faults']:.0f} | {on['faults']:.0f} |",
        f"| peak RSS (MB) | {off['peak_rss_mb']:.0f} | {on['peak_rss_mb']:.0f} |",
        f"| RSS after the fit (MB) | {off['rss_after_mb']:.0f} | {on['rss_after_mb']:.0f} |",
        f"| page faults of 5 x 64 MB allocations after the fit | {off['faults_after']:.0f} | {on['faults_after']:.0f} |"])
    open(a.out, 'w').write(table + '\n')
    print(table)

if __name__ == '__main__': main()

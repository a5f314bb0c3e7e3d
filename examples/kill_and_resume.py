"""What a `kill -9` costs a fastmix-train protocol: the same command unbroken, killed mid-epoch in its last run, and run
again (which resumes). Writes a markdown table.

    python examples/kill_and_resume.py DATA_DIR [--runs 2] [--epochs 3] [--out kill_and_resume.md]

The run is killed in the middle of epoch 2 of its last run (after that run's first checkpoint). Without checkpoints
everything trained before the kill is lost and the command has to be run whole again (and appends the finished runs a
second time); with them, the same command skips the finished runs and continues the killed one from its last epoch.
"""
import argparse, json, os, subprocess, sys, time, tempfile
from pathlib import Path

KILLER = """
import json, os, signal, sys
import fastmix.train as ft
from fastmix.callbacks import Callback
class Kill(Callback):
    order = 99
    def after_batch(self):
        if self.training and self.epoch == 1 and self.iter == len(self.dl) // 2: os.kill(os.getpid(), signal.SIGKILL)
kw = json.loads(sys.argv[1])
real = ft.train_run
def train_run(*a, run=0, cbs=None, **k):
    return real(*a, run=run, cbs=([] if cbs is None else [cbs]) + ([Kill()] if run == kw['runs'] - 1 else []), **k)
ft.train_run = train_run
ft.main(**kw)
"""

def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('data'); p.add_argument('--runs', type=int, default=2); p.add_argument('--epochs', type=int, default=3)
    p.add_argument('--size', type=int, default=64); p.add_argument('--bs', type=int, default=32)
    p.add_argument('--arch', default='mixnet_s'); p.add_argument('--out', default='kill_and_resume.md')
    a = p.parse_args()
    kw = dict(data=a.data, size=a.size, bs=a.bs, epochs=a.epochs, runs=a.runs, arch=a.arch, workers=0)
    cli = [sys.executable, '-m', 'fastmix.train'] + [x for k, v in kw.items() for x in (f"--{k}", str(v))]
    env = dict(os.environ, PYTHONUNBUFFERED='1')
    def timed(cmd):
        t0 = time.perf_counter(); r = subprocess.run(cmd, capture_output=True, text=True, env=env)
        return time.perf_counter() - t0, r
    d = Path(tempfile.mkdtemp())
    t_full, r = timed(cli + ['--out', str(d/'full.csv')]); assert r.returncode == 0, r.stderr[-2000:]
    t_killed, r = timed([sys.executable, '-c', KILLER, json.dumps(dict(kw, out=str(d/'broken.csv')))])
    assert r.returncode == -9, r.stderr[-2000:]
    t_again, r = timed(cli + ['--out', str(d/'broken.csv')]); assert r.returncode == 0, r.stderr[-2000:]
    rows = len((d/'broken.csv').read_text().strip().splitlines()) - 1
    table = '\n'.join([
        f"{a.runs} runs x {a.epochs} epochs of {a.arch} at {a.size}px on {a.data}, killed (-9) in the middle of epoch 2 of run {a.runs}.", '',
        '| | seconds |', '|---|---|',
        f'| the command, unbroken | {t_full:.1f} |', f'| the command, until it was killed | {t_killed:.1f} |',
        f'| the same command again (resumes) | {t_again:.1f} |',
        f'| lost with checkpoints (killed + again - unbroken) | {t_killed + t_again - t_full:.1f} |',
        f'| lost without checkpoints (everything before the kill) | {t_killed:.1f} |', '',
        f'Rows in the CSV after the second command: {rows} (one per run).'])
    Path(a.out).write_text(table + '\n')
    print(table)

if __name__ == '__main__': main()

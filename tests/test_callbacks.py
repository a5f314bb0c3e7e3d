"fastmix.callbacks: ReuseCPUMemory restored on every exit and idle on predict, checkpoints, resume, signals."
import os, signal, threading, resource
from pathlib import Path
import pytest, torch
from torch import nn
from fastcore.test import test_eq as teq, test_close as tclose
from fastai.test_utils import synth_learner, synth_dbunch
from fastai.callback.core import Callback, CancelFitException
from fastai.callback.schedule import *
from fastai.learner import Learner
import fastmix.callbacks as fc
import fastmix.patches  # fit_flat_cos honours start_epoch
from fastmix.callbacks import (ReuseCPUMemory, RunCheckpoint, RunStats, SeedEachEpoch, StopOnSignal, TimeBudget, load_checkpoint,
                               atomic_write)
from fastmix.optimizer import Ranger

MAIN = threading.current_thread() is threading.main_thread()

class FakeLibc:
    "Records the allocator calls `ReuseCPUMemory` makes, in order"
    def __init__(self): self.calls = []
    def mallopt(self, p, v): self.calls.append(('mallopt', p, v)); return 1
    def malloc_trim(self, n): self.calls.append(('malloc_trim', n)); return 1

RESTORE = [('mallopt', fc._M_MMAP_MAX, 65536), ('mallopt', fc._M_MMAP_THRESHOLD, 32 * 2**20),
           ('mallopt', fc._M_TRIM_THRESHOLD, 64 * 2**20), ('malloc_trim', 0)]
REUSE = [('mallopt', fc._M_MMAP_MAX, 0), ('mallopt', fc._M_TRIM_THRESHOLD, 2**31 - 1)]

@pytest.fixture
def libc(monkeypatch):
    f = FakeLibc()
    monkeypatch.setattr(fc, '_libc', f)
    return f

class Raise(Callback):
    "Raise `exc` in the second batch of the first epoch"
    def __init__(self, exc): self.exc = exc
    def after_batch(self):
        if self.training and self.iter == 1: raise self.exc

@pytest.mark.parametrize('exc', [KeyboardInterrupt, RuntimeError('boom'), CancelFitException])
def test_reuse_cpu_memory_restored_on_every_exit(libc, exc):
    learn = synth_learner(data=synth_dbunch(n_train=4), cbs=ReuseCPUMemory())
    cb = learn.reuse_cpu_memory
    if exc is CancelFitException: learn.fit(2, cbs=Raise(exc))  # fastai's own end: after_fit runs
    else:
        with pytest.raises(type(exc) if isinstance(exc, Exception) else exc): learn.fit(2, cbs=Raise(exc))
    teq(libc.calls, REUSE + RESTORE)  # set once at the start, restored once, whatever the end
    teq(cb.active, False)
    assert '_with_events' not in learn.__dict__  # the learner is as it was (and exports as before)
    libc.calls.clear()
    learn.fit(1)  # and the next fit works as usual
    teq(libc.calls, REUSE + RESTORE)

def test_reuse_cpu_memory_idle_on_get_preds(libc):
    learn = synth_learner(data=synth_dbunch(n_train=2), cbs=ReuseCPUMemory())
    learn.get_preds(); learn.get_preds(ds_idx=0, with_loss=True)
    teq(libc.calls, [])

def test_reuse_cpu_memory_idle_on_predict(libc, tiny_folder):
    from fastmix.data import folder_dls
    from fastmix.learner import fastmix_learner
    learn = fastmix_learner(folder_dls(tiny_folder, size=32, bs=4, num_workers=0), 'mixnet_s', reuse_cpu_memory=True)
    assert any(isinstance(c, ReuseCPUMemory) for c in learn.cbs)
    learn.predict(next((tiny_folder/'val').rglob('*.JPEG')))
    teq(libc.calls, [])

def test_reuse_cpu_memory_same_numbers():
    def fit(cbs):
        from fastai.torch_core import set_seed
        set_seed(0)
        learn = synth_learner(data=synth_dbunch(n_train=4), cbs=cbs)
        learn.fit(2, 1e-2)
        return torch.cat([p.detach().flatten() for p in learn.model.parameters()])
    teq(fit(ReuseCPUMemory()), fit(None))

def test_reuse_cpu_memory_keeps_freed_pages_during_fit_only():
    if fc._libc is None: pytest.skip('not glibc: ReuseCPUMemory does nothing here')
    if not MAIN: pytest.skip("glibc's main heap is the main thread's")
    def page_faults():
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        for _ in range(5): x = torch.ones(16 * 2**20); del x  # 64 MB written and freed, as an activation
        return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
    def rss(): return int(Path('/proc/self/statm').read_text().split()[1]) * resource.getpagesize()
    cb = ReuseCPUMemory()
    cb.learn = synth_learner()
    cold = page_faults()
    cb.before_fit(); page_faults(); page_faults(); warm = page_faults()  # the heap grows over the first rounds
    held = rss()
    cb.after_fit()
    released = held - rss()  # what the heap kept for the next step goes back to the system after fit
    assert warm < cold / 10 and released > 32 * 2**20, (cold, warm, released)

# ---- checkpoints and resume ----

class StopAfter(Callback):
    order = 99  # after the epoch's checkpoint
    def __init__(self, n): self.n = n
    def after_epoch(self):
        if self.epoch + 1 == self.n: raise CancelFitException()

DATA = None
def ranger_learner(seed):
    global DATA
    if DATA is None: torch.manual_seed(0); DATA = synth_dbunch(n_train=5)
    torch.manual_seed(seed)
    learn = synth_learner(data=DATA, model=nn.Sequential(nn.Linear(1, 8), nn.ReLU(), nn.Linear(8, 1)), cbs=[SeedEachEpoch(7), RunStats()])
    learn.opt_func = Ranger
    return learn

def weights(learn): return torch.cat([p.detach().flatten() for p in learn.model.parameters()])

def test_checkpoint_resume_equals_unbroken_run_with_lookahead(tmp_path):
    ck = tmp_path/'run'/'checkpoint.pth'
    full = ranger_learner(0)
    with full.no_logging(): full.fit_flat_cos(4, 1e-2)
    part = ranger_learner(0)
    with part.no_logging(): part.fit_flat_cos(4, 1e-2, cbs=[RunCheckpoint(ck), StopAfter(3)])
    teq(sorted(p.name for p in ck.parent.iterdir()), ['checkpoint.pth', 'history.csv'])  # no temporary file left
    res = ranger_learner(1)
    assert (weights(res) - weights(part)).abs().max() > 0.01
    st = load_checkpoint(res, ck)
    teq(st['epoch'], 3); teq(st['n_epoch'], 4); teq(len(st['history']), 3)
    teq(res.opt.count, part.opt.count)
    assert res.opt.count % 6 != 0  # mid Lookahead cycle: the count and the slow weights matter
    for a, b in zip(res.opt.slow_weights[0], part.opt.slow_weights[0]): teq(a, b)
    cb = RunCheckpoint(ck, st)
    with res.no_logging(): res.fit_flat_cos(4, 1e-2, cbs=cb, start_epoch=st['epoch'])
    teq(weights(res), weights(full))
    teq([h['epoch'] for h in cb.history], [0, 1, 2, 3])
    teq(res.recorder.values[-1], full.recorder.values[-1])  # the smoothed training loss carries on too

def test_checkpoint_resumes_the_run_stats(tmp_path):
    ck = tmp_path/'checkpoint.pth'
    learn = ranger_learner(0)
    with learn.no_logging(): learn.fit(3, cbs=[RunCheckpoint(ck), StopAfter(2)])
    h = load_checkpoint(ranger_learner(1), ck)['history']
    stats = RunStats(h[-1]['train_time'], h[-1]['n_imgs'])
    learn2 = ranger_learner(1)
    with learn2.no_logging(): learn2.fit(3, cbs=stats, start_epoch=2)
    teq(stats.n_imgs, 3 * h[0]['n_imgs'])
    assert stats.train_time > h[-1]['train_time']

def test_checkpoint_of_a_time_budget_run_knows_its_length(tmp_path):
    class Clock:
        t = 0.
        def __call__(self): self.t += 60; return self.t
    ck = tmp_path/'checkpoint.pth'
    learn = ranger_learner(0)
    with learn.no_logging(): learn.fit_flat_cos(100, 1e-2, cbs=[TimeBudget(3, clock=Clock()), RunCheckpoint(ck)])
    st = torch.load(ck, weights_only=False)
    teq((st['epoch'], st['n_epoch']), (3, 3))  # the last epoch was checkpointed, and the run's length is the budget's

def test_atomic_write_keeps_the_old_file_when_the_write_fails(tmp_path):
    f = tmp_path/'a.bin'
    atomic_write(f, b'old')
    with pytest.raises(TypeError): atomic_write(f, 123)  # fails in the middle of the write
    teq(f.read_bytes(), b'old')
    teq([p.name for p in tmp_path.iterdir()], ['a.bin'])  # and the temporary file is removed

# ---- signals ----

@pytest.mark.skipif(not MAIN, reason='signal handlers are set from the main thread')
@pytest.mark.parametrize('sig', [signal.SIGINT, signal.SIGTERM])
def test_stop_on_signal_ends_the_fit_at_the_next_batch(sig, tmp_path):
    learn = synth_learner(data=synth_dbunch(n_train=6, bs=4))
    seen = []
    class Send(Callback):
        order = 99
        def after_batch(self):
            seen.append((self.epoch, self.iter))
            if self.training and self.epoch == 1 and self.iter == 2: os.kill(os.getpid(), sig)
    old = signal.getsignal(sig)
    with StopOnSignal() as stop:
        with learn.no_logging(): learn.fit(4, cbs=[stop, Send(), ck := RunCheckpoint(tmp_path/'c.pth')])
    teq(stop.signum, sig)
    teq(seen[-1], (1, 2))  # stopped right after the batch the signal came in
    teq(len(ck.history), 1)  # the epoch in progress is not checkpointed
    teq(torch.load(tmp_path/'c.pth', weights_only=False)['epoch'], 1)
    teq(signal.getsignal(sig), old)  # handlers back as they were

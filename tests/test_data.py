"ImageWoof/Imagenette DataBlocks: names, archive checks, labels, the decoding transform, loaders, export round trip."
import random, warnings, pickle
from pathlib import Path
import numpy as np, pandas as pd, pytest, torch
from PIL import Image
from fastai.vision.all import (PILImage, RandomResizedCrop, ToTensor, FlipItem, Resize, TensorImage, Normalize, DataLoaders,
                               DataBlock, URLs, load_learner, get_image_files)
from fastcore.test import test_eq as teq, test_fail as tfail
import fastmix.data as fd
from fastmix.data import *

# torchvision 0.29 deprecates its image decoders (fastmix falls back to Pillow once they are gone)
pytestmark = pytest.mark.filterwarnings('ignore:The image decoding:DeprecationWarning')

SHARED = Path(__file__).resolve().parents[1].parent/'shared'/'data'/'imagewoof2-160'  # as in conftest.py
WOOF_NAMES = {'Australian terrier', 'Border terrier', 'Samoyed', 'Beagle', 'Shih-Tzu', 'English foxhound',
              'Rhodesian ridgeback', 'Dingo', 'Golden retriever', 'Old English sheepdog'}

def smooth_jpeg(path, w=90, h=70, mode='RGB', quality=95):
    "A JPEG of smooth gradients, so that resampling differences stay small"
    a = np.stack([*np.meshgrid(np.linspace(0, 255, w), np.linspace(255, 0, h)), np.full((h,w), 128.)], -1).astype(np.uint8)
    im = Image.fromarray(a)
    (im.convert(mode) if mode != 'RGB' else im).save(path, quality=quality)
    return Path(path)

# --- names and vocab

def test_woof_names_from_timm():
    v = wnid_vocab(IMAGEWOOF_WNIDS)
    teq(set(v.values()), WOOF_NAMES)
    teq(list(v), sorted(IMAGEWOOF_WNIDS))  # the order is the WordNet ids', whatever order they come in
    teq(wnid_vocab(IMAGEWOOF_WNIDS[::-1]), v)

def test_imagenette_names_and_bad_wnid():
    teq(set(wnid_vocab(IMAGENETTE_WNIDS).values()), {'Tench', 'English springer', 'Cassette player', 'Chain saw', 'Church',
                                                    'French horn', 'Garbage truck', 'Gas pump', 'Golf ball', 'Parachute'})
    tfail(lambda: wnid_name('n02'), contains='not an ImageNet-1k WordNet id')

# --- archives

def test_archive_urls():
    teq([archive_url('imagewoof', r) for r in (160, 320, None)], [URLs.IMAGEWOOF_160, URLs.IMAGEWOOF_320, URLs.IMAGEWOOF])
    teq([archive_url('imagenette', r) for r in (160, 320, None)], [URLs.IMAGENETTE_160, URLs.IMAGENETTE_320, URLs.IMAGENETTE])
    tfail(lambda: archive_url('imagewoof', 224), contains='160, 320 or None')
    tfail(lambda: archive_url('imagenet', 160), contains='imagewoof, imagenette')

@pytest.mark.parametrize('res', [160, 320, None])
def test_no_internet_names_url_and_path(monkeypatch, res):
    def offline(url, *args, **kwargs): raise ConnectionError('no network')
    monkeypatch.setattr(fd, 'untar_data', offline)
    with pytest.raises(RuntimeError) as e: imagewoof_dls(res=res)
    msg = str(e.value)
    assert archive_url('imagewoof', res) in msg and 'path=' in msg and 'no network' in msg

def test_wrong_paths(tiny_folder, tmp_path):
    with pytest.raises(FileNotFoundError) as e: imagewoof_dls(path=tmp_path/'nowhere')
    assert 'nowhere' in str(e.value) and 'train/ and val/' in str(e.value)
    (tmp_path/'train/n02086240').mkdir(parents=True)
    tfail(lambda: imagewoof_datablock(path=tmp_path), contains=f'{tmp_path/"val"} not found')
    (tmp_path/'val/dogs').mkdir(parents=True)
    tfail(lambda: imagewoof_datablock(path=tmp_path), contains="['dogs']")
    tfail(lambda: imagenette_dls(path=tiny_folder), contains='not classes of imagenette')  # ImageWoof ids are no Imagenette classes

# --- labels and noise

def test_labels_from_folders(tiny_folder):
    dls = imagewoof_dls(size=24, bs=4, path=tiny_folder, num_workers=0)
    teq(dls.vocab, list(wnid_vocab(IMAGEWOOF_WNIDS).values()))  # all ten, whatever a copy holds
    teq(dls.c, 10)
    for ds in (dls.train_ds, dls.valid_ds):
        for f,y in zip(ds.items, ds.tls[1]): teq(dls.vocab[y], wnid_name(f.parent.name))
    teq({f.parent.parent.name for f in dls.train_ds.items}, {'train'})
    teq({f.parent.parent.name for f in dls.valid_ds.items}, {'val'})
    teq((len(dls.train_ds), len(dls.valid_ds)), (12, 6))

def test_noise_pct_reads_csv(tmp_path):
    path = make_folder(tmp_path)
    rows = [(f'{f.parent.parent.name}/{f.parent.name}/{f.name}', f.parent.name, f.parent.parent.name == 'val')
            for f in get_image_files(path)]
    df = pd.DataFrame(rows, columns=['path', 'noisy_labels_0', 'is_valid'])
    flipped = {'n02086240': 'n02087394', 'n02087394': 'n02088364', 'n02088364': 'n02086240'}
    for p in (1, 5, 25, 50): df[f'noisy_labels_{p}'] = [flipped[w] if not v else w for w,v in zip(df.noisy_labels_0, df.is_valid)]
    df.to_csv(path/'noisy_imagewoof.csv', index=False)
    clean = imagewoof_dls(size=24, bs=2, path=path, num_workers=0)
    noisy = imagewoof_dls(size=24, bs=2, path=path, num_workers=0, noise_pct=25)
    teq(noisy.vocab, clean.vocab)
    lab = lambda dl: {f.name: dl.vocab[y] for f,y in zip(dl.dataset.items, dl.dataset.tls[1])}
    for f,y in lab(noisy.train).items(): teq(y, wnid_name(flipped[f.split('_')[0]]))
    teq(lab(noisy.valid), lab(clean.valid))  # validation labels stay true

def test_bad_noise(tiny_folder):
    tfail(lambda: imagewoof_dls(path=tiny_folder, noise_pct=10), contains='0, 1, 5, 25, 50')
    tfail(lambda: imagewoof_dls(path=tiny_folder, noise_pct=5), contains='noisy_imagewoof.csv')  # the tiny copy has no csv

def make_folder(path):
    "A tiny copy of our own, for tests that write into it"
    for split,n in (('train', 2), ('val', 1)):
        for c in ('n02086240', 'n02087394', 'n02088364'):
            (path/split/c).mkdir(parents=True)
            for j in range(n): smooth_jpeg(path/split/c/f'{c}_{split}{j}.JPEG', 40 + 8*j, 36)
    return path

# --- the decoding transform

@pytest.mark.parametrize('split_idx', [0, 1])
def test_crop_matches_fastai(tmp_path, split_idx):
    fn = smooth_jpeg(tmp_path/'s.jpg')
    for seed in range(5):
        random.seed(seed); ref = ToTensor()(RandomResizedCrop(32, min_scale=0.35)(PILImage.create(fn), split_idx=split_idx))
        random.seed(seed); ours = DraftResizedCrop(32, min_scale=0.35, flip_p=0)(LazyImage.create(fn), split_idx=split_idx)
        teq(ours.shape, ref.shape)
        assert (ref.float() - ours.float()).abs().mean() < 2, seed

def test_flip_and_decoded_inputs(tmp_path):
    fn = smooth_jpeg(tmp_path/'s.jpg')
    random.seed(1); a = DraftResizedCrop(24, flip_p=0)(LazyImage.create(fn), split_idx=0)
    random.seed(1); b = DraftResizedCrop(24, flip_p=1)(LazyImage.create(fn), split_idx=0)
    teq(b, a.flip(-1))
    c = DraftResizedCrop(24, flip_p=1)(LazyImage.create(fn), split_idx=1)  # no flips in validation
    d = DraftResizedCrop(24, flip_p=0)(PILImage.create(fn), split_idx=1)  # decoded in full, where `c` was decoded at 1/2 scale
    assert (c.float() - d.float()).abs().mean() < 1

def test_draft_decodes_less(tmp_path):
    fn = smooth_jpeg(tmp_path/'big.jpg', 640, 480)
    teq(tuple(LazyImage(fn).pixels(need=(200,130)).shape), (3,240,320))  # 1/2: 1/4 would have fewer pixels than asked
    teq(tuple(LazyImage(fn).pixels(need=(70,50)).shape), (3,60,80))
    teq(tuple(LazyImage(fn).pixels().shape), (3,480,640))
    random.seed(0); ref = ToTensor()(RandomResizedCrop(48)(PILImage.create(fn), split_idx=0))
    random.seed(0); ours = DraftResizedCrop(48, flip_p=0)(LazyImage.create(fn), split_idx=0)
    assert (ref.float() - ours.float()).abs().mean() < 3

def test_pillow_alone_gives_the_same_pixels(tmp_path, monkeypatch):
    fn = smooth_jpeg(tmp_path/'s.jpg')
    tv = LazyImage(fn).pixels()
    monkeypatch.setattr(fd, 'decode_jpeg', None)  # as once torchvision drops its deprecated decoder
    teq(LazyImage(fn).pixels(), tv)

@pytest.mark.parametrize('mode', ['L', 'CMYK'])
def test_other_modes_become_rgb(tmp_path, mode):
    fn = smooth_jpeg(tmp_path/f'{mode}.jpg', mode=mode)
    teq(DraftResizedCrop(16)(LazyImage.create(fn), split_idx=0).shape, (3,16,16))
    teq(LazyImage(fn).decode().mode, 'RGB')

def test_png_works(tmp_path):
    Image.fromarray(np.zeros((30,40,4), np.uint8)).save(tmp_path/'a.png')
    teq(DraftResizedCrop(16)(LazyImage.create(tmp_path/'a.png'), split_idx=1).shape, (3,16,16))

@pytest.mark.parametrize('content', ['cut in the header', 'cut in the data', 'garbage'])
def test_corrupt_file_warns_and_substitutes(tmp_path, content):
    fn = smooth_jpeg(tmp_path/'s.jpg')
    bad = tmp_path/'bad.JPEG'
    b = fn.read_bytes()
    bad.write_bytes({'cut in the header': b[:300], 'cut in the data': b[:len(b)//2], 'garbage': b'not an image at all'}[content])
    with pytest.warns(UserWarning, match='bad.JPEG'):
        x = DraftResizedCrop(24)(LazyImage.create(bad), split_idx=0)
    teq(x.shape, (3,24,24))
    teq(x[:, 5, 5].tolist(), list(fd._MEAN_RGB))

def test_corrupt_file_mid_epoch(tmp_path):
    path = make_folder(tmp_path)
    bad = next((path/'train').rglob('*.JPEG'))
    bad.write_bytes(bad.read_bytes()[:300])
    dls = imagewoof_dls(size=24, bs=6, path=path, num_workers=0)
    with pytest.warns(UserWarning, match=bad.name):
        n = sum(len(x) for x,y in dls.train) + sum(len(x) for x,y in dls.valid)
    teq(n, 9)

# --- loaders

def test_batches_and_normalisation(tiny_folder):
    dls = imagewoof_dls(size=32, bs=4, path=tiny_folder, num_workers=0)
    x,y = dls.one_batch()
    teq(x.shape, (4,3,32,32)); teq(x.dtype, torch.float32); assert isinstance(x, TensorImage)
    assert x.min() < -1.5 and x.max() > 1.5  # ImageNet-normalised random pixels, not 0..1
    xv,_ = dls.valid.one_batch()
    teq(xv.shape, (4,3,32,32))
    teq(sum(isinstance(t, Normalize) for t in dls.after_batch.fs), 1)
    assert not any(isinstance(t, ToTensor) for t in dls.train.after_item.fs)

def test_custom_item_tfms_decode_first(tiny_folder):
    dls = imagewoof_dls(size=20, bs=4, path=tiny_folder, num_workers=0, item_tfms=[Resize(20), FlipItem(0.5)])
    teq(type(dls.train.after_item.fs[0]), DecodeImage)
    teq(dls.one_batch()[0].shape, (4,3,20,20))

def test_datablock_is_a_datablock(tiny_folder):
    db = imagewoof_datablock(size=24, path=tiny_folder)
    assert isinstance(db, DataBlock)
    dls = db.dataloaders(tiny_folder, bs=3, num_workers=0)
    teq(dls.one_batch()[0].shape, (3,3,24,24))

def test_num_workers(tiny_folder, monkeypatch):
    teq(default_num_workers(), min(8, fd.defaults.cpus))
    teq(imagewoof_dls(size=24, bs=4, path=tiny_folder).train.fake_l.num_workers, default_num_workers())
    dls = imagewoof_dls(size=24, bs=4, path=tiny_folder, num_workers=2)  # the one test with worker processes
    teq(dls.train.fake_l.num_workers, 2)
    teq(sum(len(y) for x,y in dls.train), 12)

def test_size_above_res_warns(tiny_folder):
    with pytest.warns(UserWarning, match='upscaled'): imagewoof_datablock(size=224, path=tiny_folder, res=160)

def test_export_load_predict_breed(tiny_folder, tmp_path):
    from fastmix.learner import mixnet_learner
    dls = imagewoof_dls(size=32, bs=4, path=tiny_folder, num_workers=0)
    learn = mixnet_learner(dls, 'mixnet_s')
    learn.export(tmp_path/'woof.pkl')
    assert (tmp_path/'woof.pkl').stat().st_size < 30e6
    learn2 = load_learner(tmp_path/'woof.pkl')
    f = next((tiny_folder/'val').rglob('*.JPEG'))
    label,idx,probs = learn2.predict(f)
    assert label in WOOF_NAMES
    teq(probs.shape, (10,))
    teq(learn2.predict(np.array(Image.open(f)))[0], label)  # an array goes through the same validation transform

def test_labeller_pickles_without_table(tmp_path):
    pd.DataFrame({'path': ['train/n02086240/a.JPEG'], 'noisy_labels_1': ['n02087394']}).to_csv(tmp_path/'n.csv', index=False)
    lab = WnidLabel(wnid_vocab(IMAGEWOOF_WNIDS), tmp_path/'n.csv', 'noisy_labels_1')
    teq(lab(tmp_path/'train/n02086240/a.JPEG'), 'Rhodesian ridgeback')
    assert lab._table is not None and pickle.loads(pickle.dumps(lab))._table is None
    tfail(lambda: lab(tmp_path/'train/n02086240/b.JPEG'), contains='has no row in')

def test_throughput(tiny_folder):
    dls = imagewoof_dls(size=24, bs=2, path=tiny_folder, num_workers=0)
    assert dls_throughput(dls.train, n_batches=3) > 0
    tfail(lambda: dls_throughput(dls.train, n_batches=10), contains='n_batches + warmup')

def test_compare_throughput_writes_table(tiny_folder, tmp_path):
    dls = imagewoof_dls(size=24, bs=2, path=tiny_folder, num_workers=0)
    df = compare_throughput({'a': dls.train, 'b': dls.valid}, n_batches=2, repeats=2, fname=tmp_path/'t.md')
    teq(list(df.index), ['a', 'b']); teq(df.loc['a', 'ratio'], 1.0)
    txt = (tmp_path/'t.md').read_text()
    assert '| a |' in txt and 'load average' in txt

# --- the real archive

def test_real_sample(woof_sample):
    dls = imagewoof_dls(size=64, bs=8, path=woof_sample, num_workers=0)
    teq((len(dls.train_ds), len(dls.valid_ds)), (30, 10))
    teq({dls.vocab[y] for y in dls.train_ds.tls[1]}, WOOF_NAMES)
    x,y = dls.one_batch()
    teq(x.shape, (8,3,64,64))
    assert -0.7 < x.mean() < 0.7 and 0.5 < x.std() < 1.5  # normalised natural images

def test_real_counts_and_csv():
    if not SHARED.exists(): pytest.skip(f'real ImageWoof not found at {SHARED}')
    db = imagewoof_datablock(path=SHARED)
    items = db.get_items(SHARED)
    train, valid = db.splitter(items)
    teq((len(train), len(valid)), (9025, 3929))
    df = pd.read_csv(SHARED/'noisy_imagewoof.csv')
    teq((df.path.str.split('/').str[1] == df.noisy_labels_0).all(), True)  # noise 0 is the folders' labels
    lab = WnidLabel(wnid_vocab(IMAGEWOOF_WNIDS), SHARED/'noisy_imagewoof.csv', 'noisy_labels_50')
    noisy = [lab.wnid(items[i]) != items[i].parent.name for i in train[::10]]
    assert 0.4 < np.mean(noisy) < 0.6  # half the training labels differ at noise_pct=50

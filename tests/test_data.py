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

def corrupt(fn, content):
    "Overwrite the image file `fn` with one kind of damage"
    b = fn.read_bytes()
    fn.write_bytes({'cut in the header': b[:300], 'cut in the data': b[:len(b)//2], 'garbage': b'not an image at all'}[content])
    return fn

@pytest.mark.parametrize('content', ['cut in the header', 'cut in the data', 'garbage'])
def test_corrupt_file_raises_naming_it(tmp_path, content):
    bad = corrupt(smooth_jpeg(tmp_path/'bad.JPEG'), content)
    with pytest.raises(UnreadableImageError, match='bad.JPEG'): DraftResizedCrop(24)(LazyImage.create(bad), split_idx=0)
    with pytest.raises(UnreadableImageError, match='bad.JPEG'): LazyImage.create(bad).decode()
    teq(unreadable_images([bad, smooth_jpeg(tmp_path/'good.jpg')]), [bad])
    with pytest.raises(FileNotFoundError, match='gone.jpg not found'): LazyImage.create(tmp_path/'gone.jpg').decode()

def test_unreadable_in_threads_as_in_one(tmp_path):
    good = smooth_jpeg(tmp_path/'good.jpg', 20, 16)
    bad = corrupt(smooth_jpeg(tmp_path/'bad.jpg', 20, 16), 'cut in the data')
    files = [good]*150 + [bad] + [good]*100 + [tmp_path/'gone.jpg'] + [good]*10  # 262 >= 256: checked in threads
    teq(unreadable_images(files, n_workers=2), [bad, tmp_path/'gone.jpg'])
    teq(unreadable_images(files, n_workers=0), [bad, tmp_path/'gone.jpg'])

def test_corrupt_file_skipped_before_training(tmp_path):
    path = make_folder(tmp_path)  # 6 training and 3 validation images
    bad = corrupt(sorted((path/'train').rglob('*.JPEG'))[0], 'cut in the data')
    with pytest.warns(UserWarning, match=bad.name):
        dls = imagewoof_dls(size=24, bs=5, path=path, num_workers=0, max_unreadable=0.2)
    teq(dls.unreadable, [bad])
    teq((len(dls.train_ds), len(dls.valid_ds)), (5, 3))
    assert bad not in dls.train_ds.items
    teq(sum(len(y) for x,y in dls.train) + sum(len(y) for x,y in dls.valid), 8)
    with pytest.raises(ValueError, match=rf'1 of 9 images \(11.1%\) cannot be read.*{bad.name}'):
        imagewoof_dls(size=24, bs=2, path=path, num_workers=0)  # 1 in 9 is more than the default 2%

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

# --- any image folder

def own_folder(path, splits={'': 5}, classes=('cat', 'dog', 'fox'), size=32):
    "Class folders of our own names under each split of `path` (`''`: right in it), `n` JPEGs each, a colour per class"
    rng = np.random.default_rng(0)
    for split,n in splits.items():
        for i,c in enumerate(classes):
            (path/split/c).mkdir(parents=True, exist_ok=True)
            for j in range(n):
                a = rng.integers(0, 255, (size, size + 4*j, 3), dtype=np.uint8)
                a[..., i % 3] = 255
                Image.fromarray(a).save(path/split/c/f'{c}{j}.jpg')
    return path

def labels_of(ds, vocab): return [vocab[y] for y in ds.tls[1]]

def test_flat_folder(tmp_path):
    path = own_folder(tmp_path)
    dls = folder_dls(path, size=24, bs=4, num_workers=0)
    teq((dls.layout, dls.unreadable, list(dls.vocab)), ('flat', [], ['cat', 'dog', 'fox']))
    teq((len(dls.train_ds), len(dls.valid_ds)), (12, 3))  # 0.2 of each class of 5
    teq(sorted(labels_of(dls.valid_ds, dls.vocab)), ['cat', 'dog', 'fox'])
    for ds in (dls.train_ds, dls.valid_ds): teq(labels_of(ds, dls.vocab), [f.parent.name for f in ds.items])
    x,y = dls.one_batch()
    teq(x.shape, (4,3,24,24)); assert set(y.tolist()) <= {0, 1, 2}
    teq(sum(isinstance(t, Normalize) for t in dls.after_batch.fs), 1)
    assert isinstance(dls.train.after_item.fs[0], DraftResizedCrop)

@pytest.mark.parametrize('vname', ['valid', 'val'])
def test_train_valid_folder(tmp_path, vname):
    path = own_folder(tmp_path, {'train': 4, vname: 2}, classes=('ant', 'bee'))
    dls = folder_dls(path, size=24, bs=4, num_workers=0)
    teq((dls.layout, list(dls.vocab)), ('train_valid', ['ant', 'bee']))
    teq((len(dls.train_ds), len(dls.valid_ds)), (8, 4))
    teq({f.parent.parent.name for f in dls.valid_ds.items}, {vname})
    teq(labels_of(dls.valid_ds, dls.vocab), [f.parent.name for f in dls.valid_ds.items])
    x,y = dls.valid.one_batch()
    teq(x.shape, (4,3,24,24)); teq(sorted(set(y.tolist())), [0, 1])

def test_train_valid_folder_trains_one_epoch(tmp_path):
    from fastmix.learner import fastmix_learner
    path = own_folder(tmp_path, {'train': 4, 'valid': 2})
    learn = fastmix_learner(folder_dls(path, size=32, bs=4, num_workers=0), arch='mixnet_s')
    learn.fit(1, 1e-3)
    teq(len(learn.recorder.values), 1)
    teq(learn.dls.c, 3)

def test_images_in_subfolders_of_a_class(tmp_path):
    path = own_folder(tmp_path)
    (path/'cat/2024').mkdir()
    for f in list((path/'cat').glob('*.jpg'))[:2]: f.rename(path/'cat/2024'/f.name)
    dls = folder_dls(path, size=24, bs=4, num_workers=0)
    teq(list(dls.vocab), ['cat', 'dog', 'fox'])  # not '2024'
    items = list(dls.train_ds.items) + list(dls.valid_ds.items)
    teq(sum(f.parent.name == '2024' for f in items), 2)

def test_archive_copy_is_imagewoof(tmp_path):
    path = make_folder(tmp_path)
    rows = [(f'{f.parent.parent.name}/{f.parent.name}/{f.name}', f.parent.name) for f in get_image_files(path)]
    df = pd.DataFrame(rows, columns=['path', 'noisy_labels_0'])
    df['noisy_labels_25'] = df.noisy_labels_0.map({'n02086240': 'n02087394', 'n02087394': 'n02088364', 'n02088364': 'n02086240'})
    df.to_csv(path/'noisy_imagewoof.csv', index=False)
    for noise in (0, 25):
        ours = folder_dls(path, size=24, bs=2, num_workers=0, noise_pct=noise)
        ref = imagewoof_dls(size=24, bs=2, path=path, num_workers=0, noise_pct=noise)
        teq((ours.layout, list(ours.vocab)), ('archive', list(ref.vocab)))
        for a,b in ((ours.train_ds, ref.train_ds), (ours.valid_ds, ref.valid_ds)):
            teq(list(a.items), list(b.items)); teq(labels_of(a, ours.vocab), labels_of(b, ref.vocab))
    teq(set(labels_of(ours.train_ds, ours.vocab)) <= WOOF_NAMES, True)
    teq(imagenette_dls(size=24, bs=2, path=make_image_folder_nette(tmp_path/'nette'), num_workers=0).layout, 'archive')

def make_image_folder_nette(path):
    for split in ('train', 'val'):
        for c in IMAGENETTE_WNIDS[:2]:
            (path/split/c).mkdir(parents=True)
            for j in range(3): smooth_jpeg(path/split/c/f'{c}_{j}.JPEG', 40, 36)
    return path

def test_archive_valid_pct_splits_train(tiny_folder):
    dls = folder_dls(tiny_folder, size=24, bs=4, num_workers=0, valid_pct=0.25)
    teq(dls.layout, 'archive')
    teq(list(dls.vocab), list(wnid_vocab(IMAGEWOOF_WNIDS).values()))
    teq((len(dls.train_ds), len(dls.valid_ds)), (9, 3))
    teq({f.parent.parent.name for f in list(dls.train_ds.items) + list(dls.valid_ds.items)}, {'train'})
    teq(labels_of(dls.valid_ds, dls.vocab), [wnid_name(f.parent.name) for f in dls.valid_ds.items])

def test_valid_pct_never_reads_the_validation_folder(tmp_path, monkeypatch):
    import os, PIL.Image
    path = own_folder(tmp_path, {'train': 4, 'valid': 2})
    (path/'valid/owl').mkdir()  # a class only in valid/ and files that cannot be read: both refused if valid/ were read
    for i in range(5): (path/'valid/owl'/f'{i}.jpg').write_bytes(b'garbage')
    tfail(lambda: folder_dls(path, size=24, bs=4, num_workers=0), contains='owl')
    seen = []
    def spy(f):
        def inner(p='.', *args, **kwargs):
            seen.append(Path(os.fsdecode(p)) if not hasattr(p, 'read') else Path(p.name))
            return f(p, *args, **kwargs)
        return inner
    for mod,name in ((os, 'scandir'), (os, 'listdir'), (PIL.Image, 'open')): monkeypatch.setattr(mod, name, spy(getattr(mod, name)))
    dls = folder_dls(path, size=24, bs=4, num_workers=0, valid_pct=0.25)
    for dl in (dls.train, dls.valid):
        for _ in dl: pass
    monkeypatch.undo()
    assert any(p.is_relative_to(path/'train') for p in seen) and any(p.suffix == '.jpg' for p in seen)  # the spies saw the reads
    teq([p for p in seen if p.is_relative_to(path/'valid')], [])
    teq((dls.layout, len(dls.train_ds), len(dls.valid_ds), dls.unreadable), ('train_valid', 9, 3, []))
    teq({f.parent.parent.name for f in dls.valid_ds.items}, {'train'})

def test_seeded_split_reproducible(tmp_path):
    path = own_folder(tmp_path, {'': 10})
    split = lambda seed: [f.name for f in folder_dls(path, size=24, bs=4, num_workers=0, seed=seed, valid_pct=0.3).valid_ds.items]
    a = split(1)
    teq(split(1), a)
    assert split(2) != a
    teq(sorted(f[:3] for f in a), ['cat']*3 + ['dog']*3 + ['fox']*3)  # 0.3 of each class
    torch.manual_seed(0); r = torch.rand(1)
    torch.manual_seed(0); split(3); teq(torch.rand(1), r)  # torch's global generator is left alone

def test_seeded_split_per_class():
    labels = ['a']*7 + ['b']*2 + ['c']
    tr,va = seeded_split(labels, 0.3, seed=0)
    teq(sorted(labels[i] for i in va), ['a', 'a', 'b'])  # round(2.1), round(0.6), and c keeps its only image
    teq(sorted(tr + va), list(range(10)))

def test_empty_class_folder_skipped_with_warning(tmp_path):
    path = own_folder(tmp_path)
    (path/'yak').mkdir()
    with pytest.warns(UserWarning, match='yak'): dls = folder_dls(path, size=24, bs=4, num_workers=0)
    teq(list(dls.vocab), ['cat', 'dog', 'fox'])

def test_unreadable_counted_and_skipped(tmp_path):
    path = own_folder(tmp_path, {'': 30})  # 90 images
    bad = [corrupt(path/'dog/dog3.jpg', 'garbage')]
    with pytest.warns(UserWarning, match='dog3.jpg'): dls = folder_dls(path, size=24, bs=4, num_workers=0)
    teq(dls.unreadable, bad)
    teq(len(dls.train_ds) + len(dls.valid_ds), 89)
    assert bad[0] not in list(dls.train_ds.items) + list(dls.valid_ds.items)
    bad += [corrupt(path/f'fox/fox{i}.jpg', 'cut in the data') for i in range(6)]  # 7 of 90: more than 2%
    with pytest.raises(ValueError) as e: folder_dls(path, size=24, bs=4, num_workers=0)
    msg = str(e.value)
    assert msg.startswith('7 of 90 images (7.8%) cannot be read') and 'max_unreadable=0.02' in msg
    teq(sum(f.name in msg for f in bad), 5)  # five of them named
    teq(len(folder_dls(path, size=24, bs=4, num_workers=0, max_unreadable=0.1).unreadable), 7)

def test_predict_refuses_missing_and_corrupt(tmp_path):
    from fastmix.learner import fastmix_learner
    path = own_folder(tmp_path/'imgs', {'': 3}, size=32)
    learn = fastmix_learner(folder_dls(path, size=32, bs=2, num_workers=0, valid_pct=0.4), arch='mixnet_s')
    learn.export(tmp_path/'m.pkl')
    learn = load_learner(tmp_path/'m.pkl')
    assert learn.predict(path/'cat/cat0.jpg')[0] in ('cat', 'dog', 'fox')
    with pytest.raises(FileNotFoundError, match='nothere.jpg'): learn.predict(path/'nothere.jpg')
    bad = corrupt(smooth_jpeg(tmp_path/'bad.jpg', 40, 40), 'cut in the data')
    with pytest.raises(UnreadableImageError, match='bad.jpg'): learn.predict(bad)

def _no_class_folders(p): smooth_jpeg(p/'a.jpg'); smooth_jpeg(p/'b.jpg')
def _nothing(p): pass
def _one_class(p): own_folder(p, classes=('cat',))
def _no_images(p): (p/'cat').mkdir(); (p/'dog').mkdir(); (p/'dog/notes.txt').write_text('x')
def _only_in_valid(p): own_folder(p, {'train': 3}, classes=('cat', 'dog')); own_folder(p, {'valid': 1}, classes=('cat', 'owl'))
def _disjoint(p): own_folder(p, {'train': 3}, classes=('cat', 'dog')); own_folder(p, {'valid': 1}, classes=('owl', 'yak'))
def _train_only(p): own_folder(p, {'train': 3})
def _valid_only(p): own_folder(p, {'val': 3})
def _both_valids(p): own_folder(p, {'train': 3, 'valid': 1, 'val': 1})
def _empty_train_class(p): own_folder(p, {'train': 3, 'valid': 1}); [f.unlink() for f in (p/'train/fox').iterdir()]

@pytest.mark.parametrize('make,err,says', [
    (None, FileNotFoundError, 'nowhere not found'),
    (_no_class_folders, ValueError, 'has no class folders (it holds 2 images directly)'),
    (_nothing, ValueError, 'has no class folders: expected one folder of images per class'),
    (_one_class, ValueError, "only one class with images, 'cat'"),
    (_no_images, ValueError, 'has class folders (cat, dog) but no images in them'),
    (_only_in_valid, ValueError, 'has classes with no training images in'),
    (_disjoint, ValueError, 'none of the classes in'),
    (_train_only, ValueError, 'has train/ but no valid/ or val/ beside it'),
    (_valid_only, ValueError, 'has val/ but no train/ beside it'),
    (_both_valids, ValueError, 'has both valid/ and val/'),
    (_empty_train_class, ValueError, 'has classes with no training images in'),
], ids=lambda o: o.__name__.strip('_') if callable(o) else None)
def test_bad_folder(tmp_path, make, err, says):
    path = tmp_path/'nowhere'
    if make is not None: path.mkdir(); make(path)
    with pytest.raises(err) as e:
        with warnings.catch_warnings(): warnings.simplefilter('ignore'); folder_dls(path, bs=2, num_workers=0)
    msg = str(e.value)
    assert says in msg, msg
    assert str(path) in msg, msg  # it says where
    if make is _only_in_valid: assert "owl" in msg and "'cat'" not in msg and 'cat,' not in msg
    if make is _disjoint: assert 'owl, yak' in msg and 'cat, dog' in msg
    if make is _empty_train_class: assert 'fox' in msg

def test_a_file_is_not_a_folder(tmp_path):
    tfail(lambda: folder_dls(smooth_jpeg(tmp_path/'a.jpg')), contains='a.jpg is a file, not a folder')

@pytest.mark.parametrize('kwargs,says', [
    (dict(noise_pct=5), "noise_pct=5 needs an ImageWoof or Imagenette archive"),
    (dict(valid_pct=1.5), 'valid_pct must be between 0 and 1'),
    (dict(valid_pct=0.01), 'valid_pct=0.01 of the 15 images'),
    (dict(bs=16), 'bs=16 is larger than the 15 images in'),  # found before any image is decoded
    (dict(bs=13), 'bs=13 is larger than the 12 training images'),  # what the split leaves
])
def test_bad_arguments(tmp_path, kwargs, says):
    path = own_folder(tmp_path)
    tfail(lambda: folder_dls(path, **{'bs': 2, 'num_workers': 0, **kwargs}), contains=says)

def test_archive_copy_with_a_class_only_in_val(tmp_path):
    path = make_folder(tmp_path)
    for f in (path/'train/n02088364').iterdir(): f.unlink()
    tfail(lambda: folder_dls(path, bs=2, num_workers=0), contains='n02088364')
    tfail(lambda: imagewoof_dls(path=path, bs=2, num_workers=0), contains='has classes with no training images in')

def test_archive_copy_with_no_validation_images(tmp_path):
    path = make_folder(tmp_path)
    for f in (path/'val').rglob('*.JPEG'): f.unlink()
    tfail(lambda: imagewoof_dls(path=path, bs=2, num_workers=0), contains=f'{path/"val"} has no readable images')

@pytest.mark.parametrize('kwargs,says', [(dict(size=0), 'size must be at least 1 pixel, not 0'), (dict(bs=0), 'bs must be at least 1, not 0')])
def test_size_and_bs_below_one(tiny_folder, kwargs, says):
    tfail(lambda: folder_dls(tiny_folder, **kwargs), contains=says)
    tfail(lambda: imagewoof_dls(path=tiny_folder, **kwargs), contains=says)

"""crop_flip: the standard pad-crop-flip CIFAR augmentation, batched and deterministic."""

import pytest
import torch

from isospike.train import crop_flip, fit_classifier


def test_crop_flip_is_a_shifted_window_of_the_padded_image():
    x = torch.arange(2 * 3 * 6 * 6, dtype=torch.float32).reshape(2, 3, 6, 6)
    out = crop_flip(padding=2, flip=False)(x, torch.Generator().manual_seed(0))
    assert out.shape == x.shape
    padded = torch.nn.functional.pad(x, (2, 2, 2, 2))
    for n in range(2):  # each image is some 6x6 window of its own padded image
        hits = [(i, j) for i in range(5) for j in range(5) if torch.equal(padded[n, :, i:i + 6, j:j + 6], out[n])]
        assert hits


def test_crop_flip_deterministic_and_flips_about_half():
    x = torch.rand(400, 1, 4, 4)
    aug = crop_flip(padding=0)
    a = aug(x, torch.Generator().manual_seed(1))
    b = aug(x, torch.Generator().manual_seed(1))
    assert torch.equal(a, b)
    flipped = sum(torch.equal(a[i], x[i].flip(-1)) for i in range(len(x)))
    kept = sum(torch.equal(a[i], x[i]) for i in range(len(x)))
    assert flipped + kept == len(x) and 140 < flipped < 260


def test_crop_flip_rejects_bad_input():
    with pytest.raises(ValueError):
        crop_flip(padding=-1)
    with pytest.raises(ValueError):
        crop_flip()(torch.zeros(3, 4, 4), torch.Generator())


def test_crop_flip_trains_through_the_hook():
    torch.manual_seed(0)
    x, y = torch.rand(32, 3, 8, 8), torch.randint(0, 2, (32,))
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU(), torch.nn.Flatten(), torch.nn.Linear(144, 2))
    hist = fit_classifier(model, (x, y), epochs=1, augment=crop_flip(), progress=False)
    assert len(hist.train_loss) == 1

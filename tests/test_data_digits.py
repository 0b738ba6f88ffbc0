"""Digits: scikit-learn's bundled digits, upsampled and captioned, with a disjoint test split."""

import numpy as np
import pytest
from sklearn.datasets import load_digits

from mmdiff_lab.data import Digits
from mmdiff_lab.data.digits import NAMES


def test_splits_are_disjoint_and_cover_everything():
    train, test, every = Digits("train"), Digits("test"), Digits("all")
    assert len(every) == 1797 and len(train) + len(test) == 1797
    assert not set(train.indices) & set(test.indices)


def test_examples_are_captioned_rgb_32x32():
    d = Digits("test")
    for i in range(20):
        ex = d[i]
        assert ex.image.shape == (32, 32, 3) and ex.image.dtype == np.uint8
        assert NAMES[ex.label] in ex.caption.split()
        assert np.array_equal(ex.image[..., 0], ex.image[..., 2]), "grey ink, as RGB"
        assert ex.image.max() > 200, "white ink"
        original = load_digits().images[d.indices[i]]  # (8, 8), 0..16
        pooled = ex.image[..., 0].reshape(8, 4, 8, 4).mean(axis=(1, 3))
        assert np.corrcoef(pooled.ravel(), original.ravel())[0, 1] > 0.9, "the upsampled digit is the digit"


def test_deterministic_and_seeded_split():
    assert np.array_equal(Digits(seed=0).indices, Digits(seed=0).indices)
    assert not np.array_equal(Digits(seed=0).indices, Digits(seed=1).indices)
    assert Digits()[5].caption == Digits()[5].caption


def test_class_prompts_and_errors():
    assert Digits.class_prompts()[7] == "the digit seven"
    with pytest.raises(ValueError, match="unknown split"):
        Digits("validation")

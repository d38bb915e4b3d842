"""core.augment: seeded, vectorised augmentation of a training batch; identities, statistics, messages."""
import ast
import inspect
import textwrap

import numpy as np
import pytest

from netbuilder.core import augment
from netbuilder.core.augment import Augmentation, augmentation_rng, transform

ALL = {"shift": 3, "flip": 0.5, "rotate": 15, "contrast": 0.3, "brightness": 0.2, "noise": 0.05}


def batch(shape=(16, 3, 12, 10), seed=0, low=0.0, high=1.0):
    return np.random.default_rng(seed).uniform(low, high, shape).astype(np.float32)


def test_same_seed_same_batches_other_seed_others():
    x = batch()
    aug = Augmentation.from_spec(ALL)
    a, b = np.random.default_rng(7), np.random.default_rng(7)
    for _ in range(3):  # batch after batch, the generators stay in step
        np.testing.assert_array_equal(aug.augment(x, a), aug.augment(x, b))
    assert not np.array_equal(aug.augment(x, np.random.default_rng(7)), aug.augment(x, np.random.default_rng(8)))


def test_augmentation_rng_is_the_seeds_own_stream():
    assert augmentation_rng(3).random() == augmentation_rng(3).random()
    assert augmentation_rng(3).random() != augmentation_rng(4).random()
    assert augmentation_rng(3).random() != np.random.default_rng(3).random()  # not the trainer's draws


def test_input_untouched_output_new_float32():
    x = batch()
    before = x.copy()
    for spec in (None, {"flip": 1.0}, {"shift": 2}, ALL, {**ALL, "interpolation": "nearest"}):
        out = Augmentation.from_spec(spec).augment(x, np.random.default_rng(0))
        assert out is not x and not np.shares_memory(out, x)
        assert out.dtype == np.float32
    np.testing.assert_array_equal(x, before)
    assert Augmentation.from_spec(None).augment(x.astype(np.float64), np.random.default_rng(0)).dtype == np.float32


@pytest.mark.parametrize("shape", [(1, 1, 28, 28), (5, 3, 32, 32), (4, 2, 7, 13), (3, 1, 1, 1)])
@pytest.mark.parametrize("spec", [ALL, {**ALL, "interpolation": "nearest"}, {"shift": 64, "rotate": 180},
                                  {"contrast": 1, "brightness": 1, "noise": 1}])
def test_shapes_and_value_range_kept(shape, spec):
    out = Augmentation.from_spec(spec).augment(batch(shape), np.random.default_rng(1))
    assert out.shape == shape
    assert np.isfinite(out).all() and out.min() >= 0 and out.max() <= 1


def test_flip_of_a_flip_is_the_identity():
    x = batch()
    chosen = np.random.default_rng(2).random(len(x)) < 0.5
    once = transform(x, flip=chosen)
    np.testing.assert_array_equal(once[chosen], x[chosen][..., ::-1])
    np.testing.assert_array_equal(once[~chosen], x[~chosen])
    np.testing.assert_array_equal(transform(once, flip=chosen), x)
    always = Augmentation.from_spec({"flip": 1})
    np.testing.assert_array_equal(always.augment(always.augment(x, np.random.default_rng(0)),
                                                 np.random.default_rng(1)), x)
    # through the shift path and the resampling path too
    zeros = np.zeros(len(x), int)
    np.testing.assert_array_equal(transform(transform(x, flip=chosen, shift_y=zeros), flip=chosen, shift_x=zeros), x)
    np.testing.assert_array_equal(transform(x, flip=chosen, angle=np.full(len(x), 1e-12)), once)


def test_zero_settings_are_the_identity():
    x = batch()
    n = len(x)
    np.testing.assert_array_equal(transform(x, shift_y=np.zeros(n, int), shift_x=np.zeros(n, int)), x)
    np.testing.assert_array_equal(transform(x, angle=np.zeros(n)), x)
    np.testing.assert_array_equal(transform(x, noise=np.zeros_like(x)), x)
    np.testing.assert_array_equal(transform(x, contrast=np.ones(n), brightness=np.zeros(n)), x)
    # a rotation too small to move a pixel, through the bilinear and the nearest resampling
    np.testing.assert_allclose(transform(x, angle=np.full(n, 1e-9)), x, atol=1e-6)
    np.testing.assert_array_equal(transform(x, angle=np.full(n, 1e-9), interpolation="nearest"), x)
    zero = {"shift": 0, "flip": 0, "rotate": 0, "contrast": 0, "brightness": 0, "noise": 0}
    for spec in (None, {}, zero):
        aug = Augmentation.from_spec(spec)
        assert not aug.enabled
        np.testing.assert_array_equal(aug.augment(x, np.random.default_rng(0)), x)


def test_shift_moves_whole_pixels_and_fills_zeros():
    x = batch(low=0.1)  # no zero pixels of its own
    n = len(x)
    out = transform(x, shift_y=np.full(n, 2), shift_x=np.full(n, -3))  # 2 down, 3 left
    np.testing.assert_array_equal(out[:, :, 2:, :-3], x[:, :, :-2, 3:])
    assert not out[:, :, :2].any() and not out[:, :, :, -3:].any()
    far = transform(x, shift_y=np.full(n, 20), shift_x=np.zeros(n, int))  # beyond the image: all zeros
    assert not far.any()
    # the drawn shifts cover -shift..shift in both directions, whole pixels
    big = batch((400, 1, 9, 9), low=0.1)
    p = Augmentation(shift=2).sample(big.shape, np.random.default_rng(0))
    assert set(p["shift_y"].tolist()) == set(p["shift_x"].tolist()) == {-2, -1, 0, 1, 2}
    out = Augmentation(shift=2).augment(big, np.random.default_rng(0))
    zero_rows = (~out.any(axis=(1, 3))).sum(axis=1)  # each image loses |shift_y| rows
    assert set(zero_rows.tolist()) == {0, 1, 2}


def test_flip_probability():
    x = batch((2000, 1, 2, 3))
    p = Augmentation(flip=0.3).sample(x.shape, np.random.default_rng(0))["flip"]
    assert 0.26 < p.mean() < 0.34
    out = Augmentation(flip=0.3).augment(x, np.random.default_rng(0))
    np.testing.assert_array_equal(out[p], x[p][..., ::-1])
    np.testing.assert_array_equal(out[~p], x[~p])


@pytest.mark.parametrize("k", [1, 2, -1])
def test_rotation_by_right_angles_matches_rot90(k):
    x = batch((6, 3, 11, 11))  # square, odd and even sizes both
    y = batch((6, 2, 8, 8))
    for img in (x, y):
        angle = np.full(len(img), 90.0 * k)  # positive: counter-clockwise as displayed, as np.rot90
        want = np.rot90(img, k, axes=(2, 3))
        np.testing.assert_array_equal(transform(img, angle=angle, interpolation="nearest"), want)
        np.testing.assert_allclose(transform(img, angle=angle), want, atol=1e-5)


def test_rotation_by_a_small_angle_matches_torch_grid_sample():
    torch = pytest.importorskip("torch")
    import torch.nn.functional as F

    x = batch((8, 3, 20, 20))
    angle = np.random.default_rng(3).uniform(-30, 30, len(x))
    t = np.radians(angle)
    cos, sin, zero = np.cos(t), np.sin(t), np.zeros_like(t)
    theta = torch.tensor(np.stack([np.stack([cos, -sin, zero], 1), np.stack([sin, cos, zero], 1)], 1),
                         dtype=torch.float32)
    grid = F.affine_grid(theta, list(x.shape), align_corners=True)
    for mode in ("bilinear", "nearest"):
        want = F.grid_sample(torch.from_numpy(x), grid, mode=mode, padding_mode="zeros", align_corners=True)
        got = transform(x, angle=angle, interpolation=mode)
        np.testing.assert_allclose(got, np.clip(want.numpy(), 0, 1), atol=1e-5)


def test_rotation_keeps_the_centre_and_fills_corners_with_zeros():
    x = batch((4, 1, 9, 9), low=0.1)
    out = transform(x, angle=np.array([10.0, -25.0, 45.0, -40.0]))
    np.testing.assert_allclose(out[:, :, 4, 4], x[:, :, 4, 4], atol=1e-6)
    assert (out[2:, :, 0, 0] == 0).all()  # at 40 to 45 degrees the corners come from outside
    assert (out[2:, :, -1, -1] == 0).all()


def test_brightness_moves_each_image_by_one_offset_within_the_range():
    x = batch((3000, 1, 6, 6), low=0.4, high=0.6)  # far enough from 0 and 1 to be clipped nowhere
    out = Augmentation(brightness=0.2).augment(x, np.random.default_rng(0))
    shift = (out - x).reshape(len(x), -1)
    np.testing.assert_allclose(shift, shift[:, :1].repeat(shift.shape[1], 1), atol=1e-6)  # one per image
    offsets = shift[:, 0]
    assert offsets.min() >= -0.2 - 1e-6 and offsets.max() <= 0.2 + 1e-6
    assert abs(offsets.mean()) < 0.01
    assert abs(offsets.std() - 0.2 / np.sqrt(3)) < 0.01  # uniform on [-0.2, 0.2]


def test_contrast_scales_the_spread_about_each_images_mean():
    x = batch((3000, 2, 6, 6), low=0.4, high=0.6)
    out = Augmentation(contrast=0.5).augment(x, np.random.default_rng(0))
    np.testing.assert_allclose(out.mean(axis=(1, 2, 3)), x.mean(axis=(1, 2, 3)), atol=1e-5)  # mean kept
    factor = out.std(axis=(1, 2, 3)) / x.std(axis=(1, 2, 3))
    assert factor.min() >= 0.5 - 1e-4 and factor.max() <= 1.5 + 1e-4
    assert abs(factor.mean() - 1) < 0.02 and abs(factor.std() - 0.5 / np.sqrt(3)) < 0.02  # uniform on [0.5, 1.5]
    # the picture is the same up to the scaling: pixel order within an image is kept
    np.testing.assert_array_equal(np.argsort(out[0].ravel()), np.argsort(x[0].ravel()))


def test_noise_has_the_standard_deviation_asked_for():
    x = np.full((64, 3, 16, 16), 0.5, np.float32)
    out = Augmentation(noise=0.05).augment(x, np.random.default_rng(0))
    d = out - x
    assert abs(d.mean()) < 0.002 and abs(d.std() - 0.05) < 0.002
    clipped = Augmentation(noise=0.5).augment(np.zeros((4, 1, 8, 8), np.float32), np.random.default_rng(0))
    assert clipped.min() == 0 and 0 < clipped.mean() < 0.5  # half the draws clip to 0


def test_all_together_on_a_large_batch():
    x = batch((256, 3, 32, 32))
    out = Augmentation.from_spec(ALL).augment(x, np.random.default_rng(0))
    assert out.shape == x.shape and 0 <= out.min() and out.max() <= 1
    assert not np.array_equal(out, x)


def test_the_batch_work_has_no_loop_per_image():
    """Structure, not timing: the functions that touch the pixels hold no loop or comprehension."""
    for fn in (augment.transform, augment._shift_flip, augment._resample, augment._framed, augment._planes,
               Augmentation.sample, Augmentation.augment):
        tree = ast.parse(textwrap.dedent(inspect.getsource(fn)))
        loops = [type(node).__name__ for node in ast.walk(tree)
                 if isinstance(node, (ast.For, ast.While, ast.ListComp, ast.GeneratorExp, ast.SetComp, ast.DictComp))]
        assert loops == [], f"{fn.__qualname__}: {loops}"


def test_spec_round_trip_and_description():
    aug = Augmentation.from_spec({"shift": 2, "flip": 0.5, "rotate": 10})
    assert aug.describe() == "shift 2 px · flip 50% · rotate ±10°"
    assert aug.to_spec() == {"shift": 2, "flip": 0.5, "rotate": 10}
    full = Augmentation.from_spec({**ALL, "interpolation": "nearest"})
    assert full.describe() == ("shift 3 px · flip 50% · rotate ±15° (nearest) · contrast ±30% · brightness ±0.2 "
                               "· noise σ 0.05")
    assert Augmentation.from_spec(full.to_spec()) == full
    assert Augmentation.from_spec(None) == Augmentation.from_spec({}) == Augmentation()
    assert Augmentation().to_spec() == {} and Augmentation().describe() == "none"
    assert Augmentation.from_spec({"shift": 2.0}).shift == 2  # a whole float from a JSON writer
    assert type(Augmentation.from_spec({"shift": 2.0}).to_spec()["shift"]) is int


@pytest.mark.parametrize("spec, message", [
    ([1], 'augmentation must be an object like {"shift": 2, "flip": 0.5} (or null), got [1]'),
    ({"flip": 2}, "augmentation.flip must be a probability from 0 to 1 (0.5 flips half the images), got 2"),
    ({"flip": True}, "augmentation.flip must be a probability from 0 to 1 (0.5 flips half the images), got true "
                     "(true/false is not a number)"),
    ({"shift": 1.5}, "augmentation.shift must be a whole number of pixels from 0 to 64, got 1.5"),
    ({"shift": -1}, "augmentation.shift must be a whole number of pixels from 0 to 64, got -1"),
    ({"rotate": 200}, "augmentation.rotate must be a number of degrees from 0 to 180, got 200"),
    ({"rotate": "10"}, 'augmentation.rotate must be a number of degrees from 0 to 180, got "10"'),
    ({"noise": float("nan")}, "augmentation.noise must be a standard deviation from 0 to 1 (pixels are in [0, 1]; "
                              "0.02 is light noise), got NaN"),
    ({"brightness": -0.1}, "augmentation.brightness must be a number from 0 to 1 (0.1 adds -0.1 to 0.1 to each "
                           "image), got -0.1"),
    ({"contrast": 3}, "augmentation.contrast must be a number from 0 to 1 (0.2 scales each image's contrast by 0.8 "
                      "to 1.2), got 3"),
    ({"interpolation": "bilinar"}, 'augmentation.interpolation must be one of bilinear, nearest, got "bilinar" '
                                   '(did you mean "bilinear"?)'),
    ({"flipp": 0.5}, 'augmentation: unknown setting "flipp" (did you mean "flip"?); the settings are shift, flip, '
                     "rotate, contrast, brightness, noise, interpolation"),
    ({"rotation": 5}, 'augmentation: unknown setting "rotation" (did you mean "rotate"?); the settings are shift, '
                      "flip, rotate, contrast, brightness, noise, interpolation"),
])
def test_bad_specs_give_one_clear_line(spec, message):
    with pytest.raises(ValueError) as err:
        Augmentation.from_spec(spec)
    assert str(err.value) == message
    assert "\n" not in str(err.value)


def test_a_batch_must_be_four_dimensional():
    with pytest.raises(ValueError, match=r"augmentation needs a batch of images \(N, C, H, W\), got an array of "
                                         r"shape \(28, 28\)"):
        Augmentation(flip=0.5).augment(np.zeros((28, 28), np.float32), np.random.default_rng(0))

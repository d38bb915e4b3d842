"""core.images.prepare_image: any image as the network sees it, the same as the image-folder loader."""
import io

import numpy as np
import pytest
from PIL import Image

from netbuilder.core.datasets.folder import read_image_folder, scan_folder
from netbuilder.core.images import ImageError, decode_image, prepare_image

RNG = np.random.default_rng(0)


def _rgb(h=20, w=30):
    return (RNG.random((h, w, 3)) * 255).astype(np.uint8)


def _files(folder):
    """A few images of every kind the issue names, each written as its own file."""
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    Image.fromarray(_rgb()).save(out.setdefault("rgb.png", folder / "rgb.png"))
    Image.fromarray(_rgb(33, 25)).save(out.setdefault("photo.jpg", folder / "photo.jpg"), quality=90)
    Image.fromarray(_rgb(12, 12)).save(out.setdefault("rgb.bmp", folder / "rgb.bmp"))
    Image.fromarray(_rgb()[..., 0]).save(out.setdefault("grey.png", folder / "grey.png"))
    rgba = np.dstack([_rgb(), (RNG.random((20, 30)) * 255).astype(np.uint8)])
    Image.fromarray(rgba).save(out.setdefault("rgba.png", folder / "rgba.png"))
    pal = Image.fromarray(_rgb(16, 16)).quantize(8)
    pal.info["transparency"] = 0  # palette entry 0 is see-through
    pal.save(out.setdefault("palette.png", folder / "palette.png"), transparency=0)
    return out


@pytest.mark.parametrize("shape", [(1, 16, 16), (3, 16, 16), (3, 10, 14)])
@pytest.mark.parametrize("resize", ["fit", "crop", "pad", "stretch"])
def test_every_kind_of_file_gives_what_the_folder_loader_gives(tmp_path, shape, resize):
    files = _files(tmp_path / "data" / "a")
    (tmp_path / "data" / "b").mkdir()
    Image.fromarray(_rgb()).save(tmp_path / "data" / "b" / "x.png")
    ds, report = read_image_folder(tmp_path / "data", shape, resize, workers=1)
    order = scan_folder(tmp_path / "data").files[0]  # class a's files, in the loader's order
    loaded = {path.name: x for path, x in zip(order, ds.x_train)}
    for name, path in files.items():
        got = prepare_image(path, shape, resize)
        assert got.dtype == np.float32 and got.shape == shape
        assert 0.0 <= got.min() and got.max() <= 1.0
        np.testing.assert_array_equal(got, loaded[name], err_msg=name)
    assert report.loaded == len(files) + 1


def test_palette_transparency_is_black_and_grey_goes_to_three_channels(tmp_path):
    pal = Image.new("P", (4, 4), 1)
    pal.putpalette([255, 0, 0, 0, 255, 0] + [0] * 762)
    pal.putpixel((0, 0), 0)
    pal.save(tmp_path / "p.png", transparency=0)
    got = prepare_image(tmp_path / "p.png", (3, 4, 4))
    assert got[:, 0, 0].tolist() == [0, 0, 0]  # the transparent red pixel composited onto black
    assert got[:, 1, 1].tolist() == [0, 1, 0]
    Image.fromarray(np.full((4, 4), 51, np.uint8)).save(tmp_path / "g.png")
    np.testing.assert_array_equal(prepare_image(tmp_path / "g.png", (3, 4, 4)), np.full((3, 4, 4), np.float32(0.2)))
    Image.new("RGB", (4, 4), (255, 0, 0)).save(tmp_path / "red.png")
    assert prepare_image(tmp_path / "red.png", (1, 4, 4))[0, 0, 0] == pytest.approx(76 / 255)  # ITU-R 601 luma


def test_in_memory_images_and_arrays_equal_the_file(tmp_path):
    a = _rgb()
    Image.fromarray(a).save(tmp_path / "a.png")
    want = prepare_image(tmp_path / "a.png", (3, 16, 16), "crop")
    np.testing.assert_array_equal(prepare_image(Image.fromarray(a), (3, 16, 16), "crop"), want)
    np.testing.assert_array_equal(prepare_image(a, (3, 16, 16), "crop"), want)  # (H, W, C) uint8
    np.testing.assert_array_equal(prepare_image(a.transpose(2, 0, 1), (3, 16, 16), "crop"), want)  # (C, H, W)
    np.testing.assert_array_equal(prepare_image((tmp_path / "a.png").read_bytes(), (3, 16, 16), "crop"), want)
    np.testing.assert_array_equal(prepare_image(io.BytesIO((tmp_path / "a.png").read_bytes()), (3, 16, 16), "crop"),
                                  want)
    drawn = RNG.random((1, 8, 8)).astype(np.float32)  # a drawing already at the input size: as it is
    np.testing.assert_array_equal(prepare_image(drawn, (1, 8, 8)), drawn)
    grey = RNG.random((8, 8)).astype(np.float32)
    assert prepare_image(grey, (1, 4, 4)).shape == (1, 4, 4)


def test_a_bad_file_is_one_line_naming_it(tmp_path):
    (tmp_path / "bad.png").write_text("not an image")
    with pytest.raises(ImageError) as exc:
        prepare_image(tmp_path / "bad.png", (1, 8, 8))
    assert str(exc.value) == f"{tmp_path / 'bad.png'}: cannot be read as an image: not an image file Pillow can read"
    with pytest.raises(ImageError, match="no such file"):
        prepare_image(tmp_path / "missing.png", (1, 8, 8))
    with pytest.raises(ImageError, match="shape"):
        prepare_image(np.zeros((5, 5, 5), np.uint8), (1, 8, 8))


def test_the_loaders_report_sees_the_files_mode_and_size_not_the_jpeg_draft(tmp_path):
    Image.fromarray(_rgb(64, 64)).save(tmp_path / "big.jpg")
    got = decode_image(tmp_path / "big.jpg", (1, 16, 16), "fit")  # drafted to grey at a smaller scale
    assert (got.mode, got.resized, got.array.shape) == ("RGB", True, (1, 16, 16))

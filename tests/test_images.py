"""Image files as the network sees them: high bit depths scaled by their range, a pixel limit read from the header,
and grids of predictions made from thumbnails."""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from moderncnn.data.folder import decode, load_image_folder
from moderncnn.data.image import PIXEL_LIMIT_ENV, UnreadableImage, pixel_limit, read_file, read_image
from moderncnn.deploy import plot_predictions, predict
from moderncnn.deploy.predict import THUMBNAIL_SIZE
from moderncnn.errors import OutputError, UsageError

RNG = np.random.default_rng(0)
# 8-bit values whose mean is ~50%: a saturating reader makes it ~100%, a truncating one 0%.
PIXELS = RNG.integers(0, 256, (24, 32))


def save_16bit_png(path: Path, values: np.ndarray) -> Path:
    Image.fromarray(values.astype(np.uint16)).save(path)
    return path


def save_16bit_big_endian_tiff(path: Path, values: np.ndarray) -> Path:
    height, width = values.shape
    Image.frombytes("I;16B", (width, height), values.astype(">u2").tobytes()).save(path)
    return path


def save_32bit_tiff(path: Path, values: np.ndarray) -> Path:
    Image.fromarray(values.astype(np.int32)).save(path)  # signed 32-bit samples: 0..2**31 - 1
    return path


def save_16bit_pgm(path: Path, values: np.ndarray) -> Path:
    height, width = values.shape
    path.write_bytes(f"P5\n{width} {height}\n65535\n".encode() + values.astype(">u2").tobytes())
    return path


def save_float_tiff(path: Path, values: np.ndarray) -> Path:
    Image.fromarray(values.astype(np.float32)).save(path)
    return path


# (how to write it, the mode PIL reads it in, the full-scale value of that file)
HIGH_DEPTH = {
    "I;16 png": (save_16bit_png, "I;16", 65535),
    "I;16B tiff": (save_16bit_big_endian_tiff, "I;16B", 65535),
    "I 32-bit tiff": (save_32bit_tiff, "I", 2**31 - 1),
    "I 16-bit pgm": (save_16bit_pgm, "I", 65535),
    "F tiff": (save_float_tiff, "F", 1.0),
}


@pytest.mark.parametrize("kind", list(HIGH_DEPTH))
@pytest.mark.parametrize("channels", [1, 3])
def test_high_bit_depth_images_arrive_scaled_by_their_range(tmp_path, kind, channels):
    save, mode, top = HIGH_DEPTH[kind]
    scaled = PIXELS / 255 * top
    path = save(tmp_path / f"image.{kind.split()[-1]}", scaled if mode == "F" else np.rint(scaled))
    with Image.open(path) as im:
        assert im.mode == mode  # the test really covers that mode
    image = decode(str(path), channels)
    assert image.dtype == torch.uint8 and image.shape == (channels, *PIXELS.shape)
    assert abs(image.float().mean().item() / 255 - 0.5) < 0.02
    assert torch.equal(image, torch.from_numpy(PIXELS).to(torch.uint8).expand(channels, -1, -1))


@pytest.mark.parametrize(
    "values, expected",
    [
        (PIXELS.astype(np.float32), r"float pixels \(mode F\) range from 0 to 255, outside 0\.\.1"),
        (np.full((4, 4), np.nan), "float pixels .* range from nan"),
        (-PIXELS / 255, "float pixels .* range from -1 to 0, outside 0..1"),
    ],
)
def test_float_pixels_outside_their_range_are_refused_not_clipped(tmp_path, values, expected):
    path = save_float_tiff(tmp_path / "f.tif", values)
    with pytest.raises(UnreadableImage, match=expected) as caught:
        decode(str(path), 1)
    assert str(caught.value).startswith(f"{path}: ") and "\n" not in str(caught.value)


# --------------------------------------------------------------------------------------------------- pixel limit


@pytest.fixture
def large(tmp_path) -> Path:
    """A 100x80 PNG whose pixel data is cut off: only a reader that stops at the header can say how big it is."""
    path = tmp_path / "large.png"
    Image.fromarray(RNG.integers(0, 256, (80, 100, 3), dtype=np.uint8)).save(path)
    path.write_bytes(path.read_bytes()[:200])
    return path


def test_an_image_above_the_limit_is_refused_from_its_header_naming_it(large, monkeypatch):
    monkeypatch.delenv(PIXEL_LIMIT_ENV, raising=False)
    with pytest.raises(UnreadableImage) as caught:
        decode(str(large), 3, max_pixels=7999)
    assert str(caught.value) == (
        f"{large}: 100x80 = 8,000 pixels, above the limit of 7,999 (max_pixels); if you trust the file, raise the "
        f"limit with {PIXEL_LIMIT_ENV}=8000 (or max_pixels= in Python), or make the image smaller"
    )
    with pytest.raises(OSError, match="truncated"):  # at the limit it is decoded: the cut shows
        decode(str(large), 3, max_pixels=8000)


def test_the_default_limit_is_pils_warning_level_and_the_variable_raises_it(large, monkeypatch):
    monkeypatch.delenv(PIXEL_LIMIT_ENV, raising=False)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 3000)  # PIL itself refuses above twice this: 6,000
    assert pixel_limit() == (3000, "PIL's decompression-bomb warning level, PIL.Image.MAX_IMAGE_PIXELS")
    with pytest.raises(UnreadableImage, match=r"above the limit of 3,000 \(PIL's decompression-bomb"):
        decode(str(large), 3)
    monkeypatch.setenv(PIXEL_LIMIT_ENV, "8000")  # above PIL's own error level: ours applies instead
    with pytest.raises(OSError, match="truncated"):
        decode(str(large), 3)
    assert Image.MAX_IMAGE_PIXELS == 3000  # PIL's setting is left as it was
    monkeypatch.setenv(PIXEL_LIMIT_ENV, "none")
    assert pixel_limit() == (None, PIXEL_LIMIT_ENV)
    monkeypatch.setenv(PIXEL_LIMIT_ENV, "lots")
    with pytest.raises(UsageError, match=f"{PIXEL_LIMIT_ENV} must be a positive number of pixels or 'none'"):
        decode(str(large), 3)


def test_an_image_folder_skips_an_image_above_the_limit_by_name(tmp_path, monkeypatch):
    for name, size in (("small", 8), ("big", 40)):
        folder = tmp_path / "cls"
        folder.mkdir(exist_ok=True)
        Image.fromarray(RNG.integers(0, 256, (size, size), dtype=np.uint8)).save(folder / f"{name}.png")
    monkeypatch.setenv(PIXEL_LIMIT_ENV, "1000")
    with pytest.warns(UserWarning, match=r"skipping .*big\.png: 40x40 = 1,600 pixels, above the limit of 1,000"):
        dataset = load_image_folder(tmp_path, channels=1)
    kept = [path for split in dataset.splits.values() for path, _ in split.samples]
    assert [Path(p).name for p in kept] == ["small.png"]


# ------------------------------------------------------------------------------------------------------- predict


@pytest.fixture(scope="module")
def run(tiny_run) -> Path:
    """A tiny trained BN-LeNet on grey 28 px images."""
    return tiny_run


def test_a_16bit_image_is_predicted_as_its_8bit_twin(run, tmp_path):
    eight = tmp_path / "eight.png"
    Image.fromarray(PIXELS.astype(np.uint8)).save(eight)
    sixteen = save_16bit_png(tmp_path / "sixteen.png", PIXELS * 257)
    twin, high = predict(run, [eight, sixteen], top_k=10).predictions
    assert high.classes == twin.classes and high.probs == pytest.approx(twin.probs, abs=1e-6)


def test_predict_names_an_image_above_the_limit_and_predicts_the_others(run, large, tmp_path):
    small = tmp_path / "small.png"
    Image.fromarray(PIXELS.astype(np.uint8)).save(small)
    predictions, failures = predict(run, [large, small], max_pixels=5000)
    assert [p.path for p in predictions] == [str(small)]
    assert [(f.path, f.reason.split(";")[0]) for f in failures] == [
        (str(large), "100x80 = 8,000 pixels, above the limit of 5,000 (max_pixels)")
    ]


@pytest.fixture
def shown(monkeypatch) -> list[tuple[int, ...]]:
    """The shapes of the pictures drawn into any figure."""
    from matplotlib.axes import Axes

    shapes = []
    real = Axes.imshow

    def record(self, picture, *args, **kwargs):
        shapes.append(np.asarray(picture).shape)
        return real(self, picture, *args, **kwargs)

    monkeypatch.setattr(Axes, "imshow", record)
    return shapes


@pytest.mark.parametrize("thumbnails", [True, False])
def test_the_grid_of_predictions_holds_thumbnails_only(run, tmp_path, shown, thumbnails):
    paths = []
    for i, (height, width) in enumerate([(600, 400), (90, 1000), (50, 60)]):
        paths.append(tmp_path / f"{i}.png")
        Image.fromarray(RNG.integers(0, 256, (height, width, 3), dtype=np.uint8)).save(paths[-1])
    predictions = predict(run, paths, thumbnails=thumbnails).predictions
    if thumbnails:  # made while reading: the grid needs no second read
        assert [tuple(p.thumbnail.shape) for p in predictions] == [(3, 160, 107), (3, 14, 160), (3, 50, 60)]
    else:
        assert all(p.thumbnail is None for p in predictions)
    out = plot_predictions(predictions, tmp_path / "grid")
    assert out == tmp_path / "grid.png" and out.is_file()
    assert shown == [(160, 107, 3), (14, 160, 3), (50, 60, 3)] and max(max(s[:2]) for s in shown) <= THUMBNAIL_SIZE


def test_the_grid_checks_its_location_before_reading_an_image(run, tmp_path, monkeypatch):
    image = tmp_path / "x.png"
    Image.fromarray(PIXELS.astype(np.uint8)).save(image)
    predictions = predict(run, [image]).predictions
    image.unlink()  # were it read again, that would fail differently
    (tmp_path / "file").write_text("")
    with pytest.raises(OutputError, match=f"cannot write {tmp_path}/file/grid.png: {tmp_path}/file is a file"):
        plot_predictions(predictions, tmp_path / "file" / "grid.png")


MEASURE = textwrap.dedent(
    """
    import resource, sys
    from moderncnn.cli import main
    code = main(["predict", sys.argv[1], sys.argv[2], "--show", sys.argv[3]])
    print("peak", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024, code)
    """
)


@pytest.mark.slow
def test_predict_show_of_a_12000_px_image_peaks_under_2_gb(run, tmp_path):
    # An RGB gradient (the PNG stays small on disk; decoded it is 432 MB) above PIL's warning level.
    side = 12000
    ramp = Image.linear_gradient("L").resize((side, side))
    Image.merge("RGB", (ramp, ramp.transpose(Image.Transpose.ROTATE_90), ramp)).save(
        tmp_path / "huge.png", compress_level=1
    )
    del ramp
    env = {**os.environ, PIXEL_LIMIT_ENV: str(side * side), "PYTHONPATH": os.pathsep.join(sys.path)}
    done = subprocess.run(
        [sys.executable, "-c", MEASURE, str(run), str(tmp_path / "huge.png"), str(tmp_path / "grid.png")],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    peak, code = done.stdout.split("peak ")[-1].split()
    assert code == "0", done.stderr[-2000:]
    assert (tmp_path / "grid.png").is_file()
    assert int(peak) < 2 * 1024**3, f"peak {int(peak) / 1024**3:.2f} GiB"


# ------------------------------------------------------------- issue 25, cause 13: images as people take them


def test_exif_orientation_turns_a_phone_photo_upright_in_every_reader(tmp_path):
    # A phone stores a portrait photo sideways (80 wide, 40 high) with orientation 6: "turn 90 degrees clockwise".
    stored = np.zeros((40, 80, 3), np.uint8)
    stored[:, :40] = 255  # the left half bright: upright, the top half is bright
    photo = tmp_path / "photo.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(stored).save(photo, exif=exif, quality=95)
    for image in (read_image(photo, 3)[0], decode(str(photo), 3), read_file(photo, 3, input_size=28)[0]):
        assert tuple(image.shape) == (3, 80, 40)  # as the browser shows it, not 40x80
        assert image[:, :36].float().mean() > 240 and image[:, 44:].float().mean() < 15


def test_transparent_pixels_are_composited_over_white_not_their_hidden_colour(tmp_path):
    rgba = np.zeros((4, 4, 4), np.uint8)
    rgba[..., 0] = 255  # hidden red everywhere
    rgba[:2, :, 3] = 0  # top half fully transparent
    rgba[2:, :, 3] = 255  # bottom half opaque red
    rgba[3, 3] = (0, 0, 255, 128)  # one half-transparent blue pixel
    Image.fromarray(rgba, "RGBA").save(tmp_path / "rgba.png")
    la = np.zeros((4, 4, 2), np.uint8)
    la[:2, :, 1] = 0
    la[2:, :, 1] = 255
    Image.fromarray(la, "LA").save(tmp_path / "la.png")
    image = read_image(tmp_path / "rgba.png", 3)[0].permute(1, 2, 0).numpy()
    assert (image[:2] == 255).all()  # white, not red
    assert (image[2, :] == (255, 0, 0)).all()
    assert np.abs(image[3, 3].astype(int) - (127, 127, 255)).max() <= 1  # half of the blue over white
    grey = read_image(tmp_path / "la.png", 1)[0][0].numpy()
    assert (grey[:2] == 255).all() and (grey[2:] == 0).all()
    palette = Image.fromarray(np.array([[0, 1], [1, 0]], np.uint8), "P")
    palette.putpalette([255, 0, 0, 0, 0, 0])
    palette.save(tmp_path / "p.png", transparency=0)  # index 0 (red) transparent
    assert read_image(tmp_path / "p.png", 3)[0].permute(1, 2, 0).numpy().tolist() == [
        [[255, 255, 255], [0, 0, 0]],
        [[0, 0, 0], [255, 255, 255]],
    ]

"""core.images: what comes out of the pipeline (SPEC §2 image rules)."""

import io

import pytest
from PIL import Image

from core import images
from core.errors import InvalidImage, TooLarge
from core.tests import pictures


def _open(processed) -> Image.Image:
    image = Image.open(io.BytesIO(processed.content))
    image.load()
    return image


def test_a_big_photo_fits_the_budget_upright_and_without_exif():
    source = pictures.photo_jpeg()
    assert len(source) > 2_000_000  # a real, badly compressing photo
    assert Image.open(io.BytesIO(source)).getexif().get_ifd(pictures.GPS_IFD)  # it does carry GPS

    processed = images.process_upload(pictures.upload(source, "holiday.jpg"))

    assert len(processed.content) <= 204_800
    image = _open(processed)
    assert image.format == "JPEG" and processed.extension == "jpg"
    assert (image.width, image.height) == (processed.width, processed.height)
    assert image.height > image.width  # EXIF orientation 6 applied: the landscape file is a portrait
    assert max(image.size) >= 1024  # as sharp as the budget allows, not a thumbnail
    assert not image.getexif() and "exif" not in image.info
    assert b"Exif" not in processed.content and b"PhoneMaker" not in processed.content


def test_budget_follows_the_setting(settings):
    settings.PARLEY_IMAGE_MAX_BYTES = 30_000
    processed = images.process_upload(pictures.upload(pictures.photo_jpeg(), "p.jpg"))
    assert len(processed.content) <= 30_000


def test_transparency_is_kept():
    processed = images.process_upload(pictures.upload(pictures.transparent_png(), "logo.png", "image/png"))
    image = _open(processed)
    assert image.mode in ("RGBA", "LA", "P") and image.getpixel((0, 0))[-1] == 0
    assert image.getpixel((100, 100))[-1] == 255


def test_an_animated_gif_keeps_its_first_frame():
    processed = images.process_upload(pictures.upload(pictures.animated_gif(), "a.gif", "image/gif"))
    image = _open(processed)
    assert getattr(image, "n_frames", 1) == 1 and image.size == (40, 40)


def test_avatars_are_small_squares():
    processed = images.process_upload(pictures.upload(pictures.photo_jpeg(), "me.jpg"), square=images.AVATAR_EDGE)
    assert (processed.width, processed.height) == (256, 256) and _open(processed).size == (256, 256)


@pytest.mark.parametrize(
    "content, name",
    [
        (pictures.png_bomb(), "bomb.png"),
        (pictures.png_bomb(7_000, 7_000), "just-over.png"),  # past MAX_PIXELS, below Pillow's own error
        (pictures.TEXT, "notes.png"),
        (pictures.SVG, "vector.svg"),
        (pictures.truncated_jpeg(), "cut.jpg"),
        (b"", "empty.jpg"),
        (pictures.encode(Image.new("RGB", (10, 10)), "BMP"), "old.bmp"),
        (pictures.encode(Image.new("RGB", (10, 10)), "TIFF"), "scan.png"),
    ],
)
def test_anything_but_a_sound_picture_is_refused(content, name):
    with pytest.raises(InvalidImage):
        images.process_upload(pictures.upload(content, name))


def test_an_upload_over_the_limit_is_too_large(settings):
    settings.PARLEY_UPLOAD_MAX_BYTES = 100_000
    with pytest.raises(TooLarge):
        images.process_upload(pictures.upload(pictures.too_big(100_001), "big.jpg"))

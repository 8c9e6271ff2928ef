"""core.images: what comes out of the pipeline (SPEC §2 image rules)."""

import io
import threading
import time

import pytest
from PIL import Image, ImageFile

from core import images
from core.errors import InvalidImage, RateLimited, TooLarge
from core.tests import pictures

pytestmark = pytest.mark.dbless


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
        (pictures.png_bomb(5_000, 5_000), "just-over.png"),  # past MAX_PIXELS, below Pillow's own error
        (pictures.TEXT, "notes.png"),
        (pictures.SVG, "vector.svg"),
        (pictures.truncated_jpeg(), "cut.jpg"),
        (b"", "empty.jpg"),
        (pictures.encode(Image.new("RGB", (10, 10)), "BMP"), "old.bmp"),
        (pictures.encode(Image.new("RGB", (10, 10)), "TIFF"), "scan.png"),
    ],
)
@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
def test_anything_but_a_sound_picture_is_refused(content, name):
    with pytest.raises(InvalidImage):
        images.process_upload(pictures.upload(content, name))


def test_an_upload_over_the_limit_is_too_large(settings):
    settings.PARLEY_UPLOAD_MAX_BYTES = 100_000
    with pytest.raises(TooLarge):
        images.process_upload(pictures.upload(pictures.too_big(100_001), "big.jpg"))


def _on_decode(monkeypatch, before):
    """Call before(image) whenever Pillow is about to decode a file's pixels."""
    real = ImageFile.ImageFile.load

    def load(self):
        if self.tile:  # not yet decoded
            before(self)
        return real(self)

    monkeypatch.setattr(ImageFile.ImageFile, "load", load)


def test_a_big_jpeg_is_decoded_at_reduced_scale(monkeypatch):
    decoded = []
    _on_decode(monkeypatch, lambda image: decoded.append(image.size))
    flat = pictures.encode(Image.linear_gradient("L").resize((6000, 4000)).convert("RGB"), "JPEG")

    message = images.process_upload(pictures.upload(flat, "camera.jpg"))
    avatar = images.process_upload(pictures.upload(pictures.photo_jpeg(), "me.jpg"), square=images.AVATAR_EDGE)

    # 24 MP is accepted, decoded at half the pixels per edge; the avatar at an eighth:
    # still more than the 2048 and 256 they become.
    assert decoded == [(3000, 2000), (500, 375)]
    assert (message.width, message.height) == (2048, 1365) and (avatar.width, avatar.height) == (256, 256)


def _decoding_in_threads(monkeypatch, count: int):
    """Start `count` uploads in threads whose decoding blocks until released; returns
    (how many are decoding now, release, the threads' outcomes)."""
    inside, most, lock, release = [0], [0], threading.Lock(), threading.Event()

    def slow(image):
        with lock:
            inside[0] += 1
            most[0] = max(most[0], inside[0])
        release.wait(10)
        with lock:
            inside[0] -= 1

    _on_decode(monkeypatch, slow)
    outcomes = []

    def upload():
        try:
            images.process_upload(pictures.upload(pictures.small_png(), "a.png"))
            outcomes.append("ok")
        except RateLimited as error:
            outcomes.append(error.code)

    threads = [threading.Thread(target=upload) for _ in range(count)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 5
    while inside[0] < min(count, 2) and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.3)  # time for any more to (wrongly) start decoding
    return most, release, threads, outcomes


def test_at_most_the_set_number_of_images_decode_at_once(settings, monkeypatch):
    settings.PARLEY_IMAGE_DECODES_AT_ONCE = 2

    most, release, threads, outcomes = _decoding_in_threads(monkeypatch, 5)
    release.set()
    for thread in threads:
        thread.join(10)

    assert most[0] == 2
    assert outcomes == ["ok"] * 5  # the others waited their turn


def test_an_upload_that_waits_too_long_for_a_decode_slot_is_told_to_retry(settings, monkeypatch):
    settings.PARLEY_IMAGE_DECODES_AT_ONCE = 2
    monkeypatch.setattr(images, "DECODE_WAIT_SECONDS", 0.2)

    most, release, threads, outcomes = _decoding_in_threads(monkeypatch, 3)
    deadline = time.monotonic() + 5
    while not outcomes and time.monotonic() < deadline:  # the third gives up while two decode
        time.sleep(0.01)
    busy = list(outcomes)
    release.set()
    for thread in threads:
        thread.join(10)

    assert most[0] == 2 and busy == ["rate_limited"]
    assert sorted(outcomes) == ["ok", "ok", "rate_limited"]

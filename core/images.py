"""The one way an uploaded picture becomes a stored one: messages, avatars, presets and
the announcement all go through `process_upload`.

An upload is trusted for nothing. It must be at most PARLEY_UPLOAD_MAX_BYTES, decode with
Pillow as JPEG, PNG, GIF or WebP (the decoders tried are limited to those four, so SVG,
HTML or a renamed text file never reach another parser), have at most MAX_PIXELS (no
decompression bombs: refused from the header, before any decoding) and decode completely
(no truncated files). It is then made as small as the result needs, turned upright (EXIF
orientation), re-encoded from its pixels alone — so EXIF, GPS, XMP, ICC and comments are
gone — and made to fit the byte budget (PARLEY_IMAGE_MAX_BYTES) as sharply as it allows:
first a size that can fit, then a binary search on quality. Opaque pictures become JPEG,
pictures with transparency WebP; an animated GIF keeps its first frame.

Memory is the cost to watch: a 100 KB PNG can hold 24 MP, ~100 MB decoded. So a JPEG
is decoded at the smallest scale (1/2, 1/4, 1/8) that still covers the result, every step
replaces the pixels before it instead of copying them, and at most
PARLEY_IMAGE_DECODES_AT_ONCE pictures are decoded at once in a process; the callers that
face users rate-limit before calling. Synchronous and CPU-bound: call it from a request or
a worker thread, never from the event loop.
"""

import contextlib
import io
import math
import secrets
import struct
import threading
from dataclasses import dataclass

from django.conf import settings
from django.core.files.base import ContentFile
from PIL import ExifTags, Image, ImageFile, UnidentifiedImageError

from core.errors import InvalidImage, RateLimited, TooLarge

ALLOWED_FORMATS = ("JPEG", "PNG", "GIF", "WEBP")
# 24 megapixels. The result has at most MESSAGE_MAX_EDGE pixels on its long edge (4 MP)
# and PARLEY_IMAGE_MAX_BYTES, which at our JPEG qualities holds about 1-4 MP: 24 MP is
# still six times what can be shown. It takes phone photos (12-16 MP; 4000x3000 is 12)
# and 24 MP cameras (6000x4000), and keeps one decode under ~250 MB (Pillow stores a
# pixel in four bytes and resamples RGBA through a premultiplied copy). Pillow itself
# warns past this and refuses past twice this.
MAX_PIXELS = 24_000_000
Image.MAX_IMAGE_PIXELS = MAX_PIXELS
TOO_MANY_PIXELS = f"The image is too large: at most {MAX_PIXELS // 1_000_000} megapixels are accepted."
# How long a request waits for a decode slot before it is told to come back: long enough
# to ride out a few decodes (a 12 MP photo takes under a second), short enough that a
# burst of uploads does not pin request threads and their database connections.
DECODE_WAIT_SECONDS = 10.0

MESSAGE_MAX_EDGE = 2048
AVATAR_EDGE = 256
QUALITY_LOW, QUALITY_HIGH = 30, 90
# A small PNG/GIF (screenshot, drawing, icon) is first tried losslessly: sharper than JPEG.
LOSSLESS_MAX_PIXELS = 1_000_000
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, IndexError, TypeError, struct.error)
_UPRIGHT = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


@dataclass(frozen=True)
class ProcessedImage:
    content: bytes
    extension: str  # "jpg", "png", "webp"
    width: int
    height: int

    def as_file(self, folder: str) -> ContentFile:
        """A ContentFile named `<folder>/<unguessable>.<ext>`, ready for storage.save()."""
        return ContentFile(self.content, name=f"{folder}/{secrets.token_urlsafe(24)}.{self.extension}")


def _size_of(upload) -> int:
    size = getattr(upload, "size", None)
    if size is None:
        upload.seek(0, io.SEEK_END)
        size = upload.tell()
    return size


_slots: tuple[int, threading.BoundedSemaphore] | None = None
_slots_lock = threading.Lock()


@contextlib.contextmanager
def _decode_slot():
    """Hold one of the process's PARLEY_IMAGE_DECODES_AT_ONCE decode slots, or raise
    RateLimited after DECODE_WAIT_SECONDS (the client retries, as after any 429)."""
    global _slots
    with _slots_lock:
        size = settings.PARLEY_IMAGE_DECODES_AT_ONCE
        if _slots is None or _slots[0] != size:
            _slots = (size, threading.BoundedSemaphore(size))
        slots = _slots[1]
    if not slots.acquire(timeout=DECODE_WAIT_SECONDS):
        wait = math.ceil(DECODE_WAIT_SECONDS)
        raise RateLimited(retry_after=wait, detail=f"The server is busy with other images; try again in {wait} s.")
    try:
        yield
    finally:
        slots.release()


def _open(upload, *, edge: int, cover: bool) -> Image.Image:
    """Read the header only; InvalidImage for anything but a supported picture of sane size.

    A JPEG is set up to decode at the smallest scale that keeps `edge` pixels on its long
    edge (`cover`: on its short edge), which is all the result needs.
    """
    upload.seek(0)
    try:
        image = Image.open(upload, formats=list(ALLOWED_FORMATS))
        width, height = image.size
        if width < 1 or height < 1:
            raise InvalidImage("The image is damaged or incomplete.")
        if width * height > MAX_PIXELS:
            raise InvalidImage(TOO_MANY_PIXELS)
        image.seek(0)  # an animation keeps its first frame
        scale = edge / (min(width, height) if cover else max(width, height))
        if scale < 1:
            image.draft(None, (math.ceil(width * scale), math.ceil(height * scale)))
    except InvalidImage:
        raise
    except Image.DecompressionBombError:
        raise InvalidImage(TOO_MANY_PIXELS) from None
    except UnidentifiedImageError:
        raise InvalidImage("The file is not a supported image (JPEG, PNG, GIF or WebP).") from None
    except _DECODE_ERRORS:
        raise InvalidImage("The image is damaged or incomplete.") from None
    return image


def _upright(image: Image.Image) -> Image.Transpose | None:
    try:
        return _UPRIGHT.get(image.getexif().get(ExifTags.Base.Orientation))
    except _DECODE_ERRORS:
        return None  # a broken EXIF block: keep the pixels as they are


def _decode(image: Image.Image, *, max_edge: int, square: int | None) -> Image.Image:
    """Decode completely, then: no larger than the result needs, in RGB or RGBA, upright,
    with no metadata attached. Each step replaces the picture before it, so the full-size
    pixels exist once (twice for palette and CMYK pictures, widened before resampling)."""
    image.load()
    upright = _upright(image)
    has_alpha = image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info)
    mode = "RGBA" if has_alpha else "RGB"
    if image.mode not in ("RGB", "RGBA", "L", "LA"):
        image = image.convert(mode)  # Pillow resamples palette and bilevel pictures by nearest neighbour only
    width, height = image.size
    if square:
        # The centre square is the same square whichever way up the picture is.
        side = min(width, height)
        box = ((width - side) / 2, (height - side) / 2, (width + side) / 2, (height + side) / 2)
        image = image.resize((square, square), Image.Resampling.LANCZOS, box=box, reducing_gap=3.0)
    elif max(width, height) > max_edge:
        scale = max_edge / max(width, height)
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        image = image.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)
    if image.mode != mode:
        image = image.convert(mode)
    if has_alpha and image.getchannel("A").getextrema()[0] == 255:  # an alpha channel nobody uses
        image = image.convert("RGB")
    if upright is not None:
        image = image.transpose(upright)
    elif isinstance(image, ImageFile.ImageFile):
        image = image.copy()  # still the opened file, which carries its metadata along
    image.info = {}  # the only metadata a plain Image carries: nothing of the original travels on
    return image


def _encode(image: Image.Image, fmt: str, quality: int | None = None) -> bytes:
    out = io.BytesIO()
    if fmt == "JPEG":
        image.save(out, "JPEG", quality=quality, optimize=True, progressive=True)
    elif fmt == "WEBP":
        image.save(out, "WEBP", quality=quality, method=4)
    else:
        image.save(out, "PNG", optimize=True)
    return out.getvalue()


def _fit(image: Image.Image, *, max_bytes: int, lossless_first: bool) -> ProcessedImage:
    fmt, ext = ("WEBP", "webp") if image.mode == "RGBA" else ("JPEG", "jpg")
    if lossless_first and image.width * image.height <= LOSSLESS_MAX_PIXELS:
        data = _encode(image, "PNG")
        if len(data) <= max_bytes:
            return ProcessedImage(data, "png", image.width, image.height)
    while True:
        smallest = _encode(image, fmt, QUALITY_LOW)
        if len(smallest) <= max_bytes:
            break
        if max(image.size) <= 16:
            raise InvalidImage("The image cannot be made small enough.")
        # Bytes grow about with the pixel count: shrink to where the lowest quality fits.
        scale = max(0.25, min(0.9, math.sqrt(max_bytes / len(smallest)) * 0.95))
        image = image.resize(
            (max(1, round(image.width * scale)), max(1, round(image.height * scale))), Image.Resampling.LANCZOS
        )
    # The highest quality that still fits the budget.
    best, low, high = smallest, QUALITY_LOW + 1, QUALITY_HIGH
    while low <= high:
        quality = (low + high) // 2
        data = _encode(image, fmt, quality)
        if len(data) <= max_bytes:
            best, low = data, quality + 1
        else:
            high = quality - 1
    return ProcessedImage(best, ext, image.width, image.height)


def process_upload(upload, *, max_edge: int = MESSAGE_MAX_EDGE, square: int | None = None,
                   max_bytes: int | None = None) -> ProcessedImage:
    """Verify, clean and re-encode an uploaded image (see the module docstring).

    `square` crops to the centre square and scales to that edge (avatars). Raises
    TooLarge for an upload over PARLEY_UPLOAD_MAX_BYTES, InvalidImage for anything that
    is not a sound JPEG/PNG/GIF/WebP picture of at most MAX_PIXELS, RateLimited when no
    decode slot frees up within DECODE_WAIT_SECONDS.
    """
    if upload is None or isinstance(upload, str | bytes):
        raise InvalidImage("Attach the image as a file.")
    max_upload = settings.PARLEY_UPLOAD_MAX_BYTES
    if _size_of(upload) > max_upload:
        raise TooLarge(f"Images are limited to {max_upload // 1_048_576} MB.")
    image = _open(upload, edge=square or max_edge, cover=bool(square))
    lossless_first = image.format in ("PNG", "GIF")
    with _decode_slot():
        try:
            image = _decode(image, max_edge=max_edge, square=square)
            return _fit(image, max_bytes=max_bytes or settings.PARLEY_IMAGE_MAX_BYTES, lossless_first=lossless_first)
        except _DECODE_ERRORS:
            raise InvalidImage("The image is damaged or incomplete.") from None

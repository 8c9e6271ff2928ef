"""The one way an uploaded picture becomes a stored one: messages, avatars, presets and
the announcement all go through `process_upload`.

An upload is trusted for nothing. It must be at most PARLEY_UPLOAD_MAX_BYTES, decode with
Pillow as JPEG, PNG, GIF or WebP (the decoders tried are limited to those four, so SVG,
HTML or a renamed text file never reach another parser), stay under MAX_PIXELS (no
decompression bombs) and decode completely (no truncated files). It is then turned
upright (EXIF orientation), re-encoded from its pixels alone — so EXIF, GPS, XMP, ICC
and comments are gone — and made to fit the byte budget (PARLEY_IMAGE_MAX_BYTES) as
sharply as it allows: first a size that can fit, then a binary search on quality.
Opaque pictures become JPEG, pictures with transparency WebP; an animated GIF keeps its
first frame. Synchronous and CPU-bound: call it from a request or a worker thread,
never from the event loop.
"""

import io
import math
import secrets
import struct
import warnings
from dataclasses import dataclass

from django.conf import settings
from django.core.files.base import ContentFile
from PIL import Image, ImageOps, UnidentifiedImageError

from core.errors import InvalidImage, TooLarge

ALLOWED_FORMATS = ("JPEG", "PNG", "GIF", "WEBP")
# 40 megapixels: any real photo (a 4000x3000 phone picture is 12), far below what would
# exhaust memory. Pillow itself warns past this and refuses past twice this.
MAX_PIXELS = 40_000_000
Image.MAX_IMAGE_PIXELS = MAX_PIXELS

MESSAGE_MAX_EDGE = 2048
AVATAR_EDGE = 256
QUALITY_LOW, QUALITY_HIGH = 30, 90
# A small PNG/GIF (screenshot, drawing, icon) is first tried losslessly: sharper than JPEG.
LOSSLESS_MAX_PIXELS = 1_000_000
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, IndexError, TypeError, struct.error)


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


def _open(upload) -> tuple[Image.Image, str]:
    """Decode the upload completely; InvalidImage for anything but a sound, sane picture."""
    max_upload = settings.PARLEY_UPLOAD_MAX_BYTES
    if _size_of(upload) > max_upload:
        raise TooLarge(f"Images are limited to {max_upload // 1_048_576} MB.")
    upload.seek(0)
    try:
        with warnings.catch_warnings():
            # Pillow only warns between MAX_IMAGE_PIXELS and twice that: refuse there too.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(upload, formats=list(ALLOWED_FORMATS))
            source_format = image.format
            if source_format not in ALLOWED_FORMATS:
                raise InvalidImage("Only JPEG, PNG, GIF and WebP images are accepted.")
            width, height = image.size
            if width < 1 or height < 1 or width * height > MAX_PIXELS:
                raise InvalidImage("The image has too many pixels.")
            image.seek(0)  # an animation keeps its first frame
            image.load()
    except InvalidImage:
        raise
    except (UnidentifiedImageError, Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise InvalidImage("The file is not a supported image (JPEG, PNG, GIF or WebP).") from None
    except _DECODE_ERRORS:
        raise InvalidImage("The image is damaged or incomplete.") from None
    return image, source_format


def _clean_pixels(image: Image.Image) -> Image.Image:
    """Upright, in RGB or RGBA, with no metadata attached."""
    try:
        image = ImageOps.exif_transpose(image)
    except _DECODE_ERRORS:
        pass  # a broken EXIF block: keep the pixels as they are
    has_alpha = image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info)
    if has_alpha:
        image = image.convert("RGBA")
        if image.getextrema()[3][0] == 255:  # an alpha channel nobody uses
            image = image.convert("RGB")
    else:
        image = image.convert("RGB")
    # A fresh image from the pixels alone: nothing of the original's info travels on.
    clean = Image.frombytes(image.mode, image.size, image.tobytes())
    return clean


def _encode(image: Image.Image, fmt: str, quality: int | None = None) -> bytes:
    out = io.BytesIO()
    if fmt == "JPEG":
        image.save(out, "JPEG", quality=quality, optimize=True, progressive=True)
    elif fmt == "WEBP":
        image.save(out, "WEBP", quality=quality, method=4)
    else:
        image.save(out, "PNG", optimize=True)
    return out.getvalue()


def _fit(image: Image.Image, *, max_edge: int, max_bytes: int, lossless_first: bool) -> ProcessedImage:
    if max(image.size) > max_edge:
        image = image.copy()
        image.thumbnail((max_edge, max_edge), Image.Resampling.LANCZOS)
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
    is not a sound JPEG/PNG/GIF/WebP picture.
    """
    if upload is None or isinstance(upload, str | bytes):
        raise InvalidImage("Attach the image as a file.")
    image, source_format = _open(upload)
    try:
        image = _clean_pixels(image)
        if square:
            image = ImageOps.fit(image, (square, square), Image.Resampling.LANCZOS)
            max_edge = square
        return _fit(
            image,
            max_edge=max_edge,
            max_bytes=max_bytes or settings.PARLEY_IMAGE_MAX_BYTES,
            lossless_first=source_format in ("PNG", "GIF"),
        )
    except _DECODE_ERRORS:
        raise InvalidImage("The image is damaged or incomplete.") from None

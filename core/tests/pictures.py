"""Pictures made on the spot with Pillow, for the image tests (no binary fixtures)."""

import functools
import io
import struct
import zlib

from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import Image

GPS_IFD = 0x8825
ORIENTATION = 274


def encode(image: Image.Image, fmt: str, **options) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, **options)
    return out.getvalue()


def upload(content: bytes, name: str, content_type: str = "image/jpeg") -> SimpleUploadedFile:
    return SimpleUploadedFile(name, content, content_type=content_type)


@functools.cache
def photo_jpeg(width: int = 4000, height: int = 3000) -> bytes:
    """A photo-like JPEG that compresses badly (noise over gradients), taken "sideways"
    (EXIF orientation 6) somewhere in Amsterdam (GPS EXIF)."""
    size = (width, height)
    noise = Image.effect_noise(size, 60)
    gradient = Image.linear_gradient("L").resize(size)
    image = Image.merge("RGB", [noise, gradient, Image.effect_noise(size, 40)])
    exif = Image.Exif()
    exif[ORIENTATION] = 6
    exif[0x010F] = "PhoneMaker"
    exif[GPS_IFD] = {1: "N", 2: (52.0, 22.0, 7.5), 3: "E", 4: (4.0, 53.0, 12.0)}
    return encode(image, "JPEG", quality=85, exif=exif)


def small_png(size=(64, 48), color=(200, 30, 30, 255), mode="RGBA") -> bytes:
    return encode(Image.new(mode, size, color if mode == "RGBA" else color[:3]), "PNG")


def transparent_png() -> bytes:
    image = Image.new("RGBA", (300, 200), (0, 0, 0, 0))
    image.paste((20, 120, 220, 255), (50, 50, 250, 150))
    return encode(image, "PNG")


def animated_gif() -> bytes:
    frames = [Image.new("P", (40, 40), i * 40) for i in range(4)]
    return encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)


def png_bomb(width: int = 50_000, height: int = 50_000) -> bytes:
    """A tiny PNG whose header claims 2.5 gigapixels (a decompression bomb)."""
    data = bytearray(encode(Image.new("1", (1, 1)), "PNG"))
    ihdr = data.index(b"IHDR")
    data[ihdr + 4 : ihdr + 12] = struct.pack(">II", width, height)
    body = bytes(data[ihdr : ihdr + 17])
    data[ihdr + 17 : ihdr + 21] = struct.pack(">I", zlib.crc32(body))
    return bytes(data)


def truncated_jpeg() -> bytes:
    full = encode(Image.effect_noise((400, 300), 50).convert("RGB"), "JPEG", quality=90)
    return full[: len(full) // 2]


SVG = b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><script>alert(1)</script></svg>'
TEXT = b"definitely not a picture\n" * 40


def too_big(size: int) -> bytes:
    """A JPEG header followed by padding: over the upload limit before anyone decodes it."""
    head = encode(Image.new("RGB", (8, 8)), "JPEG")
    return head + b"\0" * (size - len(head))

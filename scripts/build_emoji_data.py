"""Build chat/static/chat/vendor/emoji/emoji.json, the reaction picker's emoji list with
names in English, Simplified and Traditional Chinese, from the npm package
emoji-picker-element-data (Apache-2.0; its data comes from emojibase-data, MIT, and the
Unicode CLDR annotations).

    cd /tmp && npm pack emoji-picker-element-data@1.8.0 && tar xzf emoji-picker-element-data-1.8.0.tgz
    .venv/bin/python scripts/build_emoji_data.py /tmp/package

Why not the emoji-picker-element widget itself: it styles its shadow DOM with a <style>
element and style="" attributes, which the CSP (style-src 'self') refuses; the picker in
chat/static/chat/js/picker.js is plain DOM styled by parley.css and reads this file.

Each row: [emoji (fully qualified), group, English name, 简体中文 name, 繁體中文 name, search words]. Skin
tone variants and the bare skin-tone components are left out (the server accepts every
row: chat.services.reactions.clean_emoji), and so are emoji newer than MAX_VERSION, which
many phones and desktops still draw as an empty box. Not part of `make test`.
"""

import argparse
import json
import shutil
from pathlib import Path

import regex

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "chat" / "static" / "chat" / "vendor" / "emoji"
LANGUAGES = ("en", "zh", "zh-hant")  # the package's names for en, zh-hans, zh-hant
COMPONENT_GROUP = 2
MAX_VERSION = 15
VS16 = "\ufe0f"
_PRESENTATION = regex.compile(r"\p{Emoji_Presentation}")


def qualified(emoji: str) -> str:
    """The form Unicode calls fully qualified (emoji-test.txt): emojibase writes 👍 as
    👍 + VS16, which the server would keep as a different reaction from the 👍 people
    type; VS16 stays only after a character that is text by default (❤️, ☺️)."""
    out = []
    for char in emoji:
        if char == VS16 and out and _PRESENTATION.match(out[-1]):
            continue
        out.append(char)
    return "".join(out)


def build(package: Path) -> dict:
    data = {lang: json.loads((package / lang / "cldr" / "data.json").read_text("utf-8")) for lang in LANGUAGES}
    by_emoji = {lang: {row["emoji"]: row for row in rows} for lang, rows in data.items()}
    rows = []
    for row in sorted(data["en"], key=lambda r: r["order"]):
        if row.get("group") in (None, COMPONENT_GROUP) or row.get("version", 0) > MAX_VERSION:
            continue
        names = [by_emoji[lang][row["emoji"]]["annotation"] for lang in LANGUAGES]
        words = []
        for lang in LANGUAGES:
            for tag in by_emoji[lang][row["emoji"]].get("tags", []):
                if tag not in words and not any(tag in name for name in names):
                    words.append(tag)
        rows.append([qualified(row["emoji"]), row["group"], *names, " ".join(words)])
    version = json.loads((package / "package.json").read_text("utf-8"))["version"]
    return {"source": f"emoji-picker-element-data {version} (cldr)", "emoji": rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("package", type=Path, help="the unpacked emoji-picker-element-data package folder")
    args = parser.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    result = build(args.package)
    text = json.dumps(result, ensure_ascii=False, separators=(",", ":"))
    (OUT / "emoji.json").write_text(text + "\n", "utf-8")
    shutil.copyfile(args.package / "LICENSE", OUT / "LICENSE")
    print(f"{len(result['emoji'])} emoji, {len(text.encode())} bytes -> {OUT / 'emoji.json'}")


if __name__ == "__main__":
    main()

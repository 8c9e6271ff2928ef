"""Import a standard Slack export (SPEC §6.5): `manage.py import_slack EXPORT.zip`.

users.json → users without a password (they set one through a reset link or an admin;
Slack's deactivated accounts and bots stay inactive); channels.json → public rooms, their
members; each channel's daily files → messages in `ts` order with their original times,
threads as replies, reactions, edits (the time; Slack keeps no earlier text), Slack's
tombstones as deleted messages, files as links (nothing is downloaded). Private channels,
DMs and group DMs are not in a standard export's public part and are reported as skipped.

Every message takes its room's next seq and rev through chat.services.changes (`append`)
and is announced like any other, so numbering stays gap-free. ImportRecord remembers what
came from which Slack id (users, channels, `channel:ts` messages): a second run makes
nothing twice. Everything skipped is counted with its reason in the Report.
"""

import json
import re
import zipfile
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from pathlib import PurePosixPath

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.validators import UnicodeUsernameValidator
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from accounts.models import Profile
from chat.models import ImportRecord, Membership, Message, Reaction, Room, slug_validator
from chat.services.changes import announce, append
from chat.services.reactions import clean_emoji
from chat.services.webhooks import slack_to_markdown
from core.errors import InvalidInput

SOURCE = "slack"
BATCH = 200
USERNAME_MAX = 30
# Slack's names for the reactions people use most, where they differ from the CLDR name
# the emoji list (chat/static/chat/vendor/emoji/emoji.json) gives ("thumbs up" →
# thumbs_up and thumbsup are found there).
SLACK_ALIASES = {
    "+1": "👍", "-1": "👎", "heart": "❤️", "smile": "😄", "smiley": "😃", "grinning": "😀", "laughing": "😆",
    "satisfied": "😆", "joy": "😂", "tada": "🎉", "white_check_mark": "✅", "heavy_check_mark": "✔️", "x": "❌",
    "eyes": "👀", "rocket": "🚀", "fire": "🔥", "pray": "🙏", "raised_hands": "🙌", "clap": "👏", "100": "💯",
    "ok_hand": "👌", "sweat_smile": "😅", "slightly_smiling_face": "🙂", "thinking_face": "🤔", "wave": "👋",
    "warning": "⚠️", "bug": "🐛", "sob": "😭", "cry": "😢", "muscle": "💪", "star": "⭐", "sparkles": "✨",
    "wink": "😉", "blush": "😊", "heart_eyes": "😍", "rage": "😡", "thumbsup": "👍", "thumbsdown": "👎",
    "point_up": "☝️", "point_right": "👉", "see_no_evil": "🙈", "upside_down_face": "🙃", "facepalm": "🤦",
    "rolling_on_the_floor_laughing": "🤣", "party_popper": "🎉", "heavy_plus_sign": "➕", "memo": "📝",
}
_SKIPPED_SUBTYPES = {
    "channel_join": "joins (members are imported from channels.json)",
    "channel_leave": "leaves",
    "channel_topic": "topic changes",
    "channel_purpose": "purpose changes",
    "channel_name": "renames",
    "channel_archive": "archive notices",
    "channel_unarchive": "archive notices",
    "pinned_item": "pin notices",
    "unpinned_item": "pin notices",
    "message_changed": "edit events (the edited text is in the message itself)",
    "message_deleted": "deletion events",
    "bot_add": "integration notices",
    "bot_remove": "integration notices",
}


@dataclass
class Report:
    users_created: int = 0
    users_known: int = 0
    rooms_created: int = 0
    rooms_known: int = 0
    messages_created: int = 0
    messages_known: int = 0
    reactions: int = 0
    skipped: Counter = field(default_factory=Counter)
    notes: list[str] = field(default_factory=list)

    def skip(self, reason: str) -> None:
        self.skipped[reason] += 1

    def lines(self) -> list[str]:
        out = [
            f"users: {self.users_created} created, {self.users_known} already imported",
            f"rooms: {self.rooms_created} created, {self.rooms_known} already imported",
            f"messages: {self.messages_created} imported, {self.messages_known} already imported",
            f"reactions: {self.reactions} imported",
        ]
        if self.skipped:
            out.append("skipped:")
            out += [f"  {count} × {reason}" for reason, count in sorted(self.skipped.items(), key=lambda kv: -kv[1])]
        out += self.notes
        return out


def _emoji_names() -> dict[str, str]:
    path = settings.BASE_DIR / "chat" / "static" / "chat" / "vendor" / "emoji" / "emoji.json"
    names = {}
    try:
        rows = json.loads(path.read_text(encoding="utf-8"))["emoji"]
    except (OSError, ValueError, KeyError):
        rows = []
    for row in rows:
        name = re.sub(r"[^a-z0-9+ -]", "", row[2].lower())
        names.setdefault(name.replace(" ", "_").replace("-", "_"), row[0])
        names.setdefault(name.replace(" ", "").replace("-", ""), row[0])
    names.update(SLACK_ALIASES)
    return names


def _ts(value) -> Decimal | None:
    try:
        number = Decimal(str(value))
    except (InvalidOperation, ValueError):
        return None
    return number if number.is_finite() and number >= 0 else None


def _time(ts: Decimal) -> datetime:
    return datetime.fromtimestamp(float(ts), tz=UTC)


def _record(kind: str, key: str) -> int | None:
    return ImportRecord.objects.filter(source=SOURCE, kind=kind, key=key).values_list("object_id", flat=True).first()


def _remember(kind: str, key: str, object_id: int) -> None:
    ImportRecord.objects.create(source=SOURCE, kind=kind, key=key, object_id=object_id)


class SlackImport:
    def __init__(self, path, *, room_prefix: str = "", progress: Callable[[int, int], None] | None = None):
        self.path, self.room_prefix, self.progress = path, room_prefix, progress
        self.report = Report()
        self.users: dict[str, object] = {}  # Slack user id → user
        self.usernames: dict[str, str] = {}  # Slack user id → username (for <@U…> mentions)
        self.channel_names: dict[str, str] = {}
        self.emoji = _emoji_names()

    # Reading the archive ------------------------------------------------------------------

    def _json(self, archive: zipfile.ZipFile, name: str, *, required: bool):
        try:
            raw = archive.read(name)
        except KeyError:
            if required:
                raise InvalidInput(f"{name} is missing: is this a Slack export?") from None
            return None
        try:
            return json.loads(raw)
        except ValueError:
            raise InvalidInput(f"{name} is not valid JSON.") from None

    def run(self) -> Report:
        try:
            archive = zipfile.ZipFile(self.path)
        except (OSError, zipfile.BadZipFile) as error:
            raise InvalidInput(f"Not a readable zip file: {error}") from None
        with archive:
            names = set(archive.namelist())
            root = ""
            if "users.json" not in names:  # some tools zip the folder itself
                nested = sorted(n for n in names if n.endswith("/users.json"))
                root = nested[0][: -len("users.json")] if nested else ""
            users = self._json(archive, root + "users.json", required=True)
            channels = self._json(archive, root + "channels.json", required=True)
            if not isinstance(users, list) or not isinstance(channels, list):
                raise InvalidInput("users.json and channels.json must be lists.")
            for private in ("groups.json", "dms.json", "mpims.json"):
                rows = self._json(archive, root + private, required=False)
                if rows:
                    self.report.skip(f"{private}: private conversations are not imported ({len(rows)})")
            self._import_users(users)
            channel_files = []
            for channel in channels:
                if not isinstance(channel, dict) or not channel.get("id") or not channel.get("name"):
                    self.report.skip("channels.json entries without id or name")
                    continue
                self.channel_names[channel["id"]] = str(channel["name"])
            for channel in channels:
                if not isinstance(channel, dict) or channel.get("id") not in self.channel_names:
                    continue
                folder = f"{root}{channel['name']}/"
                days = sorted(n for n in names if n.startswith(folder) and n.endswith(".json")
                              and PurePosixPath(n).parent.name == channel["name"])
                messages = []
                for day in days:
                    rows = self._json(archive, day, required=False)
                    if not isinstance(rows, list):
                        self.report.skip("daily files that are not a list of messages")
                        continue
                    messages += [row for row in rows if isinstance(row, dict)]
                channel_files.append((channel, messages))
            total = sum(len(m) for _, m in channel_files)
            self.done, self.total = 0, total
            self._tick()
            for channel, messages in channel_files:
                room = self._import_channel(channel)
                self._import_messages(channel, room, messages)
        return self.report

    def _tick(self, n: int = 0) -> None:
        self.done += n
        if self.progress is not None:
            self.progress(self.done, self.total)

    # Users ------------------------------------------------------------------------------

    def _free_username(self, wanted: str) -> str:
        User = get_user_model()
        base = re.sub(r"[^\w.@+-]", "", wanted)[:USERNAME_MAX] or "slack-user"
        candidate, n = base, 1
        while User.objects.filter(username__iexact=candidate).exists():
            n += 1
            suffix = "-slack" if n == 2 else f"-slack{n}"
            candidate = base[: USERNAME_MAX - len(suffix)] + suffix
        try:
            UnicodeUsernameValidator()(candidate)
        except ValidationError:
            candidate = self._free_username("slack-user")
        return candidate

    def _import_users(self, rows: list) -> None:
        User = get_user_model()
        for row in rows:
            if not isinstance(row, dict) or not isinstance(row.get("id"), str):
                self.report.skip("users.json entries without an id")
                continue
            known = _record("user", row["id"])
            user = User.objects.filter(pk=known).first() if known else None
            if user is not None:
                self.report.users_known += 1
            else:
                with transaction.atomic():
                    profile = row.get("profile") if isinstance(row.get("profile"), dict) else {}
                    username = self._free_username(str(row.get("name") or row["id"]).lower())
                    if username.lower() != str(row.get("name") or "").lower():
                        self.report.notes.append(f"user {row.get('name')!r} ({row['id']}) is {username!r} here")
                    user = User(username=username, is_active=not (row.get("deleted") or row.get("is_bot")))
                    user.set_unusable_password()
                    user.save()
                    shown = str(profile.get("display_name") or profile.get("real_name") or row.get("real_name") or "")
                    Profile.objects.update_or_create(user=user, defaults={"display_name": shown[:80]})
                    _remember("user", row["id"], user.pk)
                self.report.users_created += 1
            self.users[row["id"]] = user
            self.usernames[row["id"]] = user.username

    # Channels ---------------------------------------------------------------------------

    def _free_slug(self, name: str) -> str:
        base = re.sub(r"[^a-z0-9_-]", "-", (self.room_prefix + name).lower()).strip("-")[:50] or "slack"
        if base.startswith(("dm-", "project-")):
            base = ("slack-" + base)[:50]
        candidate, n = base, 1
        while Room.objects.filter(slug=candidate).exists():
            n += 1
            candidate = f"{base[: 50 - len(str(n)) - 1]}-{n}"
        slug_validator(candidate)
        return candidate

    def _import_channel(self, channel: dict) -> Room:
        known = _record("channel", channel["id"])
        room = Room.objects.filter(pk=known).first() if known else None
        if room is not None:
            self.report.rooms_known += 1
        else:
            with transaction.atomic():
                slug = self._free_slug(str(channel["name"]))
                if slug != self.room_prefix + str(channel["name"]):
                    self.report.notes.append(f"channel #{channel['name']} is room {slug!r} here")
                creator = self.users.get(channel.get("creator"))
                room = Room.objects.create(slug=slug, name=str(channel["name"])[:80], kind=Room.Kind.PUBLIC,
                                           created_by=creator)
                _remember("channel", channel["id"], room.pk)
            self.report.rooms_created += 1
        members = channel.get("members") if isinstance(channel.get("members"), list) else []
        for member_id in members:
            user = self.users.get(member_id)
            if user is None or not user.is_active:
                continue
            role = Membership.Role.OWNER if member_id == channel.get("creator") else Membership.Role.MEMBER
            Membership.objects.get_or_create(room=room, user=user, defaults={"role": role})
        return room

    # Messages ---------------------------------------------------------------------------

    def _body(self, message: dict) -> str:
        text = message.get("text") if isinstance(message.get("text"), str) else ""
        body = slack_to_markdown(text, users=self.usernames, channels=self.channel_names)
        files = message.get("files") if isinstance(message.get("files"), list) else []
        links = []
        for item in files:
            if not isinstance(item, dict):
                continue
            name = str(item.get("name") or item.get("title") or "file").replace("]", ")").replace("[", "(")
            url = item.get("permalink") or item.get("url_private")
            if isinstance(url, str) and re.match(r"https?://", url):
                links.append(f"📎 [{name}]({url})")
            else:
                links.append(f"📎 {name} (not in the export)")
                self.report.skip("file links missing from the export (shown by name)")
        return "\n".join(part for part in [body, *links] if part.strip())

    def _reactions(self, message: dict) -> list[tuple[str, object]]:
        pairs = []
        for reaction in message.get("reactions") or []:
            if not isinstance(reaction, dict):
                continue
            name = str(reaction.get("name") or "").split("::", 1)[0]
            emoji = self.emoji.get(name)
            try:
                emoji = clean_emoji(emoji) if emoji else None
            except InvalidInput:
                emoji = None
            if emoji is None:
                self.report.skip(f"reactions with a custom or unknown emoji (:{name}:)")
                continue
            for user_id in reaction.get("users") or []:
                user = self.users.get(user_id)
                if user is None:
                    self.report.skip("reactions by users not in users.json")
                elif (emoji, user) not in pairs:
                    pairs.append((emoji, user))
        return pairs

    def _import_messages(self, channel: dict, room: Room, rows: list[dict]) -> None:
        keyed = []
        for row in rows:
            ts = _ts(row.get("ts"))
            if ts is None:
                self.report.skip("messages without a valid ts")
                continue
            keyed.append((ts, row))
        keyed.sort(key=lambda pair: pair[0])
        created_here = False
        for start in range(0, len(keyed), BATCH):
            with transaction.atomic():
                for ts, row in keyed[start:start + BATCH]:
                    created_here |= self._import_message(channel, room, ts, row)
            self._tick(len(keyed[start:start + BATCH]))
        self._tick(len(rows) - len(keyed))
        if created_here:
            # History people read in Slack is not news here: members start with it read.
            room.refresh_from_db(fields=["last_seq"])
            Membership.objects.filter(room=room, last_read_seq__lt=room.last_seq).update(last_read_seq=room.last_seq)

    def _import_message(self, channel: dict, room: Room, ts: Decimal, row: dict) -> bool:
        key = f"{channel['id']}:{row['ts']}"
        if _record("message", key) is not None:
            self.report.messages_known += 1
            return False
        subtype = row.get("subtype")
        if subtype in _SKIPPED_SUBTYPES:
            self.report.skip(f"{subtype}: {_SKIPPED_SUBTYPES[subtype]}")
            return False
        if row.get("type", "message") != "message":
            self.report.skip(f"entries of type {str(row.get('type'))[:30]}")
            return False
        tombstone = subtype == "tombstone"
        sender = self.users.get(row.get("user"))
        sender_name = ""
        if sender is None:
            if subtype == "bot_message" or row.get("bot_id"):
                profile = row.get("bot_profile") if isinstance(row.get("bot_profile"), dict) else {}
                sender_name = str(row.get("username") or profile.get("name") or "bot")[:80]
            elif not tombstone:
                self.report.skip("messages from users not in users.json (Slackbot and the like)")
                return False
        body = "" if tombstone else self._body(row)
        if not tombstone and not body.strip():
            self.report.skip("messages with no text and no file")
            return False
        if len(body) > settings.PARLEY_MAX_BODY:
            body = body[: settings.PARLEY_MAX_BODY - 1] + "…"
            self.report.skip("messages cut to PARLEY_MAX_BODY characters (imported, shortened)")
        reply_to = None
        thread_ts = row.get("thread_ts")
        if thread_ts and thread_ts != row["ts"]:
            reply_to = _record("message", f"{channel['id']}:{thread_ts}")
            if reply_to is None:
                self.report.skip("thread replies whose parent is not in the export (imported without the link)")
        edited = row.get("edited") if isinstance(row.get("edited"), dict) else None
        edited_ts = _ts(edited.get("ts")) if edited else None
        created_at = _time(ts)
        message = append(
            room,
            body=body,
            sender=sender,
            sender_name=sender_name,
            reply_to_id=reply_to,
            deleted=tombstone,
            deleted_at=timezone.now() if tombstone else None,
        )
        fields = {"created_at": created_at}
        if edited_ts is not None and not tombstone:
            fields["edited_at"] = _time(edited_ts)
        Message.objects.filter(pk=message.pk).update(**fields)
        for name, value in fields.items():
            setattr(message, name, value)
        reactions = [] if tombstone else self._reactions(row)
        message.reaction_list = Reaction.objects.bulk_create(
            Reaction(message=message, user=user, emoji=emoji) for emoji, user in reactions
        )
        self.report.reactions += len(reactions)
        _remember("message", key, message.pk)
        announce(room, message)
        self.report.messages_created += 1
        return True


def import_slack(path, *, room_prefix: str = "", progress=None) -> Report:
    return SlackImport(path, room_prefix=room_prefix, progress=progress).run()

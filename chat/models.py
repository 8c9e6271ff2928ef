"""Rooms, who is in them, and what was said.

Ordering lives on the room row: `last_seq` numbers messages (gap-free, commit order) and
`rev` numbers every change (message created, edited, reacted to, recalled, deleted). Both
are bumped while the row is locked (chat.services), so they follow commit order on any
database.
"""

import secrets

from django.conf import settings
from django.core.validators import RegexValidator
from django.db import models
from django.db.models import Q

SLUG_PATTERN = r"^[a-z0-9_-]{1,50}$"
TOPIC_MAX = 200
slug_validator = RegexValidator(SLUG_PATTERN, "A slug is 1-50 of a-z, 0-9, _ and -.")


class Room(models.Model):
    class Kind(models.TextChoices):
        PUBLIC = "public"
        PRIVATE = "private"
        DM = "dm"
        PROJECT = "project"

    slug = models.CharField(max_length=50, unique=True, validators=[slug_validator])
    name = models.CharField(max_length=80)
    # One line under the name in the room's header, set by its owner/admins (room_update).
    topic = models.CharField(max_length=TOPIC_MAX, blank=True, default="")
    kind = models.CharField(max_length=10, choices=Kind.choices, default=Kind.PUBLIC)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    last_activity_at = models.DateTimeField(auto_now_add=True, db_index=True)
    last_seq = models.PositiveBigIntegerField(default=0)
    rev = models.PositiveBigIntegerField(default=0)
    # Changes at or below this revision may have been purged: resuming from below it
    # cannot be complete, so it is reported as truncated.
    horizon_rev = models.PositiveBigIntegerField(default=0)
    # "<low user id>:<high user id>" for DMs: the database keeps one room per pair.
    dm_key = models.CharField(max_length=50, unique=True, null=True, blank=True, editable=False)
    retention_max_age = models.DurationField(null=True, blank=True, help_text="Drop messages older than this.")
    retention_max_count = models.PositiveIntegerField(null=True, blank=True, help_text="Keep at most this many.")
    # A closed conversation (SPEC §6.6) keeps its history but takes no new messages.
    closed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def is_public(self) -> bool:
        return self.kind == self.Kind.PUBLIC


class Membership(models.Model):
    class Notify(models.TextChoices):
        ALL = "all"
        MENTIONS = "mentions"
        NONE = "none"

    class Role(models.TextChoices):
        OWNER = "owner"
        ADMIN = "admin"
        MEMBER = "member"

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    room = models.ForeignKey(Room, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=10, choices=Role.choices, default=Role.MEMBER)
    last_read_seq = models.PositiveBigIntegerField(default=0)
    joined_at = models.DateTimeField(auto_now_add=True)
    # The member's notification settings for the room (SPEC §6.2): blank `notify` means the
    # room kind's default (selectors.room_settings); a `muted_until` in the future mutes it.
    notify = models.CharField(max_length=10, blank=True, default="")
    muted_until = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "room"], name="membership_user_room_unique")]

    def __str__(self) -> str:
        return f"{self.user} in {self.room} ({self.role})"

    @property
    def can_moderate(self) -> bool:
        return self.role in (self.Role.OWNER, self.Role.ADMIN)


def message_image_path(instance, filename: str) -> str:
    # Unguessable: a private room's image URL must not be found by counting.
    return f"messages/{secrets.token_urlsafe(24)}.{filename.rsplit('.', 1)[-1].lower()}"


def message_file_path(instance, filename: str) -> str:
    # Unguessable and without the sender's name or extension: nothing of it reaches a path.
    return f"files/{secrets.token_urlsafe(24)}"


class Message(models.Model):
    class Kind(models.TextChoices):
        TEXT = "text"
        IMAGE = "image"
        SYSTEM = "system"
        PRESET = "preset"
        FILE = "file"

    room = models.ForeignKey(Room, on_delete=models.CASCADE, related_name="messages")
    seq = models.PositiveBigIntegerField()
    rev = models.PositiveBigIntegerField()
    sender = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="messages"
    )
    kind = models.CharField(max_length=10, choices=Kind.choices, default=Kind.TEXT)
    body = models.TextField(blank=True)
    # `body` rendered by chat.formatting when it was stored or last edited.
    html = models.TextField(blank=True, default="")
    edited_at = models.DateTimeField(null=True, blank=True)
    # The message this one answers, in the same room (chat.services.message_send checks).
    reply_to = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="replies"
    )
    # Indexed: the media view finds the message (and so the room) by the file name.
    image = models.ImageField(upload_to=message_image_path, null=True, blank=True, db_index=True)
    # Kind `file` (SPEC §6.4): stored under an unguessable name, served only as a download
    # (chat/media.py); the name, size and type the sender gave, cleaned.
    file = models.FileField(upload_to=message_file_path, null=True, blank=True, db_index=True, max_length=200)
    file_name = models.CharField(max_length=200, blank=True)
    file_size = models.PositiveBigIntegerField(default=0)
    file_type = models.CharField(max_length=100, blank=True)
    # Pinned by a room's owner/admins (either person in a DM): shown in the room's header.
    pinned_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    recalled = models.BooleanField(default=False)
    deleted = models.BooleanField(default=False)
    # When it became a tombstone: old tombstones are dropped by retention (chat.services.room_purge).
    deleted_at = models.DateTimeField(null=True, blank=True)
    client_id = models.CharField(max_length=64, blank=True)
    # A bot's name and icon for this message (incoming webhooks, imported bot messages):
    # shown instead of the sender's profile. The icon is a URL the server never fetches.
    sender_name = models.CharField(max_length=80, blank=True, default="")
    sender_icon = models.URLField(max_length=500, blank=True, default="")
    # Who the message mentions (SPEC §6.2), decided when it is sent and again by each edit: the usernames named
    # with @ that may read the room, and whether it said @all / @room (every member).
    mentions = models.JSONField(default=list, blank=True)
    mentions_all = models.BooleanField(default=False)

    class Meta:
        ordering = ["seq"]
        constraints = [
            models.UniqueConstraint(fields=["room", "seq"], name="message_room_seq_unique"),
            models.UniqueConstraint(fields=["room", "rev"], name="message_room_rev_unique"),
            models.UniqueConstraint(
                fields=["sender", "client_id"], condition=~Q(client_id=""), name="message_sender_client_id_unique"
            ),
        ]

    def __str__(self) -> str:
        return f"#{self.seq} in {self.room_id}"


class Mention(models.Model):
    """One user named with @ in one message: what mention counts and GET /api/mentions/
    look up by index. @all is the message's `mentions_all`, not a row per member."""

    message = models.ForeignKey(Message, on_delete=models.CASCADE, related_name="mention_rows")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["message", "user"], name="mention_message_user_unique")]
        indexes = [models.Index(fields=["user", "message"], name="mention_user_message")]

    def __str__(self) -> str:
        return f"user {self.user_id} in message {self.message_id}"


class MessageVersion(models.Model):
    """A body a message had before an edit: the original first (`edited_at` is then the
    message's created_at), each later one with the time it was written. The current body
    stays on the message; a message never edited has no rows here."""

    message = models.ForeignKey(Message, on_delete=models.CASCADE, related_name="versions")
    body = models.TextField(blank=True)
    edited_at = models.DateTimeField()

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"version of message {self.message_id} from {self.edited_at:%Y-%m-%d %H:%M:%S}"


class Reaction(models.Model):
    """One user's emoji on one message, stored exactly as sent (❤ and ❤️ differ)."""

    message = models.ForeignKey(Message, on_delete=models.CASCADE, related_name="reactions")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    emoji = models.CharField(max_length=64)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(fields=["message", "user", "emoji"], name="reaction_message_user_emoji_unique")
        ]

    def __str__(self) -> str:
        return f"{self.emoji} by {self.user_id} on {self.message_id}"


def preset_image_path(instance, filename: str) -> str:
    return f"presets/{secrets.token_urlsafe(24)}.{filename.rsplit('.', 1)[-1].lower()}"


class Preset(models.Model):
    """A canned message staff post with one click ("Ordering open", a countdown picture)."""

    title = models.CharField(max_length=80, help_text="What the button says.")
    body = models.TextField(blank=True, help_text="The message text (optional with an image).")
    image = models.ImageField(upload_to=preset_image_path, null=True, blank=True)
    position = models.PositiveIntegerField(default=0, help_text="Buttons are shown in this order.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["position", "title", "id"]

    def __str__(self) -> str:
        return self.title


def announcement_image_path(instance, filename: str) -> str:
    return f"announcement/{secrets.token_urlsafe(24)}.{filename.rsplit('.', 1)[-1].lower()}"


class Announcement(models.Model):
    """The one global announcement (row pk=1): text and an optional background image."""

    SINGLETON_ID = 1

    text = models.TextField(blank=True)
    image = models.ImageField(upload_to=announcement_image_path, null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    def __str__(self) -> str:
        return self.text[:60] or "(no announcement)"


class MessageSearch(models.Model):
    """A message's search document (chat.search): written with every change to the
    message, in the same transaction; none for recalled, deleted and system messages.
    SQLite keeps an FTS5 table over `doc` (chat_messagesearch_fts, by triggers);
    PostgreSQL a stored tsvector column `tsv` with a GIN index (migration 0005)."""

    message = models.OneToOneField(Message, primary_key=True, on_delete=models.CASCADE, related_name="+")
    room = models.ForeignKey(Room, on_delete=models.CASCADE, related_name="+", db_index=False)
    sender = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+", db_index=False
    )
    created_at = models.DateTimeField()
    doc = models.TextField()

    class Meta:
        indexes = [
            models.Index(fields=["room", "message"], name="messagesearch_room"),
            models.Index(fields=["sender", "message"], name="messagesearch_sender"),
        ]

    def __str__(self) -> str:
        return f"search document of message {self.message_id}"
def webhook_token() -> str:
    return secrets.token_urlsafe(32)


class Webhook(models.Model):
    """An incoming webhook: whoever holds its URL posts into `room` as `bot`, a user of
    its own that cannot log in (chat.services.webhooks). Revoking keeps the row (its
    messages stay from the bot) and makes the URL answer 404."""

    room = models.ForeignKey(Room, on_delete=models.CASCADE, related_name="webhooks")
    name = models.CharField(max_length=80)
    token = models.CharField(max_length=64, unique=True, default=webhook_token, editable=False)
    bot = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="webhook")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.name} in {self.room_id}"


class ImportRecord(models.Model):
    """What an import made from which source object (a Slack user, channel, message), so
    running it again makes nothing twice."""

    source = models.CharField(max_length=20)
    kind = models.CharField(max_length=20)
    key = models.CharField(max_length=200)
    object_id = models.PositiveBigIntegerField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["source", "kind", "key"], name="importrecord_source_kind_key_unique")
        ]

    def __str__(self) -> str:
        return f"{self.source} {self.kind} {self.key} → {self.object_id}"
class PushKey(models.Model):
    """The server's VAPID key pair (row pk=1), made once unless PARLEY_VAPID_PRIVATE_KEY
    gives one: every process and host signs with the same key (chat/webpush.py)."""

    SINGLETON_ID = 1

    private_pem = models.TextField()
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return "VAPID key"


class PushSubscription(models.Model):
    """A browser's Web Push subscription (RFC 8030): where to push and the keys to encrypt
    with (RFC 8291). The last success and the last error show whether it still works."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="push_subscriptions")
    endpoint = models.URLField(max_length=1000, unique=True)
    p256dh = models.CharField(max_length=100)
    auth = models.CharField(max_length=50)
    created_at = models.DateTimeField(auto_now_add=True)
    last_success_at = models.DateTimeField(null=True, blank=True)
    last_error = models.CharField(max_length=300, blank=True)
    last_error_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"push subscription {self.pk} of user {self.user_id}"


class PushDelivery(models.Model):
    """One push still to make (an outbox row, written with the message it tells of): the
    push worker sends it, retries with backoff, and deletes it once done. A stopped worker
    loses nothing: the rows wait for it."""

    subscription = models.ForeignKey(PushSubscription, on_delete=models.CASCADE, related_name="deliveries")
    message_id = models.BigIntegerField()
    payload = models.JSONField()
    created_at = models.DateTimeField(auto_now_add=True)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(db_index=True)

    def __str__(self) -> str:
        return f"push of message {self.message_id} to subscription {self.subscription_id}"


class UserPresence(models.Model):
    """A user has a socket open on a server process (one row per user and process): Web
    Push goes only to users with no row. A process writes its row when the user's first
    socket there opens and deletes it when the last one closes, so a user who closes the
    app is pushed to at once. Each hub sweep renews `last_seen`: the row of a process that
    died without deleting it stops counting after PARLEY_PUSH_AWAY_SECONDS."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    process = models.CharField(max_length=32)
    last_seen = models.DateTimeField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "process"], name="userpresence_user_process_unique")]

    def __str__(self) -> str:
        return f"user {self.user_id} on {self.process} seen {self.last_seen:%H:%M:%S}"


# Moderation and safety (SPEC §6.4) ---------------------------------------------------------
# Mutes and bans end by themselves: every check compares `until` with the clock, so they
# hold across restarts and processes and need no job to lift them.


class RoomMute(models.Model):
    """`user` may read `room` but not send to it until `until`."""

    room = models.ForeignKey(Room, on_delete=models.CASCADE, related_name="mutes")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    until = models.DateTimeField()
    by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["room", "user"], name="roommute_room_user_unique")]

    def __str__(self) -> str:
        return f"{self.user} muted in {self.room} until {self.until:%Y-%m-%d %H:%M}"


class RoomBan(models.Model):
    """`user` is out of `room` and cannot rejoin or read it until `until` (null: until lifted)."""

    room = models.ForeignKey(Room, on_delete=models.CASCADE, related_name="bans")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    until = models.DateTimeField(null=True, blank=True)
    by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["room", "user"], name="roomban_room_user_unique")]

    def __str__(self) -> str:
        return f"{self.user} banned from {self.room}"


class Report(models.Model):
    """A reader flags a message for staff."""

    message = models.ForeignKey(Message, null=True, on_delete=models.SET_NULL, related_name="reports")
    room = models.ForeignKey(Room, null=True, on_delete=models.SET_NULL, related_name="+")
    reporter = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    reason = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    resolved = models.BooleanField(default=False, db_index=True)
    resolved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    resolved_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"report {self.pk} on message {self.message_id}"


class AuditEntry(models.Model):
    """One moderation action: who did what to whom (and which message), when. `room` is
    empty for site-wide actions (suspensions, report resolutions of purged messages)."""

    class Action(models.TextChoices):
        DELETE = "delete"
        MUTE = "mute"
        UNMUTE = "unmute"
        BAN = "ban"
        UNBAN = "unban"
        SUSPEND = "suspend"
        UNSUSPEND = "unsuspend"
        ROLE = "role"
        PIN = "pin"
        UNPIN = "unpin"
        RESOLVE = "resolve"

    room = models.ForeignKey(Room, null=True, blank=True, on_delete=models.CASCADE, related_name="audit")
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    action = models.CharField(max_length=20, choices=Action.choices)
    target = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    message = models.ForeignKey(Message, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    detail = models.CharField(max_length=200, blank=True)
    at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-id"]
        verbose_name_plural = "audit entries"

    def __str__(self) -> str:
        return f"{self.actor} {self.action} {self.target or ''}".strip()


class Block(models.Model):
    """`blocker` does not want to hear from `blocked`."""

    blocker = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="blocks")
    blocked = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["blocker", "blocked"], name="block_pair_unique")]

    def __str__(self) -> str:
        return f"{self.blocker} blocks {self.blocked}"

"""What a message goes through after it is sent: sending (a reply too), recall, deletion.
Edits are in chat/services/edits.py, reactions in chat/services/reactions.py."""

import logging
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.dispatch import Signal
from django.utils import timezone

from chat import search, selectors
from chat.formatting import render
from chat.models import AuditEntry, Membership, Message, MessageSearch, Room
from chat.services.changes import (
    announce,
    append,
    clean_client_id,
    erase,
    lock_room,
    take_numbers,
    tell_room_added,
)
from chat.services.mentions import mentions_for, store_mentions
from chat.services.push import enqueue_for_message
from core import rows
from core.errors import InvalidInput, Muted, NotAllowed, NotFound, RateLimited, RecallWindowPassed, TooLarge
from core.ratelimit import send_waits
from core.validation import clean_text, require_user

log = logging.getLogger(__name__)

# Sent after commit for each new message in a project conversation (`message`, `room`):
# how the projects app hears of replies to email (projects/notify.py) without chat
# knowing about it.
message_stored = Signal()


def message_send(
    *, sender, room: Room, body="", client_id=None, kind=Message.Kind.TEXT, image=None, allowance_taken=False,
    reply_to=None, sender_name="", sender_icon="", attachment: dict | None = None,
) -> tuple[Message, bool]:
    """Store a message as the room's next seq and announce it after commit.

    `reply_to` (optional) is the id of the message this one answers: one in the same
    room that is not deleted, else InvalidInput. Returns (message, created). A
    `client_id` this sender already used returns the first message unchanged, whatever the body now says: retries after a dropped connection
    are safe, concurrent ones included. Raises AuthRequired for anonymous senders,
    NotFound when the sender may not read the room, InvalidInput/TooLarge for bad input,
    RateLimited past the sender's allowance (nothing is stored), NotAllowed for @all /
    @room from a sender who may not mention everyone (chat.services.mentions); `allowance_taken`: the
    caller already called take_send_allowance for this message (image sends, which check
    before decoding). `attachment`: the stored file of a `file` message (chat.services.files).
    Sending moves the sender's own read marker to the new message; into a public room
    the sender has not joined, it joins them first (_join_by_sending). `sender_name` and
    `sender_icon` are a bot's name and icon URL for this message (incoming webhooks).
    """
    draft = _draft(
        sender=sender, room=room, body=body, client_id=client_id, kind=kind, image=image, reply_to=reply_to,
        sender_name=sender_name, sender_icon=sender_icon, attachment=attachment,
    )
    if not allowance_taken:
        existing = take_send_allowance(sender, draft.client_id)
        if existing is not None:
            return existing, False
    try:
        with transaction.atomic():
            message = _store(draft)
    except IntegrityError:
        # The sender used this client_id before (a retry, maybe a concurrent one): the
        # whole transaction rolled back, numbers included; answer with the first message.
        existing = sent_before(sender, draft.client_id) if draft.client_id else None
        if existing is None:
            raise
        return existing, False
    return message, True


def message_send_together(sends: list[dict]) -> list[tuple[tuple[Message, bool] | None, Exception | None]]:
    """Several `message_send`s into one room (each a dict of its arguments), committed as
    one transaction (chat.groupcommit): (result, None) or (None, error) for each, in order.

    What every send reads is read once for all (the senders' standing, their send
    allowances in one call); a run of sends that need nothing but a message row takes its
    numbers, inserts its rows and moves its senders' read markers in one statement each,
    so a batch costs a few round trips whatever its size. A send refused before anything
    is written (too long, muted, rate-limited, …) is answered with its error, and the
    others go on. If a write fails (a repeated `client_id`, a room that went private
    meanwhile, a database error), the batch rolls back whole, unannounced, and its sends
    run again one transaction each, as `message_send` alone: a repeated `client_id` is then
    answered with the first message. If the commit fails, every send fails.

    On PostgreSQL a batch of plain sends with nothing else to store (no mention, no push
    to queue), a batch of one too, is a single statement that commits by itself
    (_store_in_one_statement): two round trips, the standings and that statement, where
    a transaction took five. If it fails, nothing was written: the same as a rollback.
    """
    if len(sends) == 1 and connection.vendor != "postgresql":
        return [_alone(sends[0])]
    room = sends[0]["room"]
    outcomes: list = [None] * len(sends)
    drafts: list[_Draft | None] = [None] * len(sends)
    try:
        senders = [kwargs["sender"] for kwargs in sends]
        found = selectors.standings(user_ids=[sender.pk for sender in senders if getattr(sender, "is_authenticated", False)], room=room)
    except Exception as error:
        return [(None, error)] * len(sends)
    for i, kwargs in enumerate(sends):
        try:
            drafts[i] = _draft(**_draft_arguments(kwargs), standing=found.get(kwargs["sender"].pk))
        except Exception as error:  # only read so far, outside any transaction: this send alone fails
            outcomes[i] = (None, error)
    _take_allowances(sends, drafts, outcomes)
    if _one_statement(drafts):
        return _store_in_one_statement(sends, drafts, outcomes, room=room)
    written = committed = False

    def note_commit():
        nonlocal committed
        committed = True

    try:
        with transaction.atomic():
            transaction.on_commit(note_commit)
            start = 0
            while start < len(sends):
                if drafts[start] is None:
                    start += 1
                elif not drafts[start].plain:
                    outcomes[start] = ((_store(drafts[start]), True), None)
                    start += 1
                else:
                    end = start + 1
                    while end < len(sends) and (drafts[end] is None or drafts[end].plain):
                        end += 1
                    run = [i for i in range(start, end) if drafts[i] is not None]
                    for i, message in zip(run, _store_plain([drafts[i] for i in run], room=room), strict=True):
                        outcomes[i] = ((message, True), None)
                    start = end
            written = True
    except Exception:
        if committed:
            # An after-commit callback failed. Its own send would have answered with an
            # error alone; the messages are stored, and the hub's sweep announces whatever
            # the failure kept from being published.
            log.exception("a callback after a group commit failed")
        elif written:
            raise  # the commit failed: nothing of the batch is stored
        else:
            # Rolled back whole, unannounced.
            return _one_by_one(sends, drafts, outcomes)
    return outcomes


def _one_statement(drafts: list) -> bool:
    """Whether all the batch writes is one statement (PostgreSQL, _store_numbered): plain
    sends with no mention or push to store besides."""
    live = [draft for draft in drafts if draft is not None]
    return (
        connection.vendor == "postgresql" and bool(live)
        and all(draft.plain and not draft.mentioned and not draft.standing.others_subscribed for draft in live)
    )


def _store_in_one_statement(sends: list[dict], drafts: list, outcomes: list, *, room: Room) -> list:
    """message_send_together's writes as one statement that commits by itself: no BEGIN,
    numbers or COMMIT round trip of their own (benchmark/README.md, ninth round). Nothing
    that could fail is written after it."""
    run = [i for i, draft in enumerate(drafts) if draft is not None]
    try:
        messages = _store_numbered([drafts[i] for i in run], room=room)
    except (IntegrityError, NotFound):
        # Nothing was written (a repeated client_id; the room went or changed kind).
        return _one_by_one(sends, drafts, outcomes)
    except Exception as error:
        # Committed or not (the connection may have gone after the commit), as when a
        # COMMIT fails: every send fails; the hub's sweep announces whatever did commit.
        return [outcome if drafts[i] is None else (None, error) for i, outcome in enumerate(outcomes)]
    for i, message in zip(run, messages, strict=True):
        message.reaction_list = []  # as _stored, which has nothing else to do for these
        outcomes[i] = ((message, True), None)
    try:
        for message in messages:
            announce(room, message)
    except Exception:
        # Stored already; the sweep announces what this kept from being published.
        log.exception("announcing a batch stored in one statement failed")
    return outcomes


def _one_by_one(sends: list[dict], drafts: list, outcomes: list) -> list:
    """After a batch wrote nothing: each send again in its own transaction, but for the
    refusals already answered; the others took their allowance already."""
    return [
        outcome if drafts[i] is None else _alone({**sends[i], "allowance_taken": True})
        for i, outcome in enumerate(outcomes)
    ]


def _alone(kwargs: dict) -> tuple[tuple[Message, bool] | None, Exception | None]:
    try:
        return message_send(**kwargs), None
    except Exception as error:
        return None, error


def _draft_arguments(kwargs: dict) -> dict:
    return {name: value for name, value in kwargs.items() if name != "allowance_taken"}


def _take_allowances(sends: list[dict], drafts: list, outcomes: list) -> None:
    """Each checked send's allowance, taken in one call (take_send_allowance for each)."""
    due = [i for i, draft in enumerate(drafts) if draft is not None and not sends[i].get("allowance_taken")]
    if not due:
        return
    try:
        waits = send_waits([drafts[i].sender.pk for i in due])
    except Exception as error:
        waits = [error] * len(due)
    for i, wait in zip(due, waits, strict=True):
        try:
            if isinstance(wait, Exception):
                raise wait
            existing = _allowance_outcome(drafts[i].sender, drafts[i].client_id, wait)
        except Exception as error:
            outcomes[i], drafts[i] = (None, error), None
        else:
            if existing is not None:
                outcomes[i], drafts[i] = ((existing, False), None), None


@dataclass
class _Draft:
    """A send that passed its checks: what storing it needs."""

    sender: object
    room: Room
    client_id: str | None
    body: str
    standing: selectors.Standing
    original: Message | None
    mentioned: list
    mentions_all: bool
    kind: str
    image: object
    sender_name: str
    sender_icon: str
    attachment: dict | None

    @property
    def plain(self) -> bool:
        """Needs nothing but its rows: a person's text, no join, no project conversation."""
        return (
            self.kind == Message.Kind.TEXT and self.image is None and self.attachment is None and not self.sender_name
            and self.room.kind != Room.Kind.PROJECT and (self.standing.member or not self.room.is_public)
        )


def _draft(
    *, sender, room: Room, body="", client_id=None, kind=Message.Kind.TEXT, image=None, reply_to=None, sender_name="",
    sender_icon="", attachment: dict | None = None, standing: selectors.Standing | None = None,
) -> _Draft:
    """message_send's checks, before anything is written (`standing`: already read)."""
    require_user(sender)
    client_id = clean_client_id(client_id)
    body = clean_text(
        body, field="body", max_length=settings.PARLEY_MAX_BODY, required=image is None and attachment is None,
        too_long=TooLarge,
    )
    if standing is None:
        standing = selectors.standing(user=sender, room=room)
    if not standing.may_read(room):
        raise NotFound("No such room.")
    may_send_here(sender=sender, room=room, standing=standing)
    original = reply_target(room=room, reply_to=reply_to)
    mentioned, mentions_all = mentions_for(sender=sender, room=room, body=body)
    return _Draft(
        sender=sender, room=room, client_id=client_id, body=body, standing=standing, original=original,
        mentioned=mentioned, mentions_all=mentions_all, kind=kind, image=image, sender_name=sender_name,
        sender_icon=sender_icon, attachment=attachment,
    )


def _message(draft: _Draft, *, seq: int, rev: int) -> Message:
    return Message(
        room=draft.room, seq=seq, rev=rev, sender=draft.sender, kind=draft.kind, body=draft.body,
        html=render(draft.body), image=draft.image, client_id=draft.client_id or "", reply_to=draft.original,
        sender_name=draft.sender_name, sender_icon=draft.sender_icon,
        mentions=[user.username for user in draft.mentioned], mentions_all=draft.mentions_all,
        **(draft.attachment or {}),
    )


def _store(draft: _Draft) -> Message:
    """Write one checked send, in the caller's transaction."""
    sender, room = draft.sender, draft.room
    kind_seen = room.kind
    if draft.kind in (Message.Kind.TEXT, Message.Kind.IMAGE, Message.Kind.FILE) and not draft.sender_name:
        _join_by_sending(sender, room, member=draft.standing.member)  # people, not presets or bots
    seq, rev = take_numbers(room, new_message=True)
    if room.kind != kind_seen and not selectors.room_may_read(user=sender, room=room):
        # It went private after the check above (a socket holds the room from its
        # connect): an outsider's message must not land in it.
        raise NotFound("No such room.")
    if room.kind == Room.Kind.PROJECT and Room.objects.filter(pk=room.pk, closed_at__isnull=False).exists():
        # Checked under the row lock: a close that committed first wins (SPEC §6.6).
        raise NotAllowed("This conversation is closed.")
    message = rows.insert(_message(draft, seq=seq, rev=rev))
    _stored(draft, message)
    search.index_message(message, new=True)
    _read_up_to(room, {sender.pk: seq})
    announce(room, message)
    if room.kind == Room.Kind.PROJECT:
        transaction.on_commit(lambda: message_stored.send(sender=Message, message=message, room=room))
    return message


def _store_plain(drafts: list[_Draft], *, room: Room) -> list[Message]:
    """Write a run of plain sends (_Draft.plain) in the caller's transaction: numbers,
    message rows, search documents and read markers one statement each, on PostgreSQL
    all four in one (_store_numbered)."""
    if connection.vendor == "postgresql":
        messages = _store_numbered(drafts, room=room)
    else:
        kinds_seen = [draft.room.kind for draft in drafts]  # each socket holds its own copy of the room
        last_seq, last_rev = take_numbers(room, new_message=True, count=len(drafts))
        for draft, kind_seen in zip(drafts, kinds_seen, strict=True):
            if room.kind != kind_seen and not selectors.room_may_read(user=draft.sender, room=room):
                raise NotFound("No such room.")  # it went private meanwhile: the batch goes one by one
        _share_numbers(drafts, room)
        first = len(drafts) - 1
        messages = [
            _message(draft, seq=last_seq - first + i, rev=last_rev - first + i) for i, draft in enumerate(drafts)
        ]
        rows.insert_many(messages)
        search.index_new_messages(messages)
        _read_up_to(room, {message.sender_id: message.seq for message in messages})  # a sender's last
    for draft, message in zip(drafts, messages, strict=True):
        _stored(draft, message)
    for message in messages:
        announce(room, message)
    return messages


def _share_numbers(drafts: list[_Draft], room: Room) -> None:
    """Each socket holds its own copy of the room: bring each up to date with `room`."""
    for draft in drafts:
        if draft.room is not room:
            draft.room.last_seq, draft.room.rev, draft.room.kind = room.last_seq, room.rev, room.kind
            draft.room.last_activity_at = room.last_activity_at


def _store_numbered(drafts: list[_Draft], *, room: Room) -> list[Message]:
    """PostgreSQL: take_numbers, then the sends' message rows, search documents and read
    markers, as one statement (data-modifying CTEs). A room's batches follow each other,
    and each statement is a round trip that also waits for the GIL behind the busy event
    loop: this is one where there were four (benchmark/README.md, eighth and ninth rounds).

    The rows go in numbered from 1, and the statement adds the numbers the room was at.
    NotFound, with nothing written, when the room is gone or is no longer of the kind the
    sends were checked against (it went private meanwhile): the caller sends them one by
    one, each checked again."""
    kinds_seen = {draft.room.kind for draft in drafts}
    if len(kinds_seen) > 1:
        raise NotFound("No such room.")  # it changed kind between two of the sends' checks
    messages = [_message(draft, seq=i, rev=i) for i, draft in enumerate(drafts, start=1)]
    now = timezone.now()
    quote = connection.ops.quote_name
    fields = rows.insert_fields(Message, connection)
    columns = ", ".join(quote(field.column) for field in fields)
    numbered = ", ".join(
        f"n.{field.name}0 + u.{quote(field.column)}" if field.name in ("seq", "rev") else f"u.{quote(field.column)}"
        for field in fields
    )
    source, params = rows.arrays_sql(
        connection, fields, [rows.prepared_values(message, fields, connection) for message in messages]
    )
    sql = (
        f"WITH n AS (UPDATE {Room._meta.db_table}"
        " SET last_seq = last_seq + %s, rev = rev + %s, last_activity_at = %s WHERE id = %s AND kind = %s"
        " RETURNING last_seq - %s AS seq0, rev - %s AS rev0)"
        f", stored AS (INSERT INTO {Message._meta.db_table} ({columns}) SELECT {numbered}"
        f" FROM n, ({source}) u({columns}) RETURNING id, seq, rev)"
    )
    count = len(messages)
    params = [count, count, connection.ops.adapt_datetimefield_value(now), room.pk, *kinds_seen, count, count, *params]
    documents = search.document_rows(messages, key=lambda message: message.seq)
    if documents:
        fields = [Message._meta.get_field("seq")] + [
            MessageSearch._meta.get_field(name) for name in search.DOCUMENT_FIELDS
        ]
        source, document_params = rows.arrays_sql(connection, fields, documents)
        sql += (
            f", indexed AS (INSERT INTO {MessageSearch._meta.db_table} (message_id, room_id, sender_id, created_at, doc)"
            f" SELECT stored.id, d.room_id, d.sender_id, d.created_at, d.doc"
            f" FROM n, stored, ({source}) d(seq, room_id, sender_id, created_at, doc) WHERE stored.seq = n.seq0 + d.seq)"
        )
        params += document_params
    markers, marker_params = _markers_moved_pg(room, {m.sender_id: m.seq for m in messages}, numbered=True)
    sql += f", marked AS ({markers}) SELECT id, seq, rev FROM stored ORDER BY seq"
    with connection.cursor() as cursor:
        cursor.execute(sql, params + marker_params)
        stored = cursor.fetchall()
    if not stored:
        raise NotFound("No such room.")
    for message, (pk, seq, rev) in zip(messages, stored, strict=True):
        message.seq, message.rev = seq, rev
        rows.mark_stored(message, pk)
    # `room` is the first send's copy, which may be a refused send's older one: the
    # statement found the kind the others were checked against.
    room.last_seq, room.rev, room.last_activity_at = messages[-1].seq, messages[-1].rev, now
    room.kind = next(iter(kinds_seen))
    _share_numbers(drafts, room)
    return messages


def _stored(draft: _Draft, message: Message) -> None:
    """What a new message brings besides its row: its mentions and pushes."""
    if draft.mentioned:
        store_mentions(message, draft.mentioned)
    enqueue_for_message(draft.room, message, others_subscribed=draft.standing.others_subscribed)
    message.reaction_list = []  # a new message has none: spares the serializer a query


def _read_up_to(room: Room, seqs: dict[int, int]) -> None:
    """Senders have read their own messages: each one's marker moves to their message
    (`seqs`: user id -> seq). A plain UPDATE: the ORM's took ~0.3 ms of a send's ~1.6 ms
    (SQLite, 200-member room), this ~30 µs; one for a whole group commit. On PostgreSQL
    the pairs are two arrays, so the statement is the same for any number of senders
    (core/rows.py says why that matters)."""
    if connection.vendor == "postgresql":
        sql, params = _markers_moved_pg(room, seqs)
    else:
        case = " ".join(["WHEN %s THEN %s"] * len(seqs))
        pairs = [value for pair in seqs.items() for value in pair]
        sql = (
            f"UPDATE {Membership._meta.db_table} SET last_read_seq = CASE user_id {case} END"
            f" WHERE room_id = %s AND user_id IN ({', '.join(['%s'] * len(seqs))})"
            f" AND last_read_seq < CASE user_id {case} END"
        )
        params = [*pairs, room.pk, *seqs, *pairs]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)


def _markers_moved_pg(room: Room, seqs: dict[int, int], *, numbered: bool = False) -> tuple[str, list]:
    """_read_up_to's UPDATE on PostgreSQL, and its parameters. `numbered`: inside
    _store_numbered, where the seqs count from the room's numbers before it (`n.seq0`)."""
    seq = "n.seq0 + r.seq" if numbered else "r.seq"
    return (
        f"UPDATE {Membership._meta.db_table} m SET last_read_seq = {seq}"
        f" FROM UNNEST(%b::integer[], %b::bigint[]) r(user_id, seq){', n' if numbered else ''}"
        f" WHERE m.room_id = %s AND m.user_id = r.user_id AND m.last_read_seq < {seq}",
        [list(seqs), list(seqs.values()), room.pk],
    )


def _join_by_sending(sender, room: Room, *, member: bool) -> None:
    """Sending into a public room one has not joined (`member`: as read before the
    transaction) joins it (docs/api.md "Joining"): the "joined" system message first,
    then the membership (badge, unread, sidebar)."""
    if not room.is_public or member:
        return
    # Under the room's lock, asked again: a concurrent first send of the same person may
    # have joined them meanwhile (one "joined", and no duplicate membership to fail on).
    if not lock_room(room.id).is_public:  # it went private: no outsider joins (rolled back)
        raise NotFound("No such room.")
    if Membership.objects.filter(room=room, user=sender).exists():
        return
    joined = append(room, kind=Message.Kind.SYSTEM, body=f"{sender.username} joined")
    announce(room, joined)
    Membership.objects.create(room=room, user=sender, last_read_seq=joined.seq)
    tell_room_added(sender.id, room)


def may_send_here(*, sender, room: Room, standing: selectors.Standing | None = None) -> None:
    """What a reader needs beyond reading to send: not muted there (Muted, with its end),
    and in a direct or project conversation not blocked by the other person (NotAllowed).
    `standing`: already read (selectors.standing); the mute is then only read if it lasts."""
    mute = selectors.room_mute_get(user=sender, room=room) if standing is None or standing.muted else None
    if mute is not None:
        raise Muted(mute.until)
    if room.kind in (Room.Kind.DM, Room.Kind.PROJECT) and selectors.blocked_in_conversation(user=sender, room=room):
        raise NotAllowed("You cannot write to this conversation.")


def reply_target(*, room: Room, reply_to) -> Message | None:
    """The message a reply answers (None for no reply): in `room`, not deleted."""
    if reply_to is None:
        return None
    if not isinstance(reply_to, int) or isinstance(reply_to, bool) or not 0 < reply_to < 2**63:
        raise InvalidInput("reply_to must be a message id.")
    original = (
        Message.objects.select_related("sender__profile").filter(pk=reply_to, room=room, deleted=False).first()
    )
    if original is None:
        raise InvalidInput("reply_to must be a message in this room.")
    return original


def take_send_allowance(sender, client_id: str) -> Message | None:
    """Take one send from the sender's allowance: None when granted, RateLimited past it,
    except that a retry of a message that made it is answered with that message."""
    return _allowance_outcome(sender, client_id, send_waits([sender.pk])[0])


def _allowance_outcome(sender, client_id: str | None, wait: float) -> Message | None:
    """None when the send was granted (`wait` 0); past the allowance, the message a retry
    repeats, or RateLimited."""
    if wait <= 0:
        return None
    existing = sent_before(sender, client_id) if client_id else None
    if existing is None:
        raise RateLimited(retry_after=wait)
    return existing


def sent_before(sender, client_id: str) -> Message | None:
    return (
        selectors.with_details(Message.objects.select_related("room"))
        .filter(sender=sender, client_id=client_id)
        .first()
    )


def _message_for_change(*, user, message_id) -> tuple[Room, Message, Membership | None]:
    require_user(user)
    if not isinstance(message_id, int) or isinstance(message_id, bool) or not 0 < message_id < 2**63:
        raise InvalidInput("id must be a message id.")
    if user.is_staff:
        # Staff moderate every room, including ones they cannot read.
        message = Message.objects.filter(pk=message_id, deleted=False).first()
        if message is None:
            raise NotFound("No such message.")
    else:
        message = selectors.message_get_for_user(user=user, message_id=message_id)
    room = lock_room(message.room_id)
    # Read again under the room lock: a concurrent delete may have tombstoned it, or
    # retention purged it, since the check above. Changing it again would take a second
    # rev and announce the deletion twice.
    message = Message.objects.select_related("sender__profile").filter(pk=message.pk, deleted=False).first()
    if message is None:
        raise NotFound("No such message.")
    message.room = room
    return room, message, selectors.membership_get(user=user, room=room)


@transaction.atomic
def message_recall(*, user, message_id) -> Message:
    """The sender takes a message back within PARLEY_RECALL_SECONDS (server clock).

    Its body, image, earlier versions and reactions are erased from the server; clients
    see "message recalled".
    """
    room, message, _ = _message_for_change(user=user, message_id=message_id)
    if message.sender_id != user.id:
        raise NotAllowed("Only the sender may recall a message.")
    if message.recalled:
        return message
    if timezone.now() - message.created_at > timedelta(seconds=settings.PARLEY_RECALL_SECONDS):
        raise RecallWindowPassed()
    erase(room, message, recalled=True)
    announce(room, message)
    return message


@transaction.atomic
def message_delete(*, user, message_id) -> Message:
    """Delete a message for everyone: its sender, a room owner/admin, or staff may.

    A content-free tombstone stays, so reconnecting clients learn of the deletion; its
    versions and reactions go with the content. A message already deleted (or purged) is
    NotFound, however many deletes race: exactly one takes a rev and is announced.
    """
    room, message, membership = _message_for_change(user=user, message_id=message_id)
    if message.sender_id != user.id and not selectors.room_may_moderate(user=user, membership=membership):
        raise NotAllowed("You may not delete this message.")
    was_live = not message.recalled
    if message.sender_id != user.id:
        from chat.services.moderation import audit

        audit(actor=user, action=AuditEntry.Action.DELETE, room=room, target=message.sender, message=message)
    erase(room, message, deleted=True, deleted_at=timezone.now())
    announce(room, message, was_live=was_live)
    return message

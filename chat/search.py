"""Message search (SPEC §6.3): one normalisation, one index, the same answers on SQLite and
on stock PostgreSQL.

Text is normalised one character at a time, so that an offset in the normalised text
maps back to the body: NFKC, case folded, accents dropped from Latin letters, and
Traditional characters turned Simplified (opencc's t2s table, character by character:
`數據庫` and `数据库` meet). Then it is cut into tokens: Latin (and any other
space-separated script's) words whole, and Chinese/Japanese runs as overlapping
character pairs (`还有可能` → 还有 有可 可能) plus each single character. The tokens,
separated by spaces, are the message's document (MessageSearch.doc), written in the
same transaction as the change that makes it (chat.services.changes):

- SQLite: an FTS5 table over the documents (kept by triggers on chat_messagesearch), the
  unicode61 tokenizer taking each of our tokens as one word. The FTS5 `trigram`
  tokenizer is not used: it cannot answer one- and two-character terms, and `LIKE`
  against it returns nothing on SQLite 3.40.
- PostgreSQL: a stored `tsvector` column (`to_tsvector('simple', doc)`) with a GIN
  index; nothing beyond what PostgreSQL ships.

A query term becomes a phrase of its tokens (a CJK run of two or more characters as its
pairs, a single CJK character as itself), every term must match; the index returns
candidates newest first (by message id, which follows the order messages are stored),
and each candidate is checked again in Python against its current body, which also
gives the highlights. Who may read what is decided at query time against the rooms the
user may read now (chat.selectors), so membership changes need no index change.
"""

import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache

from django.db import connection

from core import rows as core_rows

# Chinese characters (with the compatibility and extension blocks), kana, and the
# ideographic iteration/prolonged-sound marks: scripts written without spaces.
_CJK_RANGES = (
    (0x3005, 0x3007),
    (0x3040, 0x30FF),
    (0x31F0, 0x31FF),
    (0x3400, 0x4DBF),
    (0x4E00, 0x9FFF),
    (0xF900, 0xFAFF),
    (0x20000, 0x3FFFF),
)
_CJK_CLASS = "".join(f"\\U{low:08x}-\\U{high:08x}" for low, high in _CJK_RANGES)
# A token of a spaced script: letters, digits and marks that are not CJK.
_WORD = re.compile(rf"[^\W_{_CJK_CLASS}]+")
_CJK = re.compile(rf"[{_CJK_CLASS}]+")
_TOKEN = re.compile(rf"(?P<word>[^\W_{_CJK_CLASS}]+)|(?P<cjk>[{_CJK_CLASS}]+)")
# Longer words are indexed by their first MAX_TOKEN characters (a pasted key or blob).
MAX_TOKEN = 60
MAX_QUERY_TERMS = 12
MAX_QUERY = 200


def is_cjk(char: str) -> bool:
    code = ord(char)
    return any(low <= code <= high for low, high in _CJK_RANGES)


@lru_cache(maxsize=1)
def _t2s() -> dict[int, str]:
    """Traditional → Simplified, character by character (each converted on its own line,
    so that opencc's phrase rules never apply: a term must normalise the same wherever
    it stands)."""
    import opencc

    chars = [chr(code) for low, high in _CJK_RANGES for code in range(low, min(high, 0x2FFFF) + 1)]
    converted = opencc.OpenCC("t2s").convert("\n".join(chars)).split("\n")
    if len(converted) != len(chars):  # never seen; then convert one by one
        converter = opencc.OpenCC("t2s")
        converted = [converter.convert(c) for c in chars]
    return {ord(c): s for c, s in zip(chars, converted, strict=True) if s != c and len(s) == 1}


@lru_cache(maxsize=65536)
def normalize_char(char: str) -> str:
    """What one character of a body counts as: possibly empty (a lone combining mark) or
    longer (ß → ss)."""
    text = unicodedata.normalize("NFKC", char).casefold()
    if any(unicodedata.combining(c) for c in unicodedata.normalize("NFD", text)):
        base = unicodedata.normalize("NFD", text)
        if all(ord(c) < 0x0370 or 0x1E00 <= ord(c) <= 0x1EFF or unicodedata.combining(c) for c in base):
            text = "".join(c for c in base if not unicodedata.combining(c))
    return text.translate(_t2s())


def normalize(text: str) -> str:
    return "".join(map(normalize_char, text))


def normalize_with_offsets(text: str) -> tuple[str, list[int]]:
    """The normalised text and, for each of its characters, the offset in `text` of the
    character it came from."""
    parts, origin = [], []
    for index, char in enumerate(text):
        norm = normalize_char(char)
        if norm:
            parts.append(norm)
            origin.extend([index] * len(norm))
    return "".join(parts), origin


def _pairs(run: str) -> list[str]:
    return [run] if len(run) == 1 else [run[i : i + 2] for i in range(len(run) - 1)]


def document(body: str) -> str:
    """The indexed document of a body: its tokens in order (words; CJK runs as their
    pairs, or the character alone), then every CJK character once, so that a
    one-character term finds it inside a run."""
    sequence, singles = [], {}
    for match in _TOKEN.finditer(normalize(body)):
        if match.lastgroup == "word":
            sequence.append(match.group()[:MAX_TOKEN])
        else:
            run = match.group()
            sequence.extend(_pairs(run))
            if len(run) > 1:
                singles.update(dict.fromkeys(run))
    return " ".join(sequence + list(singles))


# Queries ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Term:
    text: str  # normalised
    phrases: tuple[tuple[str, ...], ...]  # index tokens: every phrase must match
    pattern: re.Pattern  # checks a normalised body and finds the highlights


_QUOTED = re.compile(r'"([^"]*)"?|(\S+)')


def _term(raw: str) -> Term | None:
    text = normalize(raw)
    pieces = [(m.lastgroup, m.group()) for m in _TOKEN.finditer(text)]
    if not pieces:
        return None
    phrases, current = [], []
    regex = []
    for index, (kind, piece) in enumerate(pieces):
        if kind == "word":
            current.append(piece[:MAX_TOKEN])
        elif len(piece) == 1:
            # A single character next to other tokens may sit inside a longer run in the
            # text, where it has no pair of its own in sequence: match it on its own.
            if current:
                phrases.append(tuple(current))
                current = []
            phrases.append((piece,))
        else:
            current.extend(_pairs(piece))
        escaped = re.escape(piece)
        if index:
            both_words = kind == "word" and pieces[index - 1][0] == "word"
            regex.append(r"[\W_]+" if both_words else r"[\W_]*?")
        regex.append(escaped)
    if current:
        phrases.append(tuple(current))
    if pieces[0][0] == "word":
        regex.insert(0, rf"(?<![^\W_{_CJK_CLASS}])")
    if pieces[-1][0] == "word":
        regex.append(rf"(?![^\W_{_CJK_CLASS}])")
    return Term(text=text, phrases=tuple(phrases), pattern=re.compile("".join(regex)))


def parse(q: str) -> list[Term]:
    """The terms of a query: `"quoted phrases"` and words (a word of several tokens, like
    `foo.bar` or `数据库`, is a phrase too). Duplicates count once."""
    terms, seen = [], set()
    for match in _QUOTED.finditer(q):
        term = _term(match.group(1) if match.group(1) is not None else match.group(2))
        if term is not None and term.text not in seen:
            seen.add(term.text)
            terms.append(term)
    return terms


def highlights(body: str, terms: list[Term]) -> list[list[int]] | None:
    """Merged, sorted [start, end) code-point spans of `body` matching the terms, or None
    when some term does not match."""
    text, origin = normalize_with_offsets(body)
    spans = []
    for term in terms:
        found = False
        for match in term.pattern.finditer(text):
            if match.end() == match.start():
                continue
            found = True
            start = origin[match.start()]
            end = origin[match.end() - 1] + 1
            # Through the characters after it that normalise to nothing (combining marks).
            while end < len(body) and not normalize_char(body[end]):
                end += 1
            spans.append([start, end])
        if not found:
            return None
    spans.sort()
    merged: list[list[int]] = []
    for start, end in spans:
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    return merged


# The index's SQL ------------------------------------------------------------------------

FTS_TABLE = "chat_messagesearch_fts"


def _fts5_query(terms: list[Term]) -> str:
    def quote(token: str) -> str:
        return '"' + token.replace('"', '""') + '"'

    return " AND ".join(" + ".join(quote(t) for t in phrase) for term in terms for phrase in term.phrases)


def _pg_query(terms: list[Term]) -> str:
    def quote(token: str) -> str:
        return "'" + token.replace("\\", "\\\\").replace("'", "''") + "'"

    return " & ".join(
        "(" + " <-> ".join(quote(t) for t in phrase) + ")" for term in terms for phrase in term.phrases
    )


def candidate_ids(
    terms: list[Term], *, rooms_sql: str, rooms_params: list, below_id: int | None, filters: dict, limit: int
) -> list[int]:
    """Ids of messages whose documents have every term, newest first, at most `limit`,
    in the rooms `rooms_sql` (a subquery of room ids), below `below_id`, and matching
    `filters` (sender_id, created_at ranges)."""
    where, params = [f"s.room_id IN ({rooms_sql})"], list(rooms_params)
    if below_id is not None:
        where.append("s.message_id < %s")
        params.append(below_id)
    if filters.get("sender_id") is not None:
        where.append("s.sender_id = %s")
        params.append(filters["sender_id"])
    if filters.get("room_id") is not None:
        where.append("s.room_id = %s")
        params.append(filters["room_id"])
    for key, op in (("after", ">="), ("before", "<")):
        if filters.get(key) is not None:
            where.append(f"s.created_at {op} %s")
            params.append(connection.ops.adapt_datetimefield_value(filters[key]))
    if connection.vendor == "postgresql":
        return _pg_candidates(_pg_query(terms), where, params, below_id=below_id, limit=limit)
    else:
        # CROSS JOIN keeps the FTS table outside: it walks its matches newest first and
        # stops at `limit`, instead of sorting every match.
        sql = (
            f"SELECT s.message_id FROM {FTS_TABLE} f CROSS JOIN chat_messagesearch s ON s.message_id = f.rowid"
            f" WHERE {FTS_TABLE} MATCH %s AND "
            + " AND ".join(where)
            + " ORDER BY f.rowid DESC LIMIT %s"
        )
        params = [_fts5_query(terms), *params, limit]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return [row[0] for row in cursor.fetchall()]


# PostgreSQL reads a term's whole match list from GIN and fetches every matching row
# before sorting, however few are wanted; so the newest ids are searched first, in
# windows that grow until the page is full: the rows fetched stay near what a page needs.
PG_FIRST_WINDOW = 20_000


def _pg_candidates(tsquery: str, where: list[str], params: list, *, below_id: int | None, limit: int) -> list[int]:
    with connection.cursor() as cursor:
        if below_id is None:
            cursor.execute("SELECT max(message_id) FROM chat_messagesearch")
            top = (cursor.fetchone()[0] or 0) + 1
        else:
            top = below_id
        found: list[int] = []
        window = PG_FIRST_WINDOW
        while top > 0 and len(found) < limit:
            low = max(0, top - window) if window else 0
            cursor.execute(
                "SELECT s.message_id FROM chat_messagesearch s WHERE s.tsv @@ to_tsquery('simple', %s)"
                " AND s.message_id >= %s AND s.message_id < %s AND "
                + " AND ".join(where)
                + " ORDER BY s.message_id DESC LIMIT %s",
                [tsquery, low, top, *params, limit - len(found)],
            )
            found.extend(row[0] for row in cursor.fetchall())
            top, window = low, window * 4
    return found


# Keeping the index (called by chat.services.changes inside the change's transaction) -----

INDEXED_KINDS = ("text", "image", "preset")


def index_message(message, *, new: bool = False) -> None:
    """Write (or rewrite, or remove) the message's document from its current state; `new`:
    a message just stored, which has none yet (one query, or none when it has no text)."""
    from chat.models import MessageSearch

    if new:
        index_new_messages([message])
        return
    doc = _document_of(message)
    if not doc:
        MessageSearch.objects.filter(message_id=message.pk).delete()
    elif not MessageSearch.objects.filter(message_id=message.pk).update(doc=doc):
        index_new_messages([message])


def _document_of(message) -> str:
    live = not (message.recalled or message.deleted) and message.kind in INDEXED_KINDS
    return document(message.body) if live and message.body else ""


def index_new_messages(messages) -> None:
    """index_message(message, new=True) for several messages in one INSERT (a group commit's)."""
    from chat.models import MessageSearch

    # A plain INSERT: this runs on every send, where the ORM's create cost ~0.2 ms more.
    rows = document_rows(messages)
    if not rows:
        return
    fields = [MessageSearch._meta.get_field(name) for name in ("message", *DOCUMENT_FIELDS)]
    source, params = core_rows.rows_sql(connection, fields, rows)
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {MessageSearch._meta.db_table} ({', '.join(field.column for field in fields)}) {source}",
            params,
        )


# What a search row holds besides its message, in document_rows' order.
DOCUMENT_FIELDS = ("room", "sender", "created_at", "doc")


def document_rows(messages, *, key=lambda message: message.pk) -> list[list]:
    """The search rows of new messages (those with text to find): [key(message), room,
    sender, created_at, document] each."""
    rows = []
    for message in messages:
        doc = _document_of(message)
        if doc:
            created_at = connection.ops.adapt_datetimefield_value(message.created_at)
            rows.append([key(message), message.room_id, message.sender_id, created_at, doc])
    return rows


def rebuild(*, batch: int = 2000, progress=None) -> int:
    """Index every live message again from scratch; `progress(done, total)` after each
    batch. Returns how many messages were indexed. Each batch is its own transaction:
    sends during a rebuild are indexed by their own transactions and kept."""
    from django.db import transaction

    from chat.models import Message, MessageSearch

    messages = Message.objects.filter(recalled=False, deleted=False, kind__in=INDEXED_KINDS).exclude(body="")
    total = messages.count()
    MessageSearch.objects.all().delete()
    if connection.vendor == "sqlite":
        with connection.cursor() as cursor:
            cursor.execute(f"INSERT INTO {FTS_TABLE}({FTS_TABLE}) VALUES('rebuild')")
    done, last = 0, 0
    while True:
        rows = list(
            messages.filter(pk__gt=last)
            .order_by("pk")
            .values_list("pk", "room_id", "sender_id", "created_at", "body")[:batch]
        )
        if not rows:
            break
        with transaction.atomic():
            MessageSearch.objects.bulk_create(
                [
                    MessageSearch(message_id=pk, room_id=room_id, sender_id=sender_id, created_at=created, doc=doc)
                    for pk, room_id, sender_id, created, body in rows
                    if (doc := document(body))
                ],
                ignore_conflicts=True,
            )
        done += len(rows)
        last = rows[-1][0]
        if progress:
            progress(done, total)
    return done

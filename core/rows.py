"""Inserting a model instance without rebuilding its INSERT statement each time.

`Model.save()` compiles a fresh `INSERT … RETURNING` for every row: for a message that is
about a third of the CPU of a send (a query object, a compiler, 24 columns quoted and
joined). `insert()` stores the instance the way `save()` does for a new row (each field's
`pre_save`, so `auto_now_add` and uncommitted files are handled, then
`get_db_prep_save`), with the statement built once per model and connection vendor.
It sends no `pre_save`/`post_save` signals: use it only for models nothing listens to.

On PostgreSQL, psycopg finds a statement's `%s` placeholders in Python and keeps what it
found only for statements of at most 4096 bytes and 50 parameters. A group commit's
multi-row INSERTs (up to 32 messages of 24 columns, and their search documents) have
hundreds, so they were parsed anew every time: a 32-message batch's two INSERTs took
4.4 ms of CPU, 2.1–2.4 ms once their parse is cached. `cache_batch_statements` raises
both limits. They are module constants of psycopg's, not its public API:
core/tests/test_rows.py turns red when an upgrade moves them.
"""

from django.db import connections, models

# Room for every statement this module builds: 32 rows of a 24-column model is ~3.5 KiB
# and 768 parameters. Each cached statement keeps its parsed placeholders (psycopg's LRU
# cache holds 128 statements): the message and search INSERTs of every batch size from 1
# to 32 take ~2.2 MiB.
CACHED_STATEMENT_LENGTH = 64 * 1024
CACHED_STATEMENT_PARAMS = 2048


def cache_batch_statements() -> None:
    """Let psycopg keep the parse of multi-row statements as it does of small ones."""
    try:
        from psycopg import _queries
    except ImportError:  # SQLite only: nothing to do
        return
    _queries.MAX_CACHED_STATEMENT_LENGTH = max(_queries.MAX_CACHED_STATEMENT_LENGTH, CACHED_STATEMENT_LENGTH)
    _queries.MAX_CACHED_STATEMENT_PARAMS = max(_queries.MAX_CACHED_STATEMENT_PARAMS, CACHED_STATEMENT_PARAMS)


cache_batch_statements()

_statements: dict[tuple[type[models.Model], str, int], tuple[str, list[models.Field]]] = {}


def _statement(model: type[models.Model], connection, rows: int = 1) -> tuple[str, list[models.Field]]:
    key = (model, connection.vendor, rows)
    found = _statements.get(key)
    if found is None:
        meta = model._meta
        fields = [f for f in meta.local_concrete_fields if f is not meta.auto_field and not f.generated]
        quote = connection.ops.quote_name
        row = f"({', '.join(['%s'] * len(fields))})"
        sql = (
            f"INSERT INTO {quote(meta.db_table)} ({', '.join(quote(f.column) for f in fields)})"
            f" VALUES {', '.join([row] * rows)} RETURNING {quote(meta.pk.column)}"
        )
        found = _statements[key] = (sql, fields)
    return found


def insert(instance: models.Model, *, using: str = "default") -> models.Model:
    """INSERT a new `instance` (its primary key unset) and give it its id."""
    connection = connections[using]
    if not connection.features.can_return_columns_from_insert:
        instance.save(force_insert=True, using=using)
        return instance
    sql, fields = _statement(type(instance), connection)
    params = [field.get_db_prep_save(field.pre_save(instance, True), connection) for field in fields]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        instance.pk = cursor.fetchone()[0]
    instance._state.adding = False
    instance._state.db = using
    return instance


def insert_many(instances: list[models.Model], *, using: str = "default") -> list[models.Model]:
    """INSERT new instances of one model in one statement (in chunks the backend accepts)
    and give each its id. The ids come back in the order of the rows, as `bulk_create`
    relies on where the backend can return rows from a bulk insert."""
    connection = connections[using]
    if not instances:
        return instances
    if not connection.features.can_return_rows_from_bulk_insert:
        return [insert(instance, using=using) for instance in instances]
    model = type(instances[0])
    _, fields = _statement(model, connection)
    size = connection.ops.bulk_batch_size(fields, instances)
    for start in range(0, len(instances), size):
        chunk = instances[start : start + size]
        sql, _ = _statement(model, connection, rows=len(chunk))
        params = [field.get_db_prep_save(field.pre_save(instance, True), connection) for instance in chunk for field in fields]
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            ids = [row[0] for row in cursor.fetchall()]
        for instance, pk in zip(chunk, ids, strict=True):
            instance.pk = pk
            instance._state.adding = False
            instance._state.db = using
    return instances

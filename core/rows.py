"""Inserting a model instance without rebuilding its INSERT statement each time.

`Model.save()` compiles a fresh `INSERT … RETURNING` for every row: for a message that is
about a third of the CPU of a send (a query object, a compiler, 24 columns quoted and
joined). `insert()` stores the instance the way `save()` does for a new row (each field's
`pre_save`, so `auto_now_add` and uncommitted files are handled, then
`get_db_prep_save`), with the statement built once per model and connection vendor.
It sends no `pre_save`/`post_save` signals: use it only for models nothing listens to.

Several rows go in one statement (`insert_many`, `rows_sql`). On PostgreSQL that is
`INSERT … SELECT * FROM UNNEST(…)` with one array parameter per column, as Django's own
`bulk_create` does there: the statement's text is the same whatever the number of rows,
so PostgreSQL parses and plans one statement where `VALUES (…), (…)` made one per batch
size (a group commit has 1 to 32 messages), and a pool connection's prepared statements
(chat/dbpool.py) cover every batch.
"""

from django.db import connections, models

_statements: dict[tuple[type[models.Model], str, bool], tuple[str, list[models.Field]]] = {}


def unnests(connection, fields: list[models.Field]) -> bool:
    """Whether rows of these fields go in as one array per column (Django's conditions
    for its UNNEST inserts: every field of a standard type, no placeholder of its own)."""
    return connection.vendor == "postgresql" and not any(
        hasattr(field, "get_placeholder")
        or (field.target_field if field.is_relation else field).get_internal_type() not in connection.data_types
        for field in fields
    )


def rows_sql(connection, fields: list[models.Field], rows: list[list]) -> tuple[str, list]:
    """The source of an `INSERT INTO t (<fields' columns>) …` of `rows` (each a list of its
    values in the fields' order, ready for the database) and its parameters."""
    if len(rows) > 1 and unnests(connection, fields):
        return arrays_sql(connection, fields, rows)
    row = f"({', '.join(['%s'] * len(fields))})"
    return f"VALUES {', '.join([row] * len(rows))}", [value for values in rows for value in values]


def arrays_sql(connection, fields: list[models.Field], rows: list[list]) -> tuple[str, list]:
    """rows_sql's `SELECT * FROM UNNEST(…)`, whatever the number of rows (PostgreSQL, where
    `unnests`). Unlike `VALUES`, its columns are typed however it is used: a NULL in a
    `VALUES` list read as a subquery is text, which no integer column takes."""
    # The length stripped, as Django does: varchar(10)[] would truncate, not refuse.
    # Binary (%b): psycopg writes a text array in Python, escaping every element; a
    # 16-row message INSERT's parameters took 0.5 ms that way, 0.2 ms in binary.
    arrays = ", ".join(f"(%b)::{field.db_type(connection).split('(')[0]}[]" for field in fields)
    return f"SELECT * FROM UNNEST({arrays})", [list(column) for column in zip(*rows, strict=True)]


def insert_fields(model: type[models.Model], connection) -> list[models.Field]:
    """The fields an INSERT of a new `model` row writes, in `insert`'s order."""
    return _statement(model, connection)[1]


def _statement(model: type[models.Model], connection, *, many: bool = False) -> tuple[str, list[models.Field]]:
    """The model's INSERT … RETURNING id, with its source left as `{rows}` when `many`."""
    key = (model, connection.vendor, many)
    found = _statements.get(key)
    if found is None:
        meta = model._meta
        fields = [f for f in meta.local_concrete_fields if f is not meta.auto_field and not f.generated]
        quote = connection.ops.quote_name
        source = "{rows}" if many else f"VALUES ({', '.join(['%s'] * len(fields))})"
        sql = (
            f"INSERT INTO {quote(meta.db_table)} ({', '.join(quote(f.column) for f in fields)})"
            f" {source} RETURNING {quote(meta.pk.column)}"
        )
        found = _statements[key] = (sql, fields)
    return found


def prepared_values(instance: models.Model, fields: list[models.Field], connection) -> list:
    return [field.get_db_prep_save(field.pre_save(instance, True), connection) for field in fields]


def mark_stored(instance: models.Model, pk, *, using: str = "default") -> None:
    """Give a just-inserted instance its id and the state `save()` would leave it in."""
    instance.pk = pk
    instance._state.adding = False
    instance._state.db = using


def insert(instance: models.Model, *, using: str = "default") -> models.Model:
    """INSERT a new `instance` (its primary key unset) and give it its id."""
    connection = connections[using]
    if not connection.features.can_return_columns_from_insert:
        instance.save(force_insert=True, using=using)
        return instance
    sql, fields = _statement(type(instance), connection)
    with connection.cursor() as cursor:
        cursor.execute(sql, prepared_values(instance, fields, connection))
        mark_stored(instance, cursor.fetchone()[0], using=using)
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
    template, fields = _statement(type(instances[0]), connection, many=True)
    size = connection.ops.bulk_batch_size(fields, instances)
    for start in range(0, len(instances), size):
        chunk = instances[start : start + size]
        source, params = rows_sql(connection, fields, [prepared_values(i, fields, connection) for i in chunk])
        with connection.cursor() as cursor:
            cursor.execute(template.replace("{rows}", source), params)
            ids = [row[0] for row in cursor.fetchall()]
        for instance, pk in zip(chunk, ids, strict=True):
            mark_stored(instance, pk, using=using)
    return instances

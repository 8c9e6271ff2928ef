"""The migration that gave messages stored before formatting existed their rendered html:
on the test database, so it runs in both passes (test_formatting.py runs in one)."""

import pytest

from chat.formatting import render


@pytest.mark.django_db(transaction=True)
def test_migration_renders_the_html_of_existing_messages():
    from django.db import connection
    from django.db.migrations.executor import MigrationExecutor

    before, after = [("chat", "0003_conversation_members_are_plain_members")], [("chat", "0004_message_edits_replies_reactions")]
    executor = MigrationExecutor(connection)
    executor.migrate(before)
    old = executor.loader.project_state(before).apps
    room = old.get_model("chat", "Room").objects.create(slug="old", name="Old", last_seq=3, rev=3)
    Message = old.get_model("chat", "Message")
    Message.objects.create(room=room, seq=1, rev=1, body="**bold** <b>")
    Message.objects.create(room=room, seq=2, rev=2, body="", recalled=True)
    Message.objects.create(room=room, seq=3, rev=3, body="see https://example.com/a，好")

    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    try:
        executor.migrate(after)
        new = executor.loader.project_state(after).apps
        html = dict(new.get_model("chat", "Message").objects.values_list("seq", "html"))
    finally:
        # Later migrations (other apps', newer chat ones) back on for the tests that follow.
        executor = MigrationExecutor(connection)
        executor.migrate(executor.loader.graph.leaf_nodes())
    assert html == {1: render("**bold** <b>"), 2: "", 3: render("see https://example.com/a，好")}
    assert html[1] == "<p><strong>bold</strong> &lt;b&gt;</p>"

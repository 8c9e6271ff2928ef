"""Everything that changes a room or a message. Each action has one function, in the
module of its subject, and every door (socket, REST, pages, admin) calls it through this
package: `from chat import services; services.message_send(...)`.

Rules of the house: keyword-only arguments, the permission check first, the event last
and only after commit (chat/services/changes.py numbers every change and queues it).
"""

from chat.services.announcements import announcement_set
from chat.services.blocks import block_add, block_remove
from chat.services.conversations import conversation_close, conversation_room_create, dm_get_or_create
from chat.services.edits import message_edit
from chat.services.files import message_send_file
from chat.services.images import message_send_image, preset_post
from chat.services.messages import message_delete, message_recall, message_send, message_send_together
from chat.services.moderation import (
    member_role_set,
    message_pin,
    report_create,
    report_resolve,
    room_ban,
    room_mute,
    room_unban,
    room_unmute,
    user_suspend,
    user_unsuspend,
)
from chat.services.reactions import reaction_add, reaction_remove
from chat.services.retention import room_purge, rooms_with_retention
from chat.services.rooms import (
    clean_room_slug,
    room_create,
    room_invite,
    room_join,
    room_leave,
    room_mark_read,
    room_remove_member,
    room_set_retention,
    room_settings_update,
    room_slug_suggest,
    room_update,
)
from chat.services.webhooks import webhook_create, webhook_list, webhook_post, webhook_revoke

__all__ = [
    "announcement_set",
    "block_add",
    "block_remove",
    "member_role_set",
    "message_pin",
    "report_create",
    "report_resolve",
    "room_ban",
    "room_mute",
    "room_unban",
    "room_unmute",
    "user_suspend",
    "user_unsuspend",
    "clean_room_slug",
    "conversation_close",
    "conversation_room_create",
    "dm_get_or_create",
    "message_delete",
    "message_edit",
    "message_recall",
    "message_send",
    "message_send_together",
    "message_send_file",
    "message_send_image",
    "preset_post",
    "reaction_add",
    "reaction_remove",
    "room_create",
    "room_invite",
    "room_join",
    "room_leave",
    "room_mark_read",
    "room_purge",
    "room_remove_member",
    "room_settings_update",
    "room_set_retention",
    "room_slug_suggest",
    "room_update",
    "rooms_with_retention",
    "webhook_create",
    "webhook_list",
    "webhook_post",
    "webhook_revoke",
]

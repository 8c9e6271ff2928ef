"""The shapes of projects and conversations in REST responses."""

from chat.serializers import room_to_dict, user_to_dict


def project_to_dict(project) -> dict:
    return {
        "slug": project.slug,
        "title": project.title,
        "description": project.description,
        "owner": user_to_dict(project.owner),
        "created_at": project.created_at.isoformat(),
    }


def conversation_to_dict(conversation, *, unread_count: int | None = None) -> dict:
    data = {
        "project": conversation.project.slug,
        "visitor": user_to_dict(conversation.visitor),
        "room": room_to_dict(conversation.room),
        "last_activity_at": conversation.room.last_activity_at.isoformat(),
        "closed": conversation.room.closed_at is not None,
    }
    if data["visitor"].get("guest"):
        data["blocked"] = not conversation.visitor.is_active  # the owner blocked this widget guest
    if unread_count is not None:
        data["unread_count"] = unread_count
    return data


def widget_to_dict(widget) -> dict:
    return {"enabled": widget.enabled, "origins": list(widget.origins)}

"""Incoming webhooks (SPEC §6.5): room owner/admins make a URL that tools post to.

Each webhook has a bot user of its own (no password, inactive: it never logs in), a member
of the room, so what it posts goes through the ordinary `message_send`: numbering, rate
limit (the bot's send allowance), formatting and live delivery are those of any message.
The payload is parsed by `parse_payload` (Slack, DingTalk, WeCom, Feishu); a payload it
refuses raises `PayloadError` with the short reason the URL answers with, as Slack does.
"""

import html
import json
import re
import secrets
from dataclasses import dataclass

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone

from accounts.models import Profile
from chat import selectors
from chat.models import Membership, Message, Room, Webhook
from chat.services.messages import message_send
from core.errors import NotAllowed, NotFound
from core.validation import clean_text, require_user

NAME_MAX = 80
ICON_MAX = 500
BOT_PREFIX = "webhook-"


class PayloadError(Exception):
    """A payload the webhook URL refuses: `reason` is the plain-text answer (Slack's words)."""

    def __init__(self, reason: str, status: int = 400):
        super().__init__(reason)
        self.reason = reason
        self.status = status


@dataclass
class Post:
    text: str
    username: str = ""
    icon_url: str = ""


def _may_manage(*, user, room: Room) -> None:
    require_user(user)
    if not selectors.room_may_read(user=user, room=room):
        raise NotFound("No such room.")
    membership = selectors.membership_get(user=user, room=room)
    if not selectors.room_may_moderate(user=user, membership=membership):
        raise NotAllowed("Only the room's owner and admins manage its webhooks.")
    if room.kind not in (Room.Kind.PUBLIC, Room.Kind.PRIVATE):
        raise NotAllowed("Webhooks post into public and private rooms only.")


def webhook_list(*, user, room: Room) -> list[Webhook]:
    """The room's webhooks that are not revoked (owner/admins and staff; others NotAllowed)."""
    _may_manage(user=user, room=room)
    return list(Webhook.objects.filter(room=room, revoked_at__isnull=True).order_by("id"))


@transaction.atomic
def webhook_create(*, user, room: Room, name) -> Webhook:
    """A new webhook named `name` (its bot's display name) posting into `room`."""
    _may_manage(user=user, room=room)
    name = clean_text(name, field="name", max_length=NAME_MAX)
    User = get_user_model()
    while True:
        username = BOT_PREFIX + secrets.token_hex(6)
        if not User.objects.filter(username__iexact=username).exists():
            break
    bot = User(username=username, is_active=False)
    bot.set_unusable_password()
    bot.save()
    Profile.objects.update_or_create(user=bot, defaults={"display_name": name})
    Membership.objects.get_or_create(room=room, user=bot)
    return Webhook.objects.create(room=room, name=name, bot=bot, created_by=user)


@transaction.atomic
def webhook_revoke(*, user, room: Room, webhook_id) -> None:
    """Its URL answers 404 from now on; what it posted stays, from its bot."""
    _may_manage(user=user, room=room)
    webhook = Webhook.objects.select_for_update().filter(pk=webhook_id, room=room, revoked_at__isnull=True).first()
    if webhook is None:
        raise NotFound("No such webhook.")
    webhook.revoked_at = timezone.now()
    webhook.save(update_fields=["revoked_at"])
    Membership.objects.filter(room=room, user=webhook.bot_id).delete()


def webhook_post(*, token: str, payload: Post) -> Message:
    """Post `payload` from the webhook with this token. NotFound for an unknown or revoked
    token; the rest as message_send raises (RateLimited, TooLarge, InvalidInput)."""
    webhook = (
        Webhook.objects.select_related("room", "bot__profile").filter(token=token, revoked_at__isnull=True).first()
        if isinstance(token, str) and token
        else None
    )
    if webhook is None:
        raise NotFound("No such webhook.")
    message, _ = message_send(
        sender=webhook.bot,
        room=webhook.room,
        body=payload.text,
        sender_name=(payload.username or webhook.name)[:NAME_MAX],
        sender_icon=payload.icon_url,
    )
    return message


# Payloads ---------------------------------------------------------------------------------

_SLACK_LINK = re.compile(r"<([^<>|\s]+)(?:\|([^<>]*))?>")


def slack_to_markdown(text: str, *, users: dict[str, str] | None = None, channels: dict[str, str] | None = None) -> str:
    """Slack's markup as Parley's Markdown subset: `<url|label>` links, `<@U…>` mentions
    (by `users`: Slack id → username), `<#C…|name>` channels, `<!here>`, `*bold*`,
    `~strike~`, and the three entities Slack escapes."""

    def link(match: re.Match) -> str:
        target, label = match.group(1), match.group(2)
        if target.startswith("@"):
            uid = target[1:]
            return "@" + ((users or {}).get(uid) or label or uid)
        if target.startswith("#"):
            return "#" + (label or (channels or {}).get(target[1:]) or target[1:])
        if target.startswith("!"):
            word = target[1:].split("^", 1)[0]
            return label or ("@" + word)
        if label and label != target:
            return f"[{label}]({target})"
        return target

    text = _SLACK_LINK.sub(link, text)
    text = re.sub(r"(?<![\w*])\*(?=\S)([^*\n]+?)(?<=\S)\*(?![\w*])", r"**\1**", text)
    text = re.sub(r"(?<![\w~])~(?=\S)([^~\n]+?)(?<=\S)~(?![\w~])", r"~~\1~~", text)
    return html.unescape(text)


def _str(value, what: str) -> str:
    if not isinstance(value, str):
        raise PayloadError(f"invalid_payload: {what} must be a string")
    return value


def _object(value, what: str) -> dict:
    if not isinstance(value, dict):
        raise PayloadError(f"invalid_payload: {what} must be an object")
    return value


def _slack(data: dict) -> Post:
    parts = []
    if data.get("text") is not None:
        parts.append(slack_to_markdown(_str(data["text"], "text")))
    attachments = data.get("attachments") or []
    if not isinstance(attachments, list):
        raise PayloadError("invalid_payload: attachments must be a list")
    for attachment in attachments:
        attachment = _object(attachment, "an attachment")
        for field in ("pretext", "title", "text"):
            if attachment.get(field):
                parts.append(slack_to_markdown(_str(attachment[field], f"attachments[].{field}")))
        if not any(attachment.get(f) for f in ("pretext", "title", "text")) and attachment.get("fallback"):
            parts.append(slack_to_markdown(_str(attachment["fallback"], "attachments[].fallback")))
    blocks = data.get("blocks") or []
    if isinstance(blocks, list) and not parts:
        for block in blocks:
            if isinstance(block, dict) and isinstance(block.get("text"), dict) and isinstance(block["text"].get("text"), str):
                parts.append(slack_to_markdown(block["text"]["text"]))
    text = "\n\n".join(p for p in parts if p.strip())
    if not text.strip():
        raise PayloadError("no_text")
    username = data.get("username")
    icon = data.get("icon_url")
    return Post(
        text=text,
        username=username.strip()[:NAME_MAX] if isinstance(username, str) else "",
        icon_url=icon if isinstance(icon, str) and len(icon) <= ICON_MAX and re.match(r"https?://[^\s]+$", icon) else "",
    )


def robot_markdown(text: str) -> str:
    """DingTalk's and WeCom's Markdown in Parley's subset: headings become bold lines,
    images links (nothing is fetched), WeCom's `<font color>` its plain text."""
    text = re.sub(r"(?m)^([ \t]*(?:>[ \t]*)*)#{1,6}[ \t]+(.+?)[ \t#]*$", r"\1**\2**", text)
    text = re.sub(r"!\[([^\]]*)\]\(([^)\s]+)\)", lambda m: f"[{m.group(1) or m.group(2)}]({m.group(2)})", text)
    return re.sub(r"</?font\b[^>]*>", "", text, flags=re.IGNORECASE)


def _dingtalk_wecom(data: dict) -> Post:
    kind = data["msgtype"]
    if kind == "text":
        return Post(text=_str(_object(data.get("text"), "text").get("content"), "text.content"))
    if kind == "markdown":
        markdown = _object(data.get("markdown"), "markdown")
        if "content" in markdown:  # WeCom
            return Post(text=robot_markdown(_str(markdown["content"], "markdown.content")))
        text = _str(markdown.get("text"), "markdown.text")  # DingTalk: title is the notification line
        _str(markdown.get("title", ""), "markdown.title")
        return Post(text=robot_markdown(text))
    raise PayloadError(f"invalid_payload: msgtype {str(kind)[:20]!r} is not supported (text, markdown)")


def _feishu_post(content: dict) -> str:
    post = _object(content.get("post"), "content.post")
    if not post:
        raise PayloadError("invalid_payload: content.post is empty")
    body = _object(post.get("zh_cn") or post.get("en_us") or next(iter(post.values())), "content.post.<lang>")
    lines = []
    if body.get("title"):
        lines.append("**" + _str(body["title"], "title") + "**")
    paragraphs = body.get("content") or []
    if not isinstance(paragraphs, list):
        raise PayloadError("invalid_payload: content.post.<lang>.content must be a list")
    for paragraph in paragraphs:
        if not isinstance(paragraph, list):
            raise PayloadError("invalid_payload: each paragraph must be a list")
        line = []
        for node in paragraph:
            node = _object(node, "a post element")
            tag = node.get("tag")
            if tag == "text":
                line.append(_str(node.get("text", ""), "text"))
            elif tag == "a":
                line.append(f"[{_str(node.get('text', ''), 'text')}]({_str(node.get('href', ''), 'href')})")
            elif tag == "at":
                line.append("@" + str(node.get("user_name") or node.get("user_id") or ""))
        lines.append("".join(line))
    return "\n".join(lines)


def _feishu(data: dict) -> Post:
    kind = data["msg_type"]
    content = _object(data.get("content"), "content")
    if kind == "text":
        return Post(text=_str(content.get("text"), "content.text"))
    if kind == "post":
        return Post(text=_feishu_post(content))
    raise PayloadError(f"invalid_payload: msg_type {str(kind)[:20]!r} is not supported (text, post)")


def parse_payload(*, content_type: str, body: bytes, form: dict | None = None) -> Post:
    """What a webhook request asks to post: JSON (any of the four formats) or a form
    with a `payload` field holding Slack's JSON. PayloadError with the reason otherwise."""
    if form is not None and "payload" in form:
        raw = form["payload"]
    elif content_type.startswith("application/x-www-form-urlencoded") or content_type.startswith("multipart/"):
        raise PayloadError("invalid_payload: the form has no payload field")
    else:
        try:
            raw = body.decode("utf-8")
        except UnicodeDecodeError:
            raise PayloadError("invalid_payload: not UTF-8") from None
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError):
        raise PayloadError("invalid_payload: not JSON") from None
    if not isinstance(data, dict):
        raise PayloadError("invalid_payload: the JSON must be an object")
    if "msgtype" in data:
        post = _dingtalk_wecom(data)
    elif "msg_type" in data:
        post = _feishu(data)
    else:
        post = _slack(data)
    if "\x00" in post.text:
        raise PayloadError("invalid_payload: NUL in text")
    if not post.text.strip():
        raise PayloadError("no_text")
    if len(post.text.strip()) > settings.PARLEY_MAX_BODY:
        raise PayloadError("msg_too_long")
    return post

"""Incoming webhooks over a real server (SPEC §6.5): the published example payloads of
Slack, DingTalk, WeCom and Feishu become messages from the webhook's bot; malformed ones
are refused with Slack's plain-text reasons and store nothing; revoked URLs are 404."""

import json
import secrets
import urllib.parse

import pytest

from testkit.servers import Uvicorn, clean_env, http_get, migrate_and_collectstatic, running

pytestmark = pytest.mark.dbless

PASSWORD = "correct horse battery staple"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    folder = tmp_path_factory.mktemp("parley-webhooks")
    env = clean_env(
        DATABASE_URL=f"sqlite:///{folder / 'db.sqlite3'}",
        MEDIA_ROOT=folder / "media",
        STATIC_ROOT=folder / "static",
        SECRET_KEY="webhook-tests-" + secrets.token_urlsafe(40),
        PARLEY_RATE_BURST=30,
        PARLEY_RATE_INTERVAL=60,
        LOG_LEVEL="WARNING",
    )
    migrate_and_collectstatic(env)
    worker = Uvicorn("webhooks", env, "--log-level", "warning", log=folder / "server.log")
    with running([worker]):
        yield worker.start()


def call(server, method, path, body=None, token=None, *, raw=None, content_type="application/json"):
    headers = {"Content-Type": content_type}
    if token:
        headers["Authorization"] = f"Token {token}"
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    status, response_headers, payload = http_get(server.port, path, method=method, headers=headers, body=data)
    if (response_headers.get("Content-Type") or "").startswith("application/json") and payload:
        return status, json.loads(payload)
    return status, payload.decode()


def user(server, prefix):
    username = f"{prefix}{secrets.token_hex(3)}"
    assert call(server, "POST", "/api/auth/register/", {"username": username, "password": PASSWORD})[0] == 201
    status, data = call(server, "POST", "/api/auth/token/", {"username": username, "password": PASSWORD})
    assert status == 200
    return username, data["token"]


@pytest.fixture(scope="module")
def room(server):
    """A private room, its owner's and a member's tokens, and one webhook's path."""
    owner, owner_token = user(server, "own")
    member, member_token = user(server, "mem")
    slug = f"ci-{secrets.token_hex(3)}"
    assert call(server, "POST", "/api/rooms/", {"slug": slug, "name": "CI", "kind": "private"}, owner_token)[0] == 201
    assert call(server, "POST", f"/api/rooms/{slug}/members/", {"username": member}, owner_token)[0] == 201
    status, hook = call(server, "POST", f"/api/rooms/{slug}/webhooks/", {"name": "Build bot"}, owner_token)
    assert status == 201, hook
    assert hook["url"].startswith(f"http://127.0.0.1:{server.port}/hooks/")
    return {"slug": slug, "owner": owner_token, "member": member_token, "hook": urllib.parse.urlsplit(hook["url"]).path,
            "hook_id": hook["id"]}


def history(server, room):
    status, data = call(server, "GET", f"/api/rooms/{room['slug']}/messages/?limit=200", token=room["member"])
    assert status == 200
    return [m for m in data if m["kind"] != "system"]


def post_json(server, path, payload):
    return call(server, "POST", path, raw=json.dumps(payload, ensure_ascii=False).encode())


PUBLISHED = [
    # Slack: the "Hello, world." of the incoming-webhooks guide.
    ({"text": "Hello, world."}, "Hello, world.", "<p>Hello, world.</p>", "Build bot"),
    # Slack: legacy attachments (fallback is only the notification line when text is there).
    (
        {
            "attachments": [
                {
                    "fallback": "Required plain-text summary of the attachment.",
                    "color": "#36a64f",
                    "pretext": "Optional text that appears above the attachment block",
                    "title": "Slack API Documentation",
                    "title_link": "https://api.slack.com/",
                    "text": "Optional text that appears within the attachment",
                }
            ]
        },
        "Optional text that appears above the attachment block\n\nSlack API Documentation\n\n"
        "Optional text that appears within the attachment",
        None,
        "Build bot",
    ),
    # Slack: links, bold and a username/icon override.
    (
        {"text": "*Deploy* of <https://ci.example/1|build #1> done &amp; green", "username": "deploybot",
         "icon_url": "https://ci.example/icon.png"},
        "**Deploy** of [build #1](https://ci.example/1) done & green",
        '<p><strong>Deploy</strong> of <a href="https://ci.example/1" rel="noopener noreferrer nofollow">build #1</a>'
        " done &amp; green</p>",
        "deploybot",
    ),
    # DingTalk text (its documentation's example, `at` included).
    (
        {"msgtype": "text", "text": {"content": "我就是我, 是不一样的烟火@156xxxx8827"},
         "at": {"atMobiles": ["156xxxx8827", "189xxxx8325"], "isAtAll": False}},
        "我就是我, 是不一样的烟火@156xxxx8827",
        None,
        "Build bot",
    ),
    # DingTalk markdown.
    (
        {"msgtype": "markdown", "markdown": {"title": "杭州天气", "text": "#### 杭州天气 \n> 9度，西北风1级，空气良89，"
                                             "相对温度73%\n> ###### 10点20分发布 [天气](https://www.dingtalk.com) \n"},
         "at": {"atMobiles": [], "isAtAll": False}},
        "**杭州天气**\n> 9度，西北风1级，空气良89，相对温度73%\n> **10点20分发布 [天气](https://www.dingtalk.com)**",
        None,
        "Build bot",
    ),
    # WeCom text.
    (
        {"msgtype": "text", "text": {"content": "广州今日天气：29度，大部分多云，降雨概率：60%",
                                     "mentioned_list": ["wangqing", "@all"], "mentioned_mobile_list": ["13800001111"]}},
        "广州今日天气：29度，大部分多云，降雨概率：60%",
        None,
        "Build bot",
    ),
    # WeCom markdown, <font color> and all.
    (
        {"msgtype": "markdown", "markdown": {"content": '实时新增用户反馈<font color="warning">132例</font>，请相关同事注意。\n'
                                             '>类型:<font color="comment">用户反馈</font>'}},
        "实时新增用户反馈132例，请相关同事注意。\n>类型:用户反馈",
        None,
        "Build bot",
    ),
    # Feishu text.
    ({"msg_type": "text", "content": {"text": "request example"}}, "request example", None, "Build bot"),
    # Feishu post (rich text).
    (
        {"msg_type": "post", "content": {"post": {"zh_cn": {"title": "项目更新通知", "content": [[
            {"tag": "text", "text": "项目有更新: "}, {"tag": "a", "text": "请查看", "href": "http://www.example.com/"}]]}}}},
        "**项目更新通知**\n项目有更新: [请查看](http://www.example.com/)",
        None,
        "Build bot",
    ),
]


@pytest.mark.parametrize(("payload", "body", "html", "name"), PUBLISHED)
def test_published_payloads_post_from_the_bot(server, room, payload, body, html, name):
    before = len(history(server, room))
    assert post_json(server, room["hook"], payload) == (200, "ok")
    messages = history(server, room)
    assert len(messages) == before + 1
    message = messages[-1]
    assert message["body"] == body
    if html is not None:
        assert message["html"] == html
    assert message["sender"]["display_name"] == name
    assert message["sender"]["bot"] is True
    assert message["sender"]["username"].startswith("webhook-")
    if "icon_url" in payload:
        assert message["sender"]["icon_url"] == payload["icon_url"]


def test_slack_form_payload_field(server, room):
    payload = {"channel": "#general", "username": "webhookbot", "icon_emoji": ":ghost:",
               "text": "This is posted to #general and comes from a bot named webhookbot."}
    form = urllib.parse.urlencode({"payload": json.dumps(payload)}).encode()
    assert call(server, "POST", room["hook"], raw=form, content_type="application/x-www-form-urlencoded") == (200, "ok")
    last = history(server, room)[-1]
    assert last["body"] == payload["text"] and last["sender"]["display_name"] == "webhookbot"


MALFORMED = [
    (b"{not json", "application/json", "invalid_payload: not JSON"),
    (b"[1, 2]", "application/json", "invalid_payload: the JSON must be an object"),
    (b"{}", "application/json", "no_text"),
    (b'{"text": "   "}', "application/json", "no_text"),
    (b'{"text": 5}', "application/json", "invalid_payload: text must be a string"),
    (b'{"msgtype": "text", "text": "flat"}', "application/json", "invalid_payload: text must be an object"),
    (b'{"msgtype": "link", "link": {}}', "application/json",
     "invalid_payload: msgtype 'link' is not supported (text, markdown)"),
    (b'{"msgtype": "markdown", "markdown": {"title": "t"}}', "application/json",
     "invalid_payload: markdown.text must be a string"),
    (b'{"msg_type": "interactive", "card": {}}', "application/json", "invalid_payload: content must be an object"),
    (b'{"msg_type": "text", "content": {}}', "application/json", "invalid_payload: content.text must be a string"),
    (b"text=hi", "application/x-www-form-urlencoded", "invalid_payload: the form has no payload field"),
    (b"payload=%7Bbad", "application/x-www-form-urlencoded", "invalid_payload: not JSON"),
    (b"\xff\xfe", "application/json", "invalid_payload: not UTF-8"),
    (json.dumps({"text": "x" * 4001}).encode(), "application/json", "msg_too_long"),
]


@pytest.mark.parametrize(("raw", "content_type", "reason"), MALFORMED)
def test_malformed_payloads_are_refused_and_store_nothing(server, room, raw, content_type, reason):
    before = history(server, room)
    assert call(server, "POST", room["hook"], raw=raw, content_type=content_type) == (400, reason)
    assert history(server, room) == before


def test_managing_webhooks_is_for_owner_and_admins(server, room):
    slug = room["slug"]
    assert call(server, "POST", f"/api/rooms/{slug}/webhooks/", {"name": "x"}, room["member"])[0] == 403
    assert call(server, "GET", f"/api/rooms/{slug}/webhooks/", token=room["member"])[0] == 403
    outsider = user(server, "out")[1]
    assert call(server, "GET", f"/api/rooms/{slug}/webhooks/", token=outsider)[0] == 404
    assert call(server, "POST", f"/api/rooms/{slug}/webhooks/", {"name": ""}, room["owner"])[0] == 400
    status, hooks = call(server, "GET", f"/api/rooms/{slug}/webhooks/", token=room["owner"])
    assert status == 200 and [h["id"] for h in hooks][:1] == [room["hook_id"]]
    assert call(server, "GET", "/hooks/" + "x" * 43)[0] == 405
    assert post_json(server, "/hooks/" + "x" * 43, {"text": "hi"}) == (404, "no_service")


def test_rate_limit_answers_429(server, room):
    slug = room["slug"]
    status, hook = call(server, "POST", f"/api/rooms/{slug}/webhooks/", {"name": "Flood"}, room["owner"])
    path = urllib.parse.urlsplit(hook["url"]).path
    answers = [post_json(server, path, {"text": f"n{n}"}) for n in range(32)]
    assert answers[:30] == [(200, "ok")] * 30  # PARLEY_RATE_BURST
    assert answers[30] == (429, "rate_limited")


def test_revoked_url_is_404_and_its_messages_stay(server, room):
    slug = room["slug"]
    status, hook = call(server, "POST", f"/api/rooms/{slug}/webhooks/", {"name": "Temp"}, room["owner"])
    path = urllib.parse.urlsplit(hook["url"]).path
    assert post_json(server, path, {"text": "before revoke"}) == (200, "ok")
    assert call(server, "DELETE", f"/api/rooms/{slug}/webhooks/{hook['id']}/", token=room["owner"])[0] == 204
    assert post_json(server, path, {"text": "after revoke"}) == (404, "no_service")
    assert post_json(server, path, {"nonsense": 1}) == (404, "no_service")
    bodies = [m["body"] for m in history(server, room)]
    assert "before revoke" in bodies and "after revoke" not in bodies
    status, hooks = call(server, "GET", f"/api/rooms/{slug}/webhooks/", token=room["owner"])
    assert hook["id"] not in [h["id"] for h in hooks]
    assert call(server, "DELETE", f"/api/rooms/{slug}/webhooks/{hook['id']}/", token=room["owner"])[0] == 404

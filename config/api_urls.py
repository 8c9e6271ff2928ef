from django.urls import path, re_path

from accounts import api as accounts_api
from chat import api as chat_api
from chat import api_integrations as chat_api_integrations
from chat import api_messages as chat_api_messages
from chat import api_moderation as chat_api_moderation
from chat import api_push as chat_api_push
from chat import api_search as chat_api_search
from chat import api_staff as chat_api_staff
from core.api import api_not_found
from projects import api as projects_api

urlpatterns = [
    path("auth/register/", accounts_api.RegisterView.as_view()),
    path("auth/token/", accounts_api.TokenView.as_view()),
    path("me/", accounts_api.MeView.as_view()),
    path("me/export/", chat_api_integrations.MeExportView.as_view()),
    path("users/", accounts_api.UserSearchView.as_view()),
    path("rooms/", chat_api.RoomListView.as_view()),
    path("rooms/<str:slug>/", chat_api.RoomDetailView.as_view()),
    path("rooms/<str:slug>/join/", chat_api.RoomJoinView.as_view()),
    path("rooms/<str:slug>/leave/", chat_api.RoomLeaveView.as_view()),
    path("rooms/<str:slug>/members/", chat_api.RoomMembersView.as_view()),
    path("rooms/<str:slug>/members/<str:username>/", chat_api.RoomMemberView.as_view()),
    path("rooms/<str:slug>/messages/", chat_api.MessageListView.as_view()),
    path("rooms/<str:slug>/export/", chat_api_integrations.RoomExportView.as_view()),
    path("rooms/<str:slug>/webhooks/", chat_api_integrations.WebhookListView.as_view()),
    path("rooms/<str:slug>/webhooks/<int:webhook_id>/", chat_api_integrations.WebhookView.as_view()),
    path("rooms/<str:slug>/read/", chat_api.RoomReadView.as_view()),
    path("rooms/<str:slug>/settings/", chat_api.RoomSettingsView.as_view()),
    path("messages/<int:message_id>/", chat_api.MessageView.as_view()),
    path("messages/<int:message_id>/recall/", chat_api.MessageRecallView.as_view()),
    path("messages/<int:message_id>/history/", chat_api_messages.MessageHistoryView.as_view()),
    path("messages/<int:message_id>/reactions/<str:emoji>/", chat_api_messages.ReactionView.as_view()),
    path("search/", chat_api_search.SearchView.as_view()),
    path("rooms/<str:slug>/mutes/", chat_api_moderation.RoomMutesView.as_view()),
    path("rooms/<str:slug>/mutes/<str:username>/", chat_api_moderation.RoomMuteView.as_view()),
    path("rooms/<str:slug>/bans/", chat_api_moderation.RoomBansView.as_view()),
    path("rooms/<str:slug>/bans/<str:username>/", chat_api_moderation.RoomBanView.as_view()),
    path("rooms/<str:slug>/pins/", chat_api_moderation.RoomPinsView.as_view()),
    path("rooms/<str:slug>/audit/", chat_api_moderation.RoomAuditView.as_view()),
    path("messages/<int:message_id>/pin/", chat_api_moderation.MessagePinView.as_view()),
    path("messages/<int:message_id>/report/", chat_api_moderation.MessageReportView.as_view()),
    path("reports/", chat_api_moderation.ReportListView.as_view()),
    path("reports/<int:report_id>/resolve/", chat_api_moderation.ReportResolveView.as_view()),
    path("users/<str:username>/suspend/", chat_api_moderation.UserSuspendView.as_view()),
    path("blocks/", chat_api_moderation.BlocksView.as_view()),
    path("unread/", chat_api.UnreadView.as_view()),
    path("mentions/", chat_api.MentionListView.as_view()),
    path("push/key/", chat_api_push.PushKeyView.as_view()),
    path("push/subscriptions/", chat_api_push.PushSubscriptionsView.as_view()),
    path("dm/<str:username>/", chat_api.DirectMessageView.as_view()),
    path("projects/", projects_api.ProjectListView.as_view()),
    path("projects/<str:slug>/chat/", projects_api.ProjectChatView.as_view()),
    path("projects/<str:slug>/chats/", projects_api.ProjectInboxView.as_view()),
    path("projects/<str:slug>/widget/", projects_api.WidgetView.as_view()),
    path("widget/<str:project>/guests/", projects_api.GuestListView.as_view()),
    path("widget/<str:project>/guests/<str:username>/block/", projects_api.GuestBlockView.as_view()),
    path("rooms/<str:slug>/close/", chat_api.RoomCloseView.as_view()),
    path("presets/", chat_api_staff.PresetListView.as_view()),
    path("rooms/<str:slug>/presets/<int:preset_id>/", chat_api_staff.PresetPostView.as_view()),
    path("announcement/", chat_api_staff.AnnouncementView.as_view()),
    # Anything else under /api/ is a JSON 404, like every other API error.
    re_path(r"^.*$", api_not_found),
]

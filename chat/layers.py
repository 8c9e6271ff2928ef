"""The in-memory channel layer of the embedded configuration (SQLite, one process)."""

import time

from channels.layers import InMemoryChannelLayer as ChannelsInMemoryChannelLayer


class InMemoryChannelLayer(ChannelsInMemoryChannelLayer):
    """Channels' in-memory layer, whose expiry sweep runs at most once per SWEEP_SECONDS.

    Channels runs the sweep on every `receive` and `group_send`, and it walks every group:
    here one per room and per connected user, all joined by the hub's one channel
    (chat/hub.py), which receives every event. At 400 events/s with 200 users connected
    that walk was a tenth of the event loop's time. Expiry is a minute for messages and a
    day for group memberships (the hub's sweep joins its groups again well within that),
    so a second later changes nothing."""

    SWEEP_SECONDS = 1.0

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._swept_at = float("-inf")

    def _clean_expired(self) -> None:
        now = time.monotonic()
        if now - self._swept_at < self.SWEEP_SECONDS:
            return
        self._swept_at = now
        super()._clean_expired()

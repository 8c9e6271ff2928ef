"""The one global announcement."""

from django.conf import settings
from django.db import transaction

from chat import events
from chat.models import Announcement, announcement_image_path
from chat.services.images import store_file, unstore_file
from core import images
from core.errors import NotAllowed
from core.validation import clean_text, require_user


def announcement_set(*, by, text=None, image=None, clear_image=False) -> Announcement:
    """Staff set the global announcement; every connected socket hears `announcement`.

    `text` None keeps the current text ("" clears it); `image` (an upload) replaces the
    background picture, `clear_image` removes it. Raises NotAllowed for non-staff,
    InvalidImage/TooLarge for a bad picture.
    """
    require_user(by)
    if not by.is_staff:
        raise NotAllowed("Only staff may set the announcement.")
    if text is not None:
        text = clean_text(text, field="text", max_length=settings.PARLEY_MAX_BODY, required=False)
    new_name = None
    if image is not None:
        processed = images.process_upload(image)
        new_name = store_file(processed.content, announcement_image_path(None, f"bg.{processed.extension}"))
    try:
        with transaction.atomic():
            announcement, _ = Announcement.objects.select_for_update().get_or_create(pk=Announcement.SINGLETON_ID)
            old_name = announcement.image.name if announcement.image else None
            if text is not None:
                announcement.text = text
            if new_name:
                announcement.image = new_name
            elif clear_image:
                announcement.image = None
            announcement.updated_by = by
            announcement.save()
            if old_name and old_name != (announcement.image.name if announcement.image else None):
                transaction.on_commit(lambda: unstore_file(old_name))
            events.publish_on_commit(events.EVERYONE, events.user_frame(events.announcement(announcement)))
    except BaseException:
        unstore_file(new_name)
        raise
    return announcement

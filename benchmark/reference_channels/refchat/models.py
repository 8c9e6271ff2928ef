from django.db import models


class Message(models.Model):
    room = models.CharField(max_length=100)
    body = models.TextField()
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"{self.room}: {self.body[:30]}"

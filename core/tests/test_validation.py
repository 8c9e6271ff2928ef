"""core/validation.py: the text check every service starts with."""

import pytest

from core.errors import InvalidInput
from core.validation import clean_text

pytestmark = pytest.mark.dbless


@pytest.mark.parametrize("value", ["\x00", "a\x00b", " \x00 "])
def test_text_with_a_nul_character_is_invalid_not_a_database_error(value):
    with pytest.raises(InvalidInput):
        clean_text(value, field="body", max_length=100, required=False)

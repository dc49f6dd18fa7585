"""The report tests' fixture: an empty hand-written warehouse (report_book.py)."""

import pytest
from report_book import Book, new_book


@pytest.fixture()
def book() -> Book:
    return new_book()

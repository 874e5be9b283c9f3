"""Passwords out of everything the project writes or prints: URLs' passwords masked."""

from __future__ import annotations

import re

# scheme://user:PASSWORD@host... and ?password=PASSWORD (libpq and SQLAlchemy accept both)
_USERINFO = re.compile(r"(?P<head>\b[a-zA-Z][\w+.-]*://[^\s:/@]*:)[^\s/]+(?P<at>@)")
_QUERY = re.compile(r"(?P<head>[?&;](?:password|passwd|pwd)=)[^&\s]+", re.IGNORECASE)

MASK = "***"


def mask(text: str) -> str:
    """``text`` with every URL password in it replaced by ``***``:
    ``postgresql://fmnist:***@127.0.0.1:5432/m``. Text without one is returned as it is."""
    text = _USERINFO.sub(rf"\g<head>{MASK}\g<at>", text)
    return _QUERY.sub(rf"\g<head>{MASK}", text)

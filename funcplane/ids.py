"""
Version and deployment ids: funcplane keeps them as 32 lower-case hex digits and makes new
ones here; Cloudflare's API shows the same ids as UUIDs with dashes.
"""

import re
import uuid

_HEX = re.compile(r"[0-9a-f]+\Z")


def new_id():
    """
    A fresh random id, as funcplane keeps ids.
    """
    return uuid.uuid4().hex


def plain_id(text):
    """
    A version id as funcplane keeps it (32 lower-case hex digits) from either that form or
    a UUID with dashes; L{None} when C{text} is neither.
    """
    digits = text.replace("-", "").lower()
    return digits if len(digits) == 32 and _HEX.match(digits) else None


def cf_id(version_id):
    """
    A funcplane id as Cloudflare shows ids: a UUID with dashes.
    """
    return str(uuid.UUID(hex=version_id))

"""
The rules for names that users choose.  Function, version and alias names become DNS
labels in host names; environment variable names become JavaScript identifiers.  Names
never become file paths.
"""

import re
import secrets

from funcplane.errors import InvalidName

_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\Z")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}\Z")
_GENERATED_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789"


def canonical(name):
    """
    The form a name is compared and routed by: lower case.  C{Hello} and C{hello} are the
    same function.
    """
    return name.lower()


def check_label(kind, name):
    """
    Return C{name} if it is a DNS label (1-63 letters, digits and C{-}, neither first nor
    last a C{-}), else raise L{InvalidName} saying which rule it broke.

    @param kind: what the name is for, for the message (C{"function"}, C{"version"}, ...).
    """
    if not isinstance(name, str) or not name:
        raise InvalidName(f"{kind} name must be a non-empty string")
    if not name.isascii() or not _LABEL.match(name.lower()):
        raise InvalidName(
            f"{kind} name {name!r} is not a DNS label: use 1-63 letters, digits and '-',"
            " not starting or ending with '-'"
        )
    return name


def check_env_name(name):
    """
    Return C{name} if it can be an environment variable: a letter or C{_} followed by up to
    63 letters, digits or C{_}.
    """
    if not isinstance(name, str) or not _ENV_NAME.match(name):
        raise InvalidName(
            f"environment variable name {name!r} is not valid: use a letter or '_' followed"
            " by up to 63 letters, digits or '_'"
        )
    return name


def generate_version_name(choice=secrets.choice):
    """
    A short, DNS-safe version name for deploys that give none: C{v} and seven random
    lower-case letters or digits, for example C{v3k9x0qa}.
    """
    return "v" + "".join(choice(_GENERATED_ALPHABET) for _ in range(7))

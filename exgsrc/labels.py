"""Path-safe, reversible labels for condition names (standard library only).

``trial_type`` text becomes a BIDS-safe label by :func:`condition_label`: ASCII
letters and digits are kept except ``X``; every other character (including ``X``)
is written as ``X`` followed by the two hex digits of each of its UTF-8 bytes.
``"auditory/left"`` -> ``"auditoryX2Fleft"``. The mapping is reversible
(:func:`condition_from_label`); the original text is stored in the ``condition``
attribute of every output.

Labels are at most :data:`MAX_LABEL_LENGTH` characters, so that file names stay well
under the file system's 255-byte limit whatever the condition text (a 28-character
Chinese ``trial_type`` encodes to 252 characters). A longer encoding is cut at a
character boundary and ends with ``XZ`` and 12 hex digits of the text's SHA-256:
unique, and never produced by the plain encoding (``X`` is otherwise always followed
by two upper-case hex digits). Such a label cannot be decoded; the workflow keeps the
mapping (and every file's ``condition`` attribute holds the text).

The workflow's ``common.smk`` imports this module while Snakemake builds the DAG,
so it imports nothing but the standard library.
"""

from __future__ import annotations

import hashlib

__all__ = ["MAX_LABEL_LENGTH", "condition_label", "condition_from_label"]

#: Longest condition label (characters); longer encodings are shortened with a hash.
MAX_LABEL_LENGTH = 64
_HASH_MARK = "XZ"
_HASH_DIGITS = 12


def condition_label(text: str) -> str:
    """Path-safe, reversible label of a condition (``trial_type``) name.

    Parameters
    ----------
    text : str
        Condition text as in ``events.tsv``.

    Returns
    -------
    str
        Label made of ASCII letters and digits only, at most
        :data:`MAX_LABEL_LENGTH` characters.
    """
    if not isinstance(text, str) or text == "":
        raise ValueError(f"condition name must be a non-empty string, got {text!r}")
    parts = [
        ch
        if ch.isascii() and ch.isalnum() and ch != "X"
        else "".join(f"X{b:02X}" for b in ch.encode("utf-8"))
        for ch in text
    ]
    label = "".join(parts)
    if len(label) <= MAX_LABEL_LENGTH:
        return label
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()[:_HASH_DIGITS]
    room = MAX_LABEL_LENGTH - len(_HASH_MARK) - _HASH_DIGITS
    prefix = ""
    for part in parts:  # cut between characters, never inside an escape
        if len(prefix) + len(part) > room:
            break
        prefix += part
    return prefix + _HASH_MARK + digest


def condition_from_label(label: str) -> str:
    """Inverse of :func:`condition_label`.

    Parameters
    ----------
    label : str

    Returns
    -------
    str
        The original condition text.

    Raises
    ------
    ValueError
        An invalid label, or a shortened one (``XZ`` + hash), whose text is not in it.
    """
    if _HASH_MARK in label:
        raise ValueError(
            f"condition label {label!r} is a shortened label of a long condition name; its "
            "text is in the 'condition' attribute of the files that carry it"
        )
    raw = bytearray()
    i = 0
    while i < len(label):
        ch = label[i]
        if ch == "X":
            code = label[i + 1 : i + 3]
            try:
                raw.append(int(code, 16))
            except ValueError:
                raise ValueError(f"invalid condition label {label!r} at position {i}") from None
            i += 3
        else:
            raw.extend(ch.encode("ascii"))
            i += 1
    return raw.decode("utf-8")

"""Path-safe, reversible labels for condition names (standard library only).

``trial_type`` text becomes a BIDS-safe label by :func:`condition_label`: ASCII
letters and digits are kept except ``X``; every other character (including ``X``)
is written as ``X`` followed by the two hex digits of each of its UTF-8 bytes.
``"auditory/left"`` -> ``"auditoryX2Fleft"``. The mapping is reversible
(:func:`condition_from_label`); the original text is stored in the ``condition``
attribute of every output.

The workflow's ``common.smk`` imports this module while Snakemake builds the DAG,
so it imports nothing but the standard library.
"""

from __future__ import annotations

__all__ = ["condition_label", "condition_from_label"]


def condition_label(text: str) -> str:
    """Path-safe, reversible label of a condition (``trial_type``) name.

    Parameters
    ----------
    text : str
        Condition text as in ``events.tsv``.

    Returns
    -------
    str
        Label made of ASCII letters and digits only.
    """
    if not isinstance(text, str) or text == "":
        raise ValueError(f"condition name must be a non-empty string, got {text!r}")
    out = []
    for ch in text:
        if ch.isascii() and ch.isalnum() and ch != "X":
            out.append(ch)
        else:
            out.extend(f"X{b:02X}" for b in ch.encode("utf-8"))
    return "".join(out)


def condition_from_label(label: str) -> str:
    """Inverse of :func:`condition_label`.

    Parameters
    ----------
    label : str

    Returns
    -------
    str
        The original condition text.
    """
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

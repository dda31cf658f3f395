"""Subject report section "Data": channels used and excluded, epochs per condition.

Reads the montage (coordinates ``used`` and ``excluded_reason`` on ``channel``;
attributes ``sfreq``, ``warnings``) and the epochs file's attributes
(``epoch_counts``, ``drop_details``, ``filter``, ``sfreq``, ``baseline``, ``tmin``,
``tmax``, ``reject``, ``warnings``), as :mod:`exgsrc.steps.headmodel` and
:mod:`exgsrc.steps.preprocess` write them.
"""

from __future__ import annotations

import json

from ._context import Ctx, Result, channels, used_mask
from ._data import failure_block
from ._html import dl, esc, notice, table

__all__ = ["data_section"]


def _excluded_channels(ctx: Ctx) -> dict:
    """{channel: reason} of the montage's channels not used (empty without a montage)."""
    mont = ctx.opt("montage")
    if mont is None:
        return {}
    names = [str(c) for c in mont["channel"].values]
    reasons = [str(r) for r in mont["excluded_reason"].values]
    return {
        n: r or "excluded"
        for n, u, r in zip(names, used_mask(mont), reasons, strict=True)
        if not u
    }


def _epoch_rows(ep) -> list:
    """Rows (condition, kept, total, dropped, drop reasons) from the epochs' attributes."""
    reasons: dict = {}
    for d in ep.attrs.get("drop_details") or []:
        lab_reasons = reasons.setdefault(str(d["label"]), {})
        lab_reasons[str(d["reason"])] = lab_reasons.get(str(d["reason"]), 0) + 1
    rows = []
    for cond, c in (ep.attrs.get("epoch_counts") or {}).items():
        rr = reasons.get(str(cond), {})
        why = "; ".join(f"{k}: {v}" for k, v in sorted(rr.items())) or None
        rows.append([str(cond), c["kept"], c["total"], c["dropped"], why])
    return rows


def _recording_info(ctx: Ctx, ep) -> tuple[dict, list]:
    """Sampling rate, filter, epoch window... from the epochs (else the montage), warnings."""
    info, warns = {}, []
    if ep is not None:
        filt = ep.attrs.get("filter")
        if isinstance(filt, dict):
            info["l_freq"], info["h_freq"] = filt.get("l_freq"), filt.get("h_freq")
        for k in ("sfreq", "baseline", "tmin", "tmax", "reject"):
            if ep.attrs.get(k) is not None:
                info[k] = ep.attrs[k]
        warns += [str(w) for w in ep.attrs.get("warnings") or []]
    mont = ctx.opt("montage")
    if mont is not None:
        if "sfreq" not in info and "sfreq" in mont.attrs:
            info["sfreq"] = mont.attrs["sfreq"]
        warns += [str(w) for w in mont.attrs.get("warnings") or []]
    # the montage and the epochs step read the same recording: one line per warning
    return info, list(dict.fromkeys(warns))


def _epochs_part(ctx: Ctx, res: Result) -> tuple[list, dict]:
    """HTML of the epochs per condition; sets the summary's ``epochs`` and the warnings."""
    ctx.summary["epochs"] = {}
    try:
        ep = ctx.ds("epochs")
    except Exception as err:  # noqa: BLE001 - a missing/failed block, the rest still shows
        res.status, block = failure_block(err, "epochs")
        info, warns = _recording_info(ctx, None)
        res.notes += [f"reader: {w}" for w in warns]
        return [block], info
    rows = _epoch_rows(ep)
    empty = []
    for cond, kept, total, _dropped, _ in rows:
        ctx.summary["epochs"][cond] = int(kept)
        if total and int(total) - int(kept) > 0.3 * int(total):
            res.warnings.append(
                f"condition {cond}: {int(total) - int(kept)} of {total} epochs dropped (> 30%)"
            )
        if int(kept) == 0:
            empty.append(cond)
            res.warnings.append(
                f"condition {cond}: no epochs kept"
                + (f" (all {total} rejected)" if total else " (no such event in this subject)")
            )
    if rows and len(empty) == len(rows):
        res.status = "failed"  # no condition has a single epoch: nothing to analyse
    info, warns = _recording_info(ctx, ep)
    res.notes += [f"reader: {w}" for w in warns]
    if not rows:
        res.status = "missing"
        return [notice("missing", "epochs", "the epochs file counts no condition")], info
    head = "<h3>Epochs per condition</h3>"
    return [head, table(["condition", "kept", "total", "dropped", "drop reasons"], rows)], info


def data_section(ctx: Ctx) -> Result:
    """Section "Data": channels used and excluded (with reasons), epochs per condition.

    Parameters
    ----------
    ctx : Ctx
        Reads the montage (else the forward, for the channels used) and the epochs'
        attributes.

    Returns
    -------
    Result
        Failed if no condition kept an epoch; summary keys ``n_channels``,
        ``n_excluded``, ``epochs`` (condition -> kept), ``baseline``.
    """
    res = Result()
    parts = []
    names, _ = channels(ctx)
    excluded = _excluded_channels(ctx)
    n_used, n_ex = len(names), len(excluded)
    ctx.summary["n_channels"] = n_used
    ctx.summary["n_excluded"] = n_ex
    parts.append(
        f"<p><strong>{n_used}</strong> channels used, <strong>{n_ex}</strong> excluded.</p>"
    )
    if n_ex:
        parts.append(table(["excluded channel", "reason"], sorted(excluded.items())))
        n_eeg_bad = sum(1 for r in excluded.values() if "not EEG" not in r)
        if n_eeg_bad > 0.2 * (n_used + n_eeg_bad):
            res.warnings.append(
                f"{n_eeg_bad} of {n_used + n_eeg_bad} EEG channels excluded (> 20%)"
            )
    parts.append(
        f"<details><summary>channels used ({n_used})</summary><p>"
        f"{esc(', '.join(names))}</p></details>"
    )
    epoch_parts, info = _epochs_part(ctx, res)
    parts += epoch_parts
    lf, hf = info.get("l_freq"), info.get("h_freq")
    filt = (
        f"high-pass {lf if lf is not None else 'none'} Hz, "
        f"low-pass {hf if hf is not None else 'none'} Hz"
        if ("l_freq" in info or "h_freq" in info)
        else "not recorded in the inputs"
    )
    sf = info.get("sfreq")
    items = [
        ("sampling rate", f"{float(sf):.6g} Hz" if sf is not None else "not recorded"),
        ("filter", filt),
        ("baseline (s)", info.get("baseline", "not recorded")),
    ]
    if "tmin" in info and "tmax" in info:
        items.append(("epoch window (s)", f"{info['tmin']} to {info['tmax']}"))
    if "reject" in info:
        items.append(("rejection", json.dumps(info["reject"], default=str)))
    parts.append(dl(items))
    ctx.summary["baseline"] = info.get("baseline")
    res.body = "\n".join(parts)
    return res

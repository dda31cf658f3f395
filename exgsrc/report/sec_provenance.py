"""Subject report section "Parameters and provenance": every input's origin and parameters.

Reads the provenance attributes :func:`exgsrc.store.write_netcdf` stamps on every
file (``created``, ``exgsrc_version``, ``config_sha256``, ``inputs``) and the
parameters the steps record (``method``, ``lambda2``, ``snr`` on source estimates;
``loose``, ``depth`` on the inverse operator).
"""

from __future__ import annotations

from pathlib import Path

from ._context import FILE_KINDS, Ctx, Result
from ._data import MissingInput, StepFailed
from ._html import Markup, esc, pre_json, status_badge, table

__all__ = ["provenance_section"]

#: step parameters shown per file
_PARAMS = ("method", "lambda2", "loose", "depth", "snr")


def _short_sha(sha):
    """First 12 hex digits of a checksum, the full value in a tooltip."""
    if not sha:
        return None
    return (Markup(f'<code title="{esc(sha)}">{esc(str(sha)[:12])}&hellip;</code>'), str(sha))


def provenance_section(ctx: Ctx) -> Result:
    """Section "Parameters and provenance": files, versions, configuration, inputs.

    Parameters
    ----------
    ctx : Ctx
        Reads the attributes of every input file.

    Returns
    -------
    Result
        Warns when the files come from different configurations.
    """
    rows, inputs, sha_full = [], {}, set()
    keys = list(FILE_KINDS)
    keys += [("evoked", c) for c in ctx.inputs["evokeds"]]
    keys += [("stc",) + k for k in ctx.inputs["stcs"]]
    for key in keys:
        name = key if isinstance(key, str) else "/".join(map(str, key))
        try:
            ds = ctx.ds(key)
        except MissingInput:
            continue
        except (StepFailed, ValueError) as err:
            rows.append([name, Markup(status_badge("failed")), str(err), None, None, None])
            continue
        sha = ds.attrs.get("config_sha256")
        rows.append(
            [
                name,
                Markup(status_badge("ok")),
                Path(ds.encoding.get("source", "(in memory)")).name,
                ds.attrs.get("created"),
                ds.attrs.get("exgsrc_version"),
                _short_sha(sha),
            ]
        )
        sha_full.add(str(sha or "") or None)
        if ds.attrs.get("inputs"):
            inputs[name] = ds.attrs["inputs"]
        params = {k: ds.attrs[k] for k in _PARAMS if k in ds.attrs}
        if params:
            inputs.setdefault(name + " parameters", params)
    parts = [
        table(
            ["input", "status", "file", "created (UTC)", "exgsrc version", "config sha256"], rows
        )
    ]
    if ctx.config is not None:
        parts.append("<h3>Configuration</h3>")
        parts.append(pre_json(ctx.config))
    if inputs:
        parts.append("<details><summary>inputs and parameters per file</summary>")
        parts.append(pre_json(inputs))
        parts.append("</details>")
    shas = {x for x in sha_full if x}
    res = Result(body="\n".join(parts))
    if len(shas) > 1:
        res.warnings.append(f"outputs come from {len(shas)} different configurations")
    return res

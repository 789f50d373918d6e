"""Tables answered as CSV (`?format=csv`), written by the command line's own writers, so a spreadsheet opened on
the API's answer has the columns of the file the command writes.

- `GET /api/v1/analytics/comparison/baseline-vs-ai`: `signalwise compare`'s summary.csv (one row per figure and
  controller, the baseline's included; `runtime.compare`'s writer);
- `GET /api/v1/atspm/{measure}`: `signalwise atspm`'s `<measure>.csv` (`analytics.atspm.compute.write_table`).

Why a query parameter, not `Accept: text/csv`: every other choice a request makes here is a declared query
parameter (unknown ones are refused, `strict_query`), which OpenAPI shows and Swagger UI offers; the answer cache is
keyed by the URL (`deps.cache_key`), so a header choosing the body would need a `Vary` of its own; and a spreadsheet
(Excel's From Web, Google Sheets' IMPORTDATA) or a browser link sets no headers, only a URL.
"""

from __future__ import annotations

import io
import tempfile
from pathlib import Path
from typing import Annotated, Literal

from fastapi import Query, Response

#: the query parameter that chooses the body
FormatQuery = Annotated[Literal["json", "csv"], Query(
    description="json, or csv: the same rows as a CSV file with the columns the command line's file has")]
CSV_MEDIA_TYPE = "text/csv; charset=utf-8"


def csv_response(description: str) -> dict:
    """The OpenAPI declaration of a 200 that is JSON, or CSV with `?format=csv`."""
    return {200: {"description": f"JSON; with ?format=csv, {description}",
                  "content": {"text/csv": {"schema": {"type": "string"}}}}}


def _answer(text: str, filename: str, total: int) -> Response:
    """A CSV body, named for a browser that saves it, with the number of rows the query matched before paging
    (`X-Total-Count`, the JSON answer's `total`), so a page cut short is told."""
    return Response(text, media_type=CSV_MEDIA_TYPE,
                    headers={"Content-Disposition": f'attachment; filename="{filename}"', "X-Total-Count": str(total)})


def comparison_csv(result: dict) -> Response:
    """`baseline_vs_ai`'s page as `signalwise compare`'s summary.csv (its own writer): per scenario and
    conditions, a row per figure and controller (the baseline first), the conditions repeated on each row. A
    condition the store does not keep of a run (its window, warm-up, what seeds vary) is an empty cell."""
    from signalwise.runtime.compare import summary_figure, summary_p, write_summary_csv

    groups: dict[tuple, dict] = {}
    for item in result["items"]:
        cond = item.get("conditions") or {}
        key = (item["scenario"], repr(sorted(cond.items())))
        summary = groups.setdefault(key, {"conditions": {
            "scenario": item["scenario"], "demand_scale": cond.get("demand_scale"),
            "timing_profile": (cond.get("timing") or {}).get("profile"), "seeds": item["baseline_all_seeds"],
            "time_to_teleport_s": cond.get("time_to_teleport_s"), "sumo_options": cond.get("sumo_options")},
            "metrics": {}})
        for row in item["metrics"]:
            metric = summary["metrics"].setdefault(row["metric"], {"unit": row["unit"], "controllers": {}})
            # the baseline's row over all its runs (`baseline_all`), as compare's covers all its seeds; its
            # `baseline` is of the seeds paired with this candidate only
            base, cand = row["baseline_all"], row["candidate"]
            metric["controllers"].setdefault(item["baseline_controller"], {
                "n": base["n"], "mean": summary_figure(base["mean"]), "ci_low": summary_figure(base["ci_low"]),
                "ci_high": summary_figure(base["ci_high"]), "ci_note": base.get("ci_note")})
            metric["controllers"][item["controller"]] = {
                "n": cand["n"], "mean": summary_figure(cand["mean"]), "ci_low": summary_figure(cand["ci_low"]),
                "ci_high": summary_figure(cand["ci_high"]), "ci_note": cand.get("ci_note"),
                "change_pct": summary_figure(row["change_pct"]),
                "p_welch": summary_p(row["p_welch"]), "p_paired": summary_p(row["p_paired"]),
                "verdict": row["verdict"], "no_verdict": row["verdict_note"], "change": summary_figure(row["change"]),
                "change_ci_low": summary_figure(row["change_ci_low"]),
                "change_ci_high": summary_figure(row["change_ci_high"]),
                "change_pct_ci_low": summary_figure(row["change_pct_ci_low"]),
                "change_pct_ci_high": summary_figure(row["change_pct_ci_high"])}
    parts = []
    for summary in groups.values() or [{"metrics": {}}]:  # no comparison: the header alone
        buf = io.StringIO(newline="")
        write_summary_csv(buf, summary)
        text = buf.getvalue()
        parts.append(text if not parts else text.split("\n", 1)[1])  # one header
    return _answer("".join(parts), "summary.csv", result["total"])


def atspm_csv(measure: str, table, total: int) -> Response:  # noqa: ANN001 - a pandas DataFrame (or None)
    """One ATSPM measure's rows as `signalwise atspm` writes `<measure>.csv` (`write_table`); no rows: empty."""
    from signalwise.analytics.atspm.compute import write_table

    if table is None:
        return _answer("", f"{measure}.csv", total)
    with tempfile.TemporaryDirectory(prefix="signalwise-csv-") as tmp:  # Arrow's CSV writer writes a file
        text = write_table(measure, table, Path(tmp)).read_text(encoding="utf-8")
    return _answer(text, f"{measure}.csv", total)

"""Asset metadata helpers: previews and summaries a person reads in the Dagster UI."""

from __future__ import annotations

import base64
import io

import dagster as dg
import polars as pl


def _cell(v: object) -> str:
    if isinstance(v, float):
        return f"{v:.6g}"
    return str(v).replace("|", "\\|")


def markdown_table(df: pl.DataFrame, n: int = 10, max_cols: int = 12) -> str:
    """A markdown table of the first `n` rows and `max_cols` columns."""
    cols = df.columns[:max_cols]
    head = df.select(cols).head(n)
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in head.iter_rows()]
    if len(df.columns) > max_cols:
        lines.append(f"\n… and {len(df.columns) - max_cols} more columns")
    return "\n".join(lines)


def frame_metadata(df: pl.DataFrame, sessions: int) -> dict[str, dg.MetadataValue]:
    """Row count, sessions covered, symbols and a preview table."""
    meta: dict[str, dg.MetadataValue] = {
        "rows": dg.MetadataValue.int(df.height),
        "sessions": dg.MetadataValue.int(sessions),
        "preview": dg.MetadataValue.md(markdown_table(df.tail(10))),
    }
    if "symbol" in df.columns:
        meta["symbols"] = dg.MetadataValue.int(df.get_column("symbol").n_unique())
    return meta


def png_metadata(png: bytes) -> dg.MetadataValue:
    """PNG bytes as inline Markdown the Dagster UI renders."""
    return dg.MetadataValue.md(f"![plot](data:image/png;base64,{base64.b64encode(png).decode()})")


def figure_metadata(fig) -> dg.MetadataValue:
    """A matplotlib figure as an inline PNG the Dagster UI renders."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return png_metadata(buf.getvalue())

"""OOF tables with known content on a real CPCV layout, for the stacker's tests."""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl

from trademl.data.calendar import get_calendar
from trademl.models.stacker.train import SleeveOOF
from trademl.validation.cpcv import CombinatorialPurgedCV, session_ordinals
from trademl.validation.layout import SplitLayout, cpcv_layout, walk_forward_layout

CAL = get_calendar("XNYS", dt.date(2015, 1, 2))
SESSIONS = CAL.sessions
HORIZON = 5


class Panel:
    """T sessions × N names with label y = Σ coef·signal + noise; CPCV(8, 2), embargo 10."""

    def __init__(self, t: int = 400, n: int = 60, seed: int = 0, end_offset: int = 30) -> None:
        self.rng = np.random.default_rng(seed)
        days = SESSIONS[-(t + end_offset) : -end_offset]
        ends = SESSIONS[-(t + end_offset) + HORIZON + 1 : -end_offset + HORIZON + 1]
        self.t, self.n = t, n
        self.frame = pl.DataFrame(
            {
                "date": np.repeat(np.array(days, dtype="datetime64[D]"), n),
                "symbol": np.tile([f"S{i:03d}" for i in range(n)], t),
                "t1": np.repeat(np.array(ends, dtype="datetime64[D]"), n),
            }
        ).with_columns(pl.col("date").cast(pl.Date), pl.col("t1").cast(pl.Date))
        self.cv = CombinatorialPurgedCV(n_groups=8, n_test_groups=2, embargo=10)
        self.session = session_ordinals(self.frame.get_column("date"), SESSIONS)
        self.t1 = session_ordinals(self.frame.get_column("t1"), SESSIONS)
        self.layout = cpcv_layout(
            self.cv, self.frame.get_column("date").to_numpy(), self.session, self.t1
        )

    def signal(self) -> np.ndarray:
        return self.rng.normal(size=self.t * self.n)

    def with_label(self, y: np.ndarray) -> pl.DataFrame:
        return self.frame.with_columns(pl.Series("y", y))

    def sleeve(
        self,
        name: str,
        y: np.ndarray,
        paths: list[np.ndarray] | np.ndarray,
        *,
        layout: SplitLayout | None = None,
        pbo: float = 0.0,
        dsr: float = 0.99,
        n_trials: int = 4,
    ) -> SleeveOOF:
        """A sleeve publishing `paths` (one array per CPCV path, or one for all)."""
        arrays = paths if isinstance(paths, list) else [paths] * self.cv.n_paths
        frame = self.with_label(y).with_columns(
            [pl.Series(f"oof_path_{p}", a) for p, a in enumerate(arrays)]
        )
        return SleeveOOF(
            name, frame, layout or self.layout, "1", n_trials, {"pbo": pbo, "dsr": dsr}
        )

    def noisy(self, signal: np.ndarray, scale: float = 1.0) -> list[np.ndarray]:
        """The signal plus fresh noise on each path (as different splits would predict)."""
        return [signal + scale * self.rng.normal(size=signal.size) for _ in range(self.cv.n_paths)]

    def walk_forward(
        self, name: str, y: np.ndarray, pred: np.ndarray, cutoff: dt.date
    ) -> SleeveOOF:
        frame = (
            self.with_label(y)
            .select("date", "symbol", "y")
            .with_columns(pl.Series("oof_path_0", pred))
        )
        lay = walk_forward_layout(frame.get_column("date").to_list(), [cutoff])
        return SleeveOOF(name, frame, lay, "1", 1, {})

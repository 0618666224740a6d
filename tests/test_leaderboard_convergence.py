"""Convergence from the records' curves: the val metric's gain over the last fifth of training, oriented."""

import pandas as pd
import pytest

from hubbench.leaderboard.board import Board
from hubbench.leaderboard.convergence import gains, rising


def board(higher, curves_by_record):
    ids = list(curves_by_record)
    rows = pd.DataFrame({"id": ids, "method": [i.split("/")[0] for i in ids], "method_name": "m", "task": "t",
                         "seed": [int(i[-1]) for i in ids], "status": "ok", "value": 1.0})
    points = [(r, "val_nme", it, v) for r, pts in curves_by_record.items() for it, v in pts]
    return Board("h", "landmarks", "nme", higher, rows), pd.DataFrame(points, columns=["record", "curve", "iteration",
                                                                                        "value"])


def test_a_falling_error_is_a_gain_measured_inside_the_last_fifth():
    curves = {f"m/s{seed}": [(100, 9.0), (700, 8.0), (800, 6.0), (900, 5.5 - seed / 10), (1000, 5.0 - seed / 5)]
              for seed in range(3)}
    curves["short/s0"] = [(500, 9.0), (1000, 8.0)]  # one evaluation in the window: no gain
    b, c = board(False, curves)
    g = gains(b, c)
    assert g["m", "t", 0] == pytest.approx(1.0) and g["m", "t", 2] == pytest.approx(1.4)  # from 800, not 700
    assert "short" not in g.index.get_level_values("method")
    assert rising(b, c)["m"].sign > 0
    b, c = board(True, curves)  # the same numbers as accuracy: falling, not rising
    assert rising(b, c)["m"].sign < 0

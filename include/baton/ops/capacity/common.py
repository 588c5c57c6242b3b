"""What every part of capacity planning shares: its bounds and its error."""

from __future__ import annotations

from baton.errors import BatonError

HOUR_S = 3600
DAY = 24  # hours in the daily season
WEEK = 168  # hours in the weekly season
FIELDS = ("timestamp", "key", "duration_s")
#: cells (hours x keys) one :func:`hourly` call may build: 20 million is 320 MB for counts and busy seconds
MAX_CELLS = 20_000_000
#: hours :func:`forecast` reads (the most recent ones): 16 weeks
MAX_HISTORY_HOURS = 16 * WEEK
#: hours :func:`forecast` may look ahead: 8 weeks
MAX_HORIZON_HOURS = 8 * WEEK
#: the largest ``max_concurrency`` the roster accepts (spec/roster.py): :func:`recommend` goes no higher
MAX_CONCURRENCY = 1024
#: STL's seasonal window of each season, in cycles. The shapes are taken as stable: the daily one is
#: smoothed over 51 days (about seven weeks), the weekly one over 51 weeks (all the history read).
#: statsmodels' default (11, 15) follows the last few cycles, chases each hour's noise, and did worse than
#: repeating last week on noisy hourly counts. A shape that really changes shows as a backtest MASE above
#: the seasonal-naive one.
SEASONAL_WINDOW = 51
HEADLINE = "mase"  # the error to show first: see Backtest


class CapacityError(BatonError, ValueError):
    """Records, a series or an argument that capacity planning cannot use; the message says the fix."""

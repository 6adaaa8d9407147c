"""Per-channel statistics over a report interval, in the readings' fixed-point integers.

DATA carries `[channel, exponent, mean, min, max, count]` (SPEC.md §5.3); the samples are
already integers in the channel's unit x 10^-exponent, so nothing here needs a float.
"""


def div_round(num, den):
    """num / den rounded half up, in integers (negative numerators too: temperatures)."""
    return (2 * num + den) // (2 * den)


class Stats:
    """Sum, min, max and count of `n` channels; preallocated, reset after each report."""

    def __init__(self, n):
        self._sum = [0] * n
        self._min = [0] * n
        self._max = [0] * n
        self.count = [0] * n

    def add(self, i, value):
        if self.count[i]:
            self._sum[i] += value
            if value < self._min[i]:
                self._min[i] = value
            elif value > self._max[i]:
                self._max[i] = value
        else:
            self._sum[i] = self._min[i] = self._max[i] = value
        self.count[i] += 1

    def reading(self, i, ch, exponent):
        """The DATA reading of channel `i`, or None if it has no sample this interval."""
        n = self.count[i]
        if not n:
            return None
        return [ch, exponent, div_round(self._sum[i], n), self._min[i], self._max[i], n]

    def reset(self):
        for i in range(len(self.count)):
            self.count[i] = 0

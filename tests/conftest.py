"""Suite-wide settings. Hypothesis draws the same examples on every run (`make test` is
deterministic); ``HYPOTHESIS_PROFILE=explore`` draws fresh ones to hunt for new cases."""

import os

from hypothesis import settings

settings.register_profile("deterministic", derandomize=True)
settings.register_profile("explore", derandomize=False)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "deterministic"))

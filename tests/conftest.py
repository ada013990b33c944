"""Hypothesis draws the same examples on every run (derandomize): a red run is the code's doing, and a rerun
shows the same failure. HYPOTHESIS_PROFILE=explore draws new ones each run, to look for bugs (a random CI run
had found an ill-conditioned layernorm row that no code change caused). A test's own settings leave derandomize
to the profile."""

from __future__ import annotations

import os

from hypothesis import settings

settings.register_profile("ci", derandomize=True)
settings.register_profile("explore", derandomize=False)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

"""Figures (matplotlib, Agg).  Every function returns a Figure; nothing calls ``show``.

One module per topic: :mod:`.fp` (Feature Purification), and the modules that
other topics add beside it.
"""

import matplotlib

matplotlib.use("Agg")

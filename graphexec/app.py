"""tf.app: `run(main)` parses the command-line flags defined with tf.flags (absl's flags, as in TF1) and
exits with main(argv)'s result. Unknown flags are left in argv, as TF1's run tolerated them."""
from __future__ import annotations

import sys

from absl import app as absl_app, flags

from graphexec import api_gaps

__all__ = ["flags", "run"]


def _parse_known_flags(argv):
    return flags.FLAGS(argv, known_only=True)


def run(main=None, argv=None):
    """Parse flags from `argv` (default sys.argv), then sys.exit(main(remaining argv))."""
    main = main or sys.modules["__main__"].main
    absl_app.run(main=main, argv=argv, flags_parser=_parse_known_flags)


__getattr__ = api_gaps.missing_names("app", __name__)  # TF1 names graphexec lacks say so (see api_gaps)

from __future__ import annotations

import sys

from bitnas.studies.cli import main

sys.exit(main())

"""`python -m tests.soak`: run the soak from the project root."""

from __future__ import annotations

import sys

from tests.soak.run import main

sys.exit(main())

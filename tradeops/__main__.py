import sys

from tradeops.cli import main

sys.exit(main())

import sys

from biogliner.cli import main

sys.exit(main())

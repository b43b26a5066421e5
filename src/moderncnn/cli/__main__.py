import sys

from moderncnn.cli import main

sys.exit(main())

import sys

from krios.cli import main

sys.exit(main())

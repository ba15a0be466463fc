import sys

from services.manager.cli import main

sys.exit(main())

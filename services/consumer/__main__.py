import sys

from services.consumer.cli import main

sys.exit(main())

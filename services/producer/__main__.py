import sys

from services.producer.cli import main

sys.exit(main())

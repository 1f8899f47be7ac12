"""`python -m services.watcher`: run the watcher until SIGTERM."""

from services.watcher.watcher import main

main()

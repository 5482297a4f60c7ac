"""``python -m discodock`` runs the command line."""

from discodock.cli import main

main()

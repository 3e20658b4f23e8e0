from aicache.cli import main

main()

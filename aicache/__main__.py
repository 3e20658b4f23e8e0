from aicache.launch import main

main()

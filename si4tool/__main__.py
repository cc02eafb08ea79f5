from si4tool.cli import main

main()

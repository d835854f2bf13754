from rtlgen.cli import main

main()

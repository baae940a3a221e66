"""`python -m cli`: the gradtrace command line without the installed console script."""

from cli.main import main

if __name__ == "__main__":
    main()

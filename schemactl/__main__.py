"""`python -m schemactl`: the same command line as the `schemactl` script."""

from schemactl.entry import main

if __name__ == "__main__":
    main(prog_name="schemactl")

"""`python -m graphexec.ops --json`: every op's signature (inputs, typed attrs, flags) as JSON."""
import argparse
import json
import sys

from graphexec.ops import every_op


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m graphexec.ops", description=__doc__)
    parser.add_argument("--json", action="store_true", help="print the op schema as JSON (the default)")
    parser.parse_args(argv)
    json.dump({"ops": every_op.schema()}, sys.stdout, indent=1, sort_keys=True)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

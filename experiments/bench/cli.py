"""`vrash-bench train ...` (one train step against its PyTorch peer, `bench_train.py`) and
`vrash-bench suite ...` (a whole machine, `suite.py`)."""
import sys

from experiments import launcher
from experiments.bench import bench_train, suite

COMMANDS = {'train': bench_train.main, 'suite': suite.main}


def main(argv: list[str]) -> None:
  if len(argv) != 2 or argv[1] not in COMMANDS:
    sys.exit(f'usage: vrash-bench {"|".join(COMMANDS)} [--flags]; --helpfull lists them')
  COMMANDS[argv[1]](argv)


def run() -> None:
  launcher.run(main)


if __name__ == '__main__':
  run()

"""The parallel map loses only the items whose worker process dies."""
import crashy
from data_prep import parallel


def test_worker_deaths_lose_only_their_own_items():
  reports = []
  progress = parallel.Progress(20, lambda d, n, r: reports.append((d, n)), every_s=0)
  out = parallel.robust_map(crashy.square_or_die, list(range(20)), workers=2,
                            on_crash=lambda x: ('crashed', x), progress=progress)
  assert out == [('crashed', x) if x in (7, 13) else x * x for x in range(20)]
  assert reports[-1] == (20, 20)


def test_empty_input():
  assert parallel.robust_map(crashy.square_or_die, [], 2, on_crash=lambda x: None) == []

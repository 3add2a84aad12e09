"""Where a run's files live: a local directory or a bucket (`gs://b/...`) alike.

Our own files (logs, run records, exports, the prepared dataset) go through etils `epath`, which
reaches buckets through gcsfs (or TensorFlow's gfile when TensorFlow is installed and
EPATH_USE_TF is not false); orbax writes the arrays itself. An object store has no rename, no
append and no lock, so what they did on a disk is done here with what objects do have:

- a whole object is written in one upload and is never seen half-written: `write_text`;
- moving a folder aside is a copy of every object, then a delete of the source: `move_aside`;
- the workdir lock is an object created only if absent (a generation precondition), kept
  alive by a heartbeat, and taken over once its heartbeat is older than `stale_after_s`:
  `WorkdirLock`. On a disk it stays an advisory `flock`, released by the kernel even on kill -9.
"""
from __future__ import annotations

import contextlib
import datetime
import fcntl
import functools
import importlib.util
import json
import os
import shutil
import tempfile
import threading
import time
from typing import Iterator

from absl import logging
from etils import epath

from vrash_jax.errors import VrashError

PathLike = str | os.PathLike
LOCK_NAME = '.train.lock'


def is_remote(location: PathLike) -> bool:
  """Whether `location` is a URL of an object store (gs://, s3://, ...) rather than a local path."""
  return '://' in os.fspath(location)


def path(location: PathLike) -> epath.Path:
  """`location` as an epath.Path: local paths made absolute, URLs kept as they are."""
  location = os.fspath(location)
  if not is_remote(location):
    return epath.Path(os.path.abspath(location))
  _require_client(location.partition('://')[0])
  return epath.Path(location)


@functools.cache
def _require_client(scheme: str) -> None:
  """A clear error, not an ImportError from inside epath, when no client for `scheme` is installed."""
  if scheme != 'gs':
    raise VrashError(f'{scheme}:// paths are not supported: use a local path or gs://')
  if importlib.util.find_spec('gcsfs') is None or importlib.util.find_spec('google.cloud.storage') is None:
    raise VrashError('gs:// paths need gcsfs and google-cloud-storage: pip install -e ".[gcs]" '
                     '-c constraints.txt')


def join(location: PathLike, *parts: str) -> str:
  """`location`/parts as a string: a local path made absolute, a URL kept as it is."""
  return os.fspath(path(location).joinpath(*parts))


LOCAL_TOOLS = ('MIDI, figures and audio are written with local tools; render into a local folder and upload it '
               '(`vrash-report --workdir gs://...` does both)')


def require_local(location: PathLike, name: str, reason: str = LOCAL_TOOLS) -> None:
  """Refuses a gs:// `location` where the code that uses it works with local files only."""
  if is_remote(location):
    raise VrashError(f'{name} must be a local folder, not {os.fspath(location)!r}: {reason}')


def read_text(location: PathLike) -> str:
  return path(location).read_text(encoding='utf-8')


def modified(location: PathLike) -> int:
  """When a file last changed: nanoseconds on a disk, the object's update time in a bucket."""
  return path(location).stat().mtime if is_remote(location) else os.stat(location).st_mtime_ns


def write_text(location: PathLike, text: str) -> None:
  """Replaces a file whole: a reader sees the old text or the new, never a part. On a disk via
  a temporary file and an atomic rename; an object is replaced by one upload anyway."""
  target = path(location)
  target.parent.mkdir(parents=True, exist_ok=True)
  if is_remote(location):
    target.write_text(text, encoding='utf-8')
    return
  with tempfile.NamedTemporaryFile('w', encoding='utf-8', dir=target.parent, delete=False,
                                   prefix=f'.{target.name}.') as f:
    f.write(text)
  os.replace(f.name, target)


def files_under(folder: PathLike) -> Iterator[epath.Path]:
  """Every file under `folder`, at any depth."""
  for child in path(folder).iterdir():
    if child.is_dir():
      yield from files_under(child)
    else:
      yield child


def copy_tree(source: PathLike, target: PathLike) -> None:
  """Copies every file under `source` to the same place under `target` (local or remote)."""
  prefix = len(os.fspath(path(source)).rstrip('/')) + 1
  for file in files_under(source):
    destination = path(target) / os.fspath(file)[prefix:]
    destination.parent.mkdir(parents=True, exist_ok=True)
    file.copy(destination, overwrite=True)


def move_aside(source: PathLike, target: PathLike) -> None:
  """Moves a folder out of the way. On a disk one rename; in a bucket a copy of every object,
  then a delete of the source: a crash in between leaves both, and the source is moved aside
  again on the next attempt (the copy made first is kept)."""
  if not is_remote(source):
    os.makedirs(os.path.dirname(os.fspath(path(target))), exist_ok=True)
    shutil.move(os.fspath(path(source)), os.fspath(path(target)))
    return
  copy_tree(source, target)
  path(source).rmtree()


@contextlib.contextmanager
def staged(location: PathLike) -> Iterator[str]:
  """A local folder to write files into with any library (MIDI, WAV, PNG): `location` itself
  when local, else a temporary folder whose files are uploaded to `location` at the end."""
  if not is_remote(location):
    os.makedirs(location, exist_ok=True)
    yield os.fspath(location)
    return
  with tempfile.TemporaryDirectory(prefix='vrash-staged-') as local:
    yield local
    copy_tree(local, location)


class _FileLock:
  """An advisory flock on WORKDIR/.train.lock: released by the kernel even on kill -9."""

  def __init__(self, workdir: str):
    os.makedirs(workdir, exist_ok=True)
    self.path = os.path.join(workdir, LOCK_NAME)
    self._file = None

  def acquire(self, owner: str) -> None:
    self._file = open(self.path, 'a+')
    try:
      fcntl.flock(self._file, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
      self._file.seek(0)
      holder = self._file.read().strip() or 'another process'
      self._file.close()
      raise VrashError(f'{os.path.dirname(self.path)!r} is in use by a training process ({holder}); '
                       'wait for it to finish or use another --workdir') from None
    self._file.seek(0)
    self._file.truncate()
    self._file.write(owner)
    self._file.flush()

  def release(self) -> None:
    fcntl.flock(self._file, fcntl.LOCK_UN)
    self._file.close()


class _ObjectLock:
  """WORKDIR/.train.lock as an object: created only if absent (generation 0), refreshed every
  `heartbeat_s` under a precondition on its own generation, deleted on release. A lock whose
  last heartbeat is older than `stale_after_s` (its owner was killed) is taken over, again under
  a precondition, so of two processes taking it over only one wins."""

  def __init__(self, workdir: str, stale_after_s: float, heartbeat_s: float):
    from google.cloud import storage  # with gcsfs: the `gcs` extra
    _require_client(workdir.partition('://')[0])
    bucket, _, name = f'{workdir.rstrip("/")}/{LOCK_NAME}'.partition('://')[2].partition('/')
    self.url, self.stale_after_s, self.heartbeat_s = f'gs://{bucket}/{name}', stale_after_s, heartbeat_s
    self._blob = storage.Client().bucket(bucket).blob(name)
    self.generation: int | None = None
    self.lost = False
    self._stop = threading.Event()
    self._thread: threading.Thread | None = None

  def acquire(self, owner: str) -> None:
    from google.api_core import exceptions
    self._body = json.dumps({'owner': owner})
    try:
      self._write(0)
    except exceptions.PreconditionFailed:
      self._take_over_if_stale()
    self._thread = threading.Thread(target=self._beat, daemon=True, name='lock-heartbeat')
    self._thread.start()

  def _write(self, generation: int) -> None:
    self._blob.upload_from_string(self._body, content_type='application/json', if_generation_match=generation)
    self.generation = self._blob.generation

  def _take_over_if_stale(self) -> None:
    from google.api_core import exceptions
    try:
      self._blob.reload()
      holder = json.loads(self._blob.download_as_text(if_generation_match=self._blob.generation))['owner']
    except exceptions.NotFound:  # released meanwhile
      return self._write(0)
    age = (datetime.datetime.now(datetime.timezone.utc) - self._blob.updated).total_seconds()
    if age <= self.stale_after_s:
      raise VrashError(f'{self.url.rpartition("/")[0]!r} is in use by a training process ({holder}, '
                       f'heartbeat {age:.0f} s ago); wait for it to finish or use another --workdir '
                       f'(a lock without a heartbeat for {self.stale_after_s:.0f} s is taken over)')
    logging.warning('taking over %s: its owner (%s) sent no heartbeat for %.0f s', self.url, holder, age)
    try:
      self._write(self._blob.generation)
    except exceptions.PreconditionFailed:
      raise VrashError(f'{self.url}: another process took over the stale lock first') from None

  def _beat(self) -> None:
    while not self._stop.wait(self.heartbeat_s) and self.beat():
      pass

  def beat(self) -> bool:
    """Refreshes the lock; False once another process has taken it over."""
    from google.api_core import exceptions
    try:
      self._write(self.generation)
    except exceptions.PreconditionFailed:
      self.lost = True
      logging.error('%s was taken over by another process: this one no longer owns the workdir', self.url)
    except Exception as e:  # a network error: try again at the next beat
      logging.warning('lock heartbeat on %s failed (%s); retrying', self.url, e)
    return not self.lost

  def release(self) -> None:
    from google.api_core import exceptions
    self._stop.set()
    if self._thread is not None:
      self._thread.join()
    if self.lost:
      return
    with contextlib.suppress(exceptions.NotFound, exceptions.PreconditionFailed):
      self._blob.delete(if_generation_match=self.generation)


class WorkdirLock:
  """An exclusive lock on a workdir for one training process (on pods: process 0's).

  Locally a flock, which the kernel releases even on kill -9. On gs:// an object with a
  heartbeat: a trainer killed with -9 leaves it behind, and the next trainer takes it over once
  it is `stale_after_s` old (so a restart right after a crash waits that long at most, and
  refuses until then). `check()` raises once another process has taken it over.
  """

  def __init__(self, workdir: PathLike, stale_after_s: float = 120.0, heartbeat_s: float = 15.0):
    workdir = os.fspath(workdir)
    self._lock = (_ObjectLock(workdir, stale_after_s, heartbeat_s) if is_remote(workdir)
                  else _FileLock(workdir))

  def __enter__(self) -> 'WorkdirLock':
    self._lock.acquire(f'pid {os.getpid()} on {os.uname().nodename} since {time.strftime("%Y-%m-%d %H:%M:%S")}')
    return self

  def check(self) -> None:
    """Raises if another process has taken the lock over (this one's heartbeat failed too long)."""
    if getattr(self._lock, 'lost', False):
      raise VrashError(f'{self._lock.url} was taken over by another process after this one sent no '
                       'heartbeat for too long; this process stopped writing to the workdir')

  def __exit__(self, *exc) -> None:
    self._lock.release()

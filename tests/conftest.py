import http.server
import os
import threading
from pathlib import Path

import pytest

# Keep unit tests deterministic and light on a 2-core machine.
os.environ.setdefault("TVQ_CACHE_DIR", os.path.join(os.path.dirname(__file__), "..", ".cache", "test-cache"))


@pytest.fixture(autouse=True)
def _seed_torch():
    try:
        import torch
    except ImportError:  # pragma: no cover
        yield
        return
    torch.manual_seed(0)
    # Tiny tensors gain nothing from a second thread and lose a lot when the cores are shared.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# -- the thesis's evaluators ------------------------------------------------------------------------
# CI sets $TVQ_EVALUATOR_DIR to ../shared/evaluators/lee2023-fcn when that folder exists; tests
# that need the real weights use this fixture and say why they skip without them.
EVALUATOR_DIR = os.environ.get("TVQ_EVALUATOR_DIR", "")


@pytest.fixture
def real_evaluators() -> Path:
    d = Path(EVALUATOR_DIR) if EVALUATOR_DIR else None
    if d is None or not (d / "GunPoint.ckpt").is_file():
        pytest.skip("needs the thesis's evaluators (Lee et al.'s 128 FCNs): set $TVQ_EVALUATOR_DIR to their folder")
    return d


# -- an HTTP server on 127.0.0.1 for download tests ----------------------------------------------------
class _Handler(http.server.BaseHTTPRequestHandler):
    payloads: dict[str, bytes] = {}
    lie_about_length: set[str] = set()

    def do_GET(self):  # noqa: N802 (http.server's naming)
        body = self.payloads.get(self.path)
        if body is None:
            self.send_response(404)
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/zip")
        length = len(body) * 2 if self.path in self.lie_about_length else len(body)
        self.send_header("Content-Length", str(length))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def server(monkeypatch):
    """An HTTP server on 127.0.0.1 serving ``server.payloads[path]``; UCR downloads point at ``/ucr``."""
    _Handler.payloads = {}
    _Handler.lie_about_length = set()
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    _Handler.base = f"http://127.0.0.1:{httpd.server_address[1]}"
    monkeypatch.setenv("TVQ_UCR_URL", f"{_Handler.base}/ucr")
    yield _Handler
    httpd.shutdown()
    httpd.server_close()


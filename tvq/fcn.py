"""The FCN classifier of section 2.5.3: the evaluator behind FID, IS and CAS.

Wang et al.'s fully convolutional network is three convolution blocks (Conv1d → batch
norm → ReLU) with 128, 256 and 128 channels and kernel sizes 8, 5 and 3, "same" padding
so the length never changes, then global average pooling and one linear layer. The
pooled 128-vector is the feature FID compares; the softmax of the linear layer is the
p_eta(y | x) that IS reads. Appendix D gives the recipe: AdamW, learning rate 1e-3,
weight decay 1e-5, batch 256, 1000 epochs, cosine schedule, cross-entropy.

The thesis used classifiers that Lee et al. (2023) trained and published; those weights
cannot be fetched here, so tvq trains one per dataset with the same recipe and caches
it on disk. The cache is keyed by a hash of the data arrays and the recipe, written
atomically, and read back without unpickling anything: the weights are a plain state
dict (``torch.load(weights_only=True)``) and the metadata is JSON.

Reading order: the network, the recipe, training and scoring, then the disk cache.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import tempfile
import time
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from .device import compile_modules, threads_used
from .errors import CheckpointError, EvaluationError
from .io import write_json

# Bump when the network or the training loop changes in a way that changes the weights:
# every cached evaluator made by an older version then becomes a cache miss.
FCN_VERSION = "fcn-v1"

CHANNELS = (128, 256, 128)
KERNELS = (8, 5, 3)


# --------------------------------------------------------------------------------------
# The network (section 2.5.3, Figure 10)
# --------------------------------------------------------------------------------------
class FCN(nn.Module):
    """p_eta(y | x): three conv blocks, global average pooling, one linear layer.

    ``forward`` returns logits; ``features`` returns the pooled 128-vector used for FID.
    Inputs are ``(B, L)`` or ``(B, 1, L)``; any length works (the network is convolutional).
    """

    def __init__(self, n_classes: int, in_channels: int = 1) -> None:
        super().__init__()
        if n_classes < 1:
            raise EvaluationError(f"the FCN needs at least one class, got n_classes={n_classes}")
        self.n_classes = n_classes
        self.in_channels = in_channels
        layers: list[nn.Module] = []
        c_in = in_channels
        for c_out, k in zip(CHANNELS, KERNELS):
            # "Same" padding keeps the length; the even kernel's odd extra zero goes on the
            # right, as TensorFlow's "same" does in the original FCN. Padding explicitly
            # (rather than padding="same") avoids a hidden copy and a warning per call.
            layers += [nn.ConstantPad1d(((k - 1) // 2, k // 2), 0.0), nn.Conv1d(c_in, c_out, k),
                       nn.BatchNorm1d(c_out), nn.ReLU()]
            c_in = c_out
        self.blocks = nn.Sequential(*layers)
        self.head = nn.Linear(c_in, n_classes)

    def _as_channels(self, x: torch.Tensor) -> torch.Tensor:
        return x.unsqueeze(1) if x.dim() == 2 else x

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The representation after global average pooling, (B, 128): FID's feature space."""
        return self.blocks(self._as_channels(x)).mean(dim=-1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


# --------------------------------------------------------------------------------------
# The recipe (appendix D)
# --------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Recipe:
    """Everything that decides the trained weights besides the data."""

    epochs: int
    batch_size: int
    lr: float
    weight_decay: float
    seed: int

    @classmethod
    def from_config(cls, cfg: Any) -> "Recipe":
        return cls(epochs=int(cfg.fcn_epochs), batch_size=int(cfg.fcn_batch_size), lr=float(cfg.fcn_lr),
                   weight_decay=float(cfg.fcn_weight_decay), seed=int(cfg.seed))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def cosine_lr(lr0: float, step: int, total_steps: int) -> float:
    """Cosine annealing from lr0 to 0 over ``total_steps``, no warm-up (appendix D)."""
    if total_steps <= 0:
        return lr0
    return 0.5 * lr0 * (1.0 + math.cos(math.pi * min(step, total_steps) / total_steps))


# --------------------------------------------------------------------------------------
# Training and scoring
# --------------------------------------------------------------------------------------
def _check_xy(x: np.ndarray, y: np.ndarray, n_classes: int, what: str) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(x)
    y = np.asarray(y)
    if x.ndim == 3 and x.shape[1] == 1:
        x = x[:, 0]
    if x.ndim != 2:
        raise EvaluationError(f"{what}: series must have shape (N, L) or (N, 1, L), got {x.shape}")
    if y.shape != (x.shape[0],):
        raise EvaluationError(f"{what}: {x.shape[0]} series but labels of shape {y.shape}")
    if x.shape[0] == 0:
        raise EvaluationError(f"{what}: no series")
    if not np.all(np.isfinite(x)):
        raise EvaluationError(f"{what}: series contain NaN or infinite values")
    if not np.issubdtype(y.dtype, np.integer):
        if not np.all(np.isfinite(y)) or np.any(y != np.round(y)):
            raise EvaluationError(f"{what}: labels must be integers")
    y = y.astype(np.int64)
    if y.min() < 0 or y.max() >= n_classes:
        raise EvaluationError(f"{what}: labels must lie in 0..{n_classes - 1}, got {y.min()}..{y.max()}")
    return x.astype(np.float32, copy=False), y


def train_fcn(x: np.ndarray, y: np.ndarray, n_classes: int, recipe: Recipe,
              device: torch.device | str = "cpu", progress: bool = False,
              checkpoint: Path | None = None, checkpoint_every_s: float = 300.0,
              stop_at_epoch: int | None = None, compile_mode: str = "none", precision: str = "fp32") -> FCN:
    """Fit an FCN with the appendix D recipe; the same seed and data give the same weights.

    The initial weights and the batch order come from ``recipe.seed`` alone (the caller's
    random state is left untouched), so TRTR and TSTR run the very same procedure and
    differ only in the training data. Returns the model in eval mode.

    ``checkpoint``: a file to save the training state to every ``checkpoint_every_s``
    seconds (at an epoch boundary) and to resume from. TSTR on 1024 synthetic series of
    length ~300 is hours on a CPU core, longer than a working session; a resumed fit
    continues with the same weights, optimiser moments and batch order, so it ends with the
    same model as an uninterrupted one. A checkpoint of other data or another recipe is
    ignored (and overwritten); the file is removed once training ends.

    ``stop_at_epoch``: end after that many epochs with the state saved to ``checkpoint``, which
    is then kept, so that the fit can be finished by another call (on another machine, say).
    The model returned is unfinished.

    ``compile_mode``: :func:`tvq.device.compile_modules` on the network (``none``: eager).

    ``precision``: ``bf16`` runs the forward and backward passes under bfloat16 autocast (the
    weights, the optimiser and the loss stay float32); TSTR's option ``tstr_precision``. The
    evaluators are always fitted in fp32.
    """
    x, y = _check_xy(x, y, n_classes, "FCN training data")
    if precision not in ("fp32", "bf16"):
        raise ValueError(f"precision must be fp32 or bf16, got {precision!r}")
    if stop_at_epoch is not None and (checkpoint is None or not 0 < stop_at_epoch < recipe.epochs):
        raise ValueError(f"stop_at_epoch needs a checkpoint and 0 < stop_at_epoch < {recipe.epochs}, "
                         f"got {stop_at_epoch}")
    device = torch.device(device)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(recipe.seed)
        model = FCN(n_classes)
    model.to(device).train()
    compile_modules([model], compile_mode)
    # Weight decay on every parameter, as a plain AdamW(model.parameters()) does.
    opt = torch.optim.AdamW(model.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay)
    loss_fn = nn.CrossEntropyLoss()
    xt = torch.from_numpy(np.ascontiguousarray(x)).to(device)
    yt = torch.from_numpy(y).to(device)
    n = xt.shape[0]
    steps_per_epoch = math.ceil(n / recipe.batch_size)
    total = recipe.epochs * steps_per_epoch
    gen = torch.Generator().manual_seed(recipe.seed)
    step, start_epoch, earlier_s, earlier_threads = 0, 0, 0.0, None
    key = {"recipe": recipe.to_dict(), "data": data_fingerprint(x, y), "n_classes": int(n_classes)}
    if precision != "fp32":   # (left out at fp32, so that checkpoints written before still resume)
        key["precision"] = precision
    if checkpoint is not None and Path(checkpoint).is_file():
        state = _read_fit_state(Path(checkpoint), key)
        if state is not None:
            model.load_state_dict(state["model"])
            opt.load_state_dict(state["opt"])
            gen.set_state(state["gen"])
            step, start_epoch = int(state["step"]), int(state["epoch"])
            earlier_s = float(state.get("elapsed_s", 0.0))
            earlier_threads = state.get("threads")
    if stop_at_epoch is not None and stop_at_epoch <= start_epoch:
        raise CheckpointError(f"{checkpoint} is at epoch {start_epoch}, not before stop_at_epoch={stop_at_epoch}")
    threads = threads_used(earlier_threads, resumed=start_epoch > 0)
    epochs: Iterable[int] = range(start_epoch, recipe.epochs)
    if progress:
        epochs = tqdm(epochs, desc="FCN", unit="epoch", leave=False, initial=start_epoch, total=recipe.epochs)
    t_start = last_save = time.monotonic()
    for epoch in epochs:
        order = torch.randperm(n, generator=gen).to(device)
        for i in range(steps_per_epoch):
            idx = order[i * recipe.batch_size:(i + 1) * recipe.batch_size]
            for group in opt.param_groups:
                group["lr"] = cosine_lr(recipe.lr, step, total)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16"):
                logits = model(xt[idx])
            loss = loss_fn(logits.float(), yt[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
        stop = epoch + 1 == stop_at_epoch
        if checkpoint is not None and epoch + 1 < recipe.epochs and (
                stop or time.monotonic() - last_save >= checkpoint_every_s):
            _write_fit_state(Path(checkpoint), {**key, "epoch": epoch + 1, "step": step, "model": model.state_dict(),
                                                "opt": opt.state_dict(), "gen": gen.get_state(),
                                                "elapsed_s": earlier_s + time.monotonic() - t_start,
                                                "threads": threads})
            last_save = time.monotonic()
        if stop:
            break
    if checkpoint is not None and stop_at_epoch is None:
        Path(checkpoint).unlink(missing_ok=True)
    # Seconds spent by the invocations before a resume, so that wall times stay whole.
    model.resumed_seconds = earlier_s
    model.threads_used = threads  # torch threads over every invocation of this fit (None: partly unknown)
    return model.eval()


def _write_fit_state(path: Path, state: dict[str, Any]) -> None:
    """Atomically: a crash while saving leaves the previous checkpoint, never half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def _read_fit_state(path: Path, key: dict[str, Any]) -> dict[str, Any] | None:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)  # tensors and plain data only: no code runs
    except Exception:  # unreadable (e.g. truncated by a full disk): start over
        return None
    if not isinstance(state, dict) or any(state.get(k) != v for k, v in key.items()):
        return None
    return state


# Series positions per inference batch: the widest activation (256 channels, float32) then
# takes 256 MiB, whatever the series length.
PREDICT_POSITIONS = 1 << 18


@torch.inference_mode()
def predict(model: FCN, x: np.ndarray, batch_size: int | None = None,
            device: torch.device | str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """One pass over ``x``: pooled features (N, 128) float64 and softmax p(y|x) (N, C) float64.

    ``batch_size=None`` picks the largest batch (up to 1024) whose activations stay near
    256 MiB, so long series (length ~3000) do not exhaust memory.
    """
    model.eval()
    device = torch.device(device) if device is not None else next(model.parameters()).device
    x = np.asarray(x, dtype=np.float32)
    if batch_size is None:
        batch_size = max(1, min(1024, PREDICT_POSITIONS // max(1, x.shape[-1])))
    feats, probs = [], []
    for i in range(0, x.shape[0], batch_size):
        xb = torch.from_numpy(np.ascontiguousarray(x[i:i + batch_size])).to(device)
        h = model.features(xb)
        feats.append(h.double().cpu())
        probs.append(torch.softmax(model.head(h).double(), dim=-1).cpu())
    if not feats:
        return np.zeros((0, CHANNELS[-1])), np.zeros((0, model.n_classes))
    return torch.cat(feats).numpy(), torch.cat(probs).numpy()


def accuracy(model: FCN, x: np.ndarray, y: np.ndarray, batch_size: int | None = None) -> float:
    """Fraction of ``x`` the model labels correctly."""
    _, p = predict(model, x, batch_size=batch_size)
    return float(np.mean(p.argmax(axis=1) == np.asarray(y)))


def fit_and_score(x_fit: np.ndarray, y_fit: np.ndarray, x_test: np.ndarray, y_test: np.ndarray,
                  n_classes: int, recipe: Recipe, device: torch.device | str = "cpu",
                  progress: bool = False, checkpoint: Path | None = None,
                  compile_mode: str = "none", precision: str = "fp32") -> tuple[FCN, float]:
    """Train on (x_fit, y_fit), return the model and its accuracy on the real test set.

    With the real training set this is TRTR; with labelled synthetic series it is TSTR
    (section 2.6.4). One function for both keeps the two scores comparable.
    """
    x_test, y_test = _check_xy(x_test, y_test, n_classes, "real test set")
    model = train_fcn(x_fit, y_fit, n_classes, recipe, device=device, progress=progress, checkpoint=checkpoint,
                      compile_mode=compile_mode, precision=precision)
    return model, accuracy(model, x_test, y_test)


# --------------------------------------------------------------------------------------
# The disk cache
# --------------------------------------------------------------------------------------
def cache_dir() -> Path:
    """``$TVQ_CACHE_DIR/fcn`` (default ``~/.cache/tvq/fcn``)."""
    root = os.environ.get("TVQ_CACHE_DIR") or os.path.join(os.path.expanduser("~"), ".cache", "tvq")
    return Path(root) / "fcn"


def data_fingerprint(*arrays: np.ndarray) -> str:
    """SHA-256 over dtype, shape and bytes of each array: any change in the data changes it."""
    h = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(f"{a.dtype.str}{a.shape}".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def cache_key(x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, y_test: np.ndarray,
              n_classes: int, recipe: Recipe) -> str:
    """Key of one evaluator: the data (test set too, since TRTR is stored), the recipe, the code version."""
    h = hashlib.sha256()
    h.update(FCN_VERSION.encode())
    h.update(data_fingerprint(np.asarray(x_train, np.float32), np.asarray(y_train, np.int64),
                              np.asarray(x_test, np.float32), np.asarray(y_test, np.int64)).encode())
    h.update(json.dumps({"n_classes": int(n_classes), **recipe.to_dict()}, sort_keys=True).encode())
    return h.hexdigest()


def cache_meta_path(name: str, key: str, root: Path | None = None) -> Path:
    """The JSON metadata file of one (data set, key); it names its weights file."""
    root = root if root is not None else cache_dir()
    safe = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in name) or "data"
    return root / f"{safe}-{key[:16]}.json"


def file_sha256(path: Path) -> str:
    """SHA-256 of a file's bytes, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def save_fcn(model: FCN, meta_path: Path, meta: dict[str, Any]) -> Path:
    """Write the state dict, then the metadata that points to it; return the weights path.

    The weights file is named after its own SHA-256 and moved into place before the JSON
    is written (atomically too), so any metadata a reader can see refers to a complete
    weights file, even when two processes train the same evaluator at once. A crash
    between the two steps leaves no metadata: the next run sees a cache miss.
    """
    meta_path = Path(meta_path)
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    meta_path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{meta_path.stem}.", suffix=".pt.tmp", dir=meta_path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        torch.save(state, tmp)
        sha = file_sha256(tmp)
        weights_path = meta_path.with_name(f"{meta_path.stem}.{sha[:16]}.pt")
        os.replace(tmp, weights_path)
    finally:
        tmp.unlink(missing_ok=True)
    full = {**meta, "n_classes": model.n_classes, "in_channels": model.in_channels, "version": FCN_VERSION,
            "weights_file": weights_path.name, "weights_sha256": sha}
    write_json(meta_path, full)
    return weights_path


def read_meta(meta_path: Path) -> dict[str, Any]:
    try:
        meta = json.loads(Path(meta_path).read_text())
    except FileNotFoundError:
        raise CheckpointError(f"FCN metadata not found: {meta_path}") from None
    except (json.JSONDecodeError, UnicodeDecodeError, OSError) as exc:
        raise CheckpointError(f"FCN metadata {meta_path} is unreadable ({exc.__class__.__name__})") from None
    if not isinstance(meta, dict):
        raise CheckpointError(f"FCN metadata {meta_path} is not a JSON object")
    return meta


def weights_path_of(meta_path: Path, meta: dict[str, Any]) -> Path:
    """Where the metadata says the weights are (always beside it: no path from the file is trusted)."""
    name = meta.get("weights_file")
    if not isinstance(name, str) or Path(name).name != name or not name.endswith(".pt"):
        raise CheckpointError(f"{meta_path}: no valid weights file named in the metadata")
    return Path(meta_path).with_name(name)


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """A file of tensors only, read with ``weights_only=True`` (no pickled object can run);
    anything else is a :class:`CheckpointError`."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for a bad file; all mean "unreadable"
        raise CheckpointError(f"{path}: not a readable state dict ({exc.__class__.__name__})") from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{path}: expected a state dict of tensors")
    return state


def load_fcn(meta_path: Path, expected_key: str | None = None,
             device: torch.device | str = "cpu") -> tuple[FCN, dict[str, Any]]:
    """Load a cached evaluator; refuse one whose key, checksum or tensors do not match.

    Every failure is a :class:`CheckpointError`: missing or unreadable files, a key made
    from other data or another recipe, weights whose bytes changed since they were saved,
    or a state dict that does not fit the network.
    """
    meta = read_meta(meta_path)
    if meta.get("version") != FCN_VERSION:
        raise CheckpointError(f"{meta_path}: made by {meta.get('version')!r}, this code is {FCN_VERSION!r}")
    if expected_key is not None and meta.get("key") != expected_key:
        raise CheckpointError(f"{meta_path}: cached FCN was trained on other data or with another recipe")
    weights_path = weights_path_of(meta_path, meta)
    if not weights_path.exists():
        raise CheckpointError(f"FCN weights not found: {weights_path}")
    if file_sha256(weights_path) != meta.get("weights_sha256"):
        raise CheckpointError(f"{weights_path}: weights do not match their checksum (corrupted or replaced)")
    state = read_state_dict(weights_path)
    try:
        model = FCN(int(meta["n_classes"]), in_channels=int(meta.get("in_channels", 1)))
        model.load_state_dict(state, strict=True)
    except (KeyError, TypeError, ValueError, RuntimeError, EvaluationError) as exc:
        raise CheckpointError(f"{weights_path}: state dict does not fit the FCN ({exc.__class__.__name__})") from None
    return model.to(device).eval(), meta


def train_or_load(name: str, x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray,
                  y_test: np.ndarray, n_classes: int, recipe: Recipe,
                  device: torch.device | str = "cpu", retrain: bool = False,
                  progress: bool = False) -> tuple[FCN, float, dict[str, Any]]:
    """The evaluator of one data set: from the cache when a matching one exists, else trained.

    Returns (model, TRTR accuracy, metadata); the metadata's ``meta_path`` and
    ``weights_path`` say where it lives. A missing entry is a miss; one that exists but
    fails to load is an error, not silently replaced, so a damaged cache gets noticed
    (``retrain=True`` overwrites it).
    """
    key = cache_key(x_train, y_train, x_test, y_test, n_classes, recipe)
    meta_path = cache_meta_path(name, key)
    if meta_path.exists() and not retrain:
        model, meta = load_fcn(meta_path, expected_key=key, device=device)
        meta.update(cache_hit=True, meta_path=str(meta_path), weights_path=str(weights_path_of(meta_path, meta)))
        return model, float(meta["trtr"]), meta
    model, trtr = fit_and_score(x_train, y_train, x_test, y_test, n_classes, recipe, device=device,
                                progress=progress)
    meta = {"key": key, "dataset": name, "recipe": recipe.to_dict(), "trtr": trtr,
            "n_train": int(np.asarray(x_train).shape[0]), "length": int(np.asarray(x_train).shape[-1]),
            "torch": torch.__version__}
    weights_path = save_fcn(model, meta_path, meta)
    if retrain:  # the user asked to replace the entry: drop weights no metadata refers to now
        for old in meta_path.parent.glob(f"{meta_path.stem}.*.pt"):
            if old != weights_path:
                old.unlink(missing_ok=True)
    meta = read_meta(meta_path)
    meta.update(cache_hit=False, meta_path=str(meta_path), weights_path=str(weights_path))
    return model, trtr, meta

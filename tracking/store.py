"""Where runs are stored: the tracking URI, resolved and checked before any work starts."""

from __future__ import annotations

import os
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlparse

DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"  # MLflow 3's own default store, in the working dir
REACH_TIMEOUT_S = 5.0  # an unreachable server is reported well within 10 s


class TrackingError(Exception):
    """The tracking store cannot be used (one-line message for the user)."""


def resolve_tracking_uri(uri: str | None = None) -> str:
    """``uri`` if given, else ``$MLFLOW_TRACKING_URI``, else ``sqlite:///mlflow.db``."""
    return uri or os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI


def check_tracking_uri(uri: str, timeout: float = REACH_TIMEOUT_S) -> None:
    """Fail fast (before any training) when the tracking store cannot be reached.

    Raises:
        TrackingError: naming the URI, the reason and how to fix it.
    """
    parsed = urlparse(uri)
    if parsed.scheme in ("http", "https"):
        url = uri.rstrip("/") + "/health"
        try:
            with urllib.request.urlopen(url, timeout=timeout) as resp:
                if resp.status != 200:
                    raise TrackingError(
                        f"tracking server {uri} answered HTTP {resp.status} on /health"
                    )
        except (urllib.error.URLError, OSError, TimeoutError) as e:
            reason = getattr(e, "reason", e)
            raise TrackingError(
                f"cannot reach the MLflow tracking server at {uri} ({reason}); start one with "
                "`mlflow server --host 127.0.0.1 --port 5000` or drop --tracking-uri to use "
                f"{DEFAULT_TRACKING_URI}"
            ) from None
        check_credentials(uri)
    elif parsed.scheme == "sqlite":
        path = sqlite_path(uri)
        if path and str(path) != ":memory:":
            parent = path.expanduser().resolve().parent
            if not parent.is_dir():
                raise TrackingError(
                    f"the folder of the sqlite store {uri} does not exist ({parent}); create it "
                    "or use another --tracking-uri"
                )
            check_sqlite_file(uri, path.expanduser())
    elif parsed.scheme in ("", "file"):
        if os.environ.get("MLFLOW_ALLOW_FILE_STORE", "").lower() not in ("1", "true"):
            raise TrackingError(
                f"the tracking URI {uri!r} is a file store, which MLflow 3 keeps in maintenance "
                "mode (it refuses it); use --tracking-uri sqlite:///mlflow.db (the default), or "
                "set MLFLOW_ALLOW_FILE_STORE=true to use the folder anyway"
            )
    elif parsed.scheme not in ("databricks", "postgresql", "mysql", "mssql"):
        raise TrackingError(
            f"unsupported tracking URI {uri!r}; use sqlite:///PATH.db, http://HOST:PORT or a folder"
        )


AUTH_ENV = ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD")


def check_credentials(uri: str) -> None:
    """A tracking server that requires authentication (``mlflow server --app-name basic-auth``)
    must accept this process's credentials before any work starts. The server's ``/health``
    is open to everyone, so this asks an authenticated endpoint through MLflow's own client,
    which sends whatever MLflow reads from the environment (``MLFLOW_TRACKING_USERNAME`` and
    ``MLFLOW_TRACKING_PASSWORD``, or ``MLFLOW_TRACKING_TOKEN``).

    Raises:
        TrackingError: the server refused (401: no or wrong credentials; 403: no permission).
    """
    import mlflow
    from mlflow.exceptions import MlflowException, RestException

    try:
        mlflow.MlflowClient(uri).search_experiments(max_results=1)
    except (RestException, MlflowException) as e:
        code = getattr(e, "get_http_status_code", lambda: None)()
        text = str(e)
        if code == 401 or "401" in text or "not authenticated" in text.lower():
            given = [k for k in AUTH_ENV if os.environ.get(k)]
            what = (
                "rejected the credentials in " + " and ".join(given)
                if given
                else "requires a login and none was given"
            )
            raise TrackingError(
                f"the tracking server {uri} {what} (HTTP 401); set MLFLOW_TRACKING_USERNAME "
                "and MLFLOW_TRACKING_PASSWORD to an account on that server"
            ) from None
        if code == 403 or "403" in text or "permission" in text.lower():
            user = os.environ.get("MLFLOW_TRACKING_USERNAME", "this user")
            raise TrackingError(
                f"the tracking server {uri} denies {user} access (HTTP 403); ask its admin "
                "for EDIT permission on the experiment"
            ) from None
        first = text.strip().splitlines()[0][:200] if text.strip() else type(e).__name__
        raise TrackingError(f"the tracking server {uri} answered an error: {first}") from None


SQLITE_MAGIC = b"SQLite format 3\x00"


def check_sqlite_file(uri: str, path: Path) -> None:
    """An existing sqlite store must be a readable SQLite database (an empty file is one that
    sqlite itself would create); anything else is a one-line error, before MLflow touches it.

    Raises:
        TrackingError: naming the file and what to do.
    """
    if not path.exists():
        return
    if path.is_dir():
        raise TrackingError(f"the sqlite store {uri} is a folder ({path}); pass a .db file path")
    try:
        with open(path, "rb") as f:
            head = f.read(len(SQLITE_MAGIC))
    except OSError as e:
        raise TrackingError(f"cannot read the sqlite store {uri} ({e.strerror})") from None
    if head and head != SQLITE_MAGIC:
        raise TrackingError(
            f"{path} is not an SQLite database (not an MLflow store); pass another "
            "--tracking-uri or move the file away"
        )


def init_store(uri: str) -> None:
    """Open a tracking store for writing, safe under concurrency: for a sqlite store the
    first open (which creates the schema and runs MLflow's migrations) is serialised by an
    exclusive lock on ``<database>.lock`` beside it, so any number of rnnbench processes may
    start on a new store at once (unserialised, one of two fails in the migration with
    "duplicate column name"). Other stores are left to their server.

    Example:
        >>> init_store("sqlite:////tmp/rnnbench-doctest.db")  # doctest: +SKIP
    """
    path = sqlite_path(uri)
    if path is None or str(path) == ":memory:":
        return
    import fcntl

    import mlflow

    lock = path.expanduser().with_name(path.name + ".lock")
    with open(lock, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            if not path.expanduser().exists():
                _new_from_template(path.expanduser())
            mlflow.MlflowClient(uri).search_experiments(max_results=1)  # schema + migrations
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _template_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "rnnbench"


def _new_from_template(path: Path) -> None:
    """Create the new sqlite store ``path`` as a copy of an empty store this MLflow version
    made once (cached beside JAX's cache, ``~/.cache/rnnbench``): MLflow builds a new store by
    running every migration since its first schema, seconds per store, the same for every
    empty store. The copy's one store-specific value, the Default experiment's artifact
    location and times, is set as MLflow would have set it. Any failure leaves ``path`` to
    MLflow to create as usual."""
    import shutil
    import sqlite3
    import time

    import mlflow

    try:
        from mlflow.store.tracking import DEFAULT_LOCAL_FILE_AND_ARTIFACT_PATH
        from mlflow.utils.uri import append_to_uri_path, resolve_uri_if_local

        folder = _template_dir()
        template = folder / f"empty-store-mlflow-{mlflow.__version__}.db"
        if not template.exists():
            folder.mkdir(parents=True, exist_ok=True)
            tmp = folder / f"{template.name}.{os.getpid()}.tmp"
            mlflow.MlflowClient(f"sqlite:///{tmp}").search_experiments(max_results=1)
            os.replace(tmp, template)
        part = path.with_name(path.name + ".part")
        shutil.copyfile(template, part)
        now = int(time.time() * 1000)
        where = append_to_uri_path(resolve_uri_if_local(DEFAULT_LOCAL_FILE_AND_ARTIFACT_PATH), "0")
        with sqlite3.connect(part) as db:
            db.execute(
                "UPDATE experiments SET artifact_location = ?, creation_time = ?, "
                "last_update_time = ? WHERE experiment_id = 0",
                (where, now, now),
            )
        os.replace(part, path)
    except Exception:  # MLflow creates the store itself
        path.with_name(path.name + ".part").unlink(missing_ok=True)


def sqlite_path(uri: str) -> Path | None:
    """The file of a ``sqlite:///PATH`` tracking URI; ``None`` for any other URI."""
    return Path(uri[len("sqlite:///") :]) if uri.startswith("sqlite:///") else None

"""Install tools/gpu/wheelhouse/ offline into a folder that goes on PYTHONPATH.

Usage: python3 tools/gpu/install_wheelhouse.py WHEELHOUSE TARGET

Fills the gaps of the image: a wheel whose distribution the image already has (same major
version, not older) is skipped, so the image's own packages (pydantic, typing-extensions, ...)
stay the ones used; an older copy in the image is shadowed by the wheelhouse's (logged). keras, mlflow-skinny and rnnbench are always installed. Uses
``pip install --no-index --no-deps --target`` (no network, no resolver; --target also sidesteps
an "externally managed" system Python); where the image has no pip, the wheels are unpacked
by hand (pure zip files; no console scripts then: run the CLI as ``python3 -m suite.cli``).

Run it with the image's Python and without TARGET on PYTHONPATH (it checks what the image has).
"""

from __future__ import annotations

import importlib.metadata as md
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ALWAYS = {"keras", "mlflow-skinny", "rnnbench"}


def canon(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def wheel_name_version(path: Path) -> tuple[str, str]:
    dist, version = path.name.split("-")[:2]
    return canon(dist), version


def parse(version: str):
    try:
        from packaging.version import Version

        return Version(version)
    except Exception:  # noqa: BLE001  (no packaging, or an odd version string)
        return tuple(int(p) if p.isdigit() else 0 for p in re.split(r"[.+-]", version))


def image_has_enough(have: str, ours: str) -> bool:
    """The image's copy will do: same major version and not older than the wheelhouse's."""
    return have.split(".")[0] == ours.split(".")[0] and parse(have) >= parse(ours)


def unpack(wheel: Path, target: Path) -> None:
    """A wheel is a zip: unpack it and move its <name>.data/{purelib,platlib} into place."""
    with zipfile.ZipFile(wheel) as z:
        z.extractall(target)
    for data in target.glob("*.data"):
        for sub in ("purelib", "platlib"):
            src = data / sub
            if src.is_dir():
                for item in src.iterdir():
                    dest = target / item.name
                    if dest.exists():
                        shutil.rmtree(dest) if dest.is_dir() else dest.unlink()
                    shutil.move(str(item), dest)
        shutil.rmtree(data)


def has_pip() -> bool:
    if os.environ.get("KIT_INSTALL_NO_PIP"):  # to try the fallback on a machine with pip
        return False
    probe = subprocess.run([sys.executable, "-m", "pip", "--version"], capture_output=True)
    return probe.returncode == 0


def main() -> int:
    if len(sys.argv) != 3:
        print(__doc__.split("\n\n")[1], file=sys.stderr)
        return 2
    house, target = Path(sys.argv[1]), Path(sys.argv[2])
    wheels = sorted(house.glob("*.whl"))
    if not wheels:
        print(
            f"install: no wheels in {house}; run tools/gpu/build_wheelhouse.sh first",
            file=sys.stderr,
        )
        return 1
    target.mkdir(parents=True, exist_ok=True)
    if str(target.resolve()) in (str(Path(p).resolve()) for p in sys.path if p):
        print(
            f"install: {target} is on sys.path already; run me without it on PYTHONPATH",
            file=sys.stderr,
        )
        return 2

    todo, skipped = [], []
    for w in wheels:
        name, version = wheel_name_version(w)
        try:
            have = md.version(name)
        except md.PackageNotFoundError:
            have = None
        if name not in ALWAYS and have is not None and image_has_enough(have, version):
            skipped.append(f"{name} {have} (image; wheelhouse has {version})")
        else:
            todo.append(w)
            note = f" (shadows the image's {have})" if have else ""
            print(f"install: {name} {version}{note}")
    for s in skipped:
        print(f"skip:    {s}")

    if has_pip():
        cmd = [sys.executable, "-m", "pip", "install", "--quiet", "--no-index", "--no-deps",
               "--no-compile", "--disable-pip-version-check", "--upgrade", "--target", str(target),
               *map(str, todo)]  # fmt: skip
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        env["PIP_CONSTRAINT"] = ""  # a machine-wide constraints file must not get in the way
        rc = subprocess.run(cmd, env=env).returncode
        if rc != 0:
            print(f"install: pip failed (exit {rc})", file=sys.stderr)
            return rc
    else:
        print("install: no pip in this Python; unpacking the wheels by hand")
        for w in todo:
            unpack(w, target)
    print(f"installed {len(todo)} wheels into {target}; {len(skipped)} left to the image")
    return 0


if __name__ == "__main__":
    sys.exit(main())

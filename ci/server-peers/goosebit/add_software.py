"""Registers a file gooseBit cannot parse (our .rua artifact) as gooseBit software.

Run with the gooseBit venv's python and the server's GOOSEBIT_* environment (same database and
artifacts dir). Prints the new software id.

Why: gooseBit 0.2.x takes software only through `PUT /api/v1/software` (a multipart `file`, or a
`url` it downloads), and both paths parse the file's header (`goosebit.updates.swdesc.parse_file`):
an SWUpdate .swu (cpio, magic "0707", `sw-description` first) or a RAUC bundle (squashfs,
"hsqs"); anything else is answered 422 "Software image header cannot be parsed". The version and
the hardware compatibility come only from that header. So this script runs gooseBit's own
`create_software_update` (collision check, storage under ARTIFACTS_DIR/<sha1>/<filename>, the
Software row and its compatibility) with the header parser replaced by one that returns the
version and compatibility given on the command line plus the size and sha1 gooseBit computes for
every upload. The software is served to devices exactly like an uploaded one
(`…/controller/v1/{id}/download`, filename = the file's name, hashes = {"sha1": …}).

Usage: add_software.py FILE --version V [--hw-model M] [--hw-revision R]
"""

import argparse
import asyncio
import hashlib
import os
import pathlib
import sys
from typing import Any


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("file", type=pathlib.Path)
    p.add_argument("--version", required=True)
    # gooseBit's default hardware: a device that never sent hw_boardname/hw_revision in
    # configData is "default"/"default", and an assignment must match the device's hardware.
    p.add_argument("--hw-model", default="default")
    p.add_argument("--hw-revision", default="default")
    return p.parse_args()


def sha1_file(path: pathlib.Path) -> str:
    h = hashlib.sha1()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 18), b""):
            h.update(block)
    return h.hexdigest()


async def main(args: argparse.Namespace) -> int:
    for name in ("GOOSEBIT_DB_URI", "GOOSEBIT_ARTIFACTS_DIR"):
        if name not in os.environ:
            sys.exit(f"add_software.py: {name} must be set (the server's database and artifacts dir)")
    from anyio import Path
    from goosebit import db
    from goosebit.db.models import SoftwareImageFormat
    from goosebit.updates import create_software_update, swdesc
    from goosebit.util.version import Version

    path = args.file.resolve()
    attributes = {
        "version": Version.parse(args.version),
        "compatibility": [{"hw_model": args.hw_model, "hw_revision": args.hw_revision}],
        "size": path.stat().st_size,
        "hash": sha1_file(path),
        # gooseBit knows SWU and RAUC only; the format decides nothing on the device side.
        "image_format": SoftwareImageFormat.SWU,
    }

    async def parse_file(_file: Path) -> dict[str, Any]:
        return dict(attributes)

    swdesc.parse_file = parse_file
    if not await db.init():
        sys.exit("add_software.py: gooseBit database not initialised (run aerich upgrade first)")
    try:
        software = await create_software_update(path.as_uri(), Path(path))
    finally:
        await db.close()
    print(software.id)
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main(parse_args())))

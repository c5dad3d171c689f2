"""What of an image is new at the filesystem's block size (bench/delta-pairs.sh).

    python3 new-blocks.py V1 V2 OUT

Writes to OUT every non-zero 4 KiB block of V2 (at a 4 KiB offset) whose content V1 holds at no
4 KiB offset, in V2's order, and prints "new_blocks new_bytes nonzero_blocks_of_v2". That is the
least any block-copying delta must send as literals; compressed as one stream it is what such a
delta costs without a reference into the base.
"""
import hashlib
import sys
from collections.abc import Iterator

BLOCK = 4096
ZERO = bytes(BLOCK)


def blocks(path: str) -> Iterator[bytes]:
    with open(path, "rb") as f:
        while True:
            buf = f.read(BLOCK << 8)
            if not buf:
                return
            for i in range(0, len(buf), BLOCK):
                yield buf[i:i + BLOCK]


def digest(block: bytes) -> bytes:
    return hashlib.blake2b(block, digest_size=16).digest()


def main() -> None:
    v1, v2, out = sys.argv[1:]
    have = {digest(b) for b in blocks(v1) if b != ZERO}
    new = nonzero = 0
    with open(out, "wb") as f:
        for b in blocks(v2):
            if b == ZERO:
                continue
            nonzero += 1
            if digest(b) not in have:
                new += 1
                f.write(b)
    print(new, new * BLOCK, nonzero)


if __name__ == "__main__":
    main()

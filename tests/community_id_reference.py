#!/usr/bin/env python3
"""The oracle of tests/community_id.rs: compares each EVE record's community_id with what the
reference implementation (pycommunityid, from the spec's authors) computes from the record's
own 5-tuple, and prints one JSON summary line.

    community_id_reference.py --seed N EVE.json

The summary counts compared records by event type and, among them, by address family, so the
caller can require that IPv6 was compared too; it lists the first mismatches in full.
"""

import argparse
import ipaddress
import json
import sys

import communityid

PROTOS = {
    "TCP": communityid.PROTO_TCP,
    "UDP": communityid.PROTO_UDP,
    "SCTP": communityid.PROTO_SCTP,
}
EXAMPLES = 20


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("eve", help="EVE JSON lines")
    args = ap.parse_args()
    ref = communityid.CommunityID(seed=args.seed)
    by_type = {}
    problems = {"mismatch": 0, "missing": 0, "unsupported": 0}
    examples = []
    with open(args.eve, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            rec = json.loads(line)
            got = rec.get("community_id")
            proto = PROTOS.get(rec.get("proto"))
            if proto is None:
                # Not a port-based transport (unmask only tracks TCP): nothing to compare with.
                problems["unsupported"] += 1
                continue
            tup = communityid.FlowTuple(
                proto, rec["src_ip"], rec["dest_ip"], rec["src_port"], rec["dest_port"]
            )
            want = ref.calc(tup)
            family = "ipv%d" % ipaddress.ip_address(rec["src_ip"]).version
            counts = by_type.setdefault(rec["event_type"], {"compared": 0, "ipv4": 0, "ipv6": 0})
            counts["compared"] += 1
            counts[family] += 1
            if got == want:
                continue
            problems["missing" if got is None else "mismatch"] += 1
            if len(examples) < EXAMPLES:
                examples.append(
                    {
                        "line": lineno,
                        "event_type": rec["event_type"],
                        "tuple": [rec["src_ip"], rec["src_port"], rec["dest_ip"], rec["dest_port"]],
                        "got": got,
                        "want": want,
                    }
                )
    json.dump({"seed": args.seed, "by_type": by_type, **problems, "examples": examples}, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()

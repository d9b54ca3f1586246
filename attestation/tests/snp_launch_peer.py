"""Driver for snp_launch_peer.rs: the peer tool sev-snp-measure computes each case's SEV-SNP launch
digest through its library entry point (the function its CLI calls), in one process.

Input: one JSON case per line on stdin. Output: one line per case, the digest in hex or
"error: <message>".
"""
import json
import sys

from sevsnpmeasure import guest, vcpu_types
from sevsnpmeasure.sev_mode import SevMode
from sevsnpmeasure.vmm_types import VMMType

for line in sys.stdin:
    case = json.loads(line)
    vcpu_type = case.get("vcpu_type")
    sig = vcpu_types.CPU_SIGS[vcpu_type] if vcpu_type else 0
    try:
        digest = guest.calc_launch_digest(
            SevMode.SEV_SNP, case["vcpus"], sig, case["ovmf"], case.get("kernel"),
            case.get("initrd"), case.get("append"), case["guest_features"], "",
            VMMType[case["vmm"]])
        print(digest.hex())
    except Exception as e:  # reported to the test, which decides
        print("error: " + " ".join(str(e).split()))
    sys.stdout.flush()

//! Shared helpers for the SEV-SNP tests: the real evidence in the shared test data (read in place,
//! never copied), and a signer for mutated reports using the development PKI.
// Each test binary uses a subset of these helpers; helpers outside #[test] may unwrap (tests only).
#![allow(dead_code, clippy::unwrap_used)]

use confidant_attestation::evidence::SnpEvidence;
use confidant_attestation::snp::{self, SnpError, SnpTrustRoots};
use confidant_attestation::time::UnixTime;
use confidant_testkit::read_testdata;
use serde_bytes::ByteBuf;

/// Certificates (DER) from a PEM file of the shared test data, in file order.
pub fn pem_certs(rel: &str) -> Vec<Vec<u8>> {
    pem::parse_many(read_testdata(rel))
        .unwrap()
        .into_iter()
        .map(|p| p.into_contents())
        .collect()
}

/// `[ASK, ARK]` or `[ASVK, ARK]` of a product from `amd/<product>_ask_ark_asvk.pem`.
pub fn amd_chain(product: &str, vlek: bool) -> Vec<ByteBuf> {
    let certs = pem_certs(&format!("amd/{product}_ask_ark_asvk.pem"));
    let inter = if vlek {
        certs[2].clone()
    } else {
        certs[0].clone()
    };
    vec![ByteBuf::from(inter), ByteBuf::from(certs[1].clone())]
}

pub fn chain(certs: &[Vec<u8>]) -> Vec<ByteBuf> {
    certs.iter().cloned().map(ByteBuf::from).collect()
}

/// What PROVENANCE.md says about one real report.
#[derive(Debug)]
pub struct Expected {
    pub name: &'static str,
    pub product: snp::Product,
    pub version: u32,
    pub vlek: bool,
    pub vmpl: u32,
    pub policy: u64,
    pub guest_svn: u32,
    pub tcb: (u8, u8, u8, u8),
    pub measurement: &'static str,
    pub report_data: &'static str,
    pub chip_id: &'static str,
}

pub const REAL: [Expected; 5] = [
    Expected {
        name: "virtee-milan",
        product: snp::Product::Milan,
        version: 2,
        vlek: false,
        vmpl: 0,
        policy: 0x30000,
        guest_svn: 0,
        tcb: (3, 0, 8, 115),
        measurement: "7a1e5c266c0108dbc9bb94fa926951320940915d0aafb42464bd88b579ea158d3e1a0dc39b2c60bd95b9c480cd81841f",
        report_data: "d447b55d197491bfe15cf298f9de9986b7a7c4be2468b4f6e2d53b71d7c645810b0f2cdfca0040433be063fc1a8293f0f3f8dae7b79fecb3d1cd82bd6a93ebfd",
        chip_id: "d49554ec717f4e5b0fe6b143bcf0405bd7ae304727edf46603f2a76aef6a3abc15d7af38db757039029f0efacfd08e244324884738c72b082e2f87a44d541eb6",
    },
    Expected {
        name: "trustee-milan",
        product: snp::Product::Milan,
        version: 2,
        vlek: false,
        vmpl: 0,
        policy: 0x3001f,
        guest_svn: 4,
        tcb: (3, 0, 8, 115),
        measurement: "a1f3930413247bb38cfc171579ea3c12d5fe4901f0c792f63fd75d98f1ef827c23500644e0e692e6be917f9050d3d38c",
        report_data: "ec6c52d7533cc2c4f45be7849cf112ab82b2009fe7bd43e71ed08c14400ad7e20000000000000000000000000000000000000000000000000000000000000000",
        chip_id: "c38427a30d4c7af9d96f7a15b97269825a64cb76a2352ffd5d18115d89ad473f8e8c0bcd9a5d9286612bad4aadfb4426205a3b9e4fea82301135a170e477524e",
    },
    Expected {
        name: "trustee-vlek",
        product: snp::Product::Milan,
        version: 3,
        vlek: true,
        vmpl: 1,
        policy: 0x30000,
        guest_svn: 0,
        tcb: (4, 0, 24, 217),
        measurement: "8922ebbdd00ec2c541f36a6e7a82a8773a7accb451ed67bc94e740dbe92c93c4e8c9af857f5ceeb5a493df2a570d7bf0",
        report_data: "819770b7e6ea6df8dd8fd4dd146b073c0bf4f3ce5b0977ecac486e3a05ed1bd54e2a7ac1f5d1ca02e7d7d5ef9f73b8574fd9359e3a480d741a4478e8a7bc27ca",
        chip_id: "00000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000",
    },
    Expected {
        name: "azure-milan",
        product: snp::Product::Milan,
        version: 2,
        vlek: false,
        vmpl: 0,
        policy: 0x3001f,
        guest_svn: 5,
        tcb: (3, 0, 8, 115),
        measurement: "9ac48fcac8a2d88aeeff8d427ad4f2be0e3917c748a18bdf52cc317e7fe20308b459d5ef1a12e0c22944eb386d17c315",
        report_data: "b3fbad6514c83caeb0380882145e49f794229ef37c421b91fc47ff93556bafac0000000000000000000000000000000000000000000000000000000000000000",
        chip_id: "19752a447db501a32ade46428a46e92639bd3515dbb45e2e67bbcb0934ffcf1f3e3c004ccb4a99c9fa7e4ffb09da6b324ac58acedaf679f24ba7db5f838c6cca",
    },
    Expected {
        name: "azure-genoa",
        product: snp::Product::Genoa,
        version: 3,
        vlek: false,
        vmpl: 0,
        policy: 0x3001f,
        guest_svn: 65547,
        tcb: (10, 0, 23, 84),
        measurement: "f57dc09a507c6ecd82369bffb600f0003792f4d99bc26e985ec0c266fc34faf3706faf814c9e61065768a6ff917c89ae",
        report_data: "b581f12e29a2d7d64e5e0b738d563879a78b51c644d0fa0cce02b48699f6bf5f0000000000000000000000000000000000000000000000000000000000000000",
        chip_id: "0506ffba875e939c2729d20c74eb72b4c5ba6bf7ea1faaa640141f12c6d64782fb487f68ce69dcd021e914cc0d9244327bc121f0242d6470903ad1d4aaea4ad1",
    },
];

/// The real evidence of one named report, with the chain PROVENANCE.md lists.
pub fn real(name: &str) -> SnpEvidence {
    let report = read_testdata(&format!("snp/{name}/report.bin"));
    let (signer_cert, chain) = match name {
        "virtee-milan" => (
            read_testdata("snp/virtee-milan/vcek.der"),
            chain(&pem_certs("snp/virtee-milan/cert_chain.pem")),
        ),
        "trustee-milan" => (
            read_testdata("snp/trustee-milan/vcek.der"),
            amd_chain("milan", false),
        ),
        "trustee-vlek" => (
            read_testdata("snp/trustee-vlek/vlek.der"),
            amd_chain("milan", true),
        ),
        "azure-milan" => {
            let all = pem_certs("snp/azure-milan/vcek-and-chain.pem");
            (all[0].clone(), chain(&all[1..]))
        }
        "azure-genoa" => (
            pem_certs("snp/azure-genoa/vcek.pem").remove(0),
            amd_chain("genoa", false),
        ),
        other => panic!("no such report {other}"),
    };
    SnpEvidence {
        report,
        signer_cert,
        chain: Some(chain),
    }
}

/// The development PKI (generated once per target directory by `scripts/dev-pki.sh`).
pub struct DevPki {
    pub ark: Vec<u8>,
    pub ask: Vec<u8>,
    pub vcek: Vec<u8>,
    pub key: ring::signature::EcdsaKeyPair,
}

pub fn dev_pki() -> DevPki {
    dev_pki_in(&confidant_testkit::dev_pki())
}

/// A second development PKI, with its own root.
pub fn other_dev_pki() -> DevPki {
    dev_pki_in(&confidant_testkit::other_dev_pki())
}

fn dev_pki_in(dir: &std::path::Path) -> DevPki {
    let read = |f: &str| std::fs::read(dir.join(f)).unwrap();
    let rng = ring::rand::SystemRandom::new();
    let key = ring::signature::EcdsaKeyPair::from_pkcs8(
        &ring::signature::ECDSA_P384_SHA384_FIXED_SIGNING,
        &read("vcek.key.pk8"),
        &rng,
    )
    .unwrap();
    DevPki {
        ark: read("ark.der"),
        ask: read("ask.der"),
        vcek: read("vcek.der"),
        key,
    }
}

pub fn amd_and_dev(pki: &DevPki) -> SnpTrustRoots {
    let mut roots = SnpTrustRoots::amd();
    roots.add_dev_root(&pki.ark, &pki.ask).unwrap();
    roots
}

/// A version-3 Milan report bound to the dev VCEK (reported TCB and chip id from its extensions),
/// unsigned.
pub fn dev_report_template(pki: &DevPki) -> Vec<u8> {
    use snp::report::layout as l;
    let ext = snp::vek_extensions(&pki.vcek).unwrap();
    let mut b = vec![0u8; snp::REPORT_LEN];
    b[l::VERSION].copy_from_slice(&3u32.to_le_bytes());
    b[l::POLICY].copy_from_slice(&0x30000u64.to_le_bytes());
    b[l::SIGNATURE_ALGO].copy_from_slice(&1u32.to_le_bytes());
    let tcb = ext.tcb.encode(snp::TcbLayout::PreTurin);
    for r in [
        l::CURRENT_TCB,
        l::REPORTED_TCB,
        l::COMMITTED_TCB,
        l::LAUNCH_TCB,
    ] {
        b[r].copy_from_slice(&tcb);
    }
    b[l::CPUID].copy_from_slice(&[0x19, 0x01, 0x01]);
    b[l::CHIP_ID].copy_from_slice(&ext.hw_id.unwrap());
    b[l::MEASUREMENT].copy_from_slice(&[0x42; 48]);
    b[l::REPORT_DATA].copy_from_slice(&[0x17; 64]);
    b
}

/// Signs `report` in place with the dev VCEK (r, s little-endian at 0x2A0 / 0x2E8).
pub fn dev_sign(pki: &DevPki, report: &mut [u8]) {
    use snp::report::layout as l;
    let rng = ring::rand::SystemRandom::new();
    let sig = pki.key.sign(&rng, &report[l::SIGNED]).unwrap();
    let sig = sig.as_ref();
    let (r, s) = sig.split_at(48);
    for (i, b) in r.iter().rev().enumerate() {
        report[l::SIG_R.start + i] = *b;
    }
    for (i, b) in s.iter().rev().enumerate() {
        report[l::SIG_S.start + i] = *b;
    }
}

pub fn dev_evidence(pki: &DevPki, report: Vec<u8>) -> SnpEvidence {
    SnpEvidence {
        report,
        signer_cert: pki.vcek.clone(),
        chain: Some(chain(&[pki.ask.clone(), pki.ark.clone()])),
    }
}

/// Tiny deterministic generator for "random" inputs (xorshift64*).
pub struct Rng(pub u64);

impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next_u64() as u8).collect()
    }
}

/// A time inside the signing certificate's validity (a day after it starts), so the real
/// evidence (whose VLEK expired in 2025) and the development PKI (made when the tests first run)
/// each verify at a time their certificates were valid. Tests of the validity check itself pass
/// explicit times to [`snp::verify_report`].
pub fn signer_time(ev: &SnpEvidence) -> UnixTime {
    use x509_parser::prelude::FromDer;
    let start = x509_parser::certificate::X509Certificate::from_der(&ev.signer_cert)
        .map(|(_, c)| c.validity().not_before.timestamp())
        .unwrap_or(1_748_736_000);
    UnixTime::from_secs(u64::try_from(start).unwrap_or(0) + 86_400)
}

pub fn verify(ev: &SnpEvidence, roots: &SnpTrustRoots) -> Result<snp::VerifiedSnpReport, SnpError> {
    snp::verify_report(ev, roots, signer_time(ev))
}

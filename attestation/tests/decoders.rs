//! Decoder hardening: every decoder of untrusted bytes in the crate is fed truncated prefixes,
//! single-bit flips and random byte strings (deterministic seed, a few thousand cases). Each must
//! return `Ok` or `Err`, never panic; over-limit inputs must be refused as too large before any
//! parsing.
#![allow(
    clippy::unwrap_used,
    reason = "test support code: a panic is a test failure"
)]

use std::collections::BTreeMap;
use std::panic::{AssertUnwindSafe, catch_unwind};

use ring::rand::SystemRandom;

use confidant_attestation::digest::Blake3Digest;
use confidant_attestation::evidence::{
    DecodeError, Evidence, MAX_EVIDENCE_CBOR, ReceivedEvidence, SnpEvidence, TpmEvidence,
};
use confidant_attestation::policy::{MAX_POLICY_TOML, Policy, PolicyError};
use confidant_attestation::result::{
    MAX_RESULT_BYTES, ResultClaims, ResultError, ResultSigner, ResultVerifier, Status, TeeKind,
};
use confidant_attestation::snp::{SnpReport, SnpTrustRoots};
use confidant_attestation::time::UnixTime;
use confidant_attestation::tpm::{TpmTrustAnchors, TpmsAttest, TpmtPublic, TpmtSignature};
use confidant_attestation::verify::{TrustAnchors, verify_evidence};

/// splitmix64: small, deterministic, good enough to spread bytes.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next() as u8).collect()
    }
    fn bytes_upto(&mut self, max: usize) -> Vec<u8> {
        let len = self.below(max);
        self.bytes(len)
    }
}

/// Runs `f` on `input`, failing the test with the input in hex if it panics.
fn no_panic<T>(what: &str, input: &[u8], f: impl FnOnce(&[u8]) -> T) -> T {
    match catch_unwind(AssertUnwindSafe(|| f(input))) {
        Ok(v) => v,
        Err(_) => panic!("{what} panicked on input {}", hex::encode(input)),
    }
}

/// Every prefix, `flips` single-bit flips at random positions, and `random` random strings of
/// lengths up to twice the seed's.
fn corpus(seed: &[u8], rng: &mut Rng, flips: usize, random: usize) -> Vec<Vec<u8>> {
    let mut out: Vec<Vec<u8>> = Vec::new();
    let step = (seed.len() / 400).max(1);
    out.extend((0..seed.len()).step_by(step).map(|n| seed[..n].to_vec()));
    for _ in 0..flips {
        let mut v = seed.to_vec();
        if !v.is_empty() {
            let i = rng.below(v.len());
            v[i] ^= 1 << rng.below(8);
        }
        out.push(v);
    }
    for _ in 0..random {
        let len = rng.below(seed.len() * 2 + 1);
        out.push(rng.bytes(len));
    }
    out
}

fn snp_evidence() -> Evidence {
    Evidence::SevSnp(SnpEvidence {
        report: confidant_testkit::read_testdata("snp/virtee-milan/report.bin"),
        signer_cert: confidant_testkit::read_testdata("snp/virtee-milan/vcek.der"),
        chain: None,
    })
}

fn tpm_evidence(rng: &mut Rng) -> Evidence {
    Evidence::Tpm(TpmEvidence {
        quote: confidant_testkit::read_testdata("tpm/azure-vtpm/quote.msg"),
        signature: rng.bytes(262),
        ak_public: rng.bytes(280),
        pcrs: BTreeMap::from([(0, serde_bytes::ByteBuf::from(rng.bytes(32)))]),
        event_log: Some(serde_bytes::ByteBuf::from(rng.bytes(16))),
    })
}

/// 2025-06-01: inside the validity of the real certificates used here.
const NOW: UnixTime = UnixTime::from_secs(1_748_736_000);

/// Evidence built here, through the same gate as evidence received from outside.
fn received(ev: &Evidence) -> ReceivedEvidence {
    ReceivedEvidence::decode(&ev.to_cbor()).unwrap()
}

fn anchors() -> TrustAnchors {
    TrustAnchors {
        snp: SnpTrustRoots::amd(),
        tpm: TpmTrustAnchors::default(),
    }
}

#[test]
fn evidence_decoder_and_verifiers_never_panic() {
    let mut rng = Rng(0xC0FF_EE00_0000_0001);
    let anchors = anchors();
    let seeds = [snp_evidence().to_cbor(), tpm_evidence(&mut rng).to_cbor()];
    let mut decoded = 0usize;
    for seed in &seeds {
        for input in corpus(seed, &mut rng, 1500, 300) {
            let r = no_panic("ReceivedEvidence::decode", &input, ReceivedEvidence::decode);
            if let Ok(ev) = r {
                decoded += 1;
                no_panic("verify_evidence", &input, |_| {
                    let _ = verify_evidence(ev, &anchors, NOW);
                });
            }
        }
    }
    assert!(
        decoded > 100,
        "bit flips inside byte strings should still decode"
    );
}

#[test]
fn tee_parsers_never_panic_on_random_bytes() {
    let mut rng = Rng(7);
    let anchors = anchors();
    let report = confidant_testkit::read_testdata("snp/virtee-milan/report.bin");
    let quote = confidant_testkit::read_testdata("tpm/azure-vtpm/quote.msg");
    for input in corpus(&report, &mut rng, 1500, 200) {
        no_panic("SnpReport::parse", &input, |b| {
            let _ = SnpReport::parse(b);
        });
        // Through the public entry point too, with a random signer certificate.
        let ev = Evidence::SevSnp(SnpEvidence {
            report: input.clone(),
            signer_cert: rng.bytes_upto(64),
            chain: Some(vec![serde_bytes::ByteBuf::from(rng.bytes(8)); 2]),
        });
        no_panic("verify_evidence(snp)", &input, |_| {
            let _ = verify_evidence(received(&ev), &anchors, NOW);
        });
    }
    for input in corpus(&quote, &mut rng, 1500, 300) {
        no_panic("TpmsAttest::parse_quote", &input, |b| {
            let _ = TpmsAttest::parse_quote(b);
        });
        no_panic("TpmtPublic::parse", &input, |b| {
            let _ = TpmtPublic::parse(b);
            let _ = TpmtPublic::parse_tpm2b(b);
        });
        no_panic("TpmtSignature::parse", &input, |b| {
            let _ = TpmtSignature::parse(b);
        });
        let ev = Evidence::Tpm(TpmEvidence {
            quote: input.clone(),
            signature: rng.bytes_upto(300),
            ak_public: rng.bytes_upto(300),
            pcrs: BTreeMap::new(),
            event_log: None,
        });
        no_panic("verify_evidence(tpm)", &input, |_| {
            let _ = verify_evidence(received(&ev), &anchors, NOW);
        });
    }
}

#[test]
fn strict_der_checker_never_panics() {
    let mut rng = Rng(0x5EED);
    let vcek = confidant_testkit::read_testdata("snp/virtee-milan/vcek.der");
    confidant_attestation::der_strict::check_certificate(&vcek).unwrap();
    let mut refused = 0usize;
    for input in corpus(&vcek, &mut rng, 2000, 300) {
        let r = no_panic("der_strict::check_certificate", &input, |b| {
            confidant_attestation::der_strict::check_certificate(b)
        });
        refused += usize::from(r.is_err());
    }
    assert!(refused > 1000, "truncations and most flips are refused");
}

fn signed_result() -> (ResultSigner, Vec<u8>) {
    let signer = ResultSigner::from_pkcs8(
        &ResultSigner::generate_pkcs8(&SystemRandom::new()).unwrap(),
        &SystemRandom::new(),
    )
    .unwrap();
    let claims = ResultClaims {
        iss: "verifier".into(),
        aud: "client".into(),
        iat: 1000,
        exp: 2000,
        status: Status::Affirming,
        tee: TeeKind::Tpm,
        measurement: vec![1; 32],
        tcb: None,
        policy_id: "p".into(),
        policy_version: 1,
        model_id: "m".into(),
        model_digest: Blake3Digest::from_bytes([2; 32]),
        tls_spki_sha256: [3; 32],
        evidence_digest: [4; 32],
        dev: false,
        nonce: None,
        tpm_ak_spki_sha256: Some([5; 32]),
        mask_chip_id: false,
        mask_chip_key: false,
    };
    let bytes = signer.sign(&claims, &SystemRandom::new()).unwrap();
    (signer, bytes)
}

#[test]
fn result_decoder_never_panics_and_accepts_only_the_original() {
    let mut rng = Rng(42);
    let (signer, token) = signed_result();
    let v = signer.verifier();
    for input in corpus(&token, &mut rng, 2000, 500) {
        let r = no_panic("ResultVerifier::verify", &input, |b| {
            v.verify(b, "client", 1500)
        });
        if input != token {
            assert!(
                r.is_err(),
                "a modified result verified: {}",
                hex::encode(&input)
            );
        }
    }
    v.verify(&token, "client", 1500).unwrap();

    let cose = v.cose_key().unwrap();
    for input in corpus(&cose, &mut rng, 500, 200) {
        no_panic("ResultVerifier::from_cose_key", &input, |b| {
            let _ = ResultVerifier::from_cose_key(b);
        });
    }
    let jwk = serde_json::to_vec(&v.jwk()).unwrap();
    for input in corpus(&jwk, &mut rng, 500, 200) {
        no_panic("ResultVerifier::from_jwk", &input, |b| {
            if let Ok(s) = std::str::from_utf8(b) {
                let _ = ResultVerifier::from_jwk(s);
            }
        });
    }
}

#[test]
fn policy_decoder_never_panics() {
    let mut rng = Rng(99);
    let text = std::fs::read(confidant_testkit::workspace_root().join("docs/policy.example.toml"))
        .unwrap();
    Policy::from_toml(std::str::from_utf8(&text).unwrap()).unwrap();
    for input in corpus(&text, &mut rng, 1500, 200) {
        let s = String::from_utf8_lossy(&input);
        no_panic("Policy::from_toml", &input, |_| {
            let _ = Policy::from_toml(&s);
        });
    }
}

#[test]
fn over_limit_inputs_are_too_large() {
    let big = vec![0xA1u8; MAX_EVIDENCE_CBOR + 1];
    assert!(matches!(
        ReceivedEvidence::decode(&big),
        Err(DecodeError::TooLarge(n)) if n == MAX_EVIDENCE_CBOR + 1
    ));
    let (signer, _) = signed_result();
    let big = vec![0xD2u8; MAX_RESULT_BYTES + 1];
    assert_eq!(
        signer.verifier().verify(&big, "client", 1500),
        Err(ResultError::TooLarge(MAX_RESULT_BYTES + 1))
    );
    assert!(matches!(
        ResultVerifier::from_cose_key(&vec![0u8; 4096]),
        Err(ResultError::TooLarge(4096))
    ));
    let big = "#".repeat(MAX_POLICY_TOML + 1);
    assert_eq!(
        Policy::from_toml(&big),
        Err(PolicyError::TooLarge(MAX_POLICY_TOML + 1))
    );
}

#[test]
fn deeply_nested_cbor_is_refused_not_overflowed() {
    // 100 000 nested arrays: a recursive decoder without a limit would overflow the stack.
    let deep = vec![0x81u8; 100_000];
    assert!(ReceivedEvidence::decode(&deep).is_err());
    let (signer, _) = signed_result();
    let mut tagged = vec![0xD2u8];
    tagged.extend(vec![0x81u8; MAX_RESULT_BYTES - 1]);
    assert!(signer.verifier().verify(&tagged, "client", 1500).is_err());
}

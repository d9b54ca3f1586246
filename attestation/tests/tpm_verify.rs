//! TPM quote verification without a TPM: quotes signed by a software key (one corruption at a
//! time, each with its own error), the real Azure vTPM quote, and hostile input to every parser.
#![allow(clippy::unwrap_used, reason = "tests panic on unexpected failures")]

use std::collections::BTreeMap;

use confidant_attestation::evidence::TpmEvidence;
use confidant_attestation::tpm::constants::*;
use confidant_attestation::tpm::public::{KeyScheme, PublicKey};
use confidant_attestation::tpm::{
    TpmError, TpmTrustAnchors, TpmsAttest, TpmtPublic, TpmtSignature, tools, verify_quote,
};
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use serde_bytes::ByteBuf;

const AK_ATTRS: u32 = 0x0005_0072;

/// A software "TPM": an ECDSA P-256 key and a TPMS_ATTEST builder.
struct SoftTpm {
    key: EcdsaKeyPair,
    rng: SystemRandom,
}

#[derive(Clone)]
struct Quote {
    magic: u32,
    st: u16,
    extra: Vec<u8>,
    /// (bank, bitmap)
    select: Vec<(u16, Vec<u8>)>,
    digest: Vec<u8>,
    trailing: Vec<u8>,
}

fn pcr_values() -> BTreeMap<u8, [u8; 32]> {
    [(0u8, [0x11; 32]), (7, [0x77; 32]), (16, [0xaa; 32])]
        .into_iter()
        .collect()
}

fn digest_of(values: &BTreeMap<u8, [u8; 32]>) -> Vec<u8> {
    let concat: Vec<u8> = values.values().flatten().copied().collect();
    ring::digest::digest(&ring::digest::SHA256, &concat)
        .as_ref()
        .to_vec()
}

impl Quote {
    fn good() -> Self {
        Quote {
            magic: TPM_GENERATED_VALUE,
            st: TPM_ST_ATTEST_QUOTE,
            extra: vec![0x42; 32],
            select: vec![(TPM_ALG_SHA256, vec![0x81, 0x00, 0x01])],
            digest: digest_of(&pcr_values()),
            trailing: vec![],
        }
    }

    fn bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(&self.magic.to_be_bytes());
        out.extend_from_slice(&self.st.to_be_bytes());
        let name = [&TPM_ALG_SHA256.to_be_bytes()[..], &[0x5a; 32]].concat();
        tpm2b(&mut out, &name);
        tpm2b(&mut out, &self.extra);
        out.extend_from_slice(&1234u64.to_be_bytes()); // clock
        out.extend_from_slice(&5u32.to_be_bytes()); // resetCount
        out.extend_from_slice(&0u32.to_be_bytes()); // restartCount
        out.push(1); // safe
        out.extend_from_slice(&0x2019_1023_0016_3636u64.to_be_bytes());
        out.extend_from_slice(&(self.select.len() as u32).to_be_bytes());
        for (hash, bitmap) in &self.select {
            out.extend_from_slice(&hash.to_be_bytes());
            out.push(bitmap.len() as u8);
            out.extend_from_slice(bitmap);
        }
        tpm2b(&mut out, &self.digest);
        out.extend_from_slice(&self.trailing);
        out
    }
}

fn tpm2b(out: &mut Vec<u8>, v: &[u8]) {
    out.extend_from_slice(&(v.len() as u16).to_be_bytes());
    out.extend_from_slice(v);
}

impl SoftTpm {
    fn new() -> Self {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
            .unwrap();
        SoftTpm { key, rng }
    }

    fn public(&self, attributes: u32) -> TpmtPublic {
        let point = self.key.public_key().as_ref();
        let mut x = [0u8; 32];
        let mut y = [0u8; 32];
        x.copy_from_slice(&point[1..33]);
        y.copy_from_slice(&point[33..65]);
        TpmtPublic {
            name_alg: TPM_ALG_SHA256,
            object_attributes: attributes,
            auth_policy: vec![],
            scheme: Some(KeyScheme {
                scheme: TPM_ALG_ECDSA,
                hash: Some(TPM_ALG_SHA256),
            }),
            key: PublicKey::EccP256 { x, y },
        }
    }

    fn sign(&self, msg: &[u8], hash: u16) -> Vec<u8> {
        let sig = self.key.sign(&self.rng, msg).unwrap();
        let sig = sig.as_ref();
        let mut out = Vec::new();
        out.extend_from_slice(&TPM_ALG_ECDSA.to_be_bytes());
        out.extend_from_slice(&hash.to_be_bytes());
        tpm2b(&mut out, &sig[..32]);
        tpm2b(&mut out, &sig[32..]);
        out
    }

    fn evidence(&self, q: &Quote, attributes: u32) -> TpmEvidence {
        let quote = q.bytes();
        TpmEvidence {
            signature: self.sign(&quote, TPM_ALG_SHA256),
            quote,
            ak_public: self.public(attributes).marshal(),
            pcrs: pcr_values()
                .into_iter()
                .map(|(i, v)| (i, ByteBuf::from(v.to_vec())))
                .collect(),
            event_log: None,
        }
    }

    fn anchors(&self) -> TpmTrustAnchors {
        let mut a = TpmTrustAnchors::default();
        a.enroll_ak_spki_der(&self.public(AK_ATTRS).spki_der());
        a
    }
}

#[test]
fn a_well_formed_quote_verifies() {
    let tpm = SoftTpm::new();
    let ev = tpm.evidence(&Quote::good(), AK_ATTRS);
    let v = verify_quote(&ev, &tpm.anchors()).unwrap();
    assert_eq!(v.qualifying_data(), &[0x42; 32]);
    assert_eq!(v.pcrs(), &pcr_values());
    assert_eq!(v.ak_fingerprint(), tpm.public(AK_ATTRS).fingerprint());
    assert_eq!(v.clock_info().reset_count, 5);
    assert_eq!(v.firmware_version(), 0x2019_1023_0016_3636);
    let claims = v.claims();
    assert_eq!(
        claims.pcrs.get(&7).map(String::as_str),
        Some(&*hex::encode([0x77; 32]))
    );
    assert!(claims.safe);
    // The claims serialise (PCR indices become JSON object keys).
    let json = serde_json::to_value(&claims).unwrap();
    assert_eq!(json["pcrs"]["16"], hex::encode([0xaa; 32]));
}

#[test]
fn empty_anchors_trust_nothing() {
    let tpm = SoftTpm::new();
    let ev = tpm.evidence(&Quote::good(), AK_ATTRS);
    assert_eq!(
        verify_quote(&ev, &TpmTrustAnchors::default()),
        Err(TpmError::UntrustedAk)
    );
}

#[test]
fn each_corruption_fails_with_its_own_error() {
    let tpm = SoftTpm::new();
    let anchors = tpm.anchors();
    let good = Quote::good();
    let check = |ev: TpmEvidence| verify_quote(&ev, &anchors).err();

    // Structure of TPMS_ATTEST (re-signed, so only the structure is wrong).
    let mut q = good.clone();
    q.magic = 0xff54_4348;
    assert_eq!(
        check(tpm.evidence(&q, AK_ATTRS)),
        Some(TpmError::BadMagic(0xff54_4348))
    );
    let mut q = good.clone();
    q.st = 0x8017; // TPM_ST_ATTEST_CERTIFY
    assert_eq!(
        check(tpm.evidence(&q, AK_ATTRS)),
        Some(TpmError::NotAQuote(0x8017))
    );
    let mut q = good.clone();
    q.trailing = vec![0];
    assert!(matches!(
        check(tpm.evidence(&q, AK_ATTRS)),
        Some(TpmError::TrailingBytes { count: 1, .. })
    ));

    // The key.
    let ev = tpm.evidence(&good, AK_ATTRS & !0x0001_0000); // not restricted
    assert!(matches!(
        check(ev),
        Some(TpmError::AkNotRestrictedSigning { .. })
    ));
    let ev = tpm.evidence(&good, AK_ATTRS & !0x0000_0002); // not fixedTPM
    assert!(matches!(
        check(ev),
        Some(TpmError::AkNotRestrictedSigning { .. })
    ));
    let ev = tpm.evidence(&good, AK_ATTRS | 0x0002_0000); // also decrypt
    assert!(matches!(
        check(ev),
        Some(TpmError::AkNotRestrictedSigning { .. })
    ));
    let other = SoftTpm::new();
    let ev = other.evidence(&good, AK_ATTRS);
    assert_eq!(check(ev), Some(TpmError::UntrustedAk));

    // The signature.
    let mut ev = tpm.evidence(&good, AK_ATTRS);
    ev.quote[40] ^= 0x01; // inside extraData
    assert_eq!(check(ev), Some(TpmError::BadSignature));
    let mut ev = tpm.evidence(&good, AK_ATTRS);
    let last = ev.signature.len() - 1;
    ev.signature[last] ^= 0x80;
    assert_eq!(check(ev), Some(TpmError::BadSignature));
    let mut ev = tpm.evidence(&good, AK_ATTRS);
    ev.signature = tpm.sign(&ev.quote, TPM_ALG_SHA1);
    assert_eq!(
        check(ev),
        Some(TpmError::UnsupportedAlgorithm {
            what: "signature hash",
            alg: TPM_ALG_SHA1
        })
    );
    let mut ev = tpm.evidence(&good, AK_ATTRS);
    let mut sig = ev.signature.clone();
    sig[..2].copy_from_slice(&TPM_ALG_RSASSA.to_be_bytes());
    sig.truncate(4);
    sig.extend_from_slice(&[0, 1, 0]);
    ev.signature = sig;
    assert!(matches!(check(ev), Some(TpmError::SchemeMismatch { .. })));

    // The PCRs.
    let mut ev = tpm.evidence(&good, AK_ATTRS);
    ev.pcrs.insert(7, ByteBuf::from(vec![0x78; 32]));
    assert_eq!(check(ev), Some(TpmError::PcrDigestMismatch));
    let mut ev = tpm.evidence(&good, AK_ATTRS);
    ev.pcrs.remove(&16);
    assert_eq!(check(ev), Some(TpmError::PcrSelectionMismatch));
    let mut ev = tpm.evidence(&good, AK_ATTRS);
    ev.pcrs.insert(1, ByteBuf::from(vec![0; 32]));
    assert_eq!(check(ev), Some(TpmError::PcrSelectionMismatch));
    let mut ev = tpm.evidence(&good, AK_ATTRS);
    ev.pcrs.insert(7, ByteBuf::from(vec![0x77; 20]));
    assert_eq!(
        check(ev),
        Some(TpmError::PcrValueLength { index: 7, len: 20 })
    );
    let mut q = good.clone();
    q.select = vec![(TPM_ALG_SHA1, vec![0x81, 0x00, 0x01])];
    assert!(matches!(
        check(tpm.evidence(&q, AK_ATTRS)),
        Some(TpmError::UnsupportedAlgorithm {
            what: "PCR bank",
            ..
        })
    ));
    // The same PCR selected twice (two SHA-256 entries) is refused.
    let mut q = good.clone();
    q.select = vec![
        (TPM_ALG_SHA256, vec![0x81, 0x00, 0x01]),
        (TPM_ALG_SHA256, vec![0x01, 0x00, 0x00]),
    ];
    assert_eq!(
        check(tpm.evidence(&q, AK_ATTRS)),
        Some(TpmError::PcrSelectionMismatch)
    );
    // An empty SHA-1 bank next to the SHA-256 one is harmless.
    let mut q = good.clone();
    q.select.insert(0, (TPM_ALG_SHA1, vec![0, 0, 0]));
    assert_eq!(check(tpm.evidence(&q, AK_ATTRS)), None);
    let mut q = good.clone();
    q.digest = vec![0; 32];
    assert_eq!(
        check(tpm.evidence(&q, AK_ATTRS)),
        Some(TpmError::PcrDigestMismatch)
    );
}

#[test]
fn a_key_enrolled_by_tpmt_public_pins_its_attributes() {
    let tpm = SoftTpm::new();
    let mut anchors = TpmTrustAnchors::default();
    anchors
        .enroll_ak_public(&tpm.public(AK_ATTRS).marshal())
        .unwrap();
    let ev = tpm.evidence(&Quote::good(), AK_ATTRS);
    verify_quote(&ev, &anchors).unwrap();
    // Same key, other attributes claimed (adminWithPolicy added): not the enrolled object.
    let ev = tpm.evidence(&Quote::good(), AK_ATTRS | 0x80);
    assert_eq!(verify_quote(&ev, &anchors), Err(TpmError::UntrustedAk));
}

#[test]
fn pem_enrolment_matches_spki() {
    let tpm = SoftTpm::new();
    let files = tools::write_quote_files(&tpm.evidence(&Quote::good(), AK_ATTRS)).unwrap();
    let mut anchors = TpmTrustAnchors::default();
    let fp = anchors.enroll_ak_pem(&files.ak_pem).unwrap();
    assert_eq!(fp, tpm.public(AK_ATTRS).fingerprint());
    assert_eq!(
        anchors.enroll_ak_pem("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"),
        Err(TpmError::BadPublicKeyPem)
    );
    assert_eq!(
        anchors.enroll_ak_pem("not pem"),
        Err(TpmError::BadPublicKeyPem)
    );
}

#[test]
fn tools_files_round_trip() {
    let tpm = SoftTpm::new();
    let ev = tpm.evidence(&Quote::good(), AK_ATTRS);
    let files = tools::write_quote_files(&ev).unwrap();
    let read = tools::read_quote_files(
        &files.message,
        &files.signature,
        files.ak_pem.as_bytes(),
        &files.pcrs,
        "sha256:16,0,7",
    )
    .unwrap();
    assert_eq!(read.evidence.pcrs, ev.pcrs);
    let mut anchors = TpmTrustAnchors::default();
    anchors.enroll_ak_spki_der(&read.ak_spki_der);
    verify_quote(&read.evidence, &anchors).unwrap();
    // The AK as TPMT_PUBLIC and as TPM2B_PUBLIC.
    let tpm2b = [
        &(ev.ak_public.len() as u16).to_be_bytes()[..],
        &ev.ak_public,
    ]
    .concat();
    for ak in [&ev.ak_public, &tpm2b] {
        let read = tools::read_quote_files(
            &files.message,
            &files.signature,
            ak,
            &files.pcrs,
            "sha256:0,7,16",
        )
        .unwrap();
        assert_eq!(read.evidence.ak_public, ev.ak_public);
    }
    // Raw values (-F values) and a wrong list.
    let values: Vec<u8> = pcr_values().values().flatten().copied().collect();
    let read = tools::read_quote_files(
        &files.message,
        &files.signature,
        &ev.ak_public,
        &values,
        "sha256:0,7,16",
    )
    .unwrap();
    assert_eq!(read.evidence.pcrs, ev.pcrs);
    assert_eq!(
        tools::parse_pcrs_file(&files.pcrs, &[0, 7]),
        Err(tools::ToolsError::PcrFileSelectionMismatch)
    );
    for bad in [
        "",
        "sha1:0",
        "sha256:",
        "sha256:0,0",
        "sha256:256",
        "sha256:1+sha1:2",
    ] {
        assert_eq!(
            tools::parse_pcr_list(bad),
            Err(tools::ToolsError::BadPcrList),
            "{bad}"
        );
    }
}

// ---- (c) the real Azure vTPM quote ----

/// Test-only: the AK public key (JWK "HCLAkPub") from the HCL report's runtime data.
fn azure_ak_and_quote() -> (TpmtPublic, Vec<u8>, Vec<u8>, BTreeMap<u8, [u8; 32]>) {
    use base64::Engine;
    let ev: serde_json::Value = serde_json::from_slice(&confidant_testkit::read_testdata(
        "tpm/azure-vtpm/evidence.json",
    ))
    .unwrap();
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let hcl = b64
        .decode(ev["hcl_report"].as_str().unwrap().trim_end_matches('='))
        .unwrap();
    let start = hcl.windows(8).position(|w| w == b"{\"keys\":").unwrap();
    let mut de =
        serde_json::Deserializer::from_slice(&hcl[start..]).into_iter::<serde_json::Value>();
    let runtime = de.next().unwrap().unwrap();
    let jwk = runtime["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == "HCLAkPub")
        .unwrap();
    let n = b64.decode(jwk["n"].as_str().unwrap()).unwrap();
    assert_eq!(jwk["e"], "AQAB");
    let ak = TpmtPublic {
        name_alg: TPM_ALG_SHA256,
        // The JWK carries no attributes; Azure's HCL AK is a restricted signing key.
        object_attributes: AK_ATTRS,
        auth_policy: vec![],
        scheme: None,
        key: PublicKey::Rsa {
            key_bits: 2048,
            exponent: 65537,
            modulus: n,
        },
    };
    let q = &ev["tpm_quote"];
    let msg = hex::decode(q["message"].as_str().unwrap()).unwrap();
    let raw_sig = hex::decode(q["signature"].as_str().unwrap()).unwrap();
    let mut sig = Vec::new();
    sig.extend_from_slice(&TPM_ALG_RSASSA.to_be_bytes());
    sig.extend_from_slice(&TPM_ALG_SHA256.to_be_bytes());
    sig.extend_from_slice(&(raw_sig.len() as u16).to_be_bytes());
    sig.extend_from_slice(&raw_sig);
    let pcrs = q["pcrs"]
        .as_array()
        .unwrap()
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let v: [u8; 32] = hex::decode(v.as_str().unwrap())
                .unwrap()
                .try_into()
                .unwrap();
            (i as u8, v)
        })
        .collect();
    (ak, msg, sig, pcrs)
}

#[test]
fn azure_quote_msg_parses_as_a_quote() {
    let msg = confidant_testkit::read_testdata("tpm/azure-vtpm/quote.msg");
    let attest = TpmsAttest::parse_quote(&msg).unwrap();
    assert_eq!(attest.extra_data, b"challenge");
    assert_eq!(attest.quote.pcr_select.len(), 1);
    assert_eq!(attest.quote.pcr_select[0].hash, TPM_ALG_SHA256);
    assert_eq!(
        attest.quote.pcr_select[0]
            .pcrs
            .iter()
            .copied()
            .collect::<Vec<_>>(),
        vec![0, 1, 2, 3, 4, 5, 6, 7, 14]
    );
    assert_eq!(attest.quote.pcr_digest.len(), 32);
    let sig = confidant_testkit::read_testdata("tpm/azure-vtpm/quote.sig");
    assert_eq!(sig.len(), 256);
}

#[test]
fn azure_vtpm_quote_verifies_with_the_hcl_ak() {
    let (ak, msg, sig, pcrs) = azure_ak_and_quote();
    let ak_public = ak.marshal();
    let mut anchors = TpmTrustAnchors::default();
    anchors.enroll_ak_spki_der(&ak.spki_der());
    let ev = TpmEvidence {
        quote: msg.clone(),
        signature: sig.clone(),
        ak_public: ak_public.clone(),
        pcrs: pcrs
            .iter()
            .map(|(i, v)| (*i, ByteBuf::from(v.to_vec())))
            .collect(),
        event_log: None,
    };
    let v = verify_quote(&ev, &anchors).unwrap();
    assert_eq!(v.qualifying_data(), b"challenge");
    assert_eq!(v.pcrs().len(), 24);
    // And the signature alone, with the parsed key.
    TpmtSignature::parse(&sig)
        .unwrap()
        .verify(&TpmtPublic::parse(&ak_public).unwrap(), &msg)
        .unwrap();

    // Any flipped bit in the message or the signature fails.
    for i in [10, 20, 47, 60, 75, msg.len() - 1] {
        let mut bad = ev.clone();
        bad.quote[i] ^= 0x04;
        assert_eq!(
            verify_quote(&bad, &anchors),
            Err(TpmError::BadSignature),
            "byte {i}"
        );
    }
    let mut bad = ev.clone();
    bad.signature[100] ^= 0x01;
    assert_eq!(verify_quote(&bad, &anchors), Err(TpmError::BadSignature));
    // A PCR value reported differently.
    let mut bad = ev.clone();
    bad.pcrs.insert(11, ByteBuf::from(vec![1; 32]));
    assert_eq!(
        verify_quote(&bad, &anchors),
        Err(TpmError::PcrDigestMismatch)
    );
}

#[test]
fn azure_quote_sig_does_not_match_the_evidence_json_ak() {
    // quote.sig / quote.msg come from a different VM than evidence.json's HCL report: the
    // signature must not verify with that AK (recorded in the report, see PROVENANCE.md).
    let (ak, ..) = azure_ak_and_quote();
    let msg = confidant_testkit::read_testdata("tpm/azure-vtpm/quote.msg");
    let raw = confidant_testkit::read_testdata("tpm/azure-vtpm/quote.sig");
    let mut sig = Vec::new();
    sig.extend_from_slice(&TPM_ALG_RSASSA.to_be_bytes());
    sig.extend_from_slice(&TPM_ALG_SHA256.to_be_bytes());
    sig.extend_from_slice(&(raw.len() as u16).to_be_bytes());
    sig.extend_from_slice(&raw);
    let sig = TpmtSignature::parse(&sig).unwrap();
    assert_eq!(sig.verify(&ak, &msg), Err(TpmError::BadSignature));
}

// ---- (d) hostile input to every parser ----

fn all_parsers(bytes: &[u8]) {
    let _ = TpmsAttest::parse_quote(bytes);
    let _ = TpmtSignature::parse(bytes);
    let _ = TpmtPublic::parse(bytes);
    let _ = TpmtPublic::parse_tpm2b(bytes);
    let _ = tools::parse_pcrs_file(bytes, &[0, 1, 2]);
    let _ = tools::parse_pcrs_file(bytes, &[]);
    let _ = tools::spki_der_from_pem(&String::from_utf8_lossy(bytes));
    let _ = tools::read_quote_files(bytes, bytes, bytes, bytes, "sha256:0");
    let mut anchors = TpmTrustAnchors::default();
    let _ = anchors.enroll_ak_public(bytes);
    let ev = TpmEvidence {
        quote: bytes.to_vec(),
        signature: bytes.to_vec(),
        ak_public: bytes.to_vec(),
        pcrs: BTreeMap::new(),
        event_log: None,
    };
    let _ = verify_quote(&ev, &anchors);
}

#[test]
fn every_prefix_of_valid_structures_is_a_clean_error() {
    let tpm = SoftTpm::new();
    let ev = tpm.evidence(&Quote::good(), AK_ATTRS);
    let files = tools::write_quote_files(&ev).unwrap();
    let (rsa_ak, azure_msg, azure_sig, _) = azure_ak_and_quote();
    let rsa_ak = rsa_ak.marshal();
    for (name, full) in [
        ("quote", &ev.quote),
        ("signature", &ev.signature),
        ("ecc ak", &ev.ak_public),
        ("rsa ak", &rsa_ak),
        ("azure quote", &azure_msg),
        ("azure signature", &azure_sig),
    ] {
        for len in 0..full.len() {
            all_parsers(&full[..len]);
        }
        let err = match name {
            "quote" | "azure quote" => TpmsAttest::parse_quote(&full[..full.len() - 1]).err(),
            "signature" | "azure signature" => TpmtSignature::parse(&full[..full.len() - 1]).err(),
            _ => TpmtPublic::parse(&full[..full.len() - 1]).err(),
        };
        assert!(
            matches!(err, Some(TpmError::Truncated { .. })),
            "{name}: {err:?}"
        );
    }
    for len in 0..files.pcrs.len() {
        assert!(tools::parse_pcrs_file(&files.pcrs[..len], &[0, 7, 16]).is_err() || len == 96);
    }
}

#[test]
fn random_and_mutated_inputs_never_panic() {
    // A small deterministic generator (xorshift), so failures reproduce.
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let tpm = SoftTpm::new();
    let ev = tpm.evidence(&Quote::good(), AK_ATTRS);
    let files = tools::write_quote_files(&ev).unwrap();
    let seeds = [
        ev.quote.clone(),
        ev.signature.clone(),
        ev.ak_public.clone(),
        files.pcrs.clone(),
    ];
    for round in 0..4000 {
        let mut bytes = if round % 2 == 0 {
            let len = (next() % 700) as usize;
            (0..len).map(|_| next() as u8).collect::<Vec<u8>>()
        } else {
            seeds[(next() % 4) as usize].clone()
        };
        for _ in 0..(next() % 4) {
            if !bytes.is_empty() {
                let i = (next() as usize) % bytes.len();
                bytes[i] = next() as u8;
            }
        }
        all_parsers(&bytes);
    }
}

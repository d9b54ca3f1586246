//! Evidence CBOR, attestation results, RA-TLS certificates, sealed models, policies.

use confidant_attestation::certext;
use confidant_attestation::evidence::ReceivedEvidence;
use confidant_attestation::modelkey::ModelKey;
use confidant_attestation::policy::Policy;
use confidant_attestation::result::ResultVerifier;
use confidant_attestation::snp::SnpTrustRoots;
use confidant_attestation::verify::{TrustAnchors, verify_evidence};
use confidant_sealed::{Bundle, SealedHeader, unseal_with_threads};

use crate::frame::{part, split};

/// The key `sealed_model` seeds are sealed under (a fuzzing constant, never a real key), so the
/// fuzzer reaches decryption, the digest check and the bundle inside.
pub const SEALED_MODEL_FUZZ_KEY: [u8; 32] = [0x5a; 32];

/// Evidence as CBOR. The decoder is canonical-only (docs/architecture.md): whatever it accepts
/// must be exactly the encoding of what it decoded.
pub fn evidence_cbor(data: &[u8]) {
    let Ok(received) = ReceivedEvidence::decode(data) else {
        return;
    };
    assert_eq!(
        received.evidence().to_cbor(),
        data,
        "ReceivedEvidence::decode accepted a non-canonical encoding"
    );
    let anchors = TrustAnchors {
        snp: SnpTrustRoots::amd(),
        ..TrustAnchors::default()
    };
    let _ = verify_evidence(received, &anchors, crate::FUZZ_NOW);
}

/// Parts: result key (COSE_Key, or a JWK when it is not CBOR), COSE_Sign1 result, audience.
/// Checked at a fixed time so results do not depend on when the fuzzer runs.
pub fn cose_result(data: &[u8]) {
    const NOW: u64 = 1_767_225_600;
    let parts = split(data, 3);
    let key = part(&parts, 0);
    let verifier = ResultVerifier::from_cose_key(key)
        .or_else(|_| ResultVerifier::from_jwk(&String::from_utf8_lossy(key)));
    let Ok(verifier) = verifier else {
        return;
    };
    let _ = verifier.cose_key();
    let _ = verifier.jwk();
    let audience = String::from_utf8_lossy(part(&parts, 2));
    for now in [NOW, 0, u64::MAX] {
        let _ = verifier.verify(part(&parts, 1), &audience, now);
    }
}

/// An X.509 certificate carrying (or not) the RA-TLS evidence and result extensions.
pub fn ratls_cert(data: &[u8]) {
    let _ = certext::parse(data);
}

/// A sealed model file: its header, then the whole file under [`SEALED_MODEL_FUZZ_KEY`] (one
/// thread), then the bundle the plaintext holds; and the input as a bundle by itself.
pub fn sealed_model(data: &[u8]) {
    if let Ok(header) = SealedHeader::parse(data) {
        let _ = header.expect_key_id("k");
        let _ = header.sealed_len();
        let key = ModelKey::from_bytes(SEALED_MODEL_FUZZ_KEY);
        if let Ok(model) = unseal_with_threads(data, &key, 1)
            && let Ok(bundle) = Bundle::parse(model.plaintext())
        {
            let _ = bundle.manifest_digest();
        }
    }
    if let Ok(bundle) = Bundle::parse(data) {
        for (name, bytes) in bundle.files() {
            assert_eq!(bundle.get(name), Some(bytes), "bundle lookup disagrees");
        }
    }
}

/// A verifier policy (TOML), as `PUT /v1/admin/policy` and `confidant evidence verify` read it.
pub fn policy_toml(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = Policy::from_toml(text);
    }
}

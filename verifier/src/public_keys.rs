//! The verifier's public keys as one document: the body of `GET /v1/keys`, and the
//! `public-keys.json` that `init` writes next to the configuration.
//!
//! Relying parties read the result-signing key from it (`confidant … --result-key`, which takes
//! this document, a JWK, a COSE_Key or an SPKI) and auditors the checkpoint key
//! (`confidant audit verify --key`, which takes this document too).

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use confidant_attestation::result::ResultVerifier;
pub use confidant_wire::admin::PublicKeys;

/// The document for a result verifier and a checkpoint key (SEC1 point).
pub fn document(result: &ResultVerifier, checkpoint_sec1: &[u8]) -> PublicKeys {
    let cose = result
        .cose_key()
        .map(|c| STANDARD.encode(c))
        .unwrap_or_default();
    PublicKeys {
        keys: vec![result.jwk()],
        cose_keys: vec![cose],
        audit_checkpoint_key: hex::encode(checkpoint_sec1),
    }
}

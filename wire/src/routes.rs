//! Every HTTP route of the verifier and the enclave, defined once: the servers' routers and the
//! clients (SDK, CLI, the enclave's verifier client, tests) name the same constants.
//!
//! Paths with a parameter are written as axum route templates (`{id}`); the function of the same
//! name fills the parameter in for a client.

/// The verifier's API (HTTPS).
pub mod verifier {
    /// `POST`: a fresh nonce ([`ChallengeResponse`](crate::attest::ChallengeResponse)).
    pub const CHALLENGE: &str = "/v1/challenge";
    /// `POST`: evidence in, result + certificate + wrapped key out (CBOR,
    /// [`AttestRequest`](crate::attest::AttestRequest) → [`AttestResponse`](crate::attest::AttestResponse)).
    pub const ATTEST: &str = "/v1/attest";
    /// `POST`: a TPM credential for an AK under an EK
    /// ([`CredentialRequest`](crate::attest::CredentialRequest) →
    /// [`CredentialResponse`](crate::attest::CredentialResponse)).
    pub const ATTEST_CREDENTIAL: &str = "/v1/attest/credential";
    /// `GET`: the verifier CA certificate (PEM).
    pub const CA: &str = "/v1/ca";
    /// `GET`: the result-signing key (JWK set and COSE_Key).
    pub const KEYS: &str = "/v1/keys";
    /// `PUT` / `GET`: the active policy (admin).
    pub const ADMIN_POLICY: &str = "/v1/admin/policy";
    /// `POST`: revoke a measurement (admin).
    pub const ADMIN_REVOKE_MEASUREMENT: &str = "/v1/admin/measurements/revoke";
    /// `POST` (import) / `GET` (list): model keys (admin).
    pub const ADMIN_KEYS: &str = "/v1/admin/keys";
    /// `POST`: rotate a model's key (admin); see [`admin_key_rotate`].
    pub const ADMIN_KEY_ROTATE: &str = "/v1/admin/keys/{id}/rotate";
    /// `POST`: revoke a model key (admin); see [`admin_key_revoke`].
    pub const ADMIN_KEY_REVOKE: &str = "/v1/admin/keys/{id}/revoke";
    /// `GET`: audit log entries (auditor).
    pub const AUDIT: &str = "/v1/audit";
    /// `GET`: the latest signed audit checkpoint (auditor).
    pub const AUDIT_CHECKPOINT: &str = "/v1/audit/checkpoint";
    /// `GET`: a Merkle inclusion proof (auditor).
    pub const AUDIT_PROOF_INCLUSION: &str = "/v1/audit/proof/inclusion";
    /// `GET`: a Merkle consistency proof (auditor).
    pub const AUDIT_PROOF_CONSISTENCY: &str = "/v1/audit/proof/consistency";

    /// [`ADMIN_KEY_ROTATE`] for key `id`.
    pub fn admin_key_rotate(id: &str) -> String {
        ADMIN_KEY_ROTATE.replace("{id}", id)
    }

    /// [`ADMIN_KEY_REVOKE`] for key `id`.
    pub fn admin_key_revoke(id: &str) -> String {
        ADMIN_KEY_REVOKE.replace("{id}", id)
    }
}

/// The enclave's API (attested TLS).
pub mod enclave {
    /// `POST`: OpenAI chat completions ([`ChatRequest`](crate::openai::ChatRequest)).
    pub const CHAT_COMPLETIONS: &str = "/v1/chat/completions";
    /// `POST`: OpenAI text completions ([`CompletionRequest`](crate::openai::CompletionRequest)).
    pub const COMPLETIONS: &str = "/v1/completions";
    /// `GET`: the model list ([`ModelList`](crate::openai::ModelList)).
    pub const MODELS: &str = "/v1/models";
    /// `POST`: session evidence over this connection
    /// ([`SessionAttestationRequest`](crate::attest::SessionAttestationRequest)).
    pub const SESSION_ATTESTATION: &str = "/v1/attestation";
    /// `GET`: liveness, open while not attested.
    pub const HEALTHZ: &str = "/healthz";
    /// `GET`: Prometheus metrics, open while not attested.
    pub const METRICS: &str = "/metrics";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_are_filled_in() {
        assert_eq!(
            verifier::admin_key_rotate("m-1.k"),
            "/v1/admin/keys/m-1.k/rotate"
        );
        assert_eq!(
            verifier::admin_key_revoke("m-1.k"),
            "/v1/admin/keys/m-1.k/revoke"
        );
    }
}

//! Attestations straight to a verifier, as an enclave makes them (challenge → simulated SEV-SNP
//! evidence over the key-release binding → `POST /v1/attest`), for tests that load or break the
//! verifier. Every failure is a value: the verifier may be gone mid-request.

use std::net::SocketAddr;
use std::sync::Arc;

use confidant_attestation::binding::{Binding, KeyRelease};
use confidant_attestation::evidence::Evidence;
use confidant_attester::snp_sim::SimulatedSnp;
use confidant_wire::attest::{AttestRequest, AttestResponse, CBOR_CONTENT_TYPE, ChallengeResponse};
use confidant_wire::error::ErrorBody;
use confidant_wire::routes;
use ring::rand::SecureRandom;

use crate::https::{HttpError, try_request};
use crate::{KEY_ID, MODEL_ID};

/// What one attestation came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// 200: a key was released with this result (SHA-256 of the COSE bytes, as the audit log
    /// records it).
    Released { result_digest: [u8; 32] },
    /// Any other reply, with its error code.
    Refused { status: u16, code: String },
    /// No complete reply (connection refused, reset, closed mid-reply).
    NoReply(String),
}

/// Makes attestations for one simulated enclave build.
#[derive(Clone)]
pub struct Driver {
    addr: SocketAddr,
    tls_pem: Arc<Vec<u8>>,
    token: Arc<String>,
    model_digest: [u8; 32],
    measurement: [u8; 48],
    sim: Arc<SimulatedSnp>,
}

impl std::fmt::Debug for Driver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Driver")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl Driver {
    /// Attests to the verifier at `addr` (pinning `tls_pem`) with the enclave `token`, for the
    /// model `model_digest` on the launch `measurement`.
    pub fn new(
        addr: SocketAddr,
        tls_pem: Vec<u8>,
        token: String,
        model_digest: [u8; 32],
        measurement: [u8; 48],
    ) -> Self {
        let sim =
            SimulatedSnp::from_dir(&confidant_testkit::dev_pki()).expect("simulated attester");
        Self {
            addr,
            tls_pem: Arc::new(tls_pem),
            token: Arc::new(token),
            model_digest,
            measurement,
            sim: Arc::new(sim),
        }
    }

    /// One full attestation.
    pub async fn attest(&self) -> Outcome {
        match self.try_attest().await {
            Ok(o) => o,
            Err(e) => Outcome::NoReply(e.to_string()),
        }
    }

    async fn try_attest(&self) -> Result<Outcome, HttpError> {
        let token = Some(self.token.as_str());
        let r = try_request(
            self.addr,
            &self.tls_pem,
            "POST",
            routes::verifier::CHALLENGE,
            token,
            None,
        )
        .await?;
        if r.status != 200 {
            return Ok(refused(r.status, &r.body));
        }
        let challenge: ChallengeResponse = serde_json::from_slice(&r.body).expect("challenge");
        let nonce: [u8; 32] = crate::hex_array(&challenge.nonce);
        let key = rcgen::KeyPair::generate().expect("TLS key");
        let spki = rcgen::PublicKeyData::subject_public_key_info(&key);
        let request = key_release_request(
            &self.sim,
            nonce,
            spki,
            &self.model_digest,
            &self.measurement,
        );
        let r = try_request(
            self.addr,
            &self.tls_pem,
            "POST",
            routes::verifier::ATTEST,
            token,
            Some((CBOR_CONTENT_TYPE, request.to_cbor())),
        )
        .await?;
        if r.status != 200 {
            return Ok(refused(r.status, &r.body));
        }
        let reply = AttestResponse::from_cbor(&r.body).expect("attest reply");
        let digest = ring::digest::digest(&ring::digest::SHA256, &reply.result);
        Ok(Outcome::Released {
            result_digest: digest.as_ref().try_into().expect("32 bytes"),
        })
    }
}

/// The `POST /v1/attest` body of a simulated enclave for `nonce`: a fresh random wrap key, and
/// evidence from `sim` claiming `measurement` over the key-release binding of `nonce`, `tls_spki`
/// and `model_digest`, for [`MODEL_ID`] and [`KEY_ID`].
pub fn key_release_request(
    sim: &SimulatedSnp,
    nonce: [u8; 32],
    tls_spki: Vec<u8>,
    model_digest: &[u8; 32],
    measurement: &[u8; 48],
) -> AttestRequest {
    let mut wrap_pk = [0u8; 32];
    ring::rand::SystemRandom::new()
        .fill(&mut wrap_pk)
        .expect("randomness");
    let binding = Binding::compute(KeyRelease {
        nonce,
        tls_spki_der: tls_spki.clone(),
        wrap_pk,
        model_digest: confidant_attestation::digest::Blake3Digest::from_bytes(*model_digest),
    });
    let evidence = Evidence::SevSnp(
        sim.attest(binding.as_bytes(), measurement)
            .expect("simulated evidence"),
    )
    .to_cbor();
    AttestRequest {
        nonce: nonce.to_vec(),
        evidence,
        tls_spki,
        wrap_pk: wrap_pk.to_vec(),
        model_id: MODEL_ID.to_owned(),
        dns_names: vec!["localhost".to_owned()],
        ip_addresses: vec!["127.0.0.1".to_owned()],
        key_id: Some(KEY_ID.to_owned()),
        activation_secret: None,
    }
}

fn refused(status: u16, body: &[u8]) -> Outcome {
    let code = serde_json::from_slice::<ErrorBody>(body)
        .map(|b| b.error.code)
        .unwrap_or_default();
    Outcome::Refused { status, code }
}

/// The audit log's entries as JSON values, read from the file (one canonical JSON object per
/// line); a torn final line is left out.
pub fn audit_entries(log: &[u8]) -> Vec<serde_json::Value> {
    log.split_inclusive(|&b| b == b'\n')
        .filter(|l| l.ends_with(b"\n"))
        .map(|l| serde_json::from_slice(l).expect("audit record"))
        .collect()
}

/// The result digests (hex) of the accepted decisions in a log.
pub fn accepted_results(log: &[u8]) -> Vec<String> {
    audit_entries(log)
        .iter()
        .filter(|e| e["decision"] == "accept")
        .filter_map(|e| e["result_digest"].as_str().map(str::to_owned))
        .collect()
}

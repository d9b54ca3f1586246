//! HTTP bodies of the verifier and enclave APIs (`confidant_wire`), as the receiving end decodes
//! them.

use confidant_wire::attest::{
    AttestRequest, AttestResponse, ChallengeResponse, CredentialRequest, CredentialResponse,
    SessionAttestationRequest, SessionAttestationResponse,
};
use confidant_wire::error::ErrorBody;
use confidant_wire::openai::{
    ChatChunk, ChatRequest, ChatResponse, CompletionRequest, CompletionResponse, ModelList,
};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// `POST /v1/attest` bodies: the request (verifier side) and the reply (enclave side). What
/// decodes re-encodes to a body that decodes to the same value.
pub fn cbor(data: &[u8]) {
    if let Ok(req) = AttestRequest::from_cbor(data) {
        assert_eq!(AttestRequest::from_cbor(&req.to_cbor()).ok(), Some(req));
    }
    if let Ok(resp) = AttestResponse::from_cbor(data) {
        assert_eq!(AttestResponse::from_cbor(&resp.to_cbor()).ok(), Some(resp));
    }
}

/// Decodes `json` as `T`; what decodes must encode.
fn decode<T: DeserializeOwned + Serialize>(json: &[u8]) -> Option<T> {
    let value: T = serde_json::from_slice(json).ok()?;
    assert!(
        serde_json::to_vec(&value).is_ok(),
        "a decoded body does not encode"
    );
    Some(value)
}

/// Decodes `json` as `T` and checks that it survives its own re-encoding (types without floats).
fn round_trip<T: DeserializeOwned + Serialize + PartialEq + std::fmt::Debug>(json: &[u8]) {
    if let Some(value) = decode::<T>(json) {
        let again = serde_json::to_vec(&value)
            .ok()
            .and_then(|b| serde_json::from_slice::<T>(&b).ok());
        assert_eq!(
            again.as_ref(),
            Some(&value),
            "a body does not survive re-encoding"
        );
    }
}

/// First byte: which body; the rest: its JSON.
pub fn json(data: &[u8]) {
    let Some((&which, body)) = data.split_first() else {
        return;
    };
    match which % 12 {
        // Enclave, received from clients.
        0 => drop(decode::<ChatRequest>(body)),
        1 => drop(decode::<CompletionRequest>(body)),
        2 => round_trip::<SessionAttestationRequest>(body),
        // Verifier, received from enclaves.
        3 => round_trip::<CredentialRequest>(body),
        // Enclave, received from the verifier.
        4 => round_trip::<ChallengeResponse>(body),
        5 => round_trip::<CredentialResponse>(body),
        // Clients, received from the enclave or the verifier.
        6 => round_trip::<SessionAttestationResponse>(body),
        7 => drop(decode::<ChatResponse>(body)),
        8 => drop(decode::<ChatChunk>(body)),
        9 => drop(decode::<CompletionResponse>(body)),
        10 => drop(decode::<ModelList>(body)),
        _ => drop(decode::<ErrorBody>(body)),
    }
}

//! The documents `init` writes besides the configuration: the development policy
//! (`policy.toml`, format `docs/policy.example.toml`), the client settings (`client.toml`, read by
//! `confidant attest | chat | proxy --config`) and the client's own policy (`client-policy.toml`:
//! the same format and the same reference values, evaluated by the same code). All are serialized
//! from typed values, never pasted together, and the policies are parsed back before anything is
//! written.

use std::collections::BTreeMap;
use std::path::Path;

use confidant_attestation::policy::Policy;
use serde::Serialize;

use super::{InitError, InitModel};

/// `policy.toml`.
#[derive(Debug, Serialize)]
struct PolicyDoc {
    id: &'static str,
    version: u64,
    revoked_measurements: Vec<String>,
    trust: TrustDoc,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    models: BTreeMap<String, ModelDoc>,
}

#[derive(Debug, Serialize)]
struct TrustDoc {
    amd_products: [&'static str; 3],
    tpm_aks_spki_sha256: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    dev_root_ark_sha256: Option<String>,
}

#[derive(Debug, Serialize)]
struct ModelDoc {
    digest: String,
    snp_measurements: Vec<String>,
    min_tcb: TcbDoc,
    allow_dev: bool,
    tls_names: Vec<String>,
}

#[derive(Debug, Serialize)]
struct TcbDoc {
    bootloader: u8,
    tee: u8,
    snp: u8,
    microcode: u8,
}

const POLICY_HEADER: &str = "\
# Development policy written by `confidant-verifier init` (format: docs/policy.example.toml).
# The verifier reads it at start; after editing, restart it (or send the new text, with a higher
# version, to PUT /v1/admin/policy as role admin).
#
# A model is released only to an enclave whose evidence matches its table:
#   digest            BLAKE3-256 of the plaintext model bundle (`confidant model inspect FILE.sealed`)
#   snp_measurements  launch measurements allowed to run it; for the simulated TEE the output of
#                     `confidant measure sim --binary $(command -v confidant-enclave)`
#   min_tcb           component-wise floor on the reported TCB (0 here: raise it for hardware)
#   allow_dev         accept evidence from the development root (scripts/dev-pki.sh)
#   tls_names         the names an enclave serving the model may have in its certificate
";

const CLIENT_POLICY_HEADER: &str = "\
# The client's policy written by `confidant-verifier init` (format: docs/policy.example.toml,
# the verifier's format, evaluated by the same code). `confidant` reads it through `policy` in
# client.toml: in `passport` mode it checks the verifier's signed result against it, in `direct`
# mode the enclave's session evidence. It starts as a copy of the verifier's policy.toml; a client
# that trusts less edits its own copy.
";

const NO_MODEL_TEMPLATE: &str = "
# No model is allowed yet (`init --model ID --digest HEX --measurement HEX` writes one). Add:
# [models.\"smollm2-135m-instruct\"]
# digest = \"<64 hex digits: BLAKE3-256 of the plaintext model bundle>\"
# snp_measurements = [\"<96 hex digits: launch measurement>\"]
# min_tcb = { bootloader = 0, tee = 0, snp = 0, microcode = 0 }
# allow_dev = true
# tls_names = [\"localhost\", \"127.0.0.1\"]
";

/// The development policy: AMD production roots for every product, the development root pinned
/// by `dev_ark_sha256` if given, and `model` if given (`allow_dev` exactly when the development
/// root is trusted). Parsed back as a [`Policy`] before it is returned.
pub(super) fn policy_toml(
    dev_ark_sha256: Option<&[u8; 32]>,
    model: Option<&InitModel>,
) -> Result<String, InitError> {
    policy_with_header(POLICY_HEADER, dev_ark_sha256, model)
}

/// The client's copy of the development policy ([`policy_toml`] with its own header).
pub(super) fn client_policy_toml(
    dev_ark_sha256: Option<&[u8; 32]>,
    model: &InitModel,
) -> Result<String, InitError> {
    policy_with_header(CLIENT_POLICY_HEADER, dev_ark_sha256, Some(model))
}

fn policy_with_header(
    header: &str,
    dev_ark_sha256: Option<&[u8; 32]>,
    model: Option<&InitModel>,
) -> Result<String, InitError> {
    let models = model
        .map(|m| {
            let doc = ModelDoc {
                digest: m.digest.to_hex(),
                snp_measurements: m.snp_measurements.iter().map(hex::encode).collect(),
                min_tcb: TcbDoc {
                    bootloader: 0,
                    tee: 0,
                    snp: 0,
                    microcode: 0,
                },
                allow_dev: dev_ark_sha256.is_some(),
                tls_names: m.tls_names.clone(),
            };
            (m.id.clone(), doc)
        })
        .into_iter()
        .collect();
    let doc = PolicyDoc {
        id: "dev",
        version: 1,
        revoked_measurements: Vec::new(),
        trust: TrustDoc {
            amd_products: ["milan", "genoa", "turin"],
            tpm_aks_spki_sha256: Vec::new(),
            dev_root_ark_sha256: dev_ark_sha256.map(hex::encode),
        },
        models,
    };
    let body = toml::to_string(&doc).map_err(|e| InitError::Document(e.to_string()))?;
    let tail = if model.is_none() {
        NO_MODEL_TEMPLATE
    } else {
        ""
    };
    let text = format!("{header}\n{body}{tail}");
    Policy::from_toml(&text).map_err(|e| InitError::Document(e.to_string()))?;
    Ok(text)
}

/// `client.toml`: what `confidant` needs to attest the enclave this verifier serves.
#[derive(Debug, Serialize)]
struct ClientDoc {
    ca: &'static str,
    result_key: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    dev_ark: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    dev_ask: Option<String>,
    policy: &'static str,
}

const CLIENT_HEADER: &str = "\
# Client settings written by `confidant-verifier init`, for
#   confidant attest | chat | proxy … --config client.toml --token-file tokens/client.jwt
# Relative paths are relative to this file. `ca` is the CA that certifies attested enclaves,
# `result_key` the verifier's result-signing key (this file holds what GET /v1/keys serves),
# `policy` what this client accepts (the verifier's policy format: models, reference values,
# roots; development evidence only where it pins the development root and allows it), and
# `dev_ark`/`dev_ask` the development root that policy pins.
";

/// The client settings for `model`, trusting the development roots `dev` (ARK, ASK) if given.
pub(super) fn client_toml(
    dev: Option<&(std::path::PathBuf, std::path::PathBuf)>,
) -> Result<String, InitError> {
    let path = |p: &Path| p.display().to_string();
    let doc = ClientDoc {
        ca: super::CA_FILE,
        result_key: super::PUBLIC_KEYS_FILE,
        dev_ark: dev.map(|(ark, _)| path(ark)),
        dev_ask: dev.map(|(_, ask)| path(ask)),
        policy: super::CLIENT_POLICY_FILE,
    };
    let body = toml::to_string(&doc).map_err(|e| InitError::Document(e.to_string()))?;
    Ok(format!("{CLIENT_HEADER}\n{body}"))
}

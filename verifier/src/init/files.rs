//! The documents `init` writes besides the configuration: the development policy
//! (`policy.toml`, format `docs/policy.example.toml`) and the client settings (`client.toml`,
//! read by `confidant attest | chat | proxy --config`). Both are serialized from typed values,
//! never pasted together, and the policy is parsed back before anything is written.

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
";

const NO_MODEL_TEMPLATE: &str = "
# No model is allowed yet (`init --model ID --digest HEX --measurement HEX` writes one). Add:
# [models.\"smollm2-135m-instruct\"]
# digest = \"<64 hex digits: BLAKE3-256 of the plaintext model bundle>\"
# snp_measurements = [\"<96 hex digits: launch measurement>\"]
# min_tcb = { bootloader = 0, tee = 0, snp = 0, microcode = 0 }
# allow_dev = true
";

/// The development policy: AMD production roots for every product, the development root pinned
/// by `dev_ark_sha256` if given, and `model` if given (`allow_dev` exactly when the development
/// root is trusted). Parsed back as a [`Policy`] before it is returned.
pub(super) fn policy_toml(
    dev_ark_sha256: Option<&[u8; 32]>,
    model: Option<&InitModel>,
) -> Result<String, InitError> {
    let models = model
        .map(|m| {
            let doc = ModelDoc {
                digest: hex::encode(m.digest),
                snp_measurements: m.snp_measurements.iter().map(hex::encode).collect(),
                min_tcb: TcbDoc {
                    bootloader: 0,
                    tee: 0,
                    snp: 0,
                    microcode: 0,
                },
                allow_dev: dev_ark_sha256.is_some(),
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
    let text = format!("{POLICY_HEADER}\n{body}{tail}");
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
    policy: ClientPolicyDoc,
}

#[derive(Debug, Serialize)]
struct ClientPolicyDoc {
    allow_dev: bool,
    measurements: Vec<String>,
    models: Vec<AllowedModelDoc>,
}

#[derive(Debug, Serialize)]
struct AllowedModelDoc {
    id: String,
    digest: String,
}

const CLIENT_HEADER: &str = "\
# Client settings written by `confidant-verifier init`, for
#   confidant attest | chat | proxy … --config client.toml --token-file tokens/client.jwt
# Relative paths are relative to this file. `ca` is the CA that certifies attested enclaves,
# `result_key` the verifier's result-signing key (this file holds what GET /v1/keys serves), and
# [policy] what this client accepts: these models and launch measurements, and development
# (simulated) evidence only when `allow_dev` is true.
";

/// The client settings for `model`, trusting the development roots `dev` (ARK, ASK) if given.
pub(super) fn client_toml(
    model: &InitModel,
    dev: Option<&(std::path::PathBuf, std::path::PathBuf)>,
) -> Result<String, InitError> {
    let path = |p: &Path| p.display().to_string();
    let doc = ClientDoc {
        ca: super::CA_FILE,
        result_key: super::PUBLIC_KEYS_FILE,
        dev_ark: dev.map(|(ark, _)| path(ark)),
        dev_ask: dev.map(|(_, ask)| path(ask)),
        policy: ClientPolicyDoc {
            allow_dev: dev.is_some(),
            measurements: model.snp_measurements.iter().map(hex::encode).collect(),
            models: vec![AllowedModelDoc {
                id: model.id.clone(),
                digest: hex::encode(model.digest),
            }],
        },
    };
    let body = toml::to_string(&doc).map_err(|e| InitError::Document(e.to_string()))?;
    Ok(format!("{CLIENT_HEADER}\n{body}"))
}

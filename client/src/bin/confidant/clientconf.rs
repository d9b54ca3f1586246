//! Client settings shared by `attest`, `chat` and `proxy`: flags, environment (`CONFIDANT_*`), or a
//! TOML file (`--config`); a flag or variable wins over the file.
//!
//! ```toml
//! ca = "verifier-ca.pem"            # pinned verifier CA
//! result_key = "public-keys.json"   # verifier result-signing key: GET /v1/keys body, JWK, COSE_Key or SPKI
//! mode = "passport"                 # or "direct"
//! fresh = true                      # session evidence per connection (default)
//! policy = "client-policy.toml"     # the verifier's policy format (docs/policy.example.toml)
//! dev_ark = "dev-ark.der"           # the development root the policy pins (simulated SNP)
//! dev_ask = "dev-ask.der"
//! connect_timeout_secs = 30
//! ```
//! The trust anchors evidence is verified against are the policy's: AMD's pinned roots for the
//! products it lists, the development root it pins (whose ARK and ASK `dev_ark`/`dev_ask` give),
//! the TPM attestation keys it lists.
//! The bearer token is read from `CONFIDANT_TOKEN` or `--token-file`, never from a flag value.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Args, ValueEnum};
use serde::Deserialize;

use confidant_client::{BearerToken, ClientBuilder, Mode, Policy, ResultVerifier};

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ModeArg {
    Passport,
    Direct,
}

/// Flags common to the commands that talk to an enclave.
#[derive(Debug, Args)]
pub struct ClientArgs {
    /// TOML file with any of the settings below.
    #[arg(long, env = "CONFIDANT_CONFIG")]
    config: Option<PathBuf>,
    /// Verifier CA certificate (PEM or DER) to pin.
    #[arg(long, env = "CONFIDANT_CA")]
    ca: Option<PathBuf>,
    /// Verifier result-signing public key: the `GET /v1/keys` document (`public-keys.json` of
    /// `confidant-verifier init`), a JWK, COSE_Key, or SPKI PEM/DER.
    #[arg(long, env = "CONFIDANT_RESULT_KEY")]
    result_key: Option<PathBuf>,
    /// Client policy: the verifier's policy format (docs/policy.example.toml), checked with the
    /// verifier's code. Its `[trust]` decides which roots and TPM keys evidence may chain to.
    #[arg(long, env = "CONFIDANT_POLICY")]
    policy: Option<PathBuf>,
    /// `passport`: the verifier's signed result, checked against the policy, vouches for the
    /// platform; session evidence must show the platform it names. `direct`: the session
    /// evidence itself passes the whole policy, and the client alone checks its binding to this
    /// TLS session, key and model (needs session evidence: refuses --no-fresh).
    #[arg(long, env = "CONFIDANT_MODE", value_enum)]
    mode: Option<ModeArg>,
    /// Skip per-connection session evidence (`passport` only): the key is then bound by the
    /// verifier's result alone, and the TLS session not at all.
    #[arg(long)]
    no_fresh: bool,
    /// Development ARK (DER or PEM): the one the policy pins in `trust.dev_root_ark_sha256`.
    #[arg(long, env = "CONFIDANT_DEV_ARK", requires = "dev_ask")]
    dev_ark: Option<PathBuf>,
    /// Development ASK (DER or PEM) matching --dev-ark.
    #[arg(long, env = "CONFIDANT_DEV_ASK", requires = "dev_ark")]
    dev_ask: Option<PathBuf>,
    /// File holding the bearer token (alternatively set CONFIDANT_TOKEN).
    #[arg(long, env = "CONFIDANT_TOKEN_FILE")]
    token_file: Option<PathBuf>,
    /// Seconds allowed for connecting and attesting.
    #[arg(long, env = "CONFIDANT_CONNECT_TIMEOUT")]
    connect_timeout_secs: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    ca: Option<PathBuf>,
    result_key: Option<PathBuf>,
    mode: Option<Mode>,
    fresh: Option<bool>,
    dev_ark: Option<PathBuf>,
    dev_ask: Option<PathBuf>,
    connect_timeout_secs: Option<u64>,
    policy: Option<PathBuf>,
}

fn read(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("reading {}", path.display()))
}

/// DER from a file holding either DER or one PEM block.
fn der_or_pem(path: &Path) -> Result<Vec<u8>> {
    let bytes = read(path)?;
    match pem::parse(&bytes) {
        Ok(p) => Ok(p.into_contents()),
        Err(_) => Ok(bytes),
    }
}

impl ClientArgs {
    /// A builder for `url` with every setting applied.
    pub fn builder(&self, url: &str) -> Result<ClientBuilder> {
        let file: FileConfig = match &self.config {
            Some(path) => {
                let text = String::from_utf8(read(path)?).context("config is not UTF-8")?;
                toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))?
            }
            None => FileConfig::default(),
        };
        // Paths in the file are relative to the file.
        let base = self
            .config
            .as_deref()
            .and_then(Path::parent)
            .map(Path::to_path_buf)
            .unwrap_or_default();
        let from_file = |p: &Option<PathBuf>| p.as_ref().map(|p| base.join(p));

        let ca_path = self
            .ca
            .clone()
            .or_else(|| from_file(&file.ca))
            .context("no verifier CA: pass --ca, CONFIDANT_CA or `ca` in the config")?;
        let key_path = self
            .result_key
            .clone()
            .or_else(|| from_file(&file.result_key))
            .context("no result key: pass --result-key, CONFIDANT_RESULT_KEY or `result_key`")?;
        let policy_path = self
            .policy
            .clone()
            .or_else(|| from_file(&file.policy))
            .context("no policy: pass --policy, CONFIDANT_POLICY or `policy` in the config")?;
        let text = String::from_utf8(read(&policy_path)?).context("policy is not UTF-8")?;
        let policy = Policy::from_toml(&text)
            .with_context(|| format!("parsing policy {}", policy_path.display()))?;
        let mode = match self.mode {
            Some(ModeArg::Passport) => Mode::Passport,
            Some(ModeArg::Direct) => Mode::Direct,
            None => file.mode.unwrap_or_default(),
        };
        let fresh = !self.no_fresh && file.fresh.unwrap_or(true);

        let dev = match (&self.dev_ark, &self.dev_ask) {
            (Some(ark), Some(ask)) => Some((ark.clone(), ask.clone())),
            _ => from_file(&file.dev_ark).zip(from_file(&file.dev_ask)),
        };
        let dev = match dev {
            Some((ark, ask)) => Some((der_or_pem(&ark)?, der_or_pem(&ask)?)),
            None => None,
        };
        let anchors = policy
            .trust_anchors(
                dev.as_ref().map(|(ark, _)| ark.as_slice()),
                dev.as_ref().map(|(_, ask)| ask.as_slice()),
            )
            .context("the policy's trust anchors")?;

        let mut builder = ClientBuilder::new(url)
            .verifier_ca(&read(&ca_path)?)
            .result_key(load_result_key(&key_path)?)
            .policy(policy)
            .mode(mode)
            .fresh(fresh)
            .trust_anchors(anchors);
        if let Some(secs) = self.connect_timeout_secs.or(file.connect_timeout_secs) {
            builder = builder.connect_timeout(Duration::from_secs(secs));
        }
        if let Some(token) = self.token()? {
            builder = builder.bearer_token(token);
        }
        Ok(builder)
    }

    fn token(&self) -> Result<Option<BearerToken>> {
        if let Ok(t) = std::env::var("CONFIDANT_TOKEN") {
            return Ok(Some(BearerToken::new(t.trim().to_string())));
        }
        match &self.token_file {
            Some(path) => {
                let bytes = zeroize::Zeroizing::new(read(path)?);
                let text = std::str::from_utf8(&bytes).context("token file is not UTF-8")?;
                Ok(Some(BearerToken::new(text.trim().to_string())))
            }
            None => Ok(None),
        }
    }
}

/// The verifier's public key document (`GET /v1/keys`, `public-keys.json` of
/// `confidant-verifier init`), or any JWK Set: only its `keys` matter here.
#[derive(Debug, Deserialize)]
struct KeySet {
    keys: Vec<confidant_attestation::result::Jwk>,
}

/// Loads the verifier's result-signing key in whichever format the file holds: the `GET /v1/keys`
/// document (or another JWK Set with one key), a JWK, COSE_Key (CBOR), SubjectPublicKeyInfo (PEM
/// or DER), or a raw SEC1 point.
fn load_result_key(path: &Path) -> Result<ResultVerifier> {
    let bytes = read(path)?;
    if let Ok(text) = std::str::from_utf8(&bytes) {
        let trimmed = text.trim_start();
        if let Ok(set) = serde_json::from_str::<KeySet>(trimmed) {
            let [jwk] = set.keys.as_slice() else {
                bail!(
                    "{}: the key set holds {} keys; pass the one JWK to trust",
                    path.display(),
                    set.keys.len()
                );
            };
            let jwk = serde_json::to_string(jwk).context("result key (JWK Set)")?;
            return ResultVerifier::from_jwk(&jwk).context("result key (JWK Set)");
        }
        if trimmed.starts_with('{') {
            return ResultVerifier::from_jwk(trimmed).context("result key (JWK)");
        }
        if trimmed.starts_with("-----") {
            let der = pem::parse(trimmed).context("result key (PEM)")?;
            return from_spki(der.contents()).context("result key (SPKI PEM)");
        }
    }
    if let Ok(v) = ResultVerifier::from_cose_key(&bytes) {
        return Ok(v);
    }
    if let Ok(v) = from_spki(&bytes) {
        return Ok(v);
    }
    match ResultVerifier::from_public_key(&bytes) {
        Ok(v) => Ok(v),
        Err(_) => bail!("{}: not a JWK, COSE_Key, SPKI or SEC1 key", path.display()),
    }
}

fn from_spki(der: &[u8]) -> Result<ResultVerifier> {
    use x509_parser::prelude::FromDer;
    let (rest, spki) = x509_parser::x509::SubjectPublicKeyInfo::from_der(der)
        .map_err(|_| anyhow::anyhow!("not a SubjectPublicKeyInfo"))?;
    if !rest.is_empty() {
        bail!("trailing bytes after the SubjectPublicKeyInfo");
    }
    Ok(ResultVerifier::from_public_key(
        &spki.subject_public_key.data,
    )?)
}

//! `confidant-verifier init DIR`: a fresh development configuration and its secrets.
//!
//! Everything is checked first (the development PKI exists, the model values are well formed),
//! then written into a staging directory next to `DIR` and moved into place only when all of it
//! was written ([`stage`]): a failed `init` leaves nothing behind. Under `DIR` (secrets mode 0600):
//!
//! | file | what |
//! |---|---|
//! | `verifier.toml` | the configuration, every secret named by file |
//! | `tls-cert.pem` | the verifier's own TLS certificate (self-signed, `localhost`, `127.0.0.1`); enclaves and admins pin it |
//! | `ca.pem` | the verifier CA certificate that issues enclave leaves; clients pin it |
//! | `policy.toml` | a development policy: trusts the dev SNP root if `--dev-pki` was given, and allows `--model` if given |
//! | `public-keys.json` | the verifier's public keys, as `GET /v1/keys` serves them (result-signing key, audit checkpoint key) |
//! | `client.toml` | (with `--model`) client settings for `confidant … --config`: CA, result key, dev roots, the client policy file |
//! | `client-policy.toml` | (with `--model`) the client's policy: a copy of `policy.toml` (same format, same engine) |
//! | `secrets/tls-key.pem` | TLS private key |
//! | `secrets/ca-key.p8` | CA private key (PKCS#8 DER, P-256) |
//! | `secrets/result-key.p8` | result signing key (PKCS#8 DER, P-256) |
//! | `secrets/checkpoint-key.p8` | audit checkpoint signing key (PKCS#8 DER, P-256) |
//! | `secrets/kek` | key-encryption key (32 random bytes) |
//! | `secrets/jwt-verify.jwk` | the JWT verification key (public, but loaded as a secret source) |
//! | `secrets/jwt-issuer.p8` | the development JWT issuer's private key |
//! | `tokens/{admin,auditor,enclave}.jwt` | development bearer tokens for the verifier, one role each (audience [`DEV_AUDIENCE`]) |
//! | `tokens/client.jwt` | a development bearer token for the enclave's API (role `client`, audience [`DEV_ENCLAVE_AUDIENCE`]) |

mod files;
mod stage;

use std::path::{Path, PathBuf};

use confidant_attestation::digest::Blake3Digest;
use confidant_attestation::leafcert::CertificateAuthority;
use confidant_attestation::result::ResultSigner;
use confidant_service::jwt::{JwtIssuer, TokenClaims};
use confidant_service::secrets::write_secret_file;
use ring::rand::{SecureRandom, SystemRandom};
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};

/// Default issuer of development tokens.
pub const DEV_ISSUER: &str = "confidant-dev-issuer";
/// Audience of the development tokens for the verifier (roles admin, auditor, enclave).
pub const DEV_AUDIENCE: &str = "confidant-verifier";
/// Audience of the development client and metrics tokens: the enclave's API (`[auth] audience`
/// of `docs/enclave.example.toml`). A token is addressed to the service that accepts it.
pub const DEV_ENCLAVE_AUDIENCE: &str = "confidant-enclave";
/// The roles development tokens are minted for, with the audience of each. (`metrics` is for an
/// enclave's `GET /metrics`: the operator's scraper.)
pub const DEV_ROLES: [(&str, &str); 5] = [
    ("admin", DEV_AUDIENCE),
    ("auditor", DEV_AUDIENCE),
    ("enclave", DEV_AUDIENCE),
    ("client", DEV_ENCLAVE_AUDIENCE),
    ("metrics", DEV_ENCLAVE_AUDIENCE),
];

/// The configuration file `init` writes (what `serve --config` takes).
pub const CONFIG_FILE: &str = "verifier.toml";
/// The CA certificate clients pin.
pub const CA_FILE: &str = "ca.pem";
/// The public key document (`GET /v1/keys`).
pub const PUBLIC_KEYS_FILE: &str = "public-keys.json";
/// The client settings (with `--model`).
pub const CLIENT_FILE: &str = "client.toml";
/// The client's policy (with `--model`).
pub const CLIENT_POLICY_FILE: &str = "client-policy.toml";

/// Why `init` failed. Nothing was written.
#[derive(Debug, thiserror::Error)]
pub enum InitError {
    #[error("{0} already holds a verifier configuration (use --force to overwrite)")]
    Exists(PathBuf),
    #[error("{0} does not name a directory")]
    BadDir(PathBuf),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("writing secret: {0}")]
    Secret(#[from] confidant_service::secrets::SecretError),
    #[error(
        "development PKI directory {0} does not exist: create it first with \
         `bash scripts/dev-pki.sh {0}`"
    )]
    DevPkiMissing(PathBuf),
    #[error(
        "development PKI directory {0} lacks {1}: is it the output of `scripts/dev-pki.sh`? \
         (rerun `bash scripts/dev-pki.sh {0}`)"
    )]
    DevPki(PathBuf, &'static str),
    #[error("invalid model id {0:?}: use 1-128 characters of [A-Za-z0-9._:/-]")]
    ModelId(String),
    #[error("--model needs at least one --measurement (the enclave's launch measurement)")]
    NoMeasurement,
    #[error("generated document is invalid: {0}")]
    Document(String),
    #[error("key generation failed: {0}")]
    Crypto(String),
    #[error("listen address {0:?} is not IP:PORT")]
    Listen(String),
    #[error("enclave certificate name {0:?} is neither an IP address nor a DNS host name")]
    EnclaveName(String),
}

/// The model the development policy (and the client policy) allow.
#[derive(Debug, Clone)]
pub struct InitModel {
    /// The model id (what the enclave asks a key for).
    pub id: String,
    /// BLAKE3-256 of the plaintext bundle (the sealed header's model digest).
    pub digest: Blake3Digest,
    /// SEV-SNP launch measurements allowed to run it (simulated TEE: `confidant measure sim`).
    pub snp_measurements: Vec<[u8; 48]>,
    /// The names an enclave serving it may have in its certificate (`tls_names`).
    pub tls_names: Vec<String>,
}

/// The enclave certificate names a development model allows when none are given: where the
/// development enclave listens.
pub const DEV_ENCLAVE_NAMES: [&str; 2] = ["localhost", "127.0.0.1"];

/// Options of `init`.
#[derive(Debug, Clone)]
pub struct InitOptions {
    pub dir: PathBuf,
    /// Output directory of `scripts/dev-pki.sh`: trust its ARK/ASK as a development root.
    pub dev_pki: Option<PathBuf>,
    /// A model to allow in the policy; also makes `init` write `client.toml`.
    pub model: Option<InitModel>,
    /// Listen address written into the configuration.
    pub listen: String,
    /// Address of the admin and auditor APIs; `None`: loopback, the next port after `listen`'s
    /// (port 0 when `listen` picks its port), so they are reachable only from this machine.
    pub admin_listen: Option<String>,
    /// Lifetime of the minted development tokens, seconds.
    pub token_ttl_secs: u64,
    /// Names (DNS or IP) the verifier's TLS certificate carries besides `localhost` and `127.0.0.1`.
    pub tls_names: Vec<String>,
    pub force: bool,
}

impl InitOptions {
    /// Defaults for `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: dir.into(),
            dev_pki: None,
            model: None,
            listen: "127.0.0.1:8443".to_owned(),
            admin_listen: None,
            token_ttl_secs: 30 * 86_400,
            tls_names: Vec::new(),
            force: false,
        }
    }
}

/// What `init` wrote.
#[derive(Debug, Clone)]
pub struct InitOutput {
    pub config: PathBuf,
    pub tokens: Vec<(String, PathBuf)>,
    /// `client.toml`, when a model was given.
    pub client: Option<PathBuf>,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> InitError + '_ {
    move |source| InitError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn write_public(path: &Path, bytes: &[u8]) -> Result<(), InitError> {
    std::fs::write(path, bytes).map_err(io(path))
}

/// The development ARK and ASK written by `scripts/dev-pki.sh OUTDIR`.
pub fn dev_pki_files(dir: &Path) -> Result<(PathBuf, PathBuf), InitError> {
    if !dir.is_dir() {
        return Err(InitError::DevPkiMissing(dir.to_path_buf()));
    }
    let find = |names: &[&str], what: &'static str| {
        names
            .iter()
            .map(|n| dir.join(n))
            .find(|p| p.is_file())
            .ok_or_else(|| InitError::DevPki(dir.to_path_buf(), what))
    };
    Ok((
        find(&["ark.der", "ark.pem", "ark.crt"], "ark.der")?,
        find(&["ask.der", "ask.pem", "ask.crt"], "ask.der")?,
    ))
}

/// What the inputs say, checked before anything is written.
struct Checked {
    /// Absolute ARK and ASK paths, so the configuration does not depend on the directory init
    /// ran from.
    dev: Option<(PathBuf, PathBuf)>,
    dev_ark_sha256: Option<[u8; 32]>,
}

fn check_inputs(opts: &InitOptions) -> Result<Checked, InitError> {
    if opts.dir.join(CONFIG_FILE).exists() && !opts.force {
        return Err(InitError::Exists(opts.dir.clone()));
    }
    if let Some(m) = &opts.model {
        if !crate::keys::valid_model_id(&m.id) {
            return Err(InitError::ModelId(m.id.clone()));
        }
        if m.snp_measurements.is_empty() {
            return Err(InitError::NoMeasurement);
        }
        if let Some(bad) = m
            .tls_names
            .iter()
            .find(|n| confidant_attestation::names::SubjectName::parse(n).is_err())
        {
            return Err(InitError::EnclaveName(bad.clone()));
        }
    }
    let dev = match &opts.dev_pki {
        Some(d) => {
            let (ark, ask) = dev_pki_files(d)?;
            let abs = |p: &Path| std::fs::canonicalize(p).map_err(io(p));
            Some((abs(&ark)?, abs(&ask)?))
        }
        None => None,
    };
    let dev_ark_sha256 = match &dev {
        Some((ark, _)) => {
            let der = crate::policy_store::read_der(ark)
                .map_err(|_| InitError::DevPki(ark.clone(), "a readable ark.der"))?;
            let d = ring::digest::digest(&ring::digest::SHA256, &der);
            let mut out = [0u8; 32];
            out.copy_from_slice(d.as_ref());
            Some(out)
        }
        None => None,
    };
    Ok(Checked {
        dev,
        dev_ark_sha256,
    })
}

/// Runs `init`. `now` is Unix seconds. On error nothing under `opts.dir` changed.
pub fn init(opts: &InitOptions, now: u64) -> Result<InitOutput, InitError> {
    let checked = check_inputs(opts)?;
    let staging = stage::Staging::new(&opts.dir)?;
    let written = write_all(staging.path(), opts, &checked, now)?;
    staging.commit()?;
    let dir = &opts.dir;
    Ok(InitOutput {
        config: dir.join(CONFIG_FILE),
        tokens: written
            .roles
            .into_iter()
            .map(|r| (r.to_owned(), dir.join("tokens").join(format!("{r}.jwt"))))
            .collect(),
        client: written.client.then(|| dir.join(CLIENT_FILE)),
    })
}

struct Written {
    roles: Vec<&'static str>,
    client: bool,
}

/// Writes every file into `dir` (the staging directory).
fn write_all(
    dir: &Path,
    opts: &InitOptions,
    checked: &Checked,
    now: u64,
) -> Result<Written, InitError> {
    let secrets = dir.join("secrets");
    let tokens = dir.join("tokens");
    for d in [&secrets, &tokens] {
        std::fs::create_dir_all(d).map_err(io(d))?;
        restrict_dir(d)?;
    }
    let rng = SystemRandom::new();
    let crypto = |e: &dyn std::fmt::Display| InitError::Crypto(e.to_string());

    // Verifier TLS identity.
    let mut names = vec!["localhost".to_owned(), "127.0.0.1".to_owned()];
    for name in &opts.tls_names {
        if !names.contains(name) {
            names.push(name.clone());
        }
    }
    let mut params = rcgen::CertificateParams::new(names).map_err(|e| crypto(&e))?;
    params.distinguished_name.push(
        rcgen::DnType::CommonName,
        "confidant-verifier (development)",
    );
    let tls_key =
        rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(|e| crypto(&e))?;
    let tls_cert = params.self_signed(&tls_key).map_err(|e| crypto(&e))?;
    write_public(&dir.join("tls-cert.pem"), tls_cert.pem().as_bytes())?;
    write_secret_file(
        &secrets.join("tls-key.pem"),
        tls_key.serialize_pem().as_bytes(),
    )?;

    // CA, result signer, checkpoint signer, KEK.
    let ca_key = CertificateAuthority::generate_key(&rng).map_err(|e| crypto(&e))?;
    write_secret_file(&secrets.join("ca-key.p8"), &ca_key)?;
    let ca_not_before = now.saturating_sub(3600);
    let ca_not_after = now.saturating_add(10 * 365 * 86_400);
    let ca_name = "Confidant development verifier CA";
    let ca = CertificateAuthority::new(&ca_key, ca_name, ca_not_before, ca_not_after, &rng)
        .map_err(|e| crypto(&e))?;
    write_public(&dir.join(CA_FILE), ca.cert_pem().as_bytes())?;
    let result_key = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
        .map_err(|e| crypto(&e))?;
    write_secret_file(&secrets.join("result-key.p8"), result_key.as_ref())?;
    let checkpoint_key = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
        .map_err(|e| crypto(&e))?;
    write_secret_file(&secrets.join("checkpoint-key.p8"), checkpoint_key.as_ref())?;
    let mut kek = zeroize::Zeroizing::new([0u8; 32]);
    rng.fill(kek.as_mut_slice()).map_err(|e| crypto(&e))?;
    write_secret_file(&secrets.join("kek"), kek.as_slice())?;

    // The public keys, as GET /v1/keys will serve them.
    let result_signer =
        ResultSigner::from_pkcs8(result_key.as_ref(), &rng).map_err(|e| crypto(&e))?;
    let checkpoint_pair = EcdsaKeyPair::from_pkcs8(
        &ECDSA_P256_SHA256_FIXED_SIGNING,
        checkpoint_key.as_ref(),
        &rng,
    )
    .map_err(|e| crypto(&e))?;
    let public = crate::public_keys::document(
        result_signer.verifier(),
        checkpoint_pair.public_key().as_ref(),
    );
    let public = serde_json::to_vec_pretty(&public).map_err(|e| crypto(&e))?;
    write_public(&dir.join(PUBLIC_KEYS_FILE), &public)?;

    // JWT issuer and development tokens.
    let issuer = JwtIssuer::generate(Some("dev-1".to_owned())).map_err(|e| crypto(&e))?;
    write_secret_file(&secrets.join("jwt-issuer.p8"), issuer.pkcs8().expose())?;
    let jwk = serde_json::to_vec_pretty(&issuer.public_jwk()).map_err(|e| crypto(&e))?;
    write_secret_file(&secrets.join("jwt-verify.jwk"), &jwk)?;
    let mut roles = Vec::new();
    for (role, audience) in DEV_ROLES {
        let claims = TokenClaims::new(
            DEV_ISSUER,
            audience,
            format!("dev-{role}"),
            &[role],
            now,
            opts.token_ttl_secs,
        );
        let token = issuer.mint(&claims).map_err(|e| crypto(&e))?;
        write_secret_file(&tokens.join(format!("{role}.jwt")), token.as_bytes())?;
        roles.push(role);
    }

    // Policy, client settings.
    let policy = files::policy_toml(checked.dev_ark_sha256.as_ref(), opts.model.as_ref())?;
    write_public(&dir.join("policy.toml"), policy.as_bytes())?;
    if let Some(model) = &opts.model {
        let client = files::client_toml(checked.dev.as_ref())?;
        write_public(&dir.join(CLIENT_FILE), client.as_bytes())?;
        let client_policy = files::client_policy_toml(checked.dev_ark_sha256.as_ref(), model)?;
        write_public(&dir.join(CLIENT_POLICY_FILE), client_policy.as_bytes())?;
    }

    let dev_lines = match &checked.dev {
        Some((ark, ask)) => format!(
            "dev_ark = {}\ndev_ask = {}\n",
            toml_str(&ark.display().to_string()),
            toml_str(&ask.display().to_string())
        ),
        None => String::new(),
    };
    let config = format!(
        r#"# confidant-verifier development configuration, written by `confidant-verifier init`.
# See docs/verifier.example.toml for every option. Relative paths are relative to this file.

[server]
# Attestation API (enclaves, public CA and keys).
listen = {listen}
# Admin and auditor APIs, on their own address (loopback by default).
admin_listen = {admin_listen}
tls_cert = "tls-cert.pem"
tls_key = {{ file = "secrets/tls-key.pem" }}

[auth]
issuer = "{DEV_ISSUER}"
audience = "{DEV_AUDIENCE}"
verification_keys = {{ file = "secrets/jwt-verify.jwk" }}

[rate_limit]
per_second = 2.0
burst = 20

[challenge]
ttl_ms = 30000
max_outstanding = 10000

[ca]
key = {{ file = "secrets/ca-key.p8" }}
common_name = "{ca_name}"
not_before = {ca_not_before}
not_after = {ca_not_after}
leaf_validity_secs = 3600

[results]
signing_key = {{ file = "secrets/result-key.p8" }}
validity_secs = 3600

[keys]
kek = {{ file = "secrets/kek" }}
store = "keys.json"

[policy]
path = "policy.toml"
{dev_lines}
[audit]
log = "audit.log"
checkpoint_key = {{ file = "secrets/checkpoint-key.p8" }}
torn_tail = "refuse"
"#,
        listen = toml_str(&opts.listen),
        admin_listen = toml_str(&admin_listen(opts)?),
    );
    write_public(&dir.join(CONFIG_FILE), config.as_bytes())?;
    Ok(Written {
        roles,
        client: opts.model.is_some(),
    })
}

/// `opts.admin_listen`, or loopback on the port after `listen`'s (0 stays 0).
pub fn admin_listen(opts: &InitOptions) -> Result<String, InitError> {
    if let Some(a) = &opts.admin_listen {
        return Ok(a.clone());
    }
    let listen: std::net::SocketAddr = opts
        .listen
        .parse()
        .map_err(|_| InitError::Listen(opts.listen.clone()))?;
    let port = match listen.port() {
        0 => 0,
        p => p
            .checked_add(1)
            .ok_or_else(|| InitError::Listen(opts.listen.clone()))?,
    };
    Ok(format!("127.0.0.1:{port}"))
}

fn toml_str(s: &str) -> String {
    toml::Value::String(s.to_owned()).to_string()
}

#[cfg(unix)]
fn restrict_dir(d: &Path) -> Result<(), InitError> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o700)).map_err(io(d))
}

#[cfg(not(unix))]
fn restrict_dir(_d: &Path) -> Result<(), InitError> {
    Ok(())
}

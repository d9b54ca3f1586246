//! `confidant-verifier init DIR`: a fresh development configuration and its secrets.
//!
//! Writes, under `DIR` (secrets mode 0600, atomically):
//!
//! | file | what |
//! |---|---|
//! | `verifier.toml` | the configuration, every secret named by file |
//! | `tls-cert.pem` | the verifier's own TLS certificate (self-signed, `localhost`, `127.0.0.1`); enclaves pin it |
//! | `ca.pem` | the verifier CA certificate that issues enclave leaves; clients pin it |
//! | `policy.toml` | a development policy (no model allowed until an admin adds one; trusts the dev SNP root if `--dev-pki` was given) |
//! | `secrets/tls-key.pem` | TLS private key |
//! | `secrets/ca-key.p8` | CA private key (PKCS#8 DER, P-256) |
//! | `secrets/result-key.p8` | result/checkpoint signing key (PKCS#8 DER, P-256) |
//! | `secrets/checkpoint-key.p8` | audit checkpoint signing key (PKCS#8 DER, P-256) |
//! | `secrets/kek` | key-encryption key (32 random bytes) |
//! | `secrets/jwt-verify.jwk` | the JWT verification key (public, but loaded as a secret source) |
//! | `secrets/jwt-issuer.p8` | the development JWT issuer's private key |
//! | `tokens/{admin,auditor,enclave,client}.jwt` | development bearer tokens, one role each |

use std::path::{Path, PathBuf};

use confidant_attestation::leafcert::CertificateAuthority;
use confidant_service::jwt::{JwtIssuer, TokenClaims};
use confidant_service::secrets::write_secret_file;
use ring::rand::{SecureRandom, SystemRandom};
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};

/// Default issuer of development tokens.
pub const DEV_ISSUER: &str = "confidant-dev-issuer";
/// Default audience of the verifier.
pub const DEV_AUDIENCE: &str = "confidant-verifier";
/// The roles development tokens are minted for.
/// (`metrics` is for an enclave's `GET /metrics`: the operator's scraper.)
pub const DEV_ROLES: [&str; 5] = ["admin", "auditor", "enclave", "client", "metrics"];

/// Why `init` failed.
#[derive(Debug, thiserror::Error)]
pub enum InitError {
    #[error("{0} already holds a verifier configuration (use --force to overwrite)")]
    Exists(PathBuf),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("writing secret: {0}")]
    Secret(#[from] confidant_service::secrets::SecretError),
    #[error("development PKI directory {0} lacks {1}")]
    DevPki(PathBuf, &'static str),
    #[error("key generation failed: {0}")]
    Crypto(String),
    #[error("listen address {0:?} is not IP:PORT")]
    Listen(String),
}

/// Options of `init`.
#[derive(Debug, Clone)]
pub struct InitOptions {
    pub dir: PathBuf,
    /// Output directory of `scripts/dev-pki.sh`: trust its ARK/ASK as a development root.
    pub dev_pki: Option<PathBuf>,
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

/// Runs `init`. `now` is Unix seconds.
pub fn init(opts: &InitOptions, now: u64) -> Result<InitOutput, InitError> {
    let dir = &opts.dir;
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let config_path = dir.join("verifier.toml");
    if config_path.exists() && !opts.force {
        return Err(InitError::Exists(dir.clone()));
    }
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

    // CA, result signer, KEK.
    let ca_key = CertificateAuthority::generate_key(&rng).map_err(|e| crypto(&e))?;
    write_secret_file(&secrets.join("ca-key.p8"), &ca_key)?;
    let ca_not_before = now.saturating_sub(3600);
    let ca_not_after = now.saturating_add(10 * 365 * 86_400);
    let ca_name = "Confidant development verifier CA";
    let ca = CertificateAuthority::new(&ca_key, ca_name, ca_not_before, ca_not_after, &rng)
        .map_err(|e| crypto(&e))?;
    write_public(&dir.join("ca.pem"), ca.cert_pem().as_bytes())?;
    let result_key = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
        .map_err(|e| crypto(&e))?;
    write_secret_file(&secrets.join("result-key.p8"), result_key.as_ref())?;
    let checkpoint_key = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
        .map_err(|e| crypto(&e))?;
    write_secret_file(&secrets.join("checkpoint-key.p8"), checkpoint_key.as_ref())?;
    let mut kek = zeroize::Zeroizing::new([0u8; 32]);
    rng.fill(kek.as_mut_slice()).map_err(|e| crypto(&e))?;
    write_secret_file(&secrets.join("kek"), kek.as_slice())?;

    // JWT issuer and development tokens.
    let issuer = JwtIssuer::generate(Some("dev-1".to_owned())).map_err(|e| crypto(&e))?;
    write_secret_file(&secrets.join("jwt-issuer.p8"), issuer.pkcs8().expose())?;
    let jwk = serde_json::to_vec_pretty(&issuer.public_jwk()).map_err(|e| crypto(&e))?;
    write_secret_file(&secrets.join("jwt-verify.jwk"), &jwk)?;
    let mut minted = Vec::new();
    for role in DEV_ROLES {
        let claims = TokenClaims::new(
            DEV_ISSUER,
            DEV_AUDIENCE,
            format!("dev-{role}"),
            &[role],
            now,
            opts.token_ttl_secs,
        );
        let token = issuer.mint(&claims).map_err(|e| crypto(&e))?;
        let path = tokens.join(format!("{role}.jwt"));
        write_secret_file(&path, token.as_bytes())?;
        minted.push((role.to_owned(), path));
    }

    // Policy (and dev trust anchors).
    let dev = match &opts.dev_pki {
        // Absolute, so the configuration does not depend on the directory init ran from.
        Some(d) => Some(dev_pki_files(&std::fs::canonicalize(d).map_err(io(d))?)?),
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
    write_public(
        &dir.join("policy.toml"),
        crate::policy_store::dev_policy_toml(dev_ark_sha256.as_ref()).as_bytes(),
    )?;

    let dev_lines = match &dev {
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
    write_public(&config_path, config.as_bytes())?;
    Ok(InitOutput {
        config: config_path,
        tokens: minted,
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

//! `confidant model prepare | seal | inspect | register`: prepare a model bundle from the shipped
//! GGUF (see `prepare.rs`), seal it, read a sealed header, import the model key into the verifier.
//!
//! The key file is the raw 32-byte AES-256 key, created with `O_EXCL` and mode 0600; it is never
//! overwritten, printed or logged.

use std::io::{Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use clap::{Args, Subcommand};
use confidant_attestation::modelkey::{MODEL_KEY_LEN, ModelKey};
use confidant_sealed::{self as sealed, DEFAULT_CHUNK_SIZE, SealedHeader, encode_bundle};
use confidant_wire::admin::KeyInfo;
use confidant_wire::error::ErrorBody;
use confidant_wire::routes;
use http_body_util::{BodyExt, Full, Limited};
use zeroize::Zeroizing;

/// Required files of a bundle besides the weights.
const REQUIRED: [&str; 2] = ["tokenizer.json", "config.json"];
/// Extensions of weights files.
const WEIGHTS_EXT: [&str; 2] = ["gguf", "safetensors"];
/// Enough bytes for any sealed header (158 bytes with a 64-byte key id).
const HEADER_READ: u64 = 512;
/// Longest verifier reply read.
const MAX_REPLY: usize = 64 * 1024;
/// Bound on connect, handshake and the whole request.
const TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, Subcommand)]
pub enum ModelCommand {
    /// Turn the shipped GGUF into a bundle directory (model.gguf, tokenizer.json, config.json).
    Prepare(crate::prepare::PrepareArgs),
    /// Seal a bundle directory into one file and write its fresh key to a new 0600 file.
    ///
    /// The directory must hold `tokenizer.json`, `config.json` and at least one weights file
    /// (`*.gguf` or `*.safetensors`); other files (such as `SHA256SUMS`) are skipped. Files are
    /// sealed in name order, so the model digest (BLAKE3-256 of the bundle) depends only on their
    /// names and bytes. Prints the key id, model digest and sizes as JSON (never the key).
    Seal(SealArgs),
    /// Print a sealed model's header (key id, model digest, sizes) as JSON. Needs no key.
    Inspect(InspectArgs),
    /// Import a model key into the verifier (`POST /v1/admin/keys`, role `admin`) over TLS 1.3
    /// pinned to --ca. The key and token are read from files and never printed.
    Register(RegisterArgs),
}

#[derive(Debug, Args)]
pub struct SealArgs {
    /// Bundle directory (the last line `scripts/fetch-model.sh` prints).
    #[arg(long = "in", value_name = "DIR")]
    input: PathBuf,
    /// Sealed model to write (replaced atomically if it exists).
    #[arg(long, value_name = "FILE.sealed")]
    out: PathBuf,
    /// Key id recorded in the header; the verifier releases the key under this id.
    /// 1-64 characters of [A-Za-z0-9._-].
    #[arg(long, value_name = "ID")]
    key_id: String,
    /// Where to write the raw 32-byte key (mode 0600; must not exist). Default: `<out>.key`.
    #[arg(long, value_name = "FILE")]
    key_out: Option<PathBuf>,
    /// Plaintext bytes per AES-256-GCM chunk.
    #[arg(long, value_name = "BYTES", default_value_t = DEFAULT_CHUNK_SIZE)]
    chunk_size: u32,
}

#[derive(Debug, Args)]
pub struct InspectArgs {
    /// Sealed model file.
    #[arg(value_name = "FILE.sealed")]
    file: PathBuf,
    /// Print only the model digest (64 hex digits: BLAKE3-256 of the plaintext bundle), the
    /// value the verifier's policy and `model register --digest` take.
    #[arg(long)]
    digest: bool,
}

#[derive(Debug, Args)]
pub struct RegisterArgs {
    /// Base URL of the verifier's admin API (`server.admin_listen`), e.g. `https://127.0.0.1:8444`.
    #[arg(long, value_name = "URL")]
    verifier: String,
    /// PEM certificate(s) the verifier's TLS certificate must chain to (e.g. its `tls-cert.pem`).
    #[arg(long, value_name = "FILE")]
    ca: PathBuf,
    /// File holding an admin bearer token (JWT).
    #[arg(long, value_name = "FILE")]
    token_file: PathBuf,
    /// The raw 32-byte key file written by `model seal`.
    #[arg(long, value_name = "FILE")]
    key_file: PathBuf,
    /// Key id (as given to `model seal`).
    #[arg(long, value_name = "ID")]
    key_id: String,
    /// Model id the policy allows measurements for.
    #[arg(long, value_name = "ID")]
    model_id: String,
    /// Model digest printed by `model seal` (BLAKE3-256, 64 hex digits).
    #[arg(long, value_name = "HEX")]
    digest: String,
}

pub fn run(cmd: ModelCommand) -> Result<()> {
    let out = match cmd {
        ModelCommand::Prepare(args) => return crate::prepare::run(args),
        ModelCommand::Seal(args) => seal(args)?,
        ModelCommand::Inspect(args) if args.digest => {
            let (header, _) = read_header(&args.file)?;
            println!("{}", header.model_digest.to_hex());
            return Ok(());
        }
        ModelCommand::Inspect(args) => inspect(&args.file)?,
        ModelCommand::Register(args) => register(args)?,
    };
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(())
}

// --- seal ------------------------------------------------------------------------------------

fn seal(args: SealArgs) -> Result<serde_json::Value> {
    let key_path = args.key_out.clone().unwrap_or_else(|| {
        let mut p = args.out.clone().into_os_string();
        p.push(".key");
        PathBuf::from(p)
    });
    // Fail before the expensive work; `create_new` below is what actually guarantees it.
    if key_path.symlink_metadata().is_ok() {
        bail!(
            "key file {} already exists: refusing to overwrite a key",
            key_path.display()
        );
    }
    // The sealed format accepts any printable key id; the verifier's admin API (which puts ids
    // in URL paths) only this set, so refuse here what could never be registered.
    let id_ok = args
        .key_id
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if args.key_id.is_empty() || args.key_id.len() > sealed::MAX_KEY_ID_LEN || !id_ok {
        bail!(
            "invalid key id: use 1-{} characters of [A-Za-z0-9._-] (the verifier registers \
             keys under this id)",
            sealed::MAX_KEY_ID_LEN
        );
    }
    let names = bundle_files(&args.input)?;
    eprintln!(
        "confidant: reading {} ({})",
        args.input.display(),
        names.join(", ")
    );
    let mut files = Vec::with_capacity(names.len());
    for name in &names {
        let path = args.input.join(name);
        let bytes = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
        files.push((name.as_str(), bytes));
    }
    let listing: Vec<_> = files
        .iter()
        .map(|(n, b)| serde_json::json!({ "name": n, "len": b.len() }))
        .collect();
    let plaintext = {
        let refs: Vec<(&str, &[u8])> = files.iter().map(|(n, b)| (*n, b.as_slice())).collect();
        encode_bundle(&refs).context("building the bundle")?
    };
    drop(files);
    eprintln!(
        "confidant: sealing {} MiB (AES-256-GCM, {} KiB chunks, fresh key) …",
        plaintext.len().div_ceil(1 << 20),
        args.chunk_size / 1024
    );
    let mut rng = rand::rngs::OsRng;
    let key = ModelKey::generate(&mut rng);
    let sealed_bytes =
        sealed::seal_with_chunk_size(&plaintext, &key, &args.key_id, args.chunk_size, &mut rng)
            .context("sealing failed")?;
    drop(plaintext);
    let header = SealedHeader::parse(&sealed_bytes).context("reading back the sealed header")?;

    write_key_file(&key_path, &key)?;
    if let Err(e) = write_atomically(&args.out, &sealed_bytes) {
        // Without the sealed file the key is useless; do not leave it behind.
        let _ = std::fs::remove_file(&key_path);
        return Err(e);
    }
    eprintln!(
        "confidant: wrote {} and its key {} (0600)",
        args.out.display(),
        key_path.display()
    );
    Ok(serde_json::json!({
        "key_id": header.key_id,
        "model_digest": header.model_digest.to_hex(),
        "model_digest_alg": sealed::MODEL_DIGEST_ALG,
        "manifest_digest": hex::encode(header.manifest_digest),
        "plaintext_len": header.plaintext_len,
        "sealed_len": header.sealed_len(),
        "chunk_size": header.chunk_size,
        "files": listing,
        "sealed": args.out.display().to_string(),
        "key_file": key_path.display().to_string(),
    }))
}

/// The files to seal, sorted by name: required files plus every weights file.
fn bundle_files(dir: &Path) -> Result<Vec<String>> {
    let entries = std::fs::read_dir(dir)
        .with_context(|| format!("cannot read directory {}", dir.display()))?;
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry.with_context(|| format!("listing {}", dir.display()))?;
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        if name.starts_with('.') {
            continue;
        }
        let ext = Path::new(&name).extension().and_then(|e| e.to_str());
        let wanted =
            REQUIRED.contains(&name.as_str()) || ext.is_some_and(|e| WEIGHTS_EXT.contains(&e));
        if !wanted {
            eprintln!("confidant: skipping {name} (not a weights, tokenizer or config file)");
            continue;
        }
        let meta = std::fs::metadata(entry.path())
            .with_context(|| format!("reading {}", entry.path().display()))?;
        if !meta.is_file() {
            bail!("{} is not a regular file", entry.path().display());
        }
        names.push(name);
    }
    for required in REQUIRED {
        if !names.iter().any(|n| n == required) {
            bail!("bundle directory {} lacks {required}", dir.display());
        }
    }
    if names.len() == REQUIRED.len() {
        bail!(
            "bundle directory {} holds no weights file (*.gguf or *.safetensors)",
            dir.display()
        );
    }
    names.sort();
    Ok(names)
}

fn write_key_file(path: &Path, key: &ModelKey) -> Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| {
            if e.kind() == std::io::ErrorKind::AlreadyExists {
                anyhow::anyhow!(
                    "key file {} already exists: refusing to overwrite a key",
                    path.display()
                )
            } else {
                anyhow::Error::new(e).context(format!("creating key file {}", path.display()))
            }
        })?;
    // The mode passed to open() is filtered by the umask; make sure it is exactly 0600.
    f.set_permissions(std::fs::Permissions::from_mode(0o600))
        .and_then(|()| f.write_all(key.expose_secret()))
        .and_then(|()| f.sync_all())
        .map_err(|e| {
            let _ = std::fs::remove_file(path);
            anyhow::Error::new(e).context(format!("writing key file {}", path.display()))
        })
}

/// Writes `bytes` to a temporary file beside `path`, syncs it, and renames it into place.
fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let file_name = path
        .file_name()
        .with_context(|| format!("{} is not a file path", path.display()))?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(file_name);
    tmp_name.push(format!(".tmp-{}", std::process::id()));
    let tmp = dir.join(tmp_name);
    let result = (|| -> std::io::Result<()> {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o644)
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    result.map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        anyhow::Error::new(e).context(format!("writing {}", path.display()))
    })
}

// --- inspect ---------------------------------------------------------------------------------

/// A sealed model's header and the file's length.
fn read_header(path: &Path) -> Result<(SealedHeader, u64)> {
    let f = std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let file_len = f
        .metadata()
        .with_context(|| format!("reading {}", path.display()))?
        .len();
    let mut head = Vec::new();
    f.take(HEADER_READ)
        .read_to_end(&mut head)
        .with_context(|| format!("reading {}", path.display()))?;
    let header = SealedHeader::parse(&head)
        .with_context(|| format!("{} is not a valid sealed model", path.display()))?;
    Ok((header, file_len))
}

fn inspect(path: &Path) -> Result<serde_json::Value> {
    let (header, file_len) = read_header(path)?;
    let expected = header.sealed_len();
    Ok(serde_json::json!({
        "version": header.version,
        "key_id": header.key_id,
        "model_digest": header.model_digest.to_hex(),
        "model_digest_alg": sealed::MODEL_DIGEST_ALG,
        "manifest_digest": hex::encode(header.manifest_digest),
        "chunk_size": header.chunk_size,
        "chunks": header.chunk_count(),
        "plaintext_len": header.plaintext_len,
        "header_len": header.encoded_len(),
        "sealed_len": expected,
        "file_len": file_len,
        // Only the length is checked here; authenticity needs the key (the enclave's unseal).
        "length_ok": file_len == expected,
    }))
}

// --- register --------------------------------------------------------------------------------

fn register(args: RegisterArgs) -> Result<serde_json::Value> {
    let key = read_key_file(&args.key_file)?;
    let token = read_token(&args.token_file)?;
    let mut digest = [0u8; 32];
    hex::decode_to_slice(args.digest.trim(), &mut digest)
        .context("--digest must be 64 hex digits (the model_digest `model seal` printed)")?;
    let body = {
        let key_b64 = Zeroizing::new(STANDARD.encode(key.expose_secret()));
        let value = serde_json::json!({
            "key_id": args.key_id,
            "key": key_b64.as_str(),
            "model_id": args.model_id,
            "model_digest": hex::encode(digest),
        });
        let bytes = Zeroizing::new(serde_json::to_vec(&value).context("encoding the request")?);
        // `value` holds a copy of the base64 key; serde_json offers no zeroizing, so drop it now.
        drop(value);
        bytes
    };
    drop(key);
    let target = Target::parse(&args.verifier)?;
    let roots = read_roots(&args.ca)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    let (status, reply) = runtime.block_on(async {
        tokio::time::timeout(
            TIMEOUT,
            post_json(&target, roots, routes::verifier::ADMIN_KEYS, &token, body),
        )
        .await
        .map_err(|_| anyhow::anyhow!("verifier did not answer within {TIMEOUT:?}"))?
    })?;
    if status != hyper::StatusCode::CREATED {
        let (code, message) = match serde_json::from_slice::<ErrorBody>(&reply) {
            Ok(body) => (body.error.code, body.error.message),
            Err(_) => ("unknown".to_owned(), String::new()),
        };
        bail!("verifier refused the key import: HTTP {status}: {code}: {message}");
    }
    let info: KeyInfo =
        serde_json::from_slice(&reply).context("the verifier's reply is not a key description")?;
    Ok(serde_json::json!({
        "registered": true,
        "verifier": args.verifier,
        "key": info,
    }))
}

fn read_key_file(path: &Path) -> Result<ModelKey> {
    let mut f =
        std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let meta = f
        .metadata()
        .with_context(|| format!("reading {}", path.display()))?;
    if meta.permissions().mode() & 0o077 != 0 {
        eprintln!(
            "confidant: warning: key file {} is readable by other users (chmod 600 it)",
            path.display()
        );
    }
    if meta.len() != MODEL_KEY_LEN as u64 {
        bail!(
            "key file {} must hold exactly {MODEL_KEY_LEN} raw bytes",
            path.display()
        );
    }
    let mut bytes = Zeroizing::new([0u8; MODEL_KEY_LEN]);
    f.read_exact(bytes.as_mut())
        .with_context(|| format!("reading {}", path.display()))?;
    Ok(ModelKey::from_bytes(*bytes))
}

fn read_token(path: &Path) -> Result<Zeroizing<String>> {
    let raw = Zeroizing::new(
        std::fs::read_to_string(path)
            .with_context(|| format!("cannot read token file {}", path.display()))?,
    );
    let token = Zeroizing::new(raw.trim().to_owned());
    if token.is_empty() || token.bytes().any(|b| !b.is_ascii_graphic()) {
        bail!(
            "token file {} must hold one bearer token (printable ASCII)",
            path.display()
        );
    }
    Ok(token)
}

fn read_roots(path: &Path) -> Result<rustls::RootCertStore> {
    let pem_bytes =
        std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let certs =
        pem::parse_many(&pem_bytes).with_context(|| format!("{} is not PEM", path.display()))?;
    let mut roots = rustls::RootCertStore::empty();
    for cert in certs.into_iter().filter(|p| p.tag() == "CERTIFICATE") {
        roots
            .add(rustls::pki_types::CertificateDer::from(
                cert.into_contents(),
            ))
            .with_context(|| format!("{} holds an unusable certificate", path.display()))?;
    }
    if roots.is_empty() {
        bail!("{} holds no PEM certificate", path.display());
    }
    Ok(roots)
}

/// An `https://host[:port][/base]` URL.
#[derive(Debug)]
struct Target {
    host: String,
    port: u16,
    base_path: String,
    authority: String,
}

impl Target {
    fn parse(url: &str) -> Result<Self> {
        let uri: http::Uri = url.parse().context("--verifier is not a URL")?;
        if uri.scheme_str() != Some("https") {
            bail!("--verifier must be an https:// URL");
        }
        let authority = uri.authority().context("--verifier URL has no host")?;
        if authority.as_str().contains('@') {
            bail!("--verifier URL must not carry credentials");
        }
        let host = authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        Ok(Target {
            port: authority.port_u16().unwrap_or(443),
            base_path: uri.path().trim_end_matches('/').to_owned(),
            authority: authority.as_str().to_owned(),
            host,
        })
    }
}

/// One `POST` with a JSON body over TLS 1.3 (ring provider) to a server that chains to `roots`.
async fn post_json(
    target: &Target,
    roots: rustls::RootCertStore,
    path: &str,
    token: &str,
    body: Zeroizing<Vec<u8>>,
) -> Result<(hyper::StatusCode, bytes::Bytes)> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .context("TLS configuration")?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let server_name = rustls::pki_types::ServerName::try_from(target.host.clone())
        .context("--verifier host is not a valid TLS server name")?;
    let tcp = tokio::net::TcpStream::connect((target.host.as_str(), target.port))
        .await
        .with_context(|| format!("cannot connect to {}", target.authority))?;
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(server_name, tcp)
        .await
        .with_context(|| format!("TLS handshake with {} failed", target.authority))?;
    let (mut sender, driver) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tls))
            .await
            .context("HTTP handshake failed")?;
    let driver = tokio::spawn(driver);
    let mut authorization = Zeroizing::new(String::from("Bearer "));
    authorization.push_str(token);
    let mut auth_value = http::HeaderValue::from_str(&authorization)
        .map_err(|_| anyhow::anyhow!("token is not a valid header value"))?;
    auth_value.set_sensitive(true);
    // hyper copies the body into its buffers; the zeroizing copy here is the one we own.
    let request = http::Request::post(format!("{}{path}", target.base_path))
        .header(http::header::HOST, &target.authority)
        .header(http::header::CONTENT_TYPE, "application/json")
        .header(http::header::AUTHORIZATION, auth_value)
        .body(Full::new(bytes::Bytes::copy_from_slice(&body)))
        .context("building the request")?;
    drop(body);
    let response = sender
        .send_request(request)
        .await
        .context("sending the request failed")?;
    let status = response.status();
    let reply = Limited::new(response.into_body(), MAX_REPLY)
        .collect()
        .await
        .map_err(|e| anyhow::anyhow!("reading the reply failed: {e}"))?
        .to_bytes();
    driver.abort();
    Ok((status, reply))
}

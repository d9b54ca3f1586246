//! Figure 1: attested connection set-up (`passport`, `fresh`, `direct`) vs a plain rustls TLS 1.3
//! handshake, on loopback, against the same enclave endpoint.
//!
//! One real stack (`confidant_e2e::Stack`: the release `confidant-verifier` and
//! `confidant-enclave` binaries from `CONFIDANT_BIN_DIR`, simulated SEV-SNP, its request budget
//! lifted) serves every connection, so the server side is identical and the ratios isolate the
//! client's work.
//!
//! What one set-up is, timed until a request byte could be written:
//! - `plain_tls`: TCP connect + a full TLS 1.3 handshake by a stock rustls client (webpki
//!   verification with the verifier CA as the only root, `ring` provider, the SDK's protocol
//!   version, ALPN and `TCP_NODELAY`, resumption off as in the SDK). Its config is built once,
//!   as any long-lived client does.
//! - `passport`: `Client::connect` with `fresh` off: the same handshake plus the appraisal of the
//!   certificate's attestation result inside it (COSE ES256 signature, expiry, status, key
//!   binding, client policy).
//! - `fresh`: `passport` plus the session-evidence exchange (`POST /v1/attestation`, one round
//!   trip and an evidence verification).
//! - `direct`: `fresh` with the session evidence appraised by the client's own policy (the
//!   verifier's appraisal code) instead of compared with the result; `direct` always has session
//!   evidence.
//!
//! The kinds run interleaved (one of each per step, in a random order), so each sees the same
//! machine load; each row's baseline is the same statistic of `plain_tls`. Throughput is
//! sequential (one connection at a time): count / summed set-up time over each tenth of the run,
//! median of the ten.
//!
//! Two more rows say what the modes add, in process, against the `plain_tls` median: the result
//! check every attested handshake runs (certificate extensions parsed, COSE ES256 result
//! verified), and one verification of the enclave's (simulated SEV-SNP) evidence
//! (`verify_evidence`: what `fresh` and `direct` pay per connection).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use confidant_attestation::certext;
use confidant_attestation::evidence::ReceivedEvidence;
use confidant_attestation::time::UnixTime;
use confidant_attestation::verify::verify_evidence;
use confidant_client::{Client, Mode, ResultVerifier};
use confidant_e2e::{Stack, StackOptions};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use crate::Opts;
use crate::report::{Report, median, median_p99_ms};

/// Throughput is the median of the sequential rates of this many consecutive slices of the run.
const RATE_CHUNKS: usize = 10;

/// The connection kinds, in report order.
const KINDS: [&str; 4] = ["plain_tls", "passport", "fresh", "direct"];

/// Runs the figure and adds its rows to `report`.
pub fn run(opts: &Opts, report: &mut Report) -> anyhow::Result<()> {
    if std::env::var_os("CONFIDANT_BIN_DIR").is_none() {
        bail!(
            "handshake: set CONFIDANT_BIN_DIR to the directory of the release binaries \
             (scripts/bench.sh does)"
        );
    }
    eprintln!("handshake: starting the stack (verifier + enclave, release binaries)");
    // `fresh` sends `POST /v1/attestation` on every connection: lift the per-peer budget.
    let stack = Stack::start_with(StackOptions {
        unlimited_rate: true,
        ..StackOptions::default()
    });
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let (steps, warmup) = if opts.quick { (200, 10) } else { (1000, 50) };
    let result = rt.block_on(measure(&stack, steps, warmup, report));
    drop(rt);
    drop(stack);
    result
}

/// A stock rustls client trusting only the verifier CA.
struct PlainTls {
    addr: SocketAddr,
    connector: TlsConnector,
}

impl PlainTls {
    fn new(addr: SocketAddr, ca_pem: &[u8]) -> anyhow::Result<Self> {
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(ca_pem) {
            roots.add(cert.context("verifier CA PEM")?)?;
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.resumption = rustls::client::Resumption::disabled();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(PlainTls {
            addr,
            connector: TlsConnector::from(Arc::new(config)),
        })
    }

    async fn connect(&self) -> anyhow::Result<tokio_rustls::client::TlsStream<TcpStream>> {
        let tcp = TcpStream::connect(self.addr).await?;
        tcp.set_nodelay(true)?;
        Ok(self
            .connector
            .connect(ServerName::IpAddress(self.addr.ip().into()), tcp)
            .await?)
    }
}

/// The clients of one run.
struct Clients {
    plain: PlainTls,
    passport: Client,
    direct: Client,
    fresh: Client,
}

impl Clients {
    /// One connection set-up of `kind`, timed; the connection is dropped after the clock stops.
    async fn once(&mut self, kind: usize) -> anyhow::Result<Duration> {
        let client = match KINDS[kind] {
            "plain_tls" => {
                let start = Instant::now();
                let tls = self.plain.connect().await?;
                let took = start.elapsed();
                drop(tls);
                settle().await;
                return Ok(took);
            }
            "passport" => self.passport.clone(),
            "direct" => self.direct.clone(),
            _ => self.fresh.clone(),
        };
        let start = Instant::now();
        let conn = client
            .connect()
            .await
            .with_context(|| format!("{} connect", KINDS[kind]))?;
        let took = start.elapsed();
        drop(conn);
        settle().await;
        Ok(took)
    }
}

/// A pause between set-ups, off the clock: the SDK connection's driver task closes it (TLS
/// `close_notify`) once it runs, and the server tears the connection down; neither should land
/// in the next set-up's time.
async fn settle() {
    tokio::time::sleep(Duration::from_millis(1)).await;
}

async fn measure(
    stack: &Stack,
    steps: usize,
    warmup: usize,
    report: &mut Report,
) -> anyhow::Result<()> {
    // Dedicated connections (`Client::connect` never takes from or returns to the pool).
    let mut clients = Clients {
        plain: PlainTls::new(stack.enclave_addr, &stack.ca_pem())?,
        passport: stack.client(Mode::Passport, false),
        direct: stack.client(Mode::Direct, true),
        fresh: stack.client(Mode::Passport, true),
    };
    let plain = &clients.plain;

    // What the server authenticates with, and what the baseline negotiated.
    let probe = plain.connect().await?;
    let (_, conn) = probe.get_ref();
    let leaf = conn
        .peer_certificates()
        .and_then(|c| c.first())
        .context("enclave presented no certificate")?;
    eprintln!(
        "handshake: enclave key {}, {:?}, {:?}, key exchange {:?} (baseline and SDK alike: \
         same endpoint, same ring provider)",
        key_type(leaf.as_ref()).unwrap_or("unknown"),
        conn.protocol_version(),
        conn.negotiated_cipher_suite().map(|s| s.suite()),
        conn.negotiated_key_exchange_group().map(|g| g.name()),
    );
    let leaf = leaf.as_ref().to_vec();
    drop(probe);

    // A new random order every step: no kind always follows the same one (the server may still
    // be tearing down the previous connection, and `fresh` leaves it more to do).
    let mut rng = rand::rngs::StdRng::seed_from_u64(1);
    let mut order: [usize; KINDS.len()] = std::array::from_fn(|i| i);
    for _ in 0..warmup {
        order.shuffle(&mut rng);
        for kind in order {
            clients.once(kind).await?;
        }
    }
    let mut samples: [Vec<Duration>; KINDS.len()] = Default::default();
    for _ in 0..steps {
        order.shuffle(&mut rng);
        for kind in order {
            samples[kind].push(clients.once(kind).await?);
        }
    }

    let stats: Vec<(f64, f64, f64)> = samples
        .iter_mut()
        .map(|s| {
            // Sequential rate per tenth of the run (in measurement order), median of the ten:
            // one burst of load from another process moves one tenth, not the figure.
            let mut rates: Vec<f64> = s
                .chunks(s.len().div_ceil(RATE_CHUNKS).max(1))
                .map(|c| c.len() as f64 / c.iter().sum::<Duration>().as_secs_f64())
                .collect();
            let per_s = median(&mut rates);
            let (med, p99) = median_p99_ms(s);
            (med, p99, per_s)
        })
        .collect();
    let (b_med, b_p99, b_rate) = stats[0];
    for (kind, (med, p99, per_s)) in KINDS.iter().zip(&stats) {
        report.add(
            &format!("handshake_latency_median_{kind}"),
            *med,
            "ms",
            b_med,
        );
        report.add(&format!("handshake_latency_p99_{kind}"), *p99, "ms", b_p99);
        report.add(
            &format!("handshake_throughput_{kind}"),
            *per_s,
            "handshakes/s",
            b_rate,
        );
    }

    // What the modes add, in process, against the `plain_tls` median: the result check of every
    // attested handshake (extensions parsed, COSE ES256 verified), and one evidence verification
    // (`fresh` and `direct` once per connection).
    let results = ResultVerifier::from_jwk(&stack.result_key_jwk)?;
    let anchors = stack.trust_anchors();
    let n = (steps / 2).max(20);
    let mut result_times = Vec::with_capacity(n);
    let mut evidence_times = Vec::with_capacity(n);
    for _ in 0..n {
        let start = Instant::now();
        let ext = certext::parse(&leaf)?;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_secs();
        results.verify(&ext.result, confidant_client::DEFAULT_RESULT_AUDIENCE, now)?;
        result_times.push(start.elapsed());
        let start = Instant::now();
        let ev = ReceivedEvidence::decode(&ext.evidence)?;
        verify_evidence(ev, &anchors, UnixTime::from_secs(now))?;
        evidence_times.push(start.elapsed());
    }
    report.add(
        "handshake_result_check_median",
        median_p99_ms(&mut result_times).0,
        "ms",
        b_med,
    );
    report.add(
        "handshake_evidence_verify_median",
        median_p99_ms(&mut evidence_times).0,
        "ms",
        b_med,
    );
    Ok(())
}

/// The public-key algorithm of a DER certificate's SubjectPublicKeyInfo.
fn key_type(cert_der: &[u8]) -> Option<&'static str> {
    const EC_PUBLIC_KEY: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
    const P256: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
    const P384: &[u8] = &[0x2b, 0x81, 0x04, 0x00, 0x22];
    const ED25519: &[u8] = &[0x2b, 0x65, 0x70];
    const RSA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];

    let (_, cert, _) = der(cert_der, 0x30)?;
    let (_, mut tbs, _) = der(cert, 0x30)?;
    if tbs.first() == Some(&0xa0) {
        tbs = der(tbs, 0xa0)?.2; // explicit version
    }
    // serial, signature, issuer, validity, subject
    for tag in [0x02, 0x30, 0x30, 0x30, 0x30] {
        tbs = der(tbs, tag)?.2;
    }
    let (_, spki, _) = der(tbs, 0x30)?;
    let (_, alg, _) = der(spki, 0x30)?;
    let (_, oid, params) = der(alg, 0x06)?;
    let curve = der(params, 0x06).map(|(_, c, _)| c);
    match (oid, curve) {
        (EC_PUBLIC_KEY, Some(P256)) => Some("ECDSA P-256"),
        (EC_PUBLIC_KEY, Some(P384)) => Some("ECDSA P-384"),
        (ED25519, _) => Some("Ed25519"),
        (RSA, _) => Some("RSA"),
        _ => None,
    }
}

/// One DER TLV with tag `tag`: (tag, content, rest).
fn der(b: &[u8], tag: u8) -> Option<(u8, &[u8], &[u8])> {
    let (&t, b) = b.split_first()?;
    if t != tag {
        return None;
    }
    let (&l, mut b) = b.split_first()?;
    let len = if l < 0x80 {
        usize::from(l)
    } else {
        let n = usize::from(l & 0x7f);
        if n == 0 || n > 4 || b.len() < n {
            return None;
        }
        let len = b[..n]
            .iter()
            .fold(0usize, |a, &x| (a << 8) | usize::from(x));
        b = &b[n..];
        len
    };
    (b.len() >= len).then(|| (t, &b[..len], &b[len..]))
}

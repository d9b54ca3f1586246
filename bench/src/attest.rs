//! Figure 3: verifier `/v1/attest` throughput and latency at 1, 8 and 64 concurrent attesters.
//!
//! The verifier runs in this process (`confidant_verifier::init` with the development PKI, then
//! `server::start` on 127.0.0.1:0, real TLS 1.3), with the rate limit raised so that it does not
//! shape the figure. Each attester loops: `POST /v1/challenge`, simulated SEV-SNP evidence
//! (`SimulatedSnp`, development root) over the key-release binding, `POST /v1/attest` (appraisal,
//! result signing, certificate issuance, HPKE key wrap, audit append with fsync). One TLS
//! connection per request, as an enclave at boot does. Baselines: the 1-attester figures.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use base64::Engine;
use bytes::Bytes;
use confidant_attestation::binding::{Binding, KeyRelease};
use confidant_attestation::evidence::Evidence;
use confidant_attestation::keywrap::WrapKeyPair;
use confidant_attester::snp_sim::SimulatedSnp;
use confidant_testkit::policy::{DevSnpPolicy, TcbFloor};
use confidant_verifier::config::Config;
use confidant_verifier::init::{InitOptions, init};
use confidant_wire::attest::AttestRequest;
use confidant_wire::routes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio_rustls::TlsConnector;

use crate::Opts;
use crate::report::{Report, median_p99_ms};

const MODEL_ID: &str = "bench-model";
const MODEL_DIGEST: [u8; 32] = [0x5a; 32];
const MEASUREMENT: [u8; 48] = [0x11; 48];

#[derive(Clone)]
struct Http {
    addr: SocketAddr,
    connector: TlsConnector,
}

impl Http {
    fn new(addr: SocketAddr, cert_pem: &[u8]) -> anyhow::Result<Self> {
        let mut roots = rustls::RootCertStore::empty();
        for c in CertificateDer::pem_slice_iter(cert_pem) {
            roots.add(c?)?;
        }
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_root_certificates(roots)
        .with_no_client_auth();
        Ok(Self {
            addr,
            connector: TlsConnector::from(Arc::new(config)),
        })
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        token: &str,
        content_type: &str,
        body: Vec<u8>,
    ) -> anyhow::Result<(u16, Bytes)> {
        let tcp = tokio::net::TcpStream::connect(self.addr).await?;
        let tls = self
            .connector
            .connect(ServerName::try_from("localhost")?, tcp)
            .await?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls)).await?;
        tokio::spawn(conn);
        let req = Request::builder()
            .method(method)
            .uri(path)
            .header("host", "localhost")
            .header("authorization", format!("Bearer {token}"))
            .header("content-type", content_type)
            .body(Full::new(Bytes::from(body)))?;
        let resp = sender.send_request(req).await?;
        let status = resp.status().as_u16();
        let body = resp.into_body().collect().await?.to_bytes();
        Ok((status, body))
    }
}

fn expect(status: u16, want: u16, body: &Bytes, what: &str) -> anyhow::Result<()> {
    if status != want {
        bail!(
            "{what}: HTTP {status}: {}",
            String::from_utf8_lossy(body.as_ref())
        );
    }
    Ok(())
}

struct Ctx {
    http: Http,
    enclave_token: String,
    sim: SimulatedSnp,
}

/// One attestation; returns the `/v1/attest` round trip.
async fn attest_once(ctx: &Ctx) -> anyhow::Result<Duration> {
    let (status, body) = ctx
        .http
        .send(
            Method::POST,
            routes::verifier::CHALLENGE,
            &ctx.enclave_token,
            "application/json",
            b"{}".to_vec(),
        )
        .await?;
    expect(status, 200, &body, "challenge")?;
    let v: serde_json::Value = serde_json::from_slice(&body)?;
    let mut nonce = [0u8; 32];
    hex::decode_to_slice(v["nonce"].as_str().context("nonce")?, &mut nonce)?;

    let kp = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
    let tls_spki = rcgen::PublicKeyData::subject_public_key_info(&kp);
    let wrap = WrapKeyPair::generate(&mut rand::rngs::OsRng);
    let binding = Binding::compute(KeyRelease {
        nonce,
        tls_spki_der: tls_spki.clone(),
        wrap_pk: *wrap.public_key(),
        model_digest: confidant_attestation::digest::Blake3Digest::from_bytes(MODEL_DIGEST),
    });
    let ev = ctx
        .sim
        .attest(binding.as_bytes(), &MEASUREMENT)
        .map_err(|e| anyhow!("{e:?}"))?;
    let req = AttestRequest {
        nonce: nonce.to_vec(),
        evidence: Evidence::SevSnp(ev).to_cbor(),
        tls_spki,
        wrap_pk: wrap.public_key().to_vec(),
        model_id: MODEL_ID.to_owned(),
        dns_names: vec!["localhost".to_owned()],
        ip_addresses: vec!["127.0.0.1".to_owned()],
        key_id: None,
        activation_secret: None,
    };
    let mut body = Vec::new();
    ciborium::into_writer(&req, &mut body)?;
    let t = Instant::now();
    let (status, resp) = ctx
        .http
        .send(
            Method::POST,
            routes::verifier::ATTEST,
            &ctx.enclave_token,
            "application/cbor",
            body,
        )
        .await?;
    let rtt = t.elapsed();
    expect(status, 200, &resp, "attest")?;
    Ok(rtt)
}

fn sim() -> anyhow::Result<SimulatedSnp> {
    let dir = confidant_testkit::dev_pki();
    let ask = std::fs::read(dir.join("ask.der"))?;
    let ark = std::fs::read(dir.join("ark.der"))?;
    Ok(SimulatedSnp::from_dir(&dir)
        .map_err(|e| anyhow!("{e:?}"))?
        .with_chain(ask, ark))
}

fn policy(sim: &SimulatedSnp) -> String {
    let t = sim.reported_tcb();
    let mut p = DevSnpPolicy::new("bench", 2, MODEL_ID, MODEL_DIGEST, MEASUREMENT);
    p.min_tcb = TcbFloor::new(t.bootloader, t.tee, t.snp, t.microcode);
    p.toml()
}

pub fn run(opts: &Opts, report: &mut Report) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(run_async(opts, report))
}

async fn run_async(opts: &Opts, report: &mut Report) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let mut init_opts = InitOptions::new(dir.path());
    init_opts.dev_pki = Some(confidant_testkit::dev_pki());
    init_opts.listen = "127.0.0.1:0".to_owned();
    init(&init_opts, confidant_verifier::now_unix()).map_err(|e| anyhow!("{e:?}"))?;
    let mut config =
        Config::load(&dir.path().join("verifier.toml")).map_err(|e| anyhow!("{e:?}"))?;
    config.rate_limit.per_second = 1e9;
    config.rate_limit.burst = 1_000_000_000;
    let running = confidant_verifier::server::start(config)
        .await
        .map_err(|e| anyhow!("{e:?}"))?;
    let cert = std::fs::read(dir.path().join("tls-cert.pem"))?;
    let http = Http::new(running.handle.local_addr(), &cert)?;
    let admin_http = Http::new(running.admin.local_addr(), &cert)?;
    let token = |role: &str| -> anyhow::Result<String> {
        Ok(std::fs::read_to_string(
            dir.path().join(format!("tokens/{role}.jwt")),
        )?)
    };
    let admin = token("admin")?;
    let sim = sim()?;
    let (status, body) = admin_http
        .send(
            Method::PUT,
            routes::verifier::ADMIN_POLICY,
            &admin,
            "application/toml",
            policy(&sim).into_bytes(),
        )
        .await?;
    expect(status, 200, &body, "policy")?;
    let key = serde_json::json!({
        "key_id": "bench-key",
        "key": base64::engine::general_purpose::STANDARD.encode([0x42u8; 32]),
        "model_id": MODEL_ID,
        "model_digest": hex::encode(MODEL_DIGEST),
    });
    let (status, body) = admin_http
        .send(
            Method::POST,
            routes::verifier::ADMIN_KEYS,
            &admin,
            "application/json",
            serde_json::to_vec(&key)?,
        )
        .await?;
    expect(status, 201, &body, "key import")?;
    let ctx = Arc::new(Ctx {
        http,
        enclave_token: token("enclave")?,
        sim,
    });
    attest_once(&ctx).await?; // warm-up

    let window = Duration::from_millis(if opts.quick { 2500 } else { 10_000 });
    let mut base: Option<(f64, f64, f64)> = None;
    for concurrency in [1usize, 8, 64] {
        let deadline = Instant::now() + window;
        let start = Instant::now();
        let mut tasks = Vec::new();
        for _ in 0..concurrency {
            let ctx = ctx.clone();
            tasks.push(tokio::spawn(async move {
                let mut samples = Vec::new();
                // Bounded: stops at the deadline, or after 100 000 attestations.
                while Instant::now() < deadline && samples.len() < 100_000 {
                    samples.push(attest_once(&ctx).await?);
                }
                anyhow::Ok(samples)
            }));
        }
        let mut samples = Vec::new();
        for t in tasks {
            samples.extend(t.await??);
        }
        let secs = start.elapsed().as_secs_f64();
        let tput = samples.len() as f64 / secs;
        let (med, p99) = median_p99_ms(&mut samples);
        let (b_tput, b_med, b_p99) = *base.get_or_insert((tput, med, p99));
        report.add(
            &format!("attest_throughput_c{concurrency}"),
            tput,
            "attest/s",
            b_tput,
        );
        report.add(
            &format!("attest_latency_median_c{concurrency}"),
            med,
            "ms",
            b_med,
        );
        report.add(
            &format!("attest_latency_p99_c{concurrency}"),
            p99,
            "ms",
            b_p99,
        );
    }
    running.shutdown().await;
    Ok(())
}

//! Figure 4: model unsealing throughput vs raw AES-256-GCM, and peak memory vs the model size.
//!
//! The real prepared bundle (`model.gguf`, `tokenizer.json`, `config.json`) is encoded and sealed
//! with a random key into a temporary file. Throughput: `sealed::unseal` over the sealed bytes in
//! memory, vs `ring` AES-256-GCM opening the same plaintext, sealed by this module in the same
//! 1 MiB chunks, in place (no allocation, no digest): the floor. Peak memory: one child process
//! per measurement reads the sealed file the way the enclave does (`std::fs::read`) and either
//! unseals it (`child-unseal`) or decrypts it in place (`child-raw`), then reports its own VmHWM.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, anyhow, bail};
use confidant_attestation::sealed::{self, ModelKey, encode_bundle};
use rand::RngCore;
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};

use crate::Opts;
use crate::report::{Report, median};

const CHUNK: usize = sealed::DEFAULT_CHUNK_SIZE as usize;
const TAG: usize = sealed::TAG_LEN;

/// The prepared bundle: `--bundle`, else the fetched one (cached by digest).
pub fn bundle_dir(opts: &Opts) -> PathBuf {
    opts.bundle
        .clone()
        .unwrap_or_else(confidant_testkit::model::model_bundle)
}

fn bundle_plaintext(dir: &Path) -> anyhow::Result<Vec<u8>> {
    let mut files = Vec::new();
    for name in ["model.gguf", "tokenizer.json", "config.json"] {
        let bytes =
            std::fs::read(dir.join(name)).with_context(|| format!("{}/{name}", dir.display()))?;
        files.push((name, bytes));
    }
    let refs: Vec<(&str, &[u8])> = files.iter().map(|(n, b)| (*n, b.as_slice())).collect();
    encode_bundle(&refs).map_err(|e| anyhow!("{e:?}"))
}

fn raw_key(key: &[u8; 32]) -> anyhow::Result<LessSafeKey> {
    Ok(LessSafeKey::new(
        UnboundKey::new(&AES_256_GCM, key).map_err(|_| anyhow!("aes key"))?,
    ))
}

fn raw_nonce(index: usize) -> Nonce {
    let mut n = [0u8; 12];
    n[4..].copy_from_slice(&(index as u64).to_be_bytes());
    Nonce::assume_unique_for_key(n)
}

/// Plaintext in 1 MiB chunks, each `ciphertext ‖ tag`, nonce = chunk index (the floor's input).
fn raw_seal(plaintext: &[u8], key: &LessSafeKey) -> anyhow::Result<Vec<u8>> {
    let mut out = Vec::with_capacity(plaintext.len() + plaintext.len().div_ceil(CHUNK) * TAG);
    for (i, piece) in plaintext.chunks(CHUNK).enumerate() {
        let start = out.len();
        out.extend_from_slice(piece);
        let tag = key
            .seal_in_place_separate_tag(raw_nonce(i), Aad::empty(), &mut out[start..])
            .map_err(|_| anyhow!("seal"))?;
        out.extend_from_slice(tag.as_ref());
    }
    Ok(out)
}

/// Opens every chunk of [`raw_seal`]'s output in place.
fn raw_open_in_place(buf: &mut [u8], key: &LessSafeKey) -> anyhow::Result<()> {
    for (i, chunk) in buf.chunks_mut(CHUNK + TAG).enumerate() {
        key.open_in_place(raw_nonce(i), Aad::empty(), chunk)
            .map_err(|_| anyhow!("open chunk {i}"))?;
    }
    Ok(())
}

fn vm_hwm_bytes() -> anyhow::Result<u64> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    let line = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .context("no VmHWM")?;
    let kb: u64 = line
        .split_whitespace()
        .nth(1)
        .context("VmHWM value")?
        .parse()?;
    Ok(kb * 1024)
}

/// Child process: `child-unseal FILE KEYHEX` or `child-raw FILE KEYHEX`; prints
/// `<seconds> <VmHWM bytes> <plaintext bytes>`.
pub fn child(args: Vec<String>, raw: bool) -> anyhow::Result<()> {
    let [file, key_hex] = args.as_slice() else {
        bail!("usage: child-unseal|child-raw FILE KEYHEX");
    };
    let mut key = [0u8; 32];
    hex::decode_to_slice(key_hex, &mut key)?;
    let start = Instant::now();
    let mut bytes = std::fs::read(file)?;
    let len = if raw {
        raw_open_in_place(&mut bytes, &raw_key(&key)?)?;
        bytes.len() - bytes.len().div_ceil(CHUNK + TAG) * TAG
    } else {
        let m = sealed::unseal(&bytes, &ModelKey::from_bytes(key)).map_err(|e| anyhow!("{e:?}"))?;
        m.plaintext().len()
    };
    let secs = start.elapsed().as_secs_f64();
    println!("{secs} {} {len}", vm_hwm_bytes()?);
    Ok(())
}

fn run_child(mode: &str, file: &Path, key: &[u8; 32]) -> anyhow::Result<(f64, u64)> {
    let out = Command::new(std::env::current_exe()?)
        .arg(mode)
        .arg(file)
        .arg(hex::encode(key))
        .output()?;
    if !out.status.success() {
        bail!("{mode}: {}", String::from_utf8_lossy(&out.stderr));
    }
    let text = String::from_utf8(out.stdout)?;
    let mut it = text.split_whitespace();
    let secs: f64 = it.next().context("secs")?.parse()?;
    let hwm: u64 = it.next().context("hwm")?.parse()?;
    Ok((secs, hwm))
}

pub fn run(opts: &Opts, report: &mut Report) -> anyhow::Result<()> {
    let dir = bundle_dir(opts);
    let plaintext = bundle_plaintext(&dir)?;
    let model_size = plaintext.len() as f64;
    let mut key_bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut key_bytes);
    let key = ModelKey::from_bytes(key_bytes);
    let sealed_bytes = sealed::seal(&plaintext, &key, "bench", &mut rand::rngs::OsRng)
        .map_err(|e| anyhow!("{e:?}"))?;
    let aes = raw_key(&key_bytes)?;
    let raw_sealed = raw_seal(&plaintext, &aes)?;
    drop(plaintext);

    let runs = if opts.quick { 3 } else { 7 };
    let gb = |secs: f64| model_size / secs / 1e9;
    let mut unseal_gbs = Vec::new();
    let mut raw_gbs = Vec::new();
    let mut sha_gbs = Vec::new();
    let mut work = raw_sealed.clone();
    for _ in 0..runs {
        // Interleaved so both see the same machine load.
        let t = Instant::now();
        let m = sealed::unseal(&sealed_bytes, &key).map_err(|e| anyhow!("{e:?}"))?;
        unseal_gbs.push(gb(t.elapsed().as_secs_f64()));
        drop(m);
        work.copy_from_slice(&raw_sealed);
        let t = Instant::now();
        raw_open_in_place(&mut work, &aes)?;
        raw_gbs.push(gb(t.elapsed().as_secs_f64()));
        // What `unseal` adds besides decryption: SHA-256 over the whole plaintext.
        let t = Instant::now();
        std::hint::black_box(ring::digest::digest(&ring::digest::SHA256, &work));
        sha_gbs.push(gb(t.elapsed().as_secs_f64()));
    }
    report.add(
        "unseal_throughput",
        median(&mut unseal_gbs),
        "GB/s",
        median(&mut raw_gbs),
    );
    report.add(
        "sha256_plaintext_throughput",
        median(&mut sha_gbs),
        "GB/s",
        median(&mut raw_gbs),
    );

    // Peak memory, one child per measurement.
    let tmp = tempfile::tempdir()?;
    let sealed_path = tmp.path().join("model.sealed");
    std::fs::write(&sealed_path, &sealed_bytes)?;
    let raw_path = tmp.path().join("model.raw");
    std::fs::write(&raw_path, &raw_sealed)?;
    drop((sealed_bytes, raw_sealed, work));
    let (unseal_secs, unseal_hwm) = run_child("child-unseal", &sealed_path, &key_bytes)?;
    let (raw_secs, raw_hwm) = run_child("child-raw", &raw_path, &key_bytes)?;
    report.add(
        "unseal_peak_rss_vs_model",
        unseal_hwm as f64 / 1e6,
        "MB",
        model_size / 1e6,
    );
    report.add(
        "raw_aes_in_place_peak_rss_vs_model",
        raw_hwm as f64 / 1e6,
        "MB",
        model_size / 1e6,
    );
    report.add(
        "unseal_from_file_throughput",
        gb(unseal_secs),
        "GB/s",
        gb(raw_secs),
    );
    Ok(())
}

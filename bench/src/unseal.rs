//! Figure 4: model unsealing throughput vs raw AES-256-GCM, and peak memory vs the model size.
//!
//! The real prepared bundle (`model.gguf`, `tokenizer.json`, `config.json`) is encoded and sealed
//! with a random key. The floor is `ring` AES-256-GCM opening the same plaintext, sealed by this
//! module in the same 1 MiB chunks, in place, on one thread (no allocation, no digest).
//!
//! - `unseal_throughput`: `sealed::unseal` over the sealed bytes in memory (allocates the
//!   plaintext, decrypts, computes and checks the BLAKE3 model digest) on
//!   `sealed::default_threads()` threads (reported as `unseal_threads`), vs the floor.
//!   `unseal_1thread_throughput`: the same on one thread.
//! - `model_digest_throughput` (BLAKE3, same threads), `blake3_1thread_throughput` and
//!   `sha256_plaintext_throughput` (the digest of format version 1) over the plaintext alone,
//!   vs the floor: what bounds unsealing.
//! - `fresh_memory_first_touch`: allocating a model-sized buffer and faulting each 4 KiB page in,
//!   vs the floor (which decrypts in a buffer it already has): the platform's cost of new memory,
//!   which any unsealing pays once (`unseal` maps its buffer populated in one call instead).
//! - `unseal_from_file_throughput`: `sealed::unseal_from_reader` on the sealed file (in the page
//!   cache) vs `std::fs::read` of the raw file + the floor.
//! - Peak memory: one child process per measurement, reporting its own VmHWM: `child-unseal`
//!   unseals the file through the streaming path, as the enclave does; `child-raw` reads the raw
//!   file whole and decrypts it in place.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, anyhow, bail};
use confidant_attestation::modelkey::ModelKey;
use confidant_sealed::{self as sealed, encode_bundle};
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

/// The streaming unseal of a sealed file, as the enclave does it.
fn unseal_file(path: &Path, key: &ModelKey) -> anyhow::Result<usize> {
    let file = std::fs::File::open(path)?;
    let len = file.metadata()?.len();
    let m = sealed::unseal_from_reader(file, len, key).map_err(|e| anyhow!("{e:?}"))?;
    Ok(m.plaintext().len())
}

/// `std::fs::read` of the raw file, then the floor.
fn raw_file(path: &Path, key: &LessSafeKey) -> anyhow::Result<usize> {
    let mut bytes = std::fs::read(path)?;
    raw_open_in_place(&mut bytes, key)?;
    Ok(bytes.len() - bytes.len().div_ceil(CHUNK + TAG) * TAG)
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

/// Child process: `child-unseal FILE KEYHEX` (streaming unseal) or `child-raw FILE KEYHEX`
/// (read whole + decrypt in place); prints `<seconds> <VmHWM bytes> <plaintext bytes>`.
pub fn child(args: Vec<String>, raw: bool) -> anyhow::Result<()> {
    let [file, key_hex] = args.as_slice() else {
        bail!("usage: child-unseal|child-raw FILE KEYHEX");
    };
    let mut key = [0u8; 32];
    hex::decode_to_slice(key_hex, &mut key)?;
    let path = Path::new(file);
    let start = Instant::now();
    let len = if raw {
        raw_file(path, &raw_key(&key)?)?
    } else {
        unseal_file(path, &ModelKey::from_bytes(key))?
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
    let threads = sealed::default_threads();

    let runs = if opts.quick { 3 } else { 7 };
    let gb = |secs: f64| model_size / secs / 1e9;
    let time = |f: &mut dyn FnMut() -> anyhow::Result<()>| -> anyhow::Result<f64> {
        let t = Instant::now();
        f()?;
        Ok(gb(t.elapsed().as_secs_f64()))
    };
    let (mut unseal_gbs, mut unseal1_gbs, mut raw_gbs) = (Vec::new(), Vec::new(), Vec::new());
    let (mut digest_gbs, mut b3_1_gbs, mut sha_gbs) = (Vec::new(), Vec::new(), Vec::new());
    let mut touch_gbs = Vec::new();
    let mut kept_fresh: Option<Vec<u8>> = None;
    let mut work = raw_sealed.clone();
    for _ in 0..runs {
        // Interleaved so that all see the same machine load.
        // Timed until the model is unsealed; dropping it (zeroize, unmap) is not.
        let mut kept = None;
        unseal_gbs.push(time(&mut || {
            kept = Some(sealed::unseal(&sealed_bytes, &key).map_err(|e| anyhow!("{e:?}"))?);
            Ok(())
        })?);
        drop(kept.take());
        work.copy_from_slice(&raw_sealed);
        raw_gbs.push(time(&mut || raw_open_in_place(&mut work, &aes))?);
        unseal1_gbs.push(time(&mut || {
            kept = Some(
                sealed::unseal_with_threads(&sealed_bytes, &key, 1)
                    .map_err(|e| anyhow!("{e:?}"))?,
            );
            Ok(())
        })?);
        drop(kept.take());
        digest_gbs.push(time(&mut || {
            std::hint::black_box(sealed::model_digest(&plaintext));
            Ok(())
        })?);
        b3_1_gbs.push(time(&mut || {
            std::hint::black_box(sealed::digest::model_digest_with_threads(&plaintext, 1));
            Ok(())
        })?);
        // What any fresh model-sized buffer costs here: allocate, fault every 4 KiB page in.
        touch_gbs.push(time(&mut || {
            let mut fresh = vec![0u8; plaintext.len()];
            for i in (0..fresh.len()).step_by(4096) {
                fresh[i] = 1;
            }
            kept_fresh = Some(fresh);
            Ok(())
        })?);
        drop(kept_fresh.take());
        sha_gbs.push(time(&mut || {
            std::hint::black_box(ring::digest::digest(&ring::digest::SHA256, &plaintext));
            Ok(())
        })?);
    }
    let floor = median(&mut raw_gbs);
    report.add("unseal_throughput", median(&mut unseal_gbs), "GB/s", floor);
    report.add("unseal_threads", threads as f64, "threads", 1.0);
    report.add(
        "unseal_1thread_throughput",
        median(&mut unseal1_gbs),
        "GB/s",
        floor,
    );
    report.add(
        "model_digest_throughput",
        median(&mut digest_gbs),
        "GB/s",
        floor,
    );
    report.add(
        "blake3_1thread_throughput",
        median(&mut b3_1_gbs),
        "GB/s",
        floor,
    );
    report.add(
        "sha256_plaintext_throughput",
        median(&mut sha_gbs),
        "GB/s",
        floor,
    );
    report.add(
        "fresh_memory_first_touch",
        median(&mut touch_gbs),
        "GB/s",
        floor,
    );
    drop((plaintext, work));

    // From the file (in the page cache after the first read), as the enclave reads it.
    let tmp = tempfile::tempdir()?;
    let sealed_path = tmp.path().join("model.sealed");
    std::fs::write(&sealed_path, &sealed_bytes)?;
    let raw_path = tmp.path().join("model.raw");
    std::fs::write(&raw_path, &raw_sealed)?;
    drop((sealed_bytes, raw_sealed));
    let (mut file_gbs, mut raw_file_gbs) = (Vec::new(), Vec::new());
    for _ in 0..runs {
        file_gbs.push(time(&mut || unseal_file(&sealed_path, &key).map(drop))?);
        raw_file_gbs.push(time(&mut || raw_file(&raw_path, &aes).map(drop))?);
    }
    report.add(
        "unseal_from_file_throughput",
        median(&mut file_gbs),
        "GB/s",
        median(&mut raw_file_gbs),
    );

    // Peak memory, one child per measurement.
    let (_, unseal_hwm) = run_child("child-unseal", &sealed_path, &key_bytes)?;
    let (_, raw_hwm) = run_child("child-raw", &raw_path, &key_bytes)?;
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
    Ok(())
}

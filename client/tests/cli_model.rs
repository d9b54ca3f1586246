//! `confidant model prepare | seal | inspect | register`, the real binary. `prepare` on the real
//! shipped GGUF writes exactly the bundle `scripts/fetch-model.sh` caches. The others on a small
//! synthetic bundle: the sealed file opens with the written key through the library, the key file
//! is 0600 and never overwritten, tampering fails `unseal` with its specific error, and
//! `register` imports the key into a real verifier over TLS.

// Helpers outside #[test] functions unwrap too: a failed fixture is a failed test.
#![allow(clippy::unwrap_used)]

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use base64::Engine;
use confidant_attestation::modelkey::ModelKey;
use confidant_sealed::{self as sealed, SealError, SealedHeader, encode_bundle};
use confidant_testkit::cli::{Cli, arg, fails_with, ok_json, stderr};

const CLI: Cli = Cli::new(env!("CARGO_BIN_EXE_confidant"));

/// A few KB of bundle: weights, tokenizer, config, plus files `seal` must skip.
fn bundle_dir(root: &Path) -> PathBuf {
    let dir = root.join("bundle");
    std::fs::create_dir(&dir).unwrap();
    let weights: Vec<u8> = (0..6000u32).map(|i| (i * 31 % 251) as u8).collect();
    std::fs::write(dir.join("model.gguf"), &weights).unwrap();
    std::fs::write(dir.join("tokenizer.json"), br#"{"model":{"vocab":{}}}"#).unwrap();
    std::fs::write(dir.join("config.json"), br#"{"hidden_size":64}"#).unwrap();
    std::fs::write(dir.join("SHA256SUMS"), b"ignored\n").unwrap();
    std::fs::write(dir.join(".complete"), b"").unwrap();
    dir
}

fn read_key(path: &Path) -> ModelKey {
    let bytes: [u8; 32] = std::fs::read(path).unwrap().try_into().unwrap();
    ModelKey::from_bytes(bytes)
}

fn seal_args<'a>(dir: &'a Path, out: &'a Path, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![
        "model",
        "seal",
        "--in",
        arg(dir),
        "--out",
        arg(out),
        "--key-id",
        "smollm2-v1",
    ];
    args.extend_from_slice(extra);
    args
}

/// The bundle `model prepare` writes from the shipped GGUF is byte for byte the cached one (the
/// same code wrote it), in the format the cached bundle's config names.
#[test]
fn prepare_writes_the_bundle_from_the_shipped_gguf() {
    let cached = confidant_testkit::model::model_bundle_prepared_by(
        env!("CARGO_BIN_EXE_confidant").as_ref(),
    );
    let gguf = confidant_testkit::model::shipped_gguf();
    let config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(cached.join("config.json")).unwrap()).unwrap();
    let weights = config["confidant"]["weights_format"].as_str().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let out_dir = tmp.path().join("bundle");
    let out = CLI.run(&[
        "model",
        "prepare",
        "--gguf",
        arg(&gguf),
        "--out",
        arg(&out_dir),
        "--weights",
        weights,
    ]);
    assert!(out.status.success(), "model prepare: {}", stderr(&out));
    let line = String::from_utf8(out.stdout).unwrap();
    assert!(
        line.starts_with(&format!("prepared {}: ", out_dir.display()))
            && line.contains(&format!("re-quantised to {weights}")),
        "{line}"
    );
    for f in ["model.gguf", "tokenizer.json", "config.json"] {
        assert!(
            std::fs::read(out_dir.join(f)).unwrap() == std::fs::read(cached.join(f)).unwrap(),
            "{f} differs from the cached bundle's"
        );
    }

    // Bad input: an unknown format, a file that is not a GGUF.
    let bad = CLI.run(&[
        "model",
        "prepare",
        "--gguf",
        arg(&gguf),
        "--out",
        arg(&out_dir),
        "--weights",
        "q3_k",
    ]);
    fails_with(&bad, "unknown weights format");
    let not_gguf = tmp.path().join("not.gguf");
    std::fs::write(&not_gguf, b"not a gguf").unwrap();
    let bad = CLI.run(&[
        "model",
        "prepare",
        "--gguf",
        arg(&not_gguf),
        "--out",
        arg(&tmp.path().join("other")),
    ]);
    fails_with(&bad, "GGUF unreadable");
}

#[test]
fn seal_inspect_unseal_roundtrip() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = bundle_dir(tmp.path());
    let out = tmp.path().join("model.sealed");
    // A small chunk size, so the file has several chunks.
    let sealed_json = ok_json(&CLI.run(&seal_args(&dir, &out, &["--chunk-size", "1024"])));
    let key_path = tmp.path().join("model.sealed.key");
    assert_eq!(sealed_json["key_id"], "smollm2-v1");
    assert_eq!(sealed_json["key_file"], arg(&key_path));
    let names: Vec<_> = sealed_json["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(names, ["config.json", "model.gguf", "tokenizer.json"]);

    // The digest is BLAKE3-256 of the bundle of the three files, in name order.
    let read = |n: &str| std::fs::read(dir.join(n)).unwrap();
    let (c, m, t) = (
        read("config.json"),
        read("model.gguf"),
        read("tokenizer.json"),
    );
    let plaintext = encode_bundle(&[
        ("config.json", &c[..]),
        ("model.gguf", &m[..]),
        ("tokenizer.json", &t[..]),
    ])
    .unwrap();
    let digest = sealed::model_digest(&plaintext).to_hex();
    assert_eq!(sealed_json["model_digest"], digest.as_str());
    assert_eq!(sealed_json["model_digest_alg"], "BLAKE3-256");

    // Key file: exactly 32 bytes, mode 0600, never printed.
    let meta = std::fs::metadata(&key_path).unwrap();
    assert_eq!(meta.len(), 32);
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    let key_bytes = std::fs::read(&key_path).unwrap();
    let stdout = String::from_utf8_lossy(&sealed_json.to_string().into_bytes()).into_owned();
    assert!(!stdout.contains(&hex::encode(&key_bytes)));
    assert!(!stdout.contains(&base64::engine::general_purpose::STANDARD.encode(&key_bytes)));

    // inspect: the header, without the key.
    let inspected = ok_json(&CLI.run(&["model", "inspect", arg(&out)]));
    assert_eq!(inspected["key_id"], "smollm2-v1");
    assert_eq!(inspected["model_digest"], digest.as_str());
    assert_eq!(inspected["model_digest_alg"], "BLAKE3-256");
    assert_eq!(inspected["chunk_size"], 1024);
    assert_eq!(inspected["plaintext_len"], plaintext.len() as u64);
    assert!(inspected["chunks"].as_u64().unwrap() > 1);
    assert_eq!(inspected["length_ok"], true);
    assert_eq!(
        inspected["file_len"],
        std::fs::metadata(&out).unwrap().len()
    );
    // --digest: only the digest, for scripts (the README's walk-through).
    let only = CLI.run(&["model", "inspect", arg(&out), "--digest"]);
    assert!(only.status.success(), "{}", stderr(&only));
    assert_eq!(
        String::from_utf8_lossy(&only.stdout).trim(),
        digest.as_str()
    );

    // The library unseals it with the written key into the very files.
    let sealed_bytes = std::fs::read(&out).unwrap();
    let model = sealed::unseal(&sealed_bytes, &read_key(&key_path)).unwrap();
    assert_eq!(model.digest().to_hex(), digest);
    let bundle = model.bundle();
    assert_eq!(bundle.get("model.gguf"), Some(&m[..]));
    assert_eq!(bundle.get("tokenizer.json"), Some(&t[..]));
    assert_eq!(bundle.get("config.json"), Some(&c[..]));
    assert_eq!(bundle.get("SHA256SUMS"), None);
    assert_eq!(bundle.entries().len(), 3);
}

#[test]
fn key_file_is_never_overwritten() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = bundle_dir(tmp.path());
    let out = tmp.path().join("m.sealed");
    let key_path = tmp.path().join("custom.key");
    ok_json(&CLI.run(&seal_args(&dir, &out, &["--key-out", arg(&key_path)])));
    assert!(!tmp.path().join("m.sealed.key").exists());
    let key_before = std::fs::read(&key_path).unwrap();
    let sealed_before = std::fs::read(&out).unwrap();

    let again = CLI.run(&seal_args(&dir, &out, &["--key-out", arg(&key_path)]));
    fails_with(&again, "refusing to overwrite");
    assert_eq!(std::fs::read(&key_path).unwrap(), key_before);
    // The sealed file still matches the key that was kept.
    assert_eq!(std::fs::read(&out).unwrap(), sealed_before);
    sealed::unseal(&sealed_before, &read_key(&key_path)).unwrap();

    // An existing file of any kind at the default key path is refused too.
    let out2 = tmp.path().join("n.sealed");
    std::fs::write(tmp.path().join("n.sealed.key"), b"precious").unwrap();
    fails_with(
        &CLI.run(&seal_args(&dir, &out2, &[])),
        "refusing to overwrite",
    );
    assert_eq!(
        std::fs::read(tmp.path().join("n.sealed.key")).unwrap(),
        b"precious"
    );
    assert!(!out2.exists());
}

#[test]
fn tampered_sealed_file_fails_unseal_with_its_error() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = bundle_dir(tmp.path());
    let out = tmp.path().join("m.sealed");
    ok_json(&CLI.run(&seal_args(&dir, &out, &["--chunk-size", "1024"])));
    let key = read_key(&tmp.path().join("m.sealed.key"));
    let sealed_bytes = std::fs::read(&out).unwrap();
    let header = SealedHeader::parse(&sealed_bytes).unwrap();
    let body = header.encoded_len();

    // One flipped bit in chunk 2's ciphertext.
    let mut bad = sealed_bytes.clone();
    bad[body + 2 * (1024 + 16) + 5] ^= 0x01;
    assert_eq!(
        sealed::unseal(&bad, &key).unwrap_err(),
        SealError::ChunkAuthFailed { index: 2 }
    );

    // A flipped bit in the header (the model digest) fails every chunk's AAD.
    let mut bad = sealed_bytes.clone();
    bad[body - 40] ^= 0x01;
    assert_eq!(
        sealed::unseal(&bad, &key).unwrap_err(),
        SealError::ChunkAuthFailed { index: 0 }
    );

    // Truncated: inspect reports the length, unseal refuses before decrypting.
    let truncated = tmp.path().join("truncated.sealed");
    std::fs::write(&truncated, &sealed_bytes[..sealed_bytes.len() - 1]).unwrap();
    let inspected = ok_json(&CLI.run(&["model", "inspect", arg(&truncated)]));
    assert_eq!(inspected["length_ok"], false);
    assert_eq!(
        sealed::unseal(&sealed_bytes[..sealed_bytes.len() - 1], &key).unwrap_err(),
        SealError::Truncated
    );

    // Another key.
    let other = ModelKey::from_bytes([0x42; 32]);
    assert_eq!(
        sealed::unseal(&sealed_bytes, &other).unwrap_err(),
        SealError::ChunkAuthFailed { index: 0 }
    );

    // inspect refuses what is not a sealed model.
    let junk = tmp.path().join("junk.sealed");
    std::fs::write(&junk, b"NOTSEALED and more bytes").unwrap();
    fails_with(&CLI.run(&["model", "inspect", arg(&junk)]), "bad magic");
}

#[test]
fn seal_refuses_incomplete_bundles() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = bundle_dir(tmp.path());
    std::fs::remove_file(dir.join("tokenizer.json")).unwrap();
    let out = tmp.path().join("m.sealed");
    fails_with(&CLI.run(&seal_args(&dir, &out, &[])), "tokenizer.json");
    assert!(!out.exists());
    assert!(!tmp.path().join("m.sealed.key").exists());

    std::fs::write(dir.join("tokenizer.json"), b"{}").unwrap();
    std::fs::remove_file(dir.join("model.gguf")).unwrap();
    fails_with(&CLI.run(&seal_args(&dir, &out, &[])), "no weights file");

    std::fs::write(dir.join("model.safetensors"), b"weights").unwrap();
    let bad_id = CLI.run(&[
        "model",
        "seal",
        "--in",
        arg(&dir),
        "--out",
        arg(&out),
        "--key-id",
        &"x".repeat(65),
    ]);
    fails_with(&bad_id, "invalid key id");
    let slash_id = CLI.run(&[
        "model",
        "seal",
        "--in",
        arg(&dir),
        "--out",
        arg(&out),
        "--key-id",
        "a/b",
    ]);
    fails_with(&slash_id, "invalid key id");
    assert!(!tmp.path().join("m.sealed.key").exists());
}

#[tokio::test]
async fn register_imports_the_key_into_a_real_verifier() {
    use confidant_verifier::config::Config;
    use confidant_verifier::init::{InitOptions, init};

    let vdir = tempfile::tempdir().unwrap();
    let mut opts = InitOptions::new(vdir.path());
    opts.listen = "127.0.0.1:0".to_owned();
    init(&opts, confidant_verifier::now_unix()).unwrap();
    let config = Config::load(&vdir.path().join("verifier.toml")).unwrap();
    let running = confidant_verifier::server::start(config).await.unwrap();
    let url = format!("https://{}", running.admin.local_addr());

    let tmp = tempfile::tempdir().unwrap();
    let dir = bundle_dir(tmp.path());
    let out = tmp.path().join("m.sealed");
    let sealed_json = ok_json(&CLI.run(&seal_args(&dir, &out, &[])));
    let digest = sealed_json["model_digest"].as_str().unwrap().to_owned();
    let key_path = tmp.path().join("m.sealed.key");
    let key_bytes = std::fs::read(&key_path).unwrap();
    let ca = vdir.path().join("tls-cert.pem");
    let token = |role: &str| vdir.path().join(format!("tokens/{role}.jwt"));

    let register = move |token: PathBuf, ca: PathBuf, key_id: &'static str| {
        let args = [
            "model".to_owned(),
            "register".into(),
            "--verifier".into(),
            url.clone(),
            "--ca".into(),
            ca.display().to_string(),
            "--token-file".into(),
            token.display().to_string(),
            "--key-file".into(),
            key_path.display().to_string(),
            "--key-id".into(),
            key_id.into(),
            "--model-id".into(),
            "smollm2-135m".into(),
            "--digest".into(),
            digest.clone(),
        ];
        async move {
            tokio::task::spawn_blocking(move || CLI.command().args(args).output().unwrap())
                .await
                .unwrap()
        }
    };

    let ok = register(token("admin"), ca.clone(), "smollm2-v1").await;
    let v = ok_json(&ok);
    assert_eq!(v["registered"], true);
    assert_eq!(v["key"]["key_id"], "smollm2-v1");
    assert_eq!(v["key"]["model_id"], "smollm2-135m");
    assert_eq!(v["key"]["model_digest"], sealed_json["model_digest"]);
    let keys = running.verifier.list_keys();
    let stored = keys.iter().find(|k| k.key_id == "smollm2-v1").unwrap();
    assert_eq!(
        stored.model_digest,
        sealed_json["model_digest"].as_str().unwrap()
    );

    // Neither the key nor the token appears in anything the CLI printed.
    let admin_token = std::fs::read_to_string(token("admin")).unwrap();
    let printed = [ok.stdout.clone(), ok.stderr.clone()].concat();
    let printed = String::from_utf8_lossy(&printed);
    for secret in [
        hex::encode(&key_bytes),
        base64::engine::general_purpose::STANDARD.encode(&key_bytes),
        admin_token.trim().to_owned(),
    ] {
        assert!(!printed.contains(&secret));
    }

    // Wrong role: refused by the verifier, reported with its status and code.
    let denied = register(token("auditor"), ca.clone(), "smollm2-v2").await;
    fails_with(&denied, "403");
    // A CA the verifier's certificate does not chain to: the TLS handshake fails.
    let other_ca = tmp.path().join("other-ca.pem");
    let other = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    std::fs::write(&other_ca, other.cert.pem()).unwrap();
    let untrusted = register(token("admin"), other_ca, "smollm2-v3").await;
    fails_with(&untrusted, "TLS handshake");
    assert_eq!(running.verifier.list_keys().len(), 1);
}

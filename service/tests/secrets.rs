//! Secret sources, permission checks, atomic 0600 writes.
#![allow(clippy::unwrap_used, reason = "tests panic on unexpected failures")]

use std::os::unix::fs::PermissionsExt;

use confidant_service::secrets::{
    Secret, SecretError, SecretSource, load_secret, write_secret_file,
};

#[derive(serde::Deserialize)]
struct Config {
    key: SecretSource,
}

#[test]
fn sources_parse_from_toml_and_inline_values_do_not() {
    let c: Config = toml::from_str(r#"key = { file = "/run/k" }"#).unwrap();
    assert_eq!(c.key, SecretSource::File("/run/k".into()));
    let c: Config = toml::from_str(r#"key = { env = "K" }"#).unwrap();
    assert_eq!(c.key, SecretSource::Env("K".into()));
    assert!(toml::from_str::<Config>(r#"key = "inline-secret""#).is_err());
    assert!(toml::from_str::<Config>(r#"key = { value = "x" }"#).is_err());
}

#[test]
fn written_file_is_0600_and_loads_back() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("key");
    write_secret_file(&path, b"s3cret").unwrap();
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let s = load_secret(&SecretSource::File(path.clone())).unwrap();
    assert_eq!(s, Secret::new(b"s3cret".to_vec()));
    assert_ne!(s, Secret::new(b"s3creT".to_vec()));
    // Overwrite is atomic and leaves no temporary behind.
    write_secret_file(&path, b"other").unwrap();
    assert_eq!(
        load_secret(&SecretSource::File(path)).unwrap().expose(),
        b"other"
    );
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
}

#[test]
fn group_readable_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("key");
    std::fs::write(&path, b"x").unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
    assert!(matches!(
        load_secret(&SecretSource::File(path)),
        Err(SecretError::InsecurePermissions { mode: 0o640, .. })
    ));
}

#[test]
fn missing_and_empty_sources_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    assert!(matches!(
        load_secret(&SecretSource::File(dir.path().join("absent"))),
        Err(SecretError::Io { .. })
    ));
    assert!(matches!(
        load_secret(&SecretSource::File(dir.path().to_path_buf())),
        Err(SecretError::NotAFile(_)) | Err(SecretError::InsecurePermissions { .. })
    ));
    let empty = dir.path().join("empty");
    write_secret_file(&empty, b"").unwrap();
    assert!(matches!(
        load_secret(&SecretSource::File(empty)),
        Err(SecretError::Empty(_))
    ));
    assert!(matches!(
        load_secret(&SecretSource::Env("CONFIDANT_TEST_SURELY_UNSET_VAR".into())),
        Err(SecretError::EnvMissing(_))
    ));
    // PATH is always set in a test environment.
    assert!(load_secret(&SecretSource::Env("PATH".into())).is_ok());
}

#[test]
fn debug_never_shows_contents() {
    let s = Secret::new(b"hunter2".to_vec());
    assert!(!format!("{s:?}").contains("hunter2"));
}

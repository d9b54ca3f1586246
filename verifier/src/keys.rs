//! Model keys, stored encrypted at rest under the key-encryption key (KEK).
//!
//! Storage is one JSON file (mode 0600, replaced atomically on every change) listing each key's
//! metadata and its AES-256-GCM ciphertext under the KEK. The AAD names the key id, the model id
//! and the model digest, so a ciphertext cannot be moved to another id or model. Plaintext keys
//! exist only briefly, as [`ModelKey`] (zeroized on drop), while being wrapped for an enclave.
//!
//! Life cycle: `import` (first key of a model: active) → `rotate` (a new key becomes active, the
//! old one is *retired*: still released to enclaves that ask for it by id, so models sealed under
//! it keep working) → `revoke` (ciphertext erased, id never reused, never released again).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use confidant_attestation::binding::KeyRelease;
use confidant_attestation::digest::Blake3Digest;
use confidant_attestation::modelkey::{MODEL_KEY_LEN, ModelKey};
use confidant_attestation::policy::Appraisal;
use confidant_service::secrets::{Secret, write_secret_file};
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::rand::SecureRandom;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

/// Domain separation for the AAD of stored keys.
const AAD_DOMAIN: &[u8] = b"confidant/keystore/v1";
/// Longest key id accepted.
pub const MAX_KEY_ID_LEN: usize = 128;

/// Why a key operation failed.
#[derive(Debug, thiserror::Error)]
pub enum KeyStoreError {
    #[error("key-encryption key must be 32 raw bytes or 64 hex digits")]
    BadKek,
    #[error("key id must be 1-{MAX_KEY_ID_LEN} characters of [A-Za-z0-9._-]")]
    BadKeyId,
    #[error("model id must be 1-128 characters of [A-Za-z0-9._:/-]")]
    BadModelId,
    #[error("model key must be {MODEL_KEY_LEN} bytes")]
    BadKeyLength,
    #[error("key id already exists")]
    Exists,
    #[error("no such key")]
    NotFound,
    #[error("key is revoked")]
    Revoked,
    #[error("key is not the model's active key")]
    NotActive,
    #[error("the model already has an active key (rotate it instead)")]
    ModelHasActiveKey,
    #[error("no releasable key for this model")]
    NoKeyForModel,
    #[error("the key was imported for another model digest than the policy names")]
    DigestMismatch,
    #[error("key store file {path}: {detail}")]
    Storage { path: PathBuf, detail: String },
    #[error("stored key {0} does not decrypt under the key-encryption key")]
    Decrypt(String),
    #[error("random number generator failed")]
    Rng,
}

pub use confidant_wire::admin::{KeyInfo, KeyStatus};

#[derive(Debug, Clone, Serialize, Deserialize)]
struct StoredKey {
    #[serde(flatten)]
    info: KeyInfo,
    /// AES-256-GCM nonce, hex; absent once revoked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    nonce: Option<String>,
    /// Ciphertext ‖ tag, base64; absent once revoked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ciphertext: Option<String>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct StoreFile {
    version: u32,
    keys: Vec<StoredKey>,
}

/// A new key to import.
#[derive(Debug)]
pub struct NewKey<'a> {
    pub key_id: &'a str,
    pub model_id: &'a str,
    pub model_digest: Blake3Digest,
    pub key: ModelKey,
}

/// The model key store.
pub struct KeyStore {
    kek: LessSafeKey,
    path: PathBuf,
    keys: Mutex<BTreeMap<String, StoredKey>>,
}

impl std::fmt::Debug for KeyStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyStore")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

/// Parses a KEK secret: 32 raw bytes, or 64 hex digits (surrounding whitespace ignored).
pub fn parse_kek(secret: &Secret) -> Result<Zeroizing<[u8; 32]>, KeyStoreError> {
    let bytes = secret.expose();
    let mut out = Zeroizing::new([0u8; 32]);
    if bytes.len() == 32 {
        out.copy_from_slice(bytes);
        return Ok(out);
    }
    let trimmed = bytes.trim_ascii();
    if trimmed.len() == 64 {
        hex::decode_to_slice(trimmed, out.as_mut_slice()).map_err(|_| KeyStoreError::BadKek)?;
        return Ok(out);
    }
    Err(KeyStoreError::BadKek)
}

/// Checks a key id's shape.
pub fn valid_key_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_KEY_ID_LEN
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// Checks a model id's shape.
pub fn valid_model_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b':' | b'/'))
}

fn aad(info: &KeyInfo) -> Vec<u8> {
    let mut out = Vec::with_capacity(64 + info.key_id.len() + info.model_id.len());
    for part in [
        AAD_DOMAIN,
        info.key_id.as_bytes(),
        info.model_id.as_bytes(),
        info.model_digest.as_bytes(),
    ] {
        out.extend_from_slice(&(part.len() as u32).to_be_bytes());
        out.extend_from_slice(part);
    }
    out
}

impl KeyStore {
    /// Opens (or starts) the store at `path` under `kek`. Every stored key is decrypted once
    /// to prove the KEK is right (and the plaintext dropped at once).
    pub fn open(path: &Path, kek: &[u8; 32]) -> Result<Self, KeyStoreError> {
        let unbound = UnboundKey::new(&AES_256_GCM, kek).map_err(|_| KeyStoreError::BadKek)?;
        let store = Self {
            kek: LessSafeKey::new(unbound),
            path: path.to_path_buf(),
            keys: Mutex::new(BTreeMap::new()),
        };
        let file: StoreFile = match std::fs::read(path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| store.storage_err(e))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => StoreFile::default(),
            Err(e) => return Err(store.storage_err(e)),
        };
        let mut map = BTreeMap::new();
        for k in file.keys {
            if k.info.status != KeyStatus::Revoked {
                drop(store.decrypt(&k)?);
            }
            map.insert(k.info.key_id.clone(), k);
        }
        *store.keys.lock().unwrap_or_else(|e| e.into_inner()) = map;
        Ok(store)
    }

    fn storage_err(&self, e: impl std::fmt::Display) -> KeyStoreError {
        KeyStoreError::Storage {
            path: self.path.clone(),
            detail: e.to_string(),
        }
    }

    fn encrypt(
        &self,
        info: &KeyInfo,
        key: &ModelKey,
        rng: &dyn SecureRandom,
    ) -> Result<StoredKey, KeyStoreError> {
        let mut nonce = [0u8; NONCE_LEN];
        rng.fill(&mut nonce).map_err(|_| KeyStoreError::Rng)?;
        let mut buf = Zeroizing::new(key.expose_secret().to_vec());
        self.kek
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad(info)),
                &mut *buf,
            )
            .map_err(|_| KeyStoreError::Rng)?;
        Ok(StoredKey {
            info: info.clone(),
            nonce: Some(hex::encode(nonce)),
            ciphertext: Some(STANDARD.encode(buf.as_slice())),
        })
    }

    fn decrypt(&self, k: &StoredKey) -> Result<ModelKey, KeyStoreError> {
        let bad = || KeyStoreError::Decrypt(k.info.key_id.clone());
        let (Some(nonce_hex), Some(ct_b64)) = (&k.nonce, &k.ciphertext) else {
            return Err(KeyStoreError::Revoked);
        };
        let mut nonce = [0u8; NONCE_LEN];
        hex::decode_to_slice(nonce_hex, &mut nonce).map_err(|_| bad())?;
        let mut buf = Zeroizing::new(STANDARD.decode(ct_b64).map_err(|_| bad())?);
        let plain = self
            .kek
            .open_in_place(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad(&k.info)),
                &mut buf,
            )
            .map_err(|_| bad())?;
        let bytes: [u8; MODEL_KEY_LEN] = (&*plain).try_into().map_err(|_| bad())?;
        let key = ModelKey::from_bytes(bytes);
        // `bytes` is a Copy array; wipe our stack copy too.
        let mut bytes = bytes;
        zeroize::Zeroize::zeroize(&mut bytes);
        Ok(key)
    }

    fn persist(&self, map: &BTreeMap<String, StoredKey>) -> Result<(), KeyStoreError> {
        let file = StoreFile {
            version: 1,
            keys: map.values().cloned().collect(),
        };
        let json = serde_json::to_vec_pretty(&file).map_err(|e| self.storage_err(e))?;
        write_secret_file(&self.path, &json).map_err(|e| self.storage_err(e))
    }

    /// All keys' metadata.
    pub fn list(&self) -> Vec<KeyInfo> {
        let map = self.keys.lock().unwrap_or_else(|e| e.into_inner());
        map.values().map(|k| k.info.clone()).collect()
    }

    /// Imports the first key of a model (it becomes active). Blocking (fsync).
    pub fn import(
        &self,
        new: NewKey<'_>,
        now: u64,
        rng: &dyn SecureRandom,
    ) -> Result<KeyInfo, KeyStoreError> {
        if !valid_key_id(new.key_id) {
            return Err(KeyStoreError::BadKeyId);
        }
        if !valid_model_id(new.model_id) {
            return Err(KeyStoreError::BadModelId);
        }
        let mut map = self.keys.lock().unwrap_or_else(|e| e.into_inner());
        if map.contains_key(new.key_id) {
            return Err(KeyStoreError::Exists);
        }
        if map
            .values()
            .any(|k| k.info.model_id == new.model_id && k.info.status == KeyStatus::Active)
        {
            return Err(KeyStoreError::ModelHasActiveKey);
        }
        let info = KeyInfo {
            key_id: new.key_id.to_owned(),
            model_id: new.model_id.to_owned(),
            model_digest: new.model_digest.to_hex(),
            status: KeyStatus::Active,
            created_at: now,
            retired_at: None,
            revoked_at: None,
        };
        let stored = self.encrypt(&info, &new.key, rng)?;
        let mut next = map.clone();
        next.insert(info.key_id.clone(), stored);
        self.persist(&next)?;
        *map = next;
        Ok(info)
    }

    /// Replaces the active key `old_id` by a new key for the same model (and the same model
    /// digest unless `new.model_digest` differs: a re-sealed bundle may change it). The old key
    /// is retired, still releasable by id until revoked.
    pub fn rotate(
        &self,
        old_id: &str,
        new: NewKey<'_>,
        now: u64,
        rng: &dyn SecureRandom,
    ) -> Result<KeyInfo, KeyStoreError> {
        if !valid_key_id(new.key_id) {
            return Err(KeyStoreError::BadKeyId);
        }
        let mut map = self.keys.lock().unwrap_or_else(|e| e.into_inner());
        let old = map.get(old_id).ok_or(KeyStoreError::NotFound)?;
        match old.info.status {
            KeyStatus::Active => {}
            KeyStatus::Revoked => return Err(KeyStoreError::Revoked),
            KeyStatus::Retired => return Err(KeyStoreError::NotActive),
        }
        if new.model_id != old.info.model_id {
            return Err(KeyStoreError::BadModelId);
        }
        if map.contains_key(new.key_id) {
            return Err(KeyStoreError::Exists);
        }
        let info = KeyInfo {
            key_id: new.key_id.to_owned(),
            model_id: new.model_id.to_owned(),
            model_digest: new.model_digest.to_hex(),
            status: KeyStatus::Active,
            created_at: now,
            retired_at: None,
            revoked_at: None,
        };
        let stored = self.encrypt(&info, &new.key, rng)?;
        let mut next = map.clone();
        if let Some(old) = next.get_mut(old_id) {
            old.info.status = KeyStatus::Retired;
            old.info.retired_at = Some(now);
        }
        next.insert(info.key_id.clone(), stored);
        self.persist(&next)?;
        *map = next;
        Ok(info)
    }

    /// Revokes a key: its ciphertext is erased and it is never released again.
    pub fn revoke(&self, key_id: &str, now: u64) -> Result<KeyInfo, KeyStoreError> {
        let mut map = self.keys.lock().unwrap_or_else(|e| e.into_inner());
        let current = map.get(key_id).ok_or(KeyStoreError::NotFound)?;
        if current.info.status == KeyStatus::Revoked {
            return Err(KeyStoreError::Revoked);
        }
        let mut next = map.clone();
        let info = match next.get_mut(key_id) {
            Some(k) => {
                k.info.status = KeyStatus::Revoked;
                k.info.revoked_at = Some(now);
                k.nonce = None;
                k.ciphertext = None;
                k.info.clone()
            }
            None => return Err(KeyStoreError::NotFound),
        };
        self.persist(&next)?;
        *map = next;
        Ok(info)
    }

    /// The key an enclave asking for `model_id` (and optionally a specific `key_id`) would get,
    /// without its material.
    pub fn select(&self, model_id: &str, key_id: Option<&str>) -> Result<KeyInfo, KeyStoreError> {
        let map = self.keys.lock().unwrap_or_else(|e| e.into_inner());
        select_in(&map, model_id, key_id).map(|k| k.info.clone())
    }

    /// Opens the key for an appraised enclave: the model's active key, or `key_id` if given
    /// (active or retired, never revoked), and only if the key was imported for the model digest
    /// the appraisal (and so the evidence's binding) names. Only an [`Appraisal`] of key-release
    /// evidence opens a key; evidence bound to a raw value or to a session does not:
    /// ```compile_fail
    /// use confidant_attestation::policy::RawAppraisal;
    /// use confidant_verifier::keys::KeyStore;
    /// fn open(keys: &KeyStore, a: &RawAppraisal) {
    ///     let _ = keys.release(a, None);
    /// }
    /// ```
    /// ```compile_fail
    /// use confidant_attestation::binding::Session;
    /// use confidant_attestation::policy::Appraisal;
    /// use confidant_verifier::keys::KeyStore;
    /// fn open(keys: &KeyStore, a: &Appraisal<Session>) {
    ///     let _ = keys.release(a, None);
    /// }
    /// ```
    pub fn release(
        &self,
        appraisal: &Appraisal<KeyRelease>,
        key_id: Option<&str>,
    ) -> Result<(KeyInfo, ModelKey), KeyStoreError> {
        let map = self.keys.lock().unwrap_or_else(|e| e.into_inner());
        let k = select_in(&map, appraisal.model_id(), key_id)?;
        if k.info.model_digest != appraisal.model_digest().to_hex() {
            return Err(KeyStoreError::DigestMismatch);
        }
        Ok((k.info.clone(), self.decrypt(k)?))
    }

    #[cfg(test)]
    fn open_selected(
        &self,
        model_id: &str,
        key_id: Option<&str>,
    ) -> Result<(KeyInfo, ModelKey), KeyStoreError> {
        let map = self.keys.lock().unwrap_or_else(|e| e.into_inner());
        let k = select_in(&map, model_id, key_id)?;
        Ok((k.info.clone(), self.decrypt(k)?))
    }
}

fn select_in<'a>(
    map: &'a BTreeMap<String, StoredKey>,
    model_id: &str,
    key_id: Option<&str>,
) -> Result<&'a StoredKey, KeyStoreError> {
    match key_id {
        Some(id) => {
            let k = map.get(id).ok_or(KeyStoreError::NotFound)?;
            if k.info.model_id != model_id {
                return Err(KeyStoreError::NotFound);
            }
            if k.info.status == KeyStatus::Revoked {
                return Err(KeyStoreError::Revoked);
            }
            Ok(k)
        }
        None => map
            .values()
            .find(|k| k.info.model_id == model_id && k.info.status == KeyStatus::Active)
            .ok_or(KeyStoreError::NoKeyForModel),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::rand::SystemRandom;

    fn new_key<'a>(id: &'a str, model: &'a str, byte: u8) -> NewKey<'a> {
        NewKey {
            key_id: id,
            model_id: model,
            model_digest: Blake3Digest::from_bytes([7; 32]),
            key: ModelKey::from_bytes([byte; 32]),
        }
    }

    #[test]
    fn import_rotate_revoke_persist() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys.json");
        let rng = SystemRandom::new();
        let kek = [9u8; 32];
        let store = KeyStore::open(&path, &kek).unwrap();
        store.import(new_key("k1", "m", 1), 1, &rng).unwrap();
        assert!(matches!(
            store.import(new_key("k1", "m2", 1), 1, &rng),
            Err(KeyStoreError::Exists)
        ));
        assert!(matches!(
            store.import(new_key("k2", "m", 1), 1, &rng),
            Err(KeyStoreError::ModelHasActiveKey)
        ));
        store.rotate("k1", new_key("k2", "m", 2), 2, &rng).unwrap();
        let (info, key) = store.open_selected("m", None).unwrap();
        assert_eq!(info.key_id, "k2");
        assert_eq!(key.expose_secret(), &[2; 32]);
        let (_, old) = store.open_selected("m", Some("k1")).unwrap();
        assert_eq!(old.expose_secret(), &[1; 32]);

        // The file holds no plaintext and reopens with the same KEK.
        let raw = std::fs::read(&path).unwrap();
        assert!(!raw.windows(32).any(|w| w == [1u8; 32] || w == [2u8; 32]));
        let reopened = KeyStore::open(&path, &kek).unwrap();
        reopened.revoke("k1", 3).unwrap();
        assert!(matches!(
            reopened.open_selected("m", Some("k1")),
            Err(KeyStoreError::Revoked)
        ));
        assert!(matches!(
            KeyStore::open(&path, &[8u8; 32]),
            Err(KeyStoreError::Decrypt(_))
        ));
        assert!(matches!(
            reopened.open_selected("other", None),
            Err(KeyStoreError::NoKeyForModel)
        ));
    }

    #[test]
    fn ciphertext_is_bound_to_its_id() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys.json");
        let rng = SystemRandom::new();
        let store = KeyStore::open(&path, &[1; 32]).unwrap();
        store.import(new_key("a", "ma", 1), 1, &rng).unwrap();
        store.import(new_key("b", "mb", 2), 1, &rng).unwrap();
        let mut file: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        let keys = file["keys"].as_array_mut().unwrap();
        let ct = keys[0]["ciphertext"].clone();
        keys[1]["ciphertext"] = ct;
        let nonce = keys[0]["nonce"].clone();
        keys[1]["nonce"] = nonce;
        write_secret_file(&path, &serde_json::to_vec(&file).unwrap()).unwrap();
        assert!(matches!(
            KeyStore::open(&path, &[1; 32]),
            Err(KeyStoreError::Decrypt(id)) if id == "b"
        ));
    }
}

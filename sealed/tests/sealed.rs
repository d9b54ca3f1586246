//! Sealed model format: roundtrips and a table of corruptions with the exact error each yields.
//! Every case goes through all four ways to unseal (in memory or from a reader, on one thread or
//! several), which must agree.
#![allow(clippy::unwrap_used, reason = "test helpers outside #[test] functions")]

use std::io::Read;

use confidant_attestation::modelkey::ModelKey;
use confidant_sealed::{
    Bundle, HeaderField, SealError, SealedHeader, TAG_LEN, UnsealedModel, encode_bundle,
    model_digest, seal, seal_with_chunk_size, unseal_from_reader_with_threads, unseal_with_threads,
};

/// A reader that hands out at most 7 bytes per call, to exercise short reads.
struct Dribble<'a>(&'a [u8]);

impl Read for Dribble<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = buf.len().min(self.0.len()).min(7);
        buf[..n].copy_from_slice(&self.0[..n]);
        self.0 = &self.0[n..];
        Ok(n)
    }
}

/// Unseals `sealed` in memory and from readers, on 1 and 3 threads; all results must agree.
fn unseal(sealed: &[u8], key: &ModelKey) -> Result<UnsealedModel, SealError> {
    let len = sealed.len() as u64;
    let first = unseal_with_threads(sealed, key, 1);
    let others = [
        unseal_with_threads(sealed, key, 3),
        unseal_from_reader_with_threads(sealed, len, key, 1),
        unseal_from_reader_with_threads(sealed, len, key, 3),
        unseal_from_reader_with_threads(Dribble(sealed), len, key, 2),
    ];
    for (i, other) in others.into_iter().enumerate() {
        match (&first, other) {
            (Ok(a), Ok(b)) => {
                assert_eq!(a.plaintext(), b.plaintext(), "variant {i}");
                assert_eq!(a.header(), b.header(), "variant {i}");
            }
            (Err(a), Err(b)) => assert_eq!(*a, b, "variant {i}"),
            (a, b) => panic!("variant {i} disagrees: {:?} vs {:?}", a.is_ok(), b.is_ok()),
        }
    }
    first
}

const CHUNK: u32 = 64;

fn key() -> ModelKey {
    ModelKey::from_bytes([0x42; 32])
}

/// A bundle whose encoding is exactly `total` bytes (total ≥ 33).
fn bundle_of_len(total: usize) -> Vec<u8> {
    let overhead = encode_bundle(&[("w", b"")]).unwrap().len();
    let data: Vec<u8> = (0..total - overhead).map(|i| (i * 7) as u8).collect();
    let b = encode_bundle(&[("w", &data)]).unwrap();
    assert_eq!(b.len(), total);
    b
}

fn sealed_multi() -> (Vec<u8>, SealedHeader) {
    // 4 chunks: 3 full and a short last one.
    let pt = bundle_of_len(3 * CHUNK as usize + 10);
    let sealed =
        seal_with_chunk_size(&pt, &key(), "model-key-1", CHUNK, &mut rand::thread_rng()).unwrap();
    let h = SealedHeader::parse(&sealed).unwrap();
    assert_eq!(h.chunk_count(), 4);
    (sealed, h)
}

/// Byte offset of chunk `i` (ciphertext start) in a file sealed with CHUNK.
fn chunk_off(h: &SealedHeader, i: usize) -> usize {
    h.encoded_len() + i * (CHUNK as usize + TAG_LEN)
}

#[test]
fn roundtrip_sizes() {
    let empty = encode_bundle(&[]).unwrap();
    let one_empty_file = encode_bundle(&[("config.json", b"")]).unwrap();
    let one_byte = encode_bundle(&[("config.json", b"x")]).unwrap();
    let cases = [
        empty,
        one_empty_file,
        one_byte,
        bundle_of_len(CHUNK as usize),
        bundle_of_len(2 * CHUNK as usize),
        bundle_of_len(5 * CHUNK as usize + 1),
    ];
    for pt in cases {
        let sealed =
            seal_with_chunk_size(&pt, &key(), "k", CHUNK, &mut rand::thread_rng()).unwrap();
        let h = SealedHeader::parse(&sealed).unwrap();
        assert_eq!(h.sealed_len(), sealed.len() as u64);
        assert_eq!(h.key_id, "k");
        let m = unseal(&sealed, &key()).unwrap();
        assert_eq!(m.plaintext(), &pt[..]);
        assert_eq!(m.digest(), &h.model_digest);
        let parsed = Bundle::parse(&pt).unwrap();
        assert_eq!(
            m.bundle().files().collect::<Vec<_>>(),
            parsed.files().collect::<Vec<_>>()
        );
    }
}

#[test]
fn real_bundle_default_chunk() {
    let weights: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    let pt = encode_bundle(&[
        ("model.safetensors", &weights),
        ("tokenizer.json", br#"{"v":1}"#),
        ("config.json", b"{}"),
    ])
    .unwrap();
    let sealed = seal(&pt, &key(), "prod/llama-1", &mut rand::thread_rng()).unwrap();
    let h = SealedHeader::parse(&sealed[..200]).unwrap();
    assert_eq!(h.key_id, "prod/llama-1");
    assert_eq!(h.expect_key_id("prod/llama-1"), Ok(()));
    assert_eq!(h.expect_key_id("other"), Err(SealError::WrongKeyId));
    let m = unseal(&sealed, &key()).unwrap();
    let b = m.bundle();
    assert_eq!(b.get("model.safetensors"), Some(&weights[..]));
    assert_eq!(b.get("config.json"), Some(&b"{}"[..]));
    // Borrowed from the one plaintext buffer.
    let w = b.get("model.safetensors").unwrap();
    assert!(m.plaintext().as_ptr_range().contains(&w.as_ptr()));
}

#[test]
fn nonce_prefix_is_random() {
    let pt = encode_bundle(&[("a", b"same")]).unwrap();
    let a = seal(&pt, &key(), "k", &mut rand::thread_rng()).unwrap();
    let b = seal(&pt, &key(), "k", &mut rand::thread_rng()).unwrap();
    assert_ne!(a, b);
}

#[test]
fn wrong_key_fails_first_chunk() {
    let (sealed, _) = sealed_multi();
    let wrong = ModelKey::from_bytes([0x43; 32]);
    assert_eq!(
        unseal(&sealed, &wrong).unwrap_err(),
        SealError::ChunkAuthFailed { index: 0 }
    );
}

#[test]
fn flipped_bit_in_each_chunk_and_tag() {
    let (sealed, h) = sealed_multi();
    for i in 0..4 {
        let len = if i == 3 { 10 } else { CHUNK as usize };
        for off in [0, len - 1, len, len + TAG_LEN - 1] {
            let mut bad = sealed.clone();
            bad[chunk_off(&h, i) + off] ^= 0x01;
            assert_eq!(
                unseal(&bad, &key()).unwrap_err(),
                SealError::ChunkAuthFailed { index: i as u64 },
                "chunk {i} offset {off}"
            );
        }
    }
}

#[test]
fn flipped_bit_anywhere_in_header() {
    let (sealed, h) = sealed_multi();
    let key_id_end = 11 + h.key_id.len();
    for byte in 0..h.encoded_len() {
        for bit in 0..8 {
            let mut bad = sealed.clone();
            bad[byte] ^= 1 << bit;
            let err = unseal(&bad, &key()).unwrap_err();
            let ok = match byte {
                0..8 => err == SealError::BadMagic,
                8..10 => matches!(err, SealError::UnsupportedVersion(_)),
                // Key id length: the rest of the header shifts.
                10 => matches!(
                    err,
                    SealError::HeaderMalformed(_)
                        | SealError::TooLarge
                        | SealError::Truncated
                        | SealError::TrailingData
                        | SealError::ChunkAuthFailed { index: 0 }
                ),
                b if b < key_id_end => matches!(
                    err,
                    SealError::HeaderMalformed(HeaderField::KeyId)
                        | SealError::ChunkAuthFailed { index: 0 }
                ),
                // Chunk size: out of range, a different file length, or (same chunk count)
                // caught by the header AAD.
                b if b < key_id_end + 4 => matches!(
                    err,
                    SealError::HeaderMalformed(HeaderField::ChunkSize)
                        | SealError::ChunkAuthFailed { index: 0 }
                        | SealError::Truncated
                        | SealError::TrailingData
                        | SealError::TooLarge
                ),
                // Plaintext length changes the expected file length.
                b if (key_id_end + 11..key_id_end + 19).contains(&b) => matches!(
                    err,
                    SealError::Truncated | SealError::TrailingData | SealError::TooLarge
                ),
                // Nonce prefix and both digests: authenticated through the AAD.
                _ => err == SealError::ChunkAuthFailed { index: 0 },
            };
            assert!(ok, "byte {byte} bit {bit}: {err:?}");
        }
    }
}

#[test]
fn truncation() {
    let (sealed, h) = sealed_multi();
    // At each chunk boundary (drops the last chunk, then more), and mid-chunk.
    for cut in [
        chunk_off(&h, 3),
        chunk_off(&h, 2),
        chunk_off(&h, 1),
        chunk_off(&h, 0),
        chunk_off(&h, 1) + 5,
        sealed.len() - 1,
        h.encoded_len() - 1,
    ] {
        assert_eq!(
            unseal(&sealed[..cut], &key()).unwrap_err(),
            SealError::Truncated,
            "cut at {cut}"
        );
    }
    assert_eq!(
        SealedHeader::parse(&sealed[..5]).unwrap_err(),
        SealError::Truncated
    );
}

#[test]
fn dropping_last_chunk_and_shrinking_length_fails_auth() {
    // An attacker who also edits the plaintext length is caught by the header AAD.
    let (sealed, h) = sealed_multi();
    let mut bad = sealed[..chunk_off(&h, 3)].to_vec();
    let len_off = 11 + h.key_id.len() + 4 + 7;
    bad[len_off..len_off + 8].copy_from_slice(&(3 * CHUNK as u64).to_be_bytes());
    assert_eq!(
        unseal(&bad, &key()).unwrap_err(),
        SealError::ChunkAuthFailed { index: 0 }
    );
}

#[test]
fn swapped_chunks() {
    let (sealed, h) = sealed_multi();
    let mut bad = sealed.clone();
    let step = CHUNK as usize + TAG_LEN;
    let (a, b) = (chunk_off(&h, 0), chunk_off(&h, 1));
    let c0 = sealed[a..a + step].to_vec();
    let c1 = sealed[b..b + step].to_vec();
    bad[a..a + step].copy_from_slice(&c1);
    bad[b..b + step].copy_from_slice(&c0);
    assert_eq!(
        unseal(&bad, &key()).unwrap_err(),
        SealError::ChunkAuthFailed { index: 0 }
    );
    // Swap 1 and 2: chunk 0 is fine, 1 fails.
    let mut bad = sealed.clone();
    let c = chunk_off(&h, 2);
    let c2 = sealed[c..c + step].to_vec();
    bad[b..b + step].copy_from_slice(&c2);
    bad[c..c + step].copy_from_slice(&c1);
    assert_eq!(
        unseal(&bad, &key()).unwrap_err(),
        SealError::ChunkAuthFailed { index: 1 }
    );
}

#[test]
fn appended_bytes() {
    let (mut sealed, _) = sealed_multi();
    sealed.push(0);
    assert_eq!(
        unseal(&sealed, &key()).unwrap_err(),
        SealError::TrailingData
    );
}

#[test]
fn chunk_from_another_file_fails() {
    // Same key and key id, different nonce prefix: chunks do not transplant.
    let (a, h) = sealed_multi();
    let (b, _) = sealed_multi();
    let mut bad = a.clone();
    let off = chunk_off(&h, 2);
    bad[off..].copy_from_slice(&b[off..]);
    assert_eq!(
        unseal(&bad, &key()).unwrap_err(),
        SealError::ChunkAuthFailed { index: 2 }
    );
}

#[test]
fn seal_rejects_bad_inputs() {
    let pt = encode_bundle(&[("a", b"x")]).unwrap();
    let mut rng = rand::thread_rng();
    assert_eq!(
        seal(&pt, &key(), "", &mut rng).unwrap_err(),
        SealError::InvalidKeyId
    );
    assert_eq!(
        seal(&pt, &key(), &"x".repeat(65), &mut rng).unwrap_err(),
        SealError::InvalidKeyId
    );
    assert!(matches!(
        seal(b"not a bundle", &key(), "k", &mut rng).unwrap_err(),
        SealError::Bundle(_)
    ));
    assert_eq!(
        seal_with_chunk_size(&pt, &key(), "k", 16, &mut rng).unwrap_err(),
        SealError::HeaderMalformed(HeaderField::ChunkSize)
    );
}

#[test]
fn huge_declared_length_is_refused_before_allocating() {
    let (sealed, h) = sealed_multi();
    let len_off = 11 + h.key_id.len() + 4 + 7;
    let mut bad = sealed.clone();
    bad[len_off..len_off + 8].copy_from_slice(&u64::MAX.to_be_bytes());
    assert_eq!(unseal(&bad, &key()).unwrap_err(), SealError::TooLarge);
    let mut bad = sealed;
    bad[len_off..len_off + 8].copy_from_slice(&(1u64 << 37).to_be_bytes());
    assert_eq!(unseal(&bad, &key()).unwrap_err(), SealError::Truncated);
}

/// A bundle of about `mib` MiB sealed in 64 KiB chunks: several segments, a short last chunk.
fn sealed_big(mib: usize) -> (Vec<u8>, Vec<u8>, SealedHeader) {
    let pt = bundle_of_len(mib * (1 << 20) + 12_345);
    let sealed =
        seal_with_chunk_size(&pt, &key(), "big", 1 << 16, &mut rand::thread_rng()).unwrap();
    let h = SealedHeader::parse(&sealed).unwrap();
    (pt, sealed, h)
}

fn big_chunk_off(h: &SealedHeader, i: usize) -> usize {
    h.encoded_len() + i * ((1 << 16) + TAG_LEN)
}

#[test]
fn model_digest_is_blake3_of_the_plaintext() {
    let (pt, sealed, h) = sealed_big(3);
    assert_eq!(h.version, 2);
    assert_eq!(h.model_digest.as_bytes(), blake3::hash(&pt).as_bytes());
    assert_eq!(model_digest(&pt), h.model_digest);
    let m = unseal(&sealed, &key()).unwrap();
    assert_eq!(m.plaintext(), &pt[..]);
    assert_eq!(m.digest(), &h.model_digest);
    // One byte, or the length, changes the digest.
    let mut other = pt.clone();
    *other.last_mut().unwrap() ^= 1;
    assert_ne!(model_digest(&other), h.model_digest);
    assert_ne!(model_digest(&pt[..pt.len() - 1]), h.model_digest);
    let mut longer = pt.clone();
    longer.push(0);
    assert_ne!(model_digest(&longer), h.model_digest);
}

#[test]
fn multi_segment_roundtrip_sizes() {
    // Around segment (1 MiB) and chunk boundaries, chunk sizes that are not powers of two.
    for (len, chunk) in [
        (1 << 20, 1 << 16),
        ((1 << 20) + 1, 1 << 16),
        ((2 << 20) - 1, 1 << 20),
        ((2 << 20) + 1, 1 << 20),
        ((3 << 20) + 5, 3 << 19),
        ((2 << 20) + 77, 1000),
        ((1 << 20) + 3, 4 << 20),
    ] {
        let pt = bundle_of_len(len);
        let sealed =
            seal_with_chunk_size(&pt, &key(), "k", chunk, &mut rand::thread_rng()).unwrap();
        let m = unseal(&sealed, &key()).unwrap();
        assert_eq!(m.plaintext(), &pt[..], "len {len} chunk {chunk}");
        assert_eq!(m.digest().as_bytes(), blake3::hash(&pt).as_bytes());
    }
}

#[test]
fn multi_segment_tampering_reports_the_first_bad_chunk() {
    let (_, sealed, h) = sealed_big(3);
    let n = h.chunk_count() as usize;
    assert_eq!(n, 49);
    for i in [0, 1, 15, 16, 17, 31, 47, 48] {
        let mut bad = sealed.clone();
        bad[big_chunk_off(&h, i) + 3] ^= 0x80;
        assert_eq!(
            unseal(&bad, &key()).unwrap_err(),
            SealError::ChunkAuthFailed { index: i as u64 },
            "chunk {i}"
        );
        // A later chunk also broken: still the first one reported.
        bad[big_chunk_off(&h, n - 1) + 1] ^= 1;
        if i != n - 1 {
            assert_eq!(
                unseal(&bad, &key()).unwrap_err(),
                SealError::ChunkAuthFailed { index: i as u64 }
            );
        }
    }
    // Tag of the last chunk.
    let mut bad = sealed.clone();
    *bad.last_mut().unwrap() ^= 1;
    assert_eq!(
        unseal(&bad, &key()).unwrap_err(),
        SealError::ChunkAuthFailed {
            index: n as u64 - 1
        }
    );
    let wrong = ModelKey::from_bytes([0x43; 32]);
    assert_eq!(
        unseal(&sealed, &wrong).unwrap_err(),
        SealError::ChunkAuthFailed { index: 0 }
    );
}

#[test]
fn multi_segment_truncation_and_trailing_data() {
    let (_, sealed, h) = sealed_big(2);
    let n = h.chunk_count() as usize;
    for cut in [
        0,
        5,
        h.encoded_len() - 1,
        h.encoded_len(),
        big_chunk_off(&h, 1),
        big_chunk_off(&h, 1) - 1,
        big_chunk_off(&h, 16),
        big_chunk_off(&h, n - 1),
        big_chunk_off(&h, n - 1) + 1,
        sealed.len() - TAG_LEN,
        sealed.len() - 1,
    ] {
        assert_eq!(
            unseal(&sealed[..cut], &key()).unwrap_err(),
            SealError::Truncated,
            "cut at {cut}"
        );
    }
    // Truncated and tampered: the truncation is reported.
    let mut bad = sealed[..sealed.len() - 1].to_vec();
    bad[big_chunk_off(&h, 0)] ^= 1;
    assert_eq!(unseal(&bad, &key()).unwrap_err(), SealError::Truncated);
    let mut longer = sealed.clone();
    longer.extend_from_slice(&[0; 3]);
    assert_eq!(
        unseal(&longer, &key()).unwrap_err(),
        SealError::TrailingData
    );
}

#[test]
fn reader_that_disagrees_with_its_declared_length() {
    let (pt, sealed, h) = sealed_big(2);
    let len = sealed.len() as u64;
    let n = h.chunk_count() as usize;
    for threads in [1, 2] {
        let run = |bytes: &[u8], declared: u64| {
            unseal_from_reader_with_threads(bytes, declared, &key(), threads).map(|_| ())
        };
        // Declared length wrong: refused from the header alone.
        assert_eq!(run(&sealed, len - 1), Err(SealError::Truncated));
        assert_eq!(run(&sealed, len + 1), Err(SealError::TrailingData));
        // The input changed while being read: shorter at a chunk boundary, mid-chunk, at a
        // segment boundary; or longer.
        for cut in [
            big_chunk_off(&h, n - 1),
            big_chunk_off(&h, 16),
            big_chunk_off(&h, 3) + 9,
        ] {
            assert_eq!(
                run(&sealed[..cut], len),
                Err(SealError::Truncated),
                "cut {cut}"
            );
        }
        let mut longer = sealed.clone();
        longer.push(7);
        assert_eq!(run(&longer, len), Err(SealError::TrailingData));
        // An I/O error mid-body is reported as such, not as an authentication failure.
        let failing = (&sealed[..big_chunk_off(&h, 20)]).chain(Failing);
        assert_eq!(
            unseal_from_reader_with_threads(failing, len, &key(), threads).unwrap_err(),
            SealError::Io(std::io::ErrorKind::BrokenPipe)
        );
        let m = unseal_from_reader_with_threads(&sealed[..], len, &key(), threads).unwrap();
        assert_eq!(m.plaintext(), &pt[..]);
    }
}

struct Failing;

impl Read for Failing {
    fn read(&mut self, _: &mut [u8]) -> std::io::Result<usize> {
        Err(std::io::ErrorKind::BrokenPipe.into())
    }
}

#[test]
fn version_1_is_refused() {
    let (mut sealed, _) = sealed_multi();
    sealed[8..10].copy_from_slice(&1u16.to_be_bytes());
    assert_eq!(
        unseal(&sealed, &key()).unwrap_err(),
        SealError::UnsupportedVersion(1)
    );
}

#[test]
fn smallest_bundle() {
    // 12 bytes (magic and a zero file count): one short chunk. Zero bytes: see the unit tests.
    let pt = encode_bundle(&[]).unwrap();
    let sealed = seal_with_chunk_size(&pt, &key(), "k", CHUNK, &mut rand::thread_rng()).unwrap();
    let m = unseal(&sealed, &key()).unwrap();
    assert_eq!(m.plaintext(), &pt[..]);
    assert_eq!(m.digest().as_bytes(), blake3::hash(&pt).as_bytes());
}

//! Audit log: Merkle proofs against a naive reference, log verification against a table of
//! tamperings, checkpoints.
#![allow(clippy::unwrap_used, reason = "test helpers outside #[test] functions")]

use confidant_attestation::audit::{
    AuditEntry, AuditEvent, AuditVerifyError, Checkpoint, CheckpointError, CheckpointSigner,
    Decision, EntryError, Hash, LogState, MerkleTree, ProofError, Tee, encode_record, export_jsonl,
    leaf_hash, node_hash, parse_log, verify_checkpoint, verify_consistency, verify_inclusion,
    verify_log,
};
use ring::rand::SystemRandom;

// ---------- Merkle ----------

fn naive_root(leaves: &[Hash]) -> Hash {
    match leaves.len() {
        0 => ring_sha256(b""),
        1 => leaves[0],
        n => {
            let mut k = 1;
            while k * 2 < n {
                k *= 2;
            }
            node_hash(&naive_root(&leaves[..k]), &naive_root(&leaves[k..]))
        }
    }
}

fn ring_sha256(b: &[u8]) -> Hash {
    ring::digest::digest(&ring::digest::SHA256, b)
        .as_ref()
        .try_into()
        .unwrap()
}

fn tree(n: u64) -> (MerkleTree, Vec<Hash>) {
    let leaves: Vec<Hash> = (0..n).map(|i| leaf_hash(&i.to_be_bytes())).collect();
    let mut t = MerkleTree::new();
    for l in &leaves {
        t.push(*l);
    }
    (t, leaves)
}

#[test]
fn known_answer_rfc6962_vectors() {
    // The eight leaves used by the RFC 6962 reference test suites.
    let data: [&[u8]; 8] = [
        b"",
        b"\x00",
        b"\x10",
        b"\x20\x21",
        b"\x30\x31",
        b"\x40\x41\x42\x43",
        b"\x50\x51\x52\x53\x54\x55\x56\x57",
        b"\x60\x61\x62\x63\x64\x65\x66\x67\x68\x69\x6a\x6b\x6c\x6d\x6e\x6f",
    ];
    let mut t = MerkleTree::new();
    for d in data {
        t.push(leaf_hash(d));
    }
    assert_eq!(
        hex::encode(t.root(1).unwrap()),
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"
    );
    assert_eq!(
        hex::encode(t.root(8).unwrap()),
        "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"
    );
    assert_eq!(
        hex::encode(t.root(0).unwrap()),
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    );
}

#[test]
fn roots_match_naive_for_every_size() {
    let (t, leaves) = tree(70);
    for size in 0..=70 {
        assert_eq!(t.root(size).unwrap(), naive_root(&leaves[..size as usize]));
    }
    assert_eq!(t.root(71), Err(ProofError::SizeOutOfRange));
}

#[test]
fn inclusion_proofs_all_sizes() {
    let (t, leaves) = tree(70);
    for size in 1..=70u64 {
        let root = t.root(size).unwrap();
        for index in 0..size {
            let proof = t.inclusion_proof(index, size).unwrap();
            let leaf = &leaves[index as usize];
            assert_eq!(verify_inclusion(leaf, index, size, &proof, &root), Ok(()));
            // Wrong leaf, index, size or root.
            let other = leaf_hash(b"other");
            assert!(verify_inclusion(&other, index, size, &proof, &root).is_err());
            if size > 1 {
                let wrong = (index + 1) % size;
                assert!(verify_inclusion(leaf, wrong, size, &proof, &root).is_err());
            }
            if size < 70 {
                let bigger = t.root(size + 1).unwrap();
                assert!(verify_inclusion(leaf, index, size + 1, &proof, &bigger).is_err());
            }
            assert_eq!(
                verify_inclusion(leaf, index, size, &proof, &other),
                Err(ProofError::RootMismatch)
            );
            // Each proof hash flipped; one hash dropped; one extra.
            for i in 0..proof.len() {
                let mut bad = proof.clone();
                bad[i][0] ^= 1;
                assert_eq!(
                    verify_inclusion(leaf, index, size, &bad, &root),
                    Err(ProofError::RootMismatch)
                );
            }
            if !proof.is_empty() {
                assert!(verify_inclusion(leaf, index, size, &proof[1..], &root).is_err());
            }
            let mut longer = proof.clone();
            longer.push(other);
            assert!(verify_inclusion(leaf, index, size, &longer, &root).is_err());
        }
    }
    assert_eq!(t.inclusion_proof(5, 5), Err(ProofError::IndexOutOfRange));
    assert_eq!(
        verify_inclusion(&leaves[0], 0, 0, &[], &leaves[0]),
        Err(ProofError::IndexOutOfRange)
    );
}

#[test]
fn consistency_proofs_all_pairs() {
    let (t, _) = tree(70);
    for new in 0..=70u64 {
        let new_root = t.root(new).unwrap();
        for old in 0..=new {
            let old_root = t.root(old).unwrap();
            let proof = t.consistency_proof(old, new).unwrap();
            assert_eq!(
                verify_consistency(old, new, &old_root, &new_root, &proof),
                Ok(()),
                "{old} -> {new}"
            );
            if old == 0 || old == new {
                continue;
            }
            let bogus = leaf_hash(b"x");
            assert!(verify_consistency(old, new, &bogus, &new_root, &proof).is_err());
            assert!(verify_consistency(old, new, &old_root, &bogus, &proof).is_err());
            for i in 0..proof.len() {
                let mut bad = proof.clone();
                bad[i][31] ^= 0x80;
                assert!(
                    verify_consistency(old, new, &old_root, &new_root, &bad).is_err(),
                    "{old} -> {new} flip {i}"
                );
            }
            assert!(verify_consistency(old, new, &old_root, &new_root, &proof[1..]).is_err());
            assert!(verify_consistency(old, new, &old_root, &new_root, &[]).is_err());
            let mut longer = proof.clone();
            longer.push(bogus);
            assert!(verify_consistency(old, new, &old_root, &new_root, &longer).is_err());
            // The proof for (old, new) does not prove (old, new+1) or (old-1, new).
            if new < 70 {
                let r = t.root(new + 1).unwrap();
                assert!(verify_consistency(old, new + 1, &old_root, &r, &proof).is_err());
            }
            if old > 1 {
                let r = t.root(old - 1).unwrap();
                assert!(verify_consistency(old - 1, new, &r, &new_root, &proof).is_err());
            }
        }
    }
    assert_eq!(t.consistency_proof(5, 4), Err(ProofError::SizeOutOfRange));
    assert_eq!(
        verify_consistency(5, 4, &[0; 32], &[0; 32], &[]),
        Err(ProofError::SizeOutOfRange)
    );
}

#[test]
fn large_tree_proofs() {
    let (t, leaves) = tree(1000);
    for (old, new) in [(1, 1000), (511, 512), (512, 513), (999, 1000), (300, 777)] {
        let p = t.consistency_proof(old, new).unwrap();
        verify_consistency(old, new, &t.root(old).unwrap(), &t.root(new).unwrap(), &p).unwrap();
    }
    let p = t.inclusion_proof(777, 1000).unwrap();
    verify_inclusion(&leaves[777], 777, 1000, &p, &t.root(1000).unwrap()).unwrap();
}

// ---------- log ----------

fn event(i: u64) -> AuditEvent {
    let refuse = i % 3 == 2;
    AuditEvent {
        time: 1_700_000_000 + i,
        decision: if refuse {
            Decision::Refuse
        } else {
            Decision::Accept
        },
        reason: refuse.then(|| "measurement_not_allowed".to_owned()),
        nonce: [i as u8; 32],
        evidence_digest: [0xee; 32],
        tee: Some(Tee::SevSnp),
        measurement: Some(vec![0xab; 48]),
        tcb: Some(0x7300_0000_0000_0004),
        policy_id: Some("prod".into()),
        policy_version: Some(3),
        model_id: Some("llama-3.2-1b".into()),
        result_digest: (!refuse).then_some([0xcc; 32]),
        key_id: (!refuse).then(|| "mk-1".to_owned()),
        dev: false,
    }
}

/// A log of `n` entries, with the byte ranges of each record (newline included).
fn build_log(n: u64) -> (Vec<u8>, Vec<std::ops::Range<usize>>, LogState) {
    let mut state = LogState::new();
    let mut log = Vec::new();
    let mut spans = Vec::new();
    for i in 0..n {
        let entry = event(i).into_entry(state.len(), state.head());
        let rec = encode_record(&entry).unwrap();
        state.push_record(&rec[..rec.len() - 1]).unwrap();
        spans.push(log.len()..log.len() + rec.len());
        log.extend_from_slice(&rec);
    }
    (log, spans, state)
}

struct Keys {
    signer: CheckpointSigner,
    rng: SystemRandom,
}

fn keys() -> Keys {
    let rng = SystemRandom::new();
    let pkcs8 = CheckpointSigner::generate_pkcs8(&rng).unwrap();
    Keys {
        signer: CheckpointSigner::from_pkcs8(&pkcs8, &rng).unwrap(),
        rng,
    }
}

fn checkpoint(k: &Keys, state: &LogState, size: u64) -> Vec<u8> {
    let cp = Checkpoint {
        size,
        root: state.tree().root(size).unwrap(),
        time: 1_700_000_100,
    };
    k.signer.sign(&cp, &k.rng).unwrap()
}

fn verify(k: &Keys, log: &[u8], cps: &[Vec<u8>]) -> Result<u64, AuditVerifyError> {
    let refs: Vec<&[u8]> = cps.iter().map(Vec::as_slice).collect();
    verify_log(log, &refs, k.signer.public_key()).map(|s| s.entries)
}

#[test]
fn valid_log_verifies() {
    let k = keys();
    let (log, _, state) = build_log(10);
    let cps = [
        checkpoint(&k, &state, 10),
        checkpoint(&k, &state, 0),
        checkpoint(&k, &state, 5),
    ];
    let refs: Vec<&[u8]> = cps.iter().map(Vec::as_slice).collect();
    let s = verify_log(&log, &refs, k.signer.public_key()).unwrap();
    assert_eq!(s.entries, 10);
    assert_eq!(s.checkpoints_verified, 3);
    assert_eq!((s.accepted, s.refused), (7, 3));
    assert_eq!(s.root, state.tree().root(10).unwrap());
    assert_eq!(s.head, state.head());
    assert_eq!(verify(&k, b"", &[checkpoint(&k, &state, 0)]), Ok(0));
    assert_eq!(parse_log(&log).unwrap().len(), 10);
}

#[test]
fn record_is_canonical_json_line() {
    let entry = event(2).into_entry(0, [0; 32]);
    let rec = encode_record(&entry).unwrap();
    let text = std::str::from_utf8(&rec).unwrap();
    assert!(text.starts_with(r#"{"seq":0,"time":1700000002,"prev_hash":"0000"#));
    assert!(text.ends_with("}\n"));
    assert!(!text.contains(": "));
    let back = AuditEntry::from_canonical(&rec[..rec.len() - 1]).unwrap();
    assert_eq!(back, entry);
    // Same content, different bytes: refused.
    let spaced = text.trim_end().replacen(",", ", ", 1);
    assert_eq!(
        AuditEntry::from_canonical(spaced.as_bytes()),
        Err(EntryError::NotCanonical)
    );
    let upper = text.trim_end().replace("eeee", "EEEE");
    assert_eq!(
        AuditEntry::from_canonical(upper.as_bytes()),
        Err(EntryError::NotCanonical)
    );
    let extra = text.trim_end().replacen("{", r#"{"prompt":"hi","#, 1);
    assert_eq!(
        AuditEntry::from_canonical(extra.as_bytes()),
        Err(EntryError::Json)
    );
    // A refusal without a reason is not a valid entry.
    let mut e = event(2).into_entry(0, [0; 32]);
    e.reason = None;
    assert_eq!(e.to_canonical(), Err(EntryError::MissingReason));
}

#[test]
fn changed_entry_breaks_chain_at_next() {
    let k = keys();
    let (log, spans, state) = build_log(10);
    let cps = vec![checkpoint(&k, &state, 10)];
    // Change one hex digit of entry 3's evidence digest: still a valid entry.
    let mut bad = log.clone();
    let rec = &log[spans[3].clone()];
    let pos = spans[3].start + find(rec, b"\"evidence_digest\":\"") + 19;
    bad[pos] = b'd';
    assert_eq!(
        verify(&k, &bad, &cps),
        Err(AuditVerifyError::ChainBreak { seq: 4 })
    );
    // The last entry has no successor: the checkpoint root catches it.
    let mut bad = log.clone();
    let pos = spans[9].start + find(&log[spans[9].clone()], b"\"evidence_digest\":\"") + 19;
    bad[pos] = b'd';
    assert_eq!(
        verify(&k, &bad, &cps),
        Err(AuditVerifyError::RootMismatch { size: 10 })
    );
}

#[test]
fn any_flipped_byte_is_caught_at_or_right_after_its_entry() {
    let k = keys();
    let (log, spans, state) = build_log(6);
    let cps = vec![checkpoint(&k, &state, 6)];
    for (i, span) in spans.iter().enumerate() {
        let i = i as u64;
        for pos in span.clone() {
            let mut bad = log.clone();
            bad[pos] ^= 0x01;
            let err = verify(&k, &bad, &cps).unwrap_err();
            let ok = match err {
                AuditVerifyError::Malformed { position, .. } => position == i,
                AuditVerifyError::ChainBreak { seq } => seq == i + 1 || seq == i,
                AuditVerifyError::SeqGap { missing } => missing == i,
                AuditVerifyError::OutOfOrder { at, .. } => at == i,
                AuditVerifyError::RootMismatch { size } => size == 6 && i == 5,
                // The newline itself: the record merges with the next or becomes torn.
                AuditVerifyError::TornTail { .. } => pos == span.end - 1,
                _ => false,
            };
            assert!(ok, "entry {i} byte {pos}: {err:?}");
        }
    }
}

#[test]
fn removed_entry_is_a_gap() {
    let k = keys();
    let (log, spans, state) = build_log(10);
    let mut bad = log[..spans[4].start].to_vec();
    bad.extend_from_slice(&log[spans[4].end..]);
    assert_eq!(
        verify(&k, &bad, &[checkpoint(&k, &state, 3)]),
        Err(AuditVerifyError::SeqGap { missing: 4 })
    );
    // Removing the tail: only a checkpoint shows it.
    let cut = &log[..spans[9].start];
    assert_eq!(
        verify(&k, cut, &[checkpoint(&k, &state, 10)]),
        Err(AuditVerifyError::CheckpointBeyondLog {
            size: 10,
            log_len: 9
        })
    );
}

#[test]
fn reordered_entries() {
    let k = keys();
    let (log, spans, _) = build_log(10);
    let mut bad = log[..spans[4].start].to_vec();
    bad.extend_from_slice(&log[spans[5].clone()]);
    bad.extend_from_slice(&log[spans[4].clone()]);
    bad.extend_from_slice(&log[spans[6].start..]);
    assert_eq!(
        verify(&k, &bad, &[]),
        Err(AuditVerifyError::OutOfOrder { at: 4, found: 5 })
    );
    // A replayed earlier entry.
    let mut bad = log.clone();
    bad.extend_from_slice(&log[spans[2].clone()]);
    assert_eq!(
        verify(&k, &bad, &[]),
        Err(AuditVerifyError::OutOfOrder { at: 10, found: 2 })
    );
}

#[test]
fn torn_tail() {
    let k = keys();
    let (log, spans, state) = build_log(10);
    for cut in [spans[9].start + 1, spans[9].end - 1] {
        assert_eq!(
            verify(&k, &log[..cut], &[checkpoint(&k, &state, 9)]),
            Err(AuditVerifyError::TornTail {
                at_offset: spans[9].start as u64
            })
        );
    }
    assert!(matches!(
        parse_log(&log[..spans[9].end - 1]),
        Err(AuditVerifyError::TornTail { .. })
    ));
}

#[test]
fn rewritten_chain_is_caught_by_checkpoint() {
    // An attacker edits entry 3 and recomputes every later prev_hash: the chain is whole again,
    // but the signed root at size 5 is not.
    let k = keys();
    let (_, _, state) = build_log(10);
    let mut forged = LogState::new();
    let mut log = Vec::new();
    for i in 0..10 {
        let mut ev = event(i);
        if i == 3 {
            ev.time += 1;
        }
        let entry = ev.into_entry(forged.len(), forged.head());
        let rec = encode_record(&entry).unwrap();
        forged.push_record(&rec[..rec.len() - 1]).unwrap();
        log.extend_from_slice(&rec);
    }
    assert_eq!(verify(&k, &log, &[]), Ok(10));
    assert_eq!(
        verify(&k, &log, &[checkpoint(&k, &state, 5)]),
        Err(AuditVerifyError::RootMismatch { size: 5 })
    );
}

#[test]
fn forged_checkpoints() {
    let k = keys();
    let (log, _, state) = build_log(10);
    let good = checkpoint(&k, &state, 10);
    assert_eq!(
        verify_checkpoint(&good, k.signer.public_key())
            .unwrap()
            .size,
        10
    );
    // Change the size in the text: the signature no longer matches.
    let text = String::from_utf8(good.clone()).unwrap();
    let forged = text.replacen("\n10\n", "\n11\n", 1).into_bytes();
    assert_eq!(
        verify(&k, &log, &[forged]),
        Err(AuditVerifyError::CheckpointInvalid {
            index: 0,
            error: CheckpointError::BadSignature
        })
    );
    // Signed by another key.
    let other = keys();
    assert_eq!(
        verify(&k, &log, &[good.clone(), checkpoint(&other, &state, 10)]),
        Err(AuditVerifyError::CheckpointInvalid {
            index: 1,
            error: CheckpointError::BadSignature
        })
    );
    // Properly signed but for a size the log does not have.
    let beyond = k
        .signer
        .sign(
            &Checkpoint {
                size: 11,
                root: [0; 32],
                time: 0,
            },
            &k.rng,
        )
        .unwrap();
    assert_eq!(
        verify(&k, &log, &[beyond]),
        Err(AuditVerifyError::CheckpointBeyondLog {
            size: 11,
            log_len: 10
        })
    );
    // Properly signed with the wrong root.
    let wrong_root = k
        .signer
        .sign(
            &Checkpoint {
                size: 4,
                root: [1; 32],
                time: 0,
            },
            &k.rng,
        )
        .unwrap();
    assert_eq!(
        verify(&k, &log, &[wrong_root]),
        Err(AuditVerifyError::RootMismatch { size: 4 })
    );
    // Malformed encodings.
    for bad in [
        text.replacen("sig ", "sig  ", 1),
        text.replacen("\n10\n", "\n010\n", 1),
        format!("{text}x"),
        text.to_uppercase(),
        text[..text.len() - 1].to_owned(),
    ] {
        assert_eq!(
            verify_checkpoint(bad.as_bytes(), k.signer.public_key()),
            Err(CheckpointError::Malformed),
            "{bad:?}"
        );
    }
}

#[test]
fn export_for_siem() {
    let (log, _, state) = build_log(4);
    let entries = parse_log(&log).unwrap();
    let out = export_jsonl(&entries).unwrap();
    let lines: Vec<serde_json::Value> = out
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_slice(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 4);
    assert_eq!(lines[3]["seq"], 3);
    assert_eq!(lines[2]["decision"], "refuse");
    assert_eq!(
        lines[3]["leaf_hash"],
        hex::encode(state.tree().leaf(3).unwrap())
    );
}

fn find(hay: &[u8], needle: &[u8]) -> usize {
    hay.windows(needle.len()).position(|w| w == needle).unwrap()
}

//! Figure 2: evidence verification per second vs one bare ECDSA verification (the floor).
//!
//! SEV-SNP: the five real reports of the shared test data through `snp::verify_report`, with the
//! chain supplied in the evidence and with the pinned AMD chain (no chain in the evidence). The
//! library keeps no chain cache, so both are uncached: every call parses and checks ARK → ASK/ASVK
//! → VCEK/VLEK again. The floor is one `ring` ECDSA P-384/SHA-384 verification of the same report
//! signature with the same VCEK key.
//!
//! TPM: a quote signed by a software ECDSA P-256 key (the shape a TPM's AK produces) through
//! `tpm::verify_quote`, vs one bare `ring` ECDSA P-256/SHA-256 verification of the same bytes.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Context, anyhow};
use confidant_attestation::evidence::{SnpEvidence, TpmEvidence};
use confidant_attestation::snp::{self, SnpTrustRoots, report::layout};
use confidant_attestation::time::UnixTime;
use confidant_attestation::tpm::constants::{
    TPM_ALG_ECDSA, TPM_ALG_SHA256, TPM_GENERATED_VALUE, TPM_ST_ATTEST_QUOTE,
};
use confidant_attestation::tpm::public::{KeyScheme, PublicKey};
use confidant_attestation::tpm::{TpmTrustAnchors, TpmtPublic, verify_quote};
use confidant_testkit::read_testdata;
use ring::rand::SystemRandom;
use ring::signature::{
    ECDSA_P256_SHA256_FIXED, ECDSA_P256_SHA256_FIXED_SIGNING, ECDSA_P384_SHA384_FIXED,
    EcdsaKeyPair, KeyPair, UnparsedPublicKey,
};
use serde_bytes::ByteBuf;

use crate::Opts;
use crate::report::{Report, paired_rates};

const REPORTS: [&str; 5] = [
    "virtee-milan",
    "trustee-milan",
    "trustee-vlek",
    "azure-milan",
    "azure-genoa",
];

/// Alternating rounds and the length of each.
fn rounds(opts: &Opts) -> (usize, Duration) {
    if opts.quick {
        (3, Duration::from_millis(150))
    } else {
        (9, Duration::from_millis(400))
    }
}

pub fn run(opts: &Opts, report: &mut Report) -> anyhow::Result<()> {
    snp_figures(opts, report)?;
    tpm_figures(opts, report)
}

fn pem_certs(rel: &str) -> anyhow::Result<Vec<Vec<u8>>> {
    Ok(pem::parse_many(read_testdata(rel))?
        .into_iter()
        .map(|p| p.into_contents())
        .collect())
}

/// `[ASK or ASVK, ARK]` of a product from the shared AMD certificate files.
fn amd_chain(product: &str, vlek: bool) -> anyhow::Result<Vec<ByteBuf>> {
    let certs = pem_certs(&format!("amd/{product}_ask_ark_asvk.pem"))?;
    let inter = certs
        .get(if vlek { 2 } else { 0 })
        .context("intermediate")?;
    let ark = certs.get(1).context("ark")?;
    Ok(vec![
        ByteBuf::from(inter.clone()),
        ByteBuf::from(ark.clone()),
    ])
}

/// The real evidence of one named report with the chain its provenance names.
fn real(name: &str) -> anyhow::Result<SnpEvidence> {
    let report = read_testdata(&format!("snp/{name}/report.bin"));
    let bufs = |v: &[Vec<u8>]| v.iter().cloned().map(ByteBuf::from).collect::<Vec<_>>();
    let (signer_cert, chain) = match name {
        "virtee-milan" => (
            read_testdata("snp/virtee-milan/vcek.der"),
            bufs(&pem_certs("snp/virtee-milan/cert_chain.pem")?),
        ),
        "trustee-milan" => (
            read_testdata("snp/trustee-milan/vcek.der"),
            amd_chain("milan", false)?,
        ),
        "trustee-vlek" => (
            read_testdata("snp/trustee-vlek/vlek.der"),
            amd_chain("milan", true)?,
        ),
        "azure-milan" => {
            let all = pem_certs("snp/azure-milan/vcek-and-chain.pem")?;
            let (first, rest) = all.split_first().context("empty pem")?;
            (first.clone(), bufs(rest))
        }
        "azure-genoa" => (
            pem_certs("snp/azure-genoa/vcek.pem")?
                .into_iter()
                .next()
                .context("empty pem")?,
            amd_chain("genoa", false)?,
        ),
        other => return Err(anyhow!("no such report {other}")),
    };
    Ok(SnpEvidence {
        report,
        signer_cert,
        chain: Some(chain),
    })
}

/// The report's signature as big-endian `r ‖ s` (the report stores little-endian, zero-padded).
fn fixed_sig(report: &[u8]) -> anyhow::Result<Vec<u8>> {
    let be = |start: usize| -> anyhow::Result<Vec<u8>> {
        let le = report.get(start..start + 48).context("short report")?;
        Ok(le.iter().rev().copied().collect())
    };
    let mut sig = be(layout::SIG_R.start)?;
    sig.extend(be(layout::SIG_S.start)?);
    Ok(sig)
}

/// A time at which the real reports' certificate chains are all valid (2025-06-01T00:00:00Z, as
/// in the attestation tests): verification is timed at a fixed time, not the machine's clock,
/// whose certificates may have expired since.
const REPORTS_AT: UnixTime = UnixTime::from_secs(1_748_736_000);

fn snp_figures(opts: &Opts, report: &mut Report) -> anyhow::Result<()> {
    let roots = SnpTrustRoots::amd();
    let evidence: Vec<SnpEvidence> = REPORTS.iter().map(|n| real(n)).collect::<Result<_, _>>()?;
    for ev in &evidence {
        snp::verify_report(ev, &roots, REPORTS_AT).map_err(|e| anyhow!("{e:?}"))?;
    }
    let pinned: Vec<SnpEvidence> = evidence
        .iter()
        .cloned()
        .map(|mut e| {
            e.chain = None;
            e
        })
        .collect();
    // The floor: one bare P-384 verification per report, same key, same bytes.
    let bare: Vec<(Vec<u8>, Vec<u8>, Vec<u8>)> = evidence
        .iter()
        .map(|e| -> anyhow::Result<_> {
            Ok((
                snp::signer_public_key(&e.signer_cert).map_err(|e| anyhow!("{e:?}"))?,
                e.report[layout::SIGNED].to_vec(),
                fixed_sig(&e.report)?,
            ))
        })
        .collect::<Result<_, _>>()?;
    let (r, b) = rounds(opts);
    let n = evidence.len();
    let mut i = 0usize;
    let mut j = 0usize;
    let mut k = 0usize;
    let mut bare_verify = || {
        let (key, msg, sig) = &bare[i % n];
        i += 1;
        UnparsedPublicKey::new(&ECDSA_P384_SHA384_FIXED, key)
            .verify(msg, sig)
            .map_err(|_| anyhow!("bare P-384 verify failed"))
    };
    let (with_chain, floor) = paired_rates(
        r,
        b,
        || {
            j += 1;
            snp::verify_report(&evidence[j % n], &roots, REPORTS_AT)
                .map(drop)
                .map_err(|e| anyhow!("{e:?}"))
        },
        &mut bare_verify,
    )?;
    let (pinned_rate, floor2) = paired_rates(
        r,
        b,
        || {
            k += 1;
            snp::verify_report(&pinned[k % n], &roots, REPORTS_AT)
                .map(drop)
                .map_err(|e| anyhow!("{e:?}"))
        },
        &mut bare_verify,
    )?;
    report.add(
        "snp_verify_chain_supplied_uncached",
        with_chain,
        "verif/s",
        floor,
    );
    report.add(
        "snp_verify_chain_pinned_uncached",
        pinned_rate,
        "verif/s",
        floor2,
    );
    Ok(())
}

fn tpm2b(out: &mut Vec<u8>, v: &[u8]) {
    out.extend_from_slice(&(v.len() as u16).to_be_bytes());
    out.extend_from_slice(v);
}

/// A marshalled `TPMS_ATTEST` quote over PCRs 0, 7 and 16 (SHA-256 bank) with 32 bytes of
/// qualifying data (TPM 2.0 Part 2, 10.12.12).
fn quote_bytes(pcrs: &BTreeMap<u8, [u8; 32]>) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&TPM_GENERATED_VALUE.to_be_bytes());
    out.extend_from_slice(&TPM_ST_ATTEST_QUOTE.to_be_bytes());
    let name = [&TPM_ALG_SHA256.to_be_bytes()[..], &[0x5a; 32]].concat();
    tpm2b(&mut out, &name);
    tpm2b(&mut out, &[0x42; 32]);
    out.extend_from_slice(&1000u64.to_be_bytes()); // clock
    out.extend_from_slice(&1u32.to_be_bytes()); // resetCount
    out.extend_from_slice(&0u32.to_be_bytes()); // restartCount
    out.push(1); // safe
    out.extend_from_slice(&1u64.to_be_bytes()); // firmwareVersion
    out.extend_from_slice(&1u32.to_be_bytes()); // one PCR selection
    out.extend_from_slice(&TPM_ALG_SHA256.to_be_bytes());
    let mut bitmap = [0u8; 3];
    for i in pcrs.keys() {
        bitmap[usize::from(*i / 8)] |= 1 << (i % 8);
    }
    out.push(3);
    out.extend_from_slice(&bitmap);
    let concat: Vec<u8> = pcrs.values().flatten().copied().collect();
    tpm2b(
        &mut out,
        ring::digest::digest(&ring::digest::SHA256, &concat).as_ref(),
    );
    out
}

fn tpm_figures(opts: &Opts, report: &mut Report) -> anyhow::Result<()> {
    let rng = SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
        .map_err(|_| anyhow!("keygen"))?;
    let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
        .map_err(|_| anyhow!("key"))?;
    let point = key.public_key().as_ref().to_vec();
    let mut x = [0u8; 32];
    let mut y = [0u8; 32];
    x.copy_from_slice(point.get(1..33).context("point")?);
    y.copy_from_slice(point.get(33..65).context("point")?);
    let ak = TpmtPublic {
        name_alg: TPM_ALG_SHA256,
        // fixedTPM, fixedParent, sensitiveDataOrigin, userWithAuth, restricted, sign.
        object_attributes: 0x0005_0072,
        auth_policy: vec![],
        scheme: Some(KeyScheme {
            scheme: TPM_ALG_ECDSA,
            hash: Some(TPM_ALG_SHA256),
        }),
        key: PublicKey::EccP256 { x, y },
    };
    let pcrs: BTreeMap<u8, [u8; 32]> = [(0u8, [0x11; 32]), (7, [0x77; 32]), (16, [0xaa; 32])]
        .into_iter()
        .collect();
    let quote = quote_bytes(&pcrs);
    let sig = key.sign(&rng, &quote).map_err(|_| anyhow!("sign"))?;
    let mut signature = Vec::new();
    signature.extend_from_slice(&TPM_ALG_ECDSA.to_be_bytes());
    signature.extend_from_slice(&TPM_ALG_SHA256.to_be_bytes());
    tpm2b(&mut signature, &sig.as_ref()[..32]);
    tpm2b(&mut signature, &sig.as_ref()[32..]);
    let ev = TpmEvidence {
        quote: quote.clone(),
        signature,
        ak_public: ak.marshal(),
        pcrs: pcrs
            .iter()
            .map(|(i, v)| (*i, ByteBuf::from(v.to_vec())))
            .collect(),
        event_log: None,
    };
    let mut anchors = TpmTrustAnchors::default();
    anchors.enroll_ak_spki_der(&ak.spki_der());
    verify_quote(&ev, &anchors).map_err(|e| anyhow!("{e:?}"))?;

    let (r, b) = rounds(opts);
    let (full, floor) = paired_rates(
        r,
        b,
        || {
            verify_quote(&ev, &anchors)
                .map(drop)
                .map_err(|e| anyhow!("{e:?}"))
        },
        || {
            UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, &point)
                .verify(&quote, sig.as_ref())
                .map_err(|_| anyhow!("bare P-256 verify failed"))
        },
    )?;
    report.add("tpm_quote_verify", full, "verif/s", floor);
    Ok(())
}

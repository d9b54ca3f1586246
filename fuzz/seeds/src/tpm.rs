//! TPM seeds: a swtpm manufactured with EK certificates (quotes with ECC and RSA attestation
//! keys, its EK certificate and CA), the real Azure vTPM quote of the test data, and the real OVMF
//! boot event log in `attestation/tests/data/ovmf-boot`.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use confidant_attestation::evidence::TpmEvidence;
use confidant_attestation::tpm::TpmtPublic;
use confidant_attestation::tpm::tools::write_pcrs_file;
use confidant_attester::tpm::{AkAlgorithm, TpmAttester};
use confidant_fuzz::frame::join;
use confidant_testkit::read_testdata;
use confidant_testkit::swtpm::Swtpm;

use crate::{Seed, SeedError, ctx};

/// PCRs the quotes select.
const PCRS: &[u8] = &[0, 1, 7];

/// What one swtpm gave.
#[derive(Debug, Clone)]
pub(crate) struct TpmSample {
    /// A quote per AK algorithm (ECC P-256, RSA 2048).
    pub quotes: Vec<(&'static str, TpmEvidence)>,
    pub ek_cert: Vec<u8>,
    pub ek_public: Vec<u8>,
    pub ek_ca: Vec<Vec<u8>>,
}

/// Starts a swtpm once per process and keeps what it gave.
pub(crate) fn sample() -> Result<&'static TpmSample, SeedError> {
    static SAMPLE: OnceLock<Result<TpmSample, String>> = OnceLock::new();
    SAMPLE
        .get_or_init(|| make_sample().map_err(|e| e.0))
        .as_ref()
        .map_err(|e| SeedError(e.clone()))
}

fn make_sample() -> Result<TpmSample, SeedError> {
    let swtpm = Swtpm::start_with_ek_ca().map_err(ctx("starting swtpm"))?;
    let ek_ca = swtpm
        .ek_ca()
        .ok_or_else(|| SeedError("swtpm has no EK CA".into()))?
        .certs_der();
    let mut quotes = Vec::new();
    let mut ek = None;
    for (name, alg) in [("ecc", AkAlgorithm::EccP256), ("rsa", AkAlgorithm::Rsa2048)] {
        let mut tpm = TpmAttester::create(&swtpm.tcti(), alg).map_err(ctx("creating an AK"))?;
        let quote = tpm.quote(&[0x42; 32], PCRS).map_err(ctx("quoting"))?;
        quotes.push((name, quote));
        if ek.is_none() {
            ek = Some(
                tpm.ek_certificate()
                    .map_err(ctx("reading the EK certificate"))?,
            );
        }
    }
    let ek = ek.ok_or_else(|| SeedError("no EK certificate".into()))?;
    Ok(TpmSample {
        quotes,
        ek_cert: ek.certificate,
        ek_public: ek.public,
        ek_ca,
    })
}

fn azure() -> (Vec<u8>, Vec<u8>) {
    (
        read_testdata("tpm/azure-vtpm/quote.msg"),
        read_testdata("tpm/azure-vtpm/quote.sig"),
    )
}

/// PCR values as the `tpm_quote` target frames them: index byte + 32 bytes.
fn pcr_frame(ev: &TpmEvidence) -> Vec<u8> {
    ev.pcrs
        .iter()
        .flat_map(|(i, v)| std::iter::once(*i).chain(v.iter().copied()))
        .collect()
}

fn pcr_map(ev: &TpmEvidence) -> BTreeMap<u8, [u8; 32]> {
    ev.pcrs
        .iter()
        .filter_map(|(i, v)| Some((*i, <[u8; 32]>::try_from(v.as_slice()).ok()?)))
        .collect()
}

/// Quotes, signatures and public areas, each alone.
pub fn structures() -> Result<Vec<Seed>, SeedError> {
    let s = sample()?;
    let (msg, sig) = azure();
    let mut out = vec![
        ("azure-quote".to_owned(), msg),
        ("azure-signature".to_owned(), sig),
        ("ek-public".to_owned(), s.ek_public.clone()),
    ];
    for (alg, q) in &s.quotes {
        out.push((format!("{alg}-quote"), q.quote.clone()));
        out.push((format!("{alg}-signature"), q.signature.clone()));
        out.push((format!("{alg}-ak-public"), q.ak_public.clone()));
        // The same public area as a TPM2B_PUBLIC (with its 16-bit size).
        let mut tpm2b = (q.ak_public.len() as u16).to_be_bytes().to_vec();
        tpm2b.extend_from_slice(&q.ak_public);
        out.push((format!("{alg}-ak-tpm2b-public"), tpm2b));
    }
    Ok(out)
}

/// Whole quotes (with and without the boot event log appended).
pub fn quotes() -> Result<Vec<Seed>, SeedError> {
    let s = sample()?;
    let log = boot_log();
    let mut out = Vec::new();
    for (alg, q) in &s.quotes {
        let pcrs = pcr_frame(q);
        out.push((
            format!("{alg}-quote"),
            join(&[&q.quote, &q.signature, &q.ak_public, &pcrs]),
        ));
        out.push((
            format!("{alg}-quote-eventlog"),
            join(&[&q.quote, &q.signature, &q.ak_public, &pcrs, &log]),
        ));
    }
    Ok(out)
}

/// tpm2-tools files: message, signature, AK (binary `TPMT_PUBLIC` and PEM), PCR file, list.
pub fn tools() -> Result<Vec<Seed>, SeedError> {
    let s = sample()?;
    let mut out = Vec::new();
    for (alg, q) in &s.quotes {
        let pcrs = write_pcrs_file(&pcr_map(q)).map_err(ctx("writing a PCR file"))?;
        let list = b"sha256:0,1,7";
        out.push((
            format!("{alg}-binary-ak"),
            join(&[&q.quote, &q.signature, &q.ak_public, &pcrs, list]),
        ));
        let spki = TpmtPublic::parse(&q.ak_public)
            .map_err(ctx("parsing the AK"))?
            .spki_der();
        let pem = pem::encode(&pem::Pem::new("PUBLIC KEY", spki));
        out.push((
            format!("{alg}-pem-ak"),
            join(&[&q.quote, &q.signature, pem.as_bytes(), &pcrs, list]),
        ));
    }
    Ok(out)
}

fn boot_log() -> Vec<u8> {
    let path = confidant_testkit::workspace_root()
        .join("attestation/tests/data/ovmf-boot/binary_bios_measurements");
    std::fs::read(path).unwrap_or_default()
}

/// The real OVMF + Linux boot log, and its first records alone.
pub fn eventlogs() -> Result<Vec<Seed>, SeedError> {
    let log = boot_log();
    if log.is_empty() {
        return Err(SeedError(
            "attestation/tests/data/ovmf-boot log missing".into(),
        ));
    }
    // The Spec ID event alone (its size field sits at offset 28).
    let spec_len = 32 + u32::from_le_bytes([log[28], log[29], log[30], log[31]]) as usize;
    Ok(vec![
        ("ovmf-boot".to_owned(), log.clone()),
        (
            "spec-id-only".to_owned(),
            log[..spec_len.min(log.len())].to_vec(),
        ),
    ])
}

/// EK certificate, its CA (issuer and root), EK and AK publics.
pub fn ek_certs() -> Result<Vec<Seed>, SeedError> {
    let s = sample()?;
    let mut out = Vec::new();
    for (i, ca) in s.ek_ca.iter().enumerate() {
        for (alg, q) in &s.quotes {
            out.push((
                format!("ca{i}-{alg}-ak"),
                join(&[&s.ek_cert, ca, &s.ek_public, &q.ak_public]),
            ));
        }
    }
    Ok(out)
}

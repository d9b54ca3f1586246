//! `confidant evidence verify`: offline verification of SEV-SNP reports and TPM quotes.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use confidant_attestation::evidence::{Evidence, ReceivedEvidence, SnpEvidence};
use confidant_attestation::policy::Policy;
use confidant_attestation::snp::SnpTrustRoots;
use confidant_attestation::time::UnixTime;
use confidant_attestation::tpm::{TpmTrustAnchors, tools as tpm_tools};
use confidant_attestation::verify::{TrustAnchors, verify_evidence};

use crate::at::parse_at;

#[derive(Debug, Subcommand)]
pub enum EvidenceCommand {
    /// Verify evidence and print the verified claims as JSON (exit 0), or the failed check on
    /// stderr (non-zero exit).
    Verify(VerifyArgs),
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// SEV-SNP attestation report (raw, 1184 bytes).
    #[arg(long, requires = "vcek", conflicts_with = "tpm_message")]
    snp_report: Option<PathBuf>,
    /// VCEK or VLEK certificate that signed the report (DER or PEM).
    #[arg(long)]
    vcek: Option<PathBuf>,
    /// ASK/ASVK and ARK (PEM, as AMD's KDS serves `cert_chain`). Without it the pinned AMD
    /// certificates are used. A supplied ARK must equal a pinned one.
    #[arg(long)]
    chain: Option<PathBuf>,
    /// Development ARK (DER or PEM) to trust in addition to AMD's; results then say `"dev": true`.
    #[arg(long, requires = "dev_ask")]
    dev_ark: Option<PathBuf>,
    /// Development ASK (DER or PEM) matching --dev-ark.
    #[arg(long, requires = "dev_ark")]
    dev_ask: Option<PathBuf>,

    /// TPMS_ATTEST as written by `tpm2_quote -m`.
    #[arg(long, requires_all = ["tpm_signature", "tpm_ak", "tpm_pcrs", "tpm_pcr_list", "nonce"])]
    tpm_message: Option<PathBuf>,
    /// TPMT_SIGNATURE as written by `tpm2_quote -s`.
    #[arg(long)]
    tpm_signature: Option<PathBuf>,
    /// Attestation key public part: PEM (`tpm2_createak -f pem`) or TPM2B_PUBLIC. Trusted because
    /// you name it here, as with `tpm2_checkquote -u`.
    #[arg(long)]
    tpm_ak: Option<PathBuf>,
    /// PCR values as written by `tpm2_quote -o`.
    #[arg(long)]
    tpm_pcrs: Option<PathBuf>,
    /// PCR selection, e.g. `sha256:0,1,2,7`.
    #[arg(long)]
    tpm_pcr_list: Option<String>,

    /// Expected `report_data` (SNP) or qualifying data (TPM), hex. Required for TPM (as
    /// `tpm2_checkquote -q`); optional for SNP (the claims show what the report carries).
    #[arg(long)]
    nonce: Option<String>,
    /// Appraise against this policy (TOML) for --model-id.
    #[arg(long, requires = "model_id")]
    policy: Option<PathBuf>,
    /// Model id whose reference values the policy appraisal uses.
    #[arg(long)]
    model_id: Option<String>,
    /// Check certificate validity periods as of this time instead of now: Unix seconds, or UTC
    /// as `YYYY-MM-DDTHH:MM:SSZ`.
    #[arg(long, value_parser = parse_at)]
    at: Option<UnixTime>,
}

pub fn run(cmd: EvidenceCommand) -> Result<()> {
    match cmd {
        EvidenceCommand::Verify(args) => verify(args),
    }
}

fn verify(args: VerifyArgs) -> Result<()> {
    let (evidence, anchors) = if let Some(report) = &args.snp_report {
        snp_inputs(&args, report)?
    } else if let Some(message) = &args.tpm_message {
        tpm_inputs(&args, message)?
    } else {
        bail!("give either --snp-report with --vcek, or the --tpm-* files");
    };

    // The files go through the same decoding gate as evidence received over the network.
    let received =
        ReceivedEvidence::decode(&evidence.to_cbor()).context("evidence does not decode")?;
    let at = match args.at {
        Some(at) => at,
        None => crate::at::now()?,
    };
    let verified =
        verify_evidence(received, &anchors, at).context("evidence verification failed")?;
    let claims = serde_json::to_value(verified.claims()).context("serialising claims")?;

    let bound = match &args.nonce {
        Some(hexstr) => {
            let expected = hex::decode(hexstr.trim()).context("--nonce is not hex")?;
            Some(
                verified
                    .bind_exact(&expected)
                    .context("binding check failed")?,
            )
        }
        None => None,
    };

    let mut out = serde_json::json!({ "verified": true, "at": at.as_secs(), "claims": claims });
    if let Some(policy_path) = &args.policy {
        let model_id = args.model_id.as_deref().unwrap_or_default();
        let Some(bound) = bound else {
            bail!(
                "--policy needs --nonce: appraisal only runs on evidence bound to an expected value"
            );
        };
        let text = read_text(policy_path)?;
        let policy = Policy::from_toml(&text).context("policy is invalid")?;
        let appraisal = policy
            .appraise_raw(bound, model_id)
            .context("policy appraisal failed")?;
        out["appraisal"] = serde_json::json!({
            "policy_id": appraisal.policy_id(),
            "policy_version": appraisal.policy_version(),
            "model_id": model_id,
            "status": "affirming",
            "measurement": hex::encode(appraisal.measurement()),
            "dev": appraisal.is_dev(),
            "chip_id_masked": appraisal.chip_id_masked(),
            "chip_key_masked": appraisal.chip_key_masked(),
            // Evidence bound to a raw --nonce names no model digest: the policy's digest for
            // the model was not compared with anything.
            "model_digest_checked": appraisal.model_digest_checked(),
        });
    }
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(())
}

fn snp_inputs(args: &VerifyArgs, report: &Path) -> Result<(Evidence, TrustAnchors)> {
    let report = read(report)?;
    let vcek_path = args.vcek.as_deref().context("--snp-report needs --vcek")?;
    let signer = der_or_pem(&read(vcek_path)?)
        .into_iter()
        .next()
        .context("--vcek holds no certificate")?;
    let chain = match &args.chain {
        Some(p) => {
            let certs = der_or_pem(&read(p)?);
            if certs.is_empty() {
                bail!("--chain holds no certificate");
            }
            Some(
                order_chain(&signer, certs)
                    .into_iter()
                    .map(serde_bytes::ByteBuf::from)
                    .collect(),
            )
        }
        None => None,
    };
    let mut roots = SnpTrustRoots::amd();
    if let (Some(ark), Some(ask)) = (&args.dev_ark, &args.dev_ask) {
        let ark = first_cert(ark)?;
        let ask = first_cert(ask)?;
        roots
            .add_dev_root(&ark, &ask)
            .context("development root rejected")?;
    }
    let evidence = Evidence::SevSnp(SnpEvidence {
        report,
        signer_cert: signer,
        chain,
    });
    Ok((
        evidence,
        TrustAnchors {
            snp: roots,
            tpm: TpmTrustAnchors::default(),
        },
    ))
}

fn tpm_inputs(args: &VerifyArgs, message: &Path) -> Result<(Evidence, TrustAnchors)> {
    let need = |p: &Option<PathBuf>, flag: &str| -> Result<Vec<u8>> {
        read(p.as_deref().with_context(|| format!("missing {flag}"))?)
    };
    let message = read(message)?;
    let signature = need(&args.tpm_signature, "--tpm-signature")?;
    let ak = need(&args.tpm_ak, "--tpm-ak")?;
    let pcrs = need(&args.tpm_pcrs, "--tpm-pcrs")?;
    let selection = args
        .tpm_pcr_list
        .as_deref()
        .context("missing --tpm-pcr-list")?;
    let files = tpm_tools::read_quote_files(&message, &signature, &ak, &pcrs, selection)
        .context("TPM files could not be read")?;
    let mut tpm = TpmTrustAnchors::default();
    tpm.enroll_ak_spki_der(&files.ak_spki_der);
    Ok((
        Evidence::Tpm(files.evidence),
        TrustAnchors {
            snp: SnpTrustRoots::empty(),
            tpm,
        },
    ))
}

/// Picks `[intermediate, root]` out of a chain file that may hold more (AMD publishes ASK, ARK and
/// ASVK together). The intermediate is the certificate whose subject is the signer's issuer; the
/// root is the self-issued one. Names only choose the order here: the library verifies every
/// signature and that the root is pinned. Files it cannot sort are passed on unchanged, so the
/// library reports what is wrong with them.
fn order_chain(signer: &[u8], certs: Vec<Vec<u8>>) -> Vec<Vec<u8>> {
    use x509_parser::prelude::{FromDer, X509Certificate};
    if certs.len() <= 2 {
        return certs;
    }
    let Ok((_, signer)) = X509Certificate::from_der(signer) else {
        return certs;
    };
    let parsed: Vec<Option<(Vec<u8>, Vec<u8>)>> = certs
        .iter()
        .map(|der| {
            X509Certificate::from_der(der).ok().map(|(_, c)| {
                (
                    c.tbs_certificate.subject.as_raw().to_vec(),
                    c.tbs_certificate.issuer.as_raw().to_vec(),
                )
            })
        })
        .collect();
    let wanted_issuer = signer.tbs_certificate.issuer.as_raw();
    let intermediate = parsed.iter().position(|p| {
        p.as_ref()
            .is_some_and(|(subject, issuer)| subject == wanted_issuer && subject != issuer)
    });
    let root = parsed.iter().position(|p| {
        p.as_ref()
            .is_some_and(|(subject, issuer)| subject == issuer)
    });
    match (intermediate, root) {
        (Some(i), Some(r)) => vec![certs[i].clone(), certs[r].clone()],
        // No issuer of the signer here (another product's chain, say): pass the first
        // intermediate and the root so verification names the mismatch.
        (None, Some(r)) => match (0..certs.len()).find(|i| *i != r) {
            Some(i) => vec![certs[i].clone(), certs[r].clone()],
            None => certs,
        },
        _ => certs,
    }
}

fn read(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))
}

fn read_text(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))
}

fn first_cert(path: &Path) -> Result<Vec<u8>> {
    der_or_pem(&read(path)?)
        .into_iter()
        .next()
        .with_context(|| format!("{} holds no certificate", path.display()))
}

/// Certificates from a file that is either one DER certificate or PEM with one or more.
fn der_or_pem(bytes: &[u8]) -> Vec<Vec<u8>> {
    if bytes.starts_with(b"-----") || bytes.windows(11).any(|w| w == b"-----BEGIN ") {
        pem::parse_many(bytes)
            .map(|v| {
                v.into_iter()
                    .filter(|p| p.tag() == "CERTIFICATE")
                    .map(|p| p.into_contents())
                    .collect()
            })
            .unwrap_or_default()
    } else {
        vec![bytes.to_vec()]
    }
}

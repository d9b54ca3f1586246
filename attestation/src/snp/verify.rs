//! `verify_report`: parse, choose the trusted root, check the endorsement chain, bind the signing
//! certificate to the report (signer kind, product, TCB, chip), then check the report signature
//! over the received bytes.

use ring::signature::{ECDSA_P384_SHA384_FIXED, UnparsedPublicKey};
use x509_parser::prelude::X509Certificate;

use super::certs::{self, CertRole};
use super::report::{self, SigningKey, SnpReport, layout};
use super::roots::{RootOrigin, SnpTrustRoots, TrustedIntermediate, TrustedRoot};
use super::tcb::TcbComponent;
use super::{Product, SnpError, VerifiedSnpReport};
use crate::evidence::SnpEvidence;

/// Verifies an SEV-SNP report and its endorsement chain against `roots`.
///
/// Checks, in order: report structure (length, version, signature algorithm, reserved bytes), the
/// signing certificate chains to a trusted ARK through the ASK (VCEK) or ASVK (VLEK) that the
/// report's `SIGNING_KEY` bits name, the product (CPUID of v3+ reports, else the root that
/// verified) agrees with the chain, the certificate's TCB extensions equal `reported_tcb`, a VCEK's
/// hwID equals `chip_id`, and the ECDSA P-384 / SHA-384 signature over bytes 0x000..0x2A0.
///
/// The binding checks compare public certificate fields with report fields before the signature
/// check so that a refusal names the specific mismatch (another chip's VCEK gives
/// `ChipIdMismatch`, not just `BadSignature`); nothing is accepted without the signature check.
///
/// Certificate validity periods and revocation are not checked here (no clock inside
/// verification); policy appraisal decides what TCB is acceptable.
pub fn verify_report(
    ev: &SnpEvidence,
    roots: &SnpTrustRoots,
) -> Result<VerifiedSnpReport, SnpError> {
    let report = SnpReport::parse(&ev.report)?;
    let signer = certs::parse(&ev.signer_cert, CertRole::Signer)?;
    let root = select_root(
        &signer,
        ev.chain.as_deref(),
        report.signing_key,
        report.product(),
        roots,
    )?;
    let product = match (root.origin, report.product()) {
        (RootOrigin::Amd(chain), Some(reported)) if chain != reported => {
            return Err(SnpError::ProductMismatch {
                report: reported,
                chain,
            });
        }
        // Turin firmware emits version 3+ reports; a version-2 report is pre-Turin by layout.
        (RootOrigin::Amd(Product::Turin), None) => {
            return Err(SnpError::UnsupportedVersion(report.version));
        }
        (RootOrigin::Amd(p), _) => p,
        (RootOrigin::Dev, Some(p)) => p,
        (RootOrigin::Dev, None) => return Err(SnpError::ProductUnknown),
    };

    check_binding(&report, &signer, product)?;

    let signed = ev.report.get(layout::SIGNED).ok_or(SnpError::Truncated {
        len: ev.report.len(),
    })?;
    let sig = report::signature_fixed_be(&ev.report)?;
    let key = certs::p384_public_key(&signer)?;
    UnparsedPublicKey::new(&ECDSA_P384_SHA384_FIXED, key)
        .verify(signed, &sig)
        .map_err(|_| SnpError::BadSignature)?;

    Ok(VerifiedSnpReport {
        signing_key: report.signing_key,
        report: Box::new(report),
        product,
        dev: root.origin == RootOrigin::Dev,
    })
}

fn select_root<'r>(
    signer: &X509Certificate<'_>,
    chain: Option<&[serde_bytes::ByteBuf]>,
    kind: SigningKey,
    reported: Option<Product>,
    roots: &'r SnpTrustRoots,
) -> Result<&'r TrustedRoot, SnpError> {
    match chain {
        Some(chain) => root_from_chain(signer, chain, kind, reported, roots),
        None => root_from_pins(signer, kind, reported, roots),
    }
}

/// What [`verify_signer_chain`] established about a VCEK or VLEK.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SignerEndorsement {
    /// The product of the AMD root it chains to; `None` for a development root.
    pub product: Option<Product>,
    /// True when it chains to a development root.
    pub dev: bool,
}

/// Checks only the endorsement chain of a VCEK or VLEK (DER), without a report: the same root
/// selection and chain checks [`verify_report`] applies.
pub fn verify_signer_chain(
    signer_der: &[u8],
    chain: Option<&[serde_bytes::ByteBuf]>,
    kind: SigningKey,
    roots: &SnpTrustRoots,
) -> Result<SignerEndorsement, SnpError> {
    let signer = certs::parse(signer_der, CertRole::Signer)?;
    certs::p384_public_key(&signer)?;
    let root = select_root(&signer, chain, kind, None, roots)?;
    Ok(SignerEndorsement {
        product: root.product(),
        dev: root.origin == RootOrigin::Dev,
    })
}

fn intermediate_for(root: &TrustedRoot, kind: SigningKey) -> Option<&TrustedIntermediate> {
    match kind {
        SigningKey::Vcek => Some(&root.ask),
        SigningKey::Vlek => root.asvk.as_ref(),
    }
}

fn other(kind: SigningKey) -> SigningKey {
    match kind {
        SigningKey::Vcek => SigningKey::Vlek,
        SigningKey::Vlek => SigningKey::Vcek,
    }
}

fn signed_by(signer: &X509Certificate<'_>, i: Option<&TrustedIntermediate>) -> bool {
    i.is_some_and(|i| certs::verify_signed_by(signer, &i.rsa_key, CertRole::Signer).is_ok())
}

/// The product of a trusted AMD root, other than `exclude`, whose intermediate of `kind` signed the
/// signer: names a signer from another product's chain.
fn signer_product(
    signer: &X509Certificate<'_>,
    kind: SigningKey,
    roots: &SnpTrustRoots,
    exclude: Product,
) -> Option<Product> {
    roots
        .roots
        .iter()
        .filter(|r| r.product().is_some_and(|p| p != exclude))
        .find(|r| signed_by(signer, intermediate_for(r, kind)))
        .and_then(TrustedRoot::product)
}

/// True when a trusted intermediate of the other kind (ASVK for a VCEK report, ASK for a VLEK
/// report) signed the signer.
fn signed_as_other_kind(
    signer: &X509Certificate<'_>,
    kind: SigningKey,
    roots: &SnpTrustRoots,
) -> bool {
    roots
        .roots
        .iter()
        .any(|r| signed_by(signer, intermediate_for(r, other(kind))))
}

/// No chain supplied: the signer must be signed by a trusted intermediate of the right kind
/// (restricted to the report's product when its CPUID names one).
fn root_from_pins<'r>(
    signer: &X509Certificate<'_>,
    kind: SigningKey,
    reported: Option<Product>,
    roots: &'r SnpTrustRoots,
) -> Result<&'r TrustedRoot, SnpError> {
    let candidate = |r: &&TrustedRoot| match (r.origin, reported) {
        (RootOrigin::Amd(p), Some(q)) => p == q,
        _ => true,
    };
    roots
        .roots
        .iter()
        .filter(candidate)
        .find(|r| signed_by(signer, intermediate_for(r, kind)))
        .ok_or_else(|| {
            if let Some(chain) = reported.and_then(|q| signer_product(signer, kind, roots, q))
                && let Some(report) = reported
            {
                SnpError::ProductMismatch { report, chain }
            } else if signed_as_other_kind(signer, kind, roots) {
                SnpError::SignerKindMismatch { report: kind }
            } else {
                SnpError::UntrustedRoot
            }
        })
}

/// A chain `[ASK or ASVK, ARK]` was supplied: the ARK must be byte-equal to a trusted root, the
/// intermediate signed by it and carry the key of that root's ASK or ASVK, and sign the signer.
fn root_from_chain<'r>(
    signer: &X509Certificate<'_>,
    chain: &[serde_bytes::ByteBuf],
    kind: SigningKey,
    reported: Option<Product>,
    roots: &'r SnpTrustRoots,
) -> Result<&'r TrustedRoot, SnpError> {
    let [inter_der, ark_der] = chain else {
        return Err(SnpError::ChainShape { len: chain.len() });
    };
    let root = roots
        .roots
        .iter()
        .find(|r| r.ark.as_slice() == ark_der.as_slice())
        .ok_or(SnpError::UntrustedRoot)?;
    if let (Some(chain_product), Some(reported)) = (root.product(), reported)
        && chain_product != reported
    {
        return Err(SnpError::ProductMismatch {
            report: reported,
            chain: chain_product,
        });
    }

    let inter = certs::parse(inter_der, CertRole::Intermediate)?;
    certs::verify_signed_by(&inter, &root.ark_rsa_key, CertRole::Intermediate)?;
    certs::require_ca(&inter, CertRole::Intermediate)?;
    let spki = inter.public_key().raw;
    let role = if spki == root.ask.spki.as_slice() {
        SigningKey::Vcek
    } else if root
        .asvk
        .as_ref()
        .is_some_and(|a| spki == a.spki.as_slice())
    {
        SigningKey::Vlek
    } else {
        return Err(SnpError::UntrustedIntermediate);
    };
    if role != kind {
        return Err(SnpError::SignerKindMismatch { report: kind });
    }
    let key = certs::rsa_public_key(&inter, CertRole::Intermediate)?;
    match certs::verify_signed_by(signer, key, CertRole::Signer) {
        Ok(()) => Ok(root),
        Err(e @ SnpError::CertAlgorithm { .. }) => Err(e),
        Err(e) => {
            let other_product = root
                .product()
                .and_then(|chain| Some((signer_product(signer, kind, roots, chain)?, chain)));
            Err(if let Some((report, chain)) = other_product {
                SnpError::ProductMismatch { report, chain }
            } else if signed_by(signer, intermediate_for(root, other(kind))) {
                SnpError::SignerKindMismatch { report: kind }
            } else {
                e
            })
        }
    }
}

/// The signing certificate must be the one for this chip at this TCB: its TCB extensions equal
/// `reported_tcb` (the TCB the key was derived from) and a VCEK's hwID equals `chip_id`.
fn check_binding(
    report: &SnpReport,
    signer: &X509Certificate<'_>,
    product: Product,
) -> Result<(), SnpError> {
    let ext = certs::extensions_of(signer)?;
    if product == Product::Turin && ext.tcb.fmc.is_none() {
        return Err(SnpError::ExtensionMissing {
            oid: certs::tcb_extension_name(TcbComponent::Fmc),
        });
    }
    if let Some(component) = ext.tcb.first_difference(&report.reported_tcb) {
        return Err(SnpError::TcbMismatch { component });
    }
    if report.signing_key == SigningKey::Vlek {
        // A VLEK is shared by a cloud provider's hosts: it has no hwID, and VLEK reports may zero
        // chip_id.
        return Ok(());
    }
    if report.mask_chip_key {
        // The guest asked the firmware to zero chip_id; the chip-unique VCEK signature still binds
        // the report to one chip.
        return if report.chip_id.iter().all(|b| *b == 0) {
            Ok(())
        } else {
            Err(SnpError::ChipIdMismatch)
        };
    }
    let hw_id = ext.hw_id.ok_or(SnpError::ExtensionMissing {
        oid: certs::ext_name::HW_ID,
    })?;
    let matches = match (hw_id.len(), product) {
        (64, _) => hw_id.as_slice() == report.chip_id.as_slice(),
        // Turin's hwID is 8 bytes; the report carries it in the first 8 bytes of chip_id.
        (8, Product::Turin) => {
            report.chip_id.get(..8) == Some(hw_id.as_slice())
                && report.chip_id.iter().skip(8).all(|b| *b == 0)
        }
        _ => false,
    };
    if matches {
        Ok(())
    } else {
        Err(SnpError::ChipIdMismatch)
    }
}

//! `verify_report`: parse, choose the trusted root, check the endorsement chain and its validity
//! at the caller's time, bind the signing certificate to the report (signer kind, product, TCB,
//! chip), then check the report signature over the received bytes.

use ring::signature::{ECDSA_P384_SHA384_FIXED, UnparsedPublicKey};
use x509_parser::prelude::X509Certificate;

use super::certs::{self, CertRole};
use super::report::{self, SigningKey, SnpReport, layout};
use super::roots::{SnpRoot, SnpTrustRoots, TrustedIntermediate, TrustedRoot};
use super::tcb::TcbComponent;
use super::{Product, SnpError, VerifiedSnpReport};
use crate::evidence::SnpEvidence;
use crate::time::{UnixTime, Validity};

/// Verifies an SEV-SNP report and its endorsement chain against `roots`, at time `now`.
///
/// Checks, in order: report structure (length, version, signature algorithm, reserved bytes), the
/// signing certificate (strict DER) chains to a trusted ARK through the ASK (VCEK) or ASVK (VLEK)
/// that the report's `SIGNING_KEY` bits name — a supplied ASK/ASVK or ARK must be byte-identical to
/// the pinned one —, the product (CPUID of v3+ reports, else the root that verified) agrees with
/// the chain, every certificate of the chain is valid at `now`, the certificate's TCB extensions
/// equal `reported_tcb`, a VCEK's hwID equals a non-zero `chip_id` (an all-zero `chip_id` is
/// recorded as masked, for the policy to decide), and the ECDSA P-384 / SHA-384 signature over
/// bytes 0x000..0x2A0.
///
/// The binding checks compare public certificate fields with report fields before the signature
/// check so that a refusal names the specific mismatch (another chip's VCEK gives
/// `ChipIdMismatch`, not just `BadSignature`); nothing is accepted without the signature check.
/// Revocation is not checked here; policy appraisal decides what TCB is acceptable.
pub fn verify_report(
    ev: &SnpEvidence,
    roots: &SnpTrustRoots,
    now: UnixTime,
) -> Result<VerifiedSnpReport, SnpError> {
    let report = SnpReport::parse(&ev.report)?;
    let signer = certs::parse(&ev.signer_cert, CertRole::Signer)?;
    let (root, intermediate) = select_root(
        &signer,
        ev.chain.as_deref(),
        report.signing_key,
        report.product(),
        roots,
    )?;
    let product = match (root.origin, report.product()) {
        (SnpRoot::Amd(chain), Some(reported)) if chain != reported => {
            return Err(SnpError::ProductMismatch {
                report: reported,
                chain,
            });
        }
        // Turin firmware emits version 3+ reports; a version-2 report is pre-Turin by layout.
        (SnpRoot::Amd(Product::Turin), None) => {
            return Err(SnpError::UnsupportedVersion(report.version));
        }
        (SnpRoot::Amd(p), _) => p,
        (SnpRoot::Dev { .. }, Some(p)) => p,
        (SnpRoot::Dev { .. }, None) => return Err(SnpError::ProductUnknown),
    };
    let validity = chain_validity(&signer, intermediate, root, now)?;

    let chip_id_masked = check_binding(&report, &signer, product)?;

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
        root: root.origin,
        validity,
        chip_id_masked,
    })
}

/// The chain's validity: the intersection of the signer's, the intermediate's and the ARK's
/// periods, which must contain `now`. A refusal names the first certificate (from the signer up)
/// whose period does not.
fn chain_validity(
    signer: &X509Certificate<'_>,
    intermediate: &TrustedIntermediate,
    root: &TrustedRoot,
    now: UnixTime,
) -> Result<Validity, SnpError> {
    let periods = [
        (CertRole::Signer, Validity::of_certificate(signer)),
        (CertRole::Intermediate, intermediate.validity),
        (CertRole::Root, root.ark_validity),
    ];
    let mut all = Validity::ALWAYS;
    for (which, validity) in periods {
        if !validity.contains(now) {
            return Err(SnpError::CertNotValidAt {
                which,
                validity,
                at: now,
            });
        }
        all = all.intersect(validity);
    }
    Ok(all)
}

type Chosen<'r> = (&'r TrustedRoot, &'r TrustedIntermediate);

fn select_root<'r>(
    signer: &X509Certificate<'_>,
    chain: Option<&[serde_bytes::ByteBuf]>,
    kind: SigningKey,
    reported: Option<Product>,
    roots: &'r SnpTrustRoots,
) -> Result<Chosen<'r>, SnpError> {
    match chain {
        Some(chain) => root_from_chain(signer, chain, kind, reported, roots),
        None => root_from_pins(signer, kind, reported, roots),
    }
}

/// What [`verify_signer_chain`] established about a VCEK or VLEK.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SignerEndorsement {
    /// The root it chains to.
    pub root: SnpRoot,
    /// When the signer, its intermediate and the root are all valid.
    pub validity: Validity,
}

impl SignerEndorsement {
    /// The product of the AMD root it chains to; `None` for a development root.
    pub fn product(&self) -> Option<Product> {
        self.root.product()
    }

    /// True when it chains to a development root.
    pub fn is_dev(&self) -> bool {
        self.root.is_dev()
    }
}

/// Checks only the endorsement chain of a VCEK or VLEK (DER) at `now`, without a report: the same
/// root selection, chain and validity checks [`verify_report`] applies.
pub fn verify_signer_chain(
    signer_der: &[u8],
    chain: Option<&[serde_bytes::ByteBuf]>,
    kind: SigningKey,
    roots: &SnpTrustRoots,
    now: UnixTime,
) -> Result<SignerEndorsement, SnpError> {
    let signer = certs::parse(signer_der, CertRole::Signer)?;
    certs::p384_public_key(&signer)?;
    let (root, intermediate) = select_root(&signer, chain, kind, None, roots)?;
    let validity = chain_validity(&signer, intermediate, root, now)?;
    Ok(SignerEndorsement {
        root: root.origin,
        validity,
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
) -> Result<Chosen<'r>, SnpError> {
    let candidate = |r: &&TrustedRoot| match (r.origin, reported) {
        (SnpRoot::Amd(p), Some(q)) => p == q,
        _ => true,
    };
    roots
        .roots
        .iter()
        .filter(candidate)
        .find_map(|r| {
            let i = intermediate_for(r, kind)?;
            signed_by(signer, Some(i)).then_some((r, i))
        })
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

/// A chain `[ASK or ASVK, ARK]` was supplied. The pinned roots stand in for both certificates, so
/// each must be byte-identical to a pinned one (a re-encoded, re-signed or merely different copy is
/// refused); then the pinned intermediate must have signed the signer.
fn root_from_chain<'r>(
    signer: &X509Certificate<'_>,
    chain: &[serde_bytes::ByteBuf],
    kind: SigningKey,
    reported: Option<Product>,
    roots: &'r SnpTrustRoots,
) -> Result<Chosen<'r>, SnpError> {
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

    let (role, inter) = if inter_der.as_slice() == root.ask.der.as_slice() {
        (SigningKey::Vcek, &root.ask)
    } else if let Some(asvk) = root
        .asvk
        .as_ref()
        .filter(|a| inter_der.as_slice() == a.der.as_slice())
    {
        (SigningKey::Vlek, asvk)
    } else {
        return Err(SnpError::UntrustedIntermediate);
    };
    if role != kind {
        return Err(SnpError::SignerKindMismatch { report: kind });
    }
    match certs::verify_signed_by(signer, &inter.rsa_key, CertRole::Signer) {
        Ok(()) => Ok((root, inter)),
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
/// `reported_tcb` (the TCB the key was derived from) and a VCEK's hwID equals `chip_id`. Returns
/// whether `chip_id` is masked (all zero), which a VCEK's signature still ties to one chip, and
/// which a VLEK report says nothing about.
fn check_binding(
    report: &SnpReport,
    signer: &X509Certificate<'_>,
    product: Product,
) -> Result<bool, SnpError> {
    let ext = certs::extensions_of(signer)?;
    if product == Product::Turin && ext.tcb.fmc.is_none() {
        return Err(SnpError::ExtensionMissing {
            oid: certs::tcb_extension_name(TcbComponent::Fmc),
        });
    }
    if let Some(component) = ext.tcb.first_difference(&report.reported_tcb) {
        return Err(SnpError::TcbMismatch { component });
    }
    let masked = report.chip_id.iter().all(|b| *b == 0);
    if report.signing_key == SigningKey::Vlek || masked {
        // A VLEK is shared by a cloud provider's hosts: it has no hwID. A masked chip id
        // (MASK_CHIP_ID) has nothing to compare; the policy decides whether to accept it.
        return Ok(masked);
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
        Ok(false)
    } else {
        Err(SnpError::ChipIdMismatch)
    }
}

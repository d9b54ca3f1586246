//! Trust anchors for SEV-SNP: AMD's pinned ARK / ASK / ASVK per product, and development roots.
//!
//! - ARK and ASK: the `sev` crate's `certs::snp::builtin::<product>` PEMs (AMD KDS
//!   `https://kdsintf.amd.com/vcek/v1/{Milan,Genoa,Turin}/cert_chain`).
//! - ASVK (the VLEK signer): pinned here in `roots/<product>_asvk.pem`, from AMD KDS
//!   `https://kdsintf.amd.com/vlek/v1/{Milan,Genoa,Turin}/cert_chain` (see `roots/README.md`).
//!
//! Every root is checked when it is added: the ARK is self-signed and signs its ASK (and ASVK) with
//! RSA-PSS SHA-384, and both are CA certificates in strict DER. Verification then only compares
//! against these checked values: a supplied ARK, ASK or ASVK must be byte-identical to a pinned
//! one, and each pinned certificate's validity period is checked at the verification time.

use serde::Serialize;

use super::certs::{self, CertRole};
use super::{Product, SnpError};
use crate::time::Validity;

const MILAN_ASVK: &[u8] = include_bytes!("roots/milan_asvk.pem");
const GENOA_ASVK: &[u8] = include_bytes!("roots/genoa_asvk.pem");
const TURIN_ASVK: &[u8] = include_bytes!("roots/turin_asvk.pem");

/// A product with its pinned ARK, ASK and ASVK (PEM).
type PinnedPems = (Product, &'static [u8], &'static [u8], &'static [u8]);

/// Which root verified SEV-SNP evidence: exactly one of the roots the verifier trusted. Recorded
/// on the verified report, so a policy checks that very root (a product's AMD root, or the one
/// development root it pins), not merely "some trusted root".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SnpRoot {
    /// AMD's production ARK of one product.
    Amd(Product),
    /// A development ARK (simulated attester), by the SHA-256 of its DER. Evidence chaining to it
    /// is marked `dev`.
    Dev {
        #[serde(serialize_with = "crate::audit::entry::hex32::serialize")]
        ark_sha256: [u8; 32],
    },
}

impl SnpRoot {
    /// The AMD product, for an AMD root.
    pub fn product(&self) -> Option<Product> {
        match self {
            SnpRoot::Amd(p) => Some(*p),
            SnpRoot::Dev { .. } => None,
        }
    }

    /// True for a development root.
    pub fn is_dev(&self) -> bool {
        matches!(self, SnpRoot::Dev { .. })
    }
}

/// A checked intermediate (ASK or ASVK).
#[derive(Clone)]
pub(crate) struct TrustedIntermediate {
    /// The certificate, DER: a supplied intermediate must equal these bytes.
    pub(crate) der: Vec<u8>,
    /// PKCS#1 RSA public key, as `ring` takes it.
    pub(crate) rsa_key: Vec<u8>,
    pub(crate) validity: Validity,
}

/// One checked ARK with its intermediates.
#[derive(Clone)]
pub(crate) struct TrustedRoot {
    pub(crate) origin: SnpRoot,
    /// The ARK, DER: a supplied ARK must equal these bytes.
    pub(crate) ark: Vec<u8>,
    pub(crate) ark_validity: Validity,
    /// VCEK signer.
    pub(crate) ask: TrustedIntermediate,
    /// VLEK signer, when known.
    pub(crate) asvk: Option<TrustedIntermediate>,
}

impl TrustedRoot {
    fn new(
        origin: SnpRoot,
        ark_der: &[u8],
        ask_der: &[u8],
        asvk_der: Option<&[u8]>,
    ) -> Result<Self, SnpError> {
        let ark = certs::parse(ark_der, CertRole::Root)?;
        let ark_key = certs::rsa_public_key(&ark, CertRole::Root)?;
        certs::require_ca(&ark, CertRole::Root)?;
        certs::verify_signed_by(&ark, ark_key, CertRole::Root)?;
        let ask = intermediate(ask_der, ark_key)?;
        let asvk = asvk_der.map(|d| intermediate(d, ark_key)).transpose()?;
        Ok(TrustedRoot {
            origin,
            ark: ark_der.to_vec(),
            ark_validity: Validity::of_certificate(&ark),
            ask,
            asvk,
        })
    }

    pub(crate) fn product(&self) -> Option<Product> {
        self.origin.product()
    }

    pub(crate) fn is_dev(&self) -> bool {
        self.origin.is_dev()
    }
}

fn intermediate(der: &[u8], ark_key: &[u8]) -> Result<TrustedIntermediate, SnpError> {
    let cert = certs::parse(der, CertRole::Intermediate)?;
    certs::require_ca(&cert, CertRole::Intermediate)?;
    certs::verify_signed_by(&cert, ark_key, CertRole::Intermediate)?;
    Ok(TrustedIntermediate {
        der: der.to_vec(),
        rsa_key: certs::rsa_public_key(&cert, CertRole::Intermediate)?.to_vec(),
        validity: Validity::of_certificate(&cert),
    })
}

/// The SEV-SNP roots verification trusts. `Default` (and [`SnpTrustRoots::empty`]) trusts nothing.
#[derive(Clone, Default)]
pub struct SnpTrustRoots {
    pub(crate) roots: Vec<TrustedRoot>,
}

impl std::fmt::Debug for SnpTrustRoots {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.roots.iter().map(|r| {
                let fp = ring::digest::digest(&ring::digest::SHA256, &r.ark);
                let short = hex::encode(fp.as_ref().get(..8).unwrap_or_default());
                (r.origin, format!("ark sha256 {short}…"))
            }))
            .finish()
    }
}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    let d = ring::digest::digest(&ring::digest::SHA256, bytes);
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

fn pem_der(pem_bytes: &[u8]) -> Option<Vec<u8>> {
    pem::parse(pem_bytes)
        .ok()
        .filter(|p| p.tag() == "CERTIFICATE")
        .map(|p| p.into_contents())
}

impl SnpTrustRoots {
    /// Trusts nothing.
    pub fn empty() -> Self {
        Self::default()
    }

    /// AMD's production roots for Milan, Genoa and Turin (ARK, ASK and ASVK each).
    pub fn amd() -> Self {
        use sev::certs::snp::builtin::{genoa, milan, turin};
        let pinned: [PinnedPems; 3] = [
            (Product::Milan, milan::ARK, milan::ASK, MILAN_ASVK),
            (Product::Genoa, genoa::ARK, genoa::ASK, GENOA_ASVK),
            (Product::Turin, turin::ARK, turin::ASK, TURIN_ASVK),
        ];
        let roots = pinned
            .iter()
            .filter_map(|(product, ark, ask, asvk)| {
                let (ark, ask, asvk) = (pem_der(ark)?, pem_der(ask)?, pem_der(asvk)?);
                // Pinned constants: a failure here is a packaging bug, caught by the unit tests;
                // the root is then simply not trusted.
                TrustedRoot::new(SnpRoot::Amd(*product), &ark, &ask, Some(&asvk)).ok()
            })
            .collect();
        SnpTrustRoots { roots }
    }

    /// Keeps only AMD roots of the listed products (development roots are kept).
    pub fn only(mut self, products: &[Product]) -> Self {
        self.roots.retain(|r| match r.origin {
            SnpRoot::Amd(p) => products.contains(&p),
            SnpRoot::Dev { .. } => true,
        });
        self
    }

    /// Adds a development root (ARK and ASK, DER) and returns its identity. Evidence chaining to
    /// it verifies with that [`SnpRoot::Dev`] root; its product is taken from the report's CPUID
    /// (version 3+ reports only).
    pub fn add_dev_root(&mut self, ark_der: &[u8], ask_der: &[u8]) -> Result<SnpRoot, SnpError> {
        let origin = SnpRoot::Dev {
            ark_sha256: sha256(ark_der),
        };
        let root = TrustedRoot::new(origin, ark_der, ask_der, None)?;
        if !self.roots.iter().any(|r| r.ark == root.ark) {
            self.roots.push(root);
        }
        Ok(origin)
    }

    /// The AMD products trusted.
    pub fn amd_products(&self) -> Vec<Product> {
        self.roots.iter().filter_map(TrustedRoot::product).collect()
    }

    /// Number of development roots trusted.
    pub fn dev_root_count(&self) -> usize {
        self.roots.iter().filter(|r| r.is_dev()).count()
    }

    /// True when nothing is trusted.
    pub fn is_empty(&self) -> bool {
        self.roots.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_pinned_amd_root_loads_and_checks() {
        let roots = SnpTrustRoots::amd();
        assert_eq!(
            roots.amd_products(),
            vec![Product::Milan, Product::Genoa, Product::Turin]
        );
        assert!(roots.roots.iter().all(|r| r.asvk.is_some()));
        assert!(SnpTrustRoots::default().is_empty());
    }

    #[test]
    fn only_filters_products() {
        let roots = SnpTrustRoots::amd().only(&[Product::Genoa]);
        assert_eq!(roots.amd_products(), vec![Product::Genoa]);
    }

    #[test]
    fn an_asvk_of_another_product_is_refused() {
        use sev::certs::snp::builtin::milan;
        let ark = pem_der(milan::ARK).unwrap();
        let ask = pem_der(milan::ASK).unwrap();
        let genoa_asvk = pem_der(GENOA_ASVK).unwrap();
        let dev = SnpRoot::Dev {
            ark_sha256: sha256(&ark),
        };
        let e = TrustedRoot::new(dev, &ark, &ask, Some(&genoa_asvk)).err();
        assert_eq!(
            e,
            Some(SnpError::ChainSignature {
                which: CertRole::Intermediate
            })
        );
    }
}

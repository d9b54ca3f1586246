//! SEV-SNP: reports, endorsement certificates, OVMF images.

use confidant_attestation::evidence::{Evidence, SnpEvidence};
use confidant_attestation::snp::launch::{
    GuestFeatures, KernelHashes, LaunchConfig, OvmfImage, VcpuType, Vmm, launch_digest,
};
use confidant_attestation::snp::{
    SigningKey, SnpReport, SnpTrustRoots, signer_public_key, vek_extensions, verify_signer_chain,
};
use confidant_attestation::verify::TrustAnchors;
use serde_bytes::ByteBuf;

use crate::frame::{part, split};

/// Parts: report, signer certificate (DER), then any chain certificates (ASK/ASVK, ARK).
pub fn report(data: &[u8]) {
    let parts = split(data, 5);
    let report = part(&parts, 0);
    if let Ok(parsed) = SnpReport::parse(report) {
        let _ = parsed.product();
    }
    let chain: Vec<ByteBuf> = parts.iter().skip(2).map(|c| ByteBuf::from(*c)).collect();
    let evidence = Evidence::SevSnp(SnpEvidence {
        report: report.to_vec(),
        signer_cert: part(&parts, 1).to_vec(),
        chain: (!chain.is_empty()).then_some(chain),
    });
    let anchors = TrustAnchors {
        snp: SnpTrustRoots::amd(),
        ..TrustAnchors::default()
    };
    crate::verify_built(&evidence, &anchors);
}

/// Parts: signer certificate (DER), then chain certificates.
pub fn certs(data: &[u8]) {
    let parts = split(data, 4);
    let signer = part(&parts, 0);
    let _ = vek_extensions(signer);
    let _ = signer_public_key(signer);
    let chain: Vec<ByteBuf> = parts.iter().skip(1).map(|c| ByteBuf::from(*c)).collect();
    let roots = SnpTrustRoots::amd();
    for kind in [SigningKey::Vcek, SigningKey::Vlek] {
        let _ = verify_signer_chain(signer, Some(&chain), kind, &roots, crate::FUZZ_NOW);
        let _ = verify_signer_chain(signer, None, kind, &roots, crate::FUZZ_NOW);
    }
}

/// Largest image measured (the digest hashes every page: keep each run short).
const MAX_MEASURED: usize = 256 * 1024;

/// An OVMF image; when it parses, its launch digest for each VMM, with and without kernel
/// hashes.
pub fn ovmf(data: &[u8]) {
    let Ok(image) = OvmfImage::parse(data) else {
        return;
    };
    let _ = image.hash_table_area();
    let _ = image.kernel_hashes_section();
    if data.len() > MAX_MEASURED {
        return;
    }
    let (Ok(features), Some(vcpu)) = (GuestFeatures::new(1), VcpuType::all().first()) else {
        return;
    };
    let kernel = KernelHashes::new(b"kernel", Some(b"initrd"), Some("console=ttyS0")).ok();
    for vmm in [Vmm::Qemu { vcpu: *vcpu }, Vmm::Ec2, Vmm::Gce] {
        let config = LaunchConfig {
            vcpus: 2,
            vmm,
            guest_features: features,
        };
        let _ = launch_digest(&image, &config, None);
        let _ = launch_digest(&image, &config, kernel.as_ref());
    }
}

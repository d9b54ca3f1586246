//! SEV-SNP seeds: the real reports and certificates of the shared test data, and a synthetic
//! OVMF image.

use confidant_fuzz::frame::join;
use confidant_testkit::ovmf::SyntheticOvmf;
use confidant_testkit::{read_testdata, testdata};

use crate::{Seed, SeedError, ctx};

/// DER certificates of a PEM file, in order.
fn pem_certs(rel: &str) -> Result<Vec<Vec<u8>>, SeedError> {
    let text = read_testdata(rel);
    Ok(pem::parse_many(&text)
        .map_err(ctx("PEM test data"))?
        .into_iter()
        .map(|p| p.into_contents())
        .collect())
}

/// One certificate, DER or PEM.
fn cert(rel: &str) -> Result<Vec<u8>, SeedError> {
    if rel.ends_with(".pem") {
        return pem_certs(rel)?
            .into_iter()
            .next()
            .ok_or_else(|| SeedError(format!("{rel}: no certificate")));
    }
    Ok(read_testdata(rel))
}

/// A real report: its directory name, the report, the signer certificate, the chain (DER).
struct RealReport {
    name: String,
    report: Vec<u8>,
    signer: Vec<u8>,
    chain: Vec<Vec<u8>>,
}

/// Every real report in the test data.
fn real_reports() -> Result<Vec<RealReport>, SeedError> {
    let cases: &[(&str, &str, Option<&str>)] = &[
        ("virtee-milan", "vcek.der", Some("cert_chain.pem")),
        ("trustee-milan", "vcek.der", None),
        ("trustee-vlek", "vlek.der", None),
        ("azure-genoa", "vcek.pem", None),
        ("azure-milan", "vcek-and-chain.pem", None),
    ];
    let mut out = Vec::new();
    for (dir, signer, chain) in cases {
        let report = read_testdata(&format!("snp/{dir}/report.bin"));
        let signer_rel = format!("snp/{dir}/{signer}");
        let mut chain = match chain {
            Some(c) => pem_certs(&format!("snp/{dir}/{c}"))?,
            None => Vec::new(),
        };
        let signer = if signer.ends_with(".pem") {
            let mut all = pem_certs(&signer_rel)?;
            if all.is_empty() {
                return Err(SeedError(format!("{signer_rel}: no certificate")));
            }
            let first = all.remove(0);
            chain.extend(all);
            first
        } else {
            cert(&signer_rel)?
        };
        out.push(RealReport {
            name: (*dir).to_owned(),
            report,
            signer,
            chain,
        });
    }
    Ok(out)
}

/// Report + signer, and report + signer + chain where the test data has one.
pub fn reports() -> Result<Vec<Seed>, SeedError> {
    let mut out = Vec::new();
    for RealReport {
        name,
        report,
        signer,
        chain,
    } in real_reports()?
    {
        out.push((name.clone(), join(&[&report, &signer])));
        if !chain.is_empty() {
            let mut parts: Vec<&[u8]> = vec![&report, &signer];
            parts.extend(chain.iter().map(Vec::as_slice));
            out.push((format!("{name}-chain"), join(&parts)));
        }
    }
    Ok(out)
}

/// Every VCEK/VLEK with and without its chain, and AMD's own ASK/ARK (and ASVK) chains.
pub fn certs() -> Result<Vec<Seed>, SeedError> {
    let mut out = Vec::new();
    for RealReport {
        name,
        signer,
        chain,
        ..
    } in real_reports()?
    {
        out.push((format!("{name}-signer"), join(&[&signer])));
        let mut parts: Vec<&[u8]> = vec![&signer];
        parts.extend(chain.iter().map(Vec::as_slice));
        out.push((format!("{name}-signer-chain"), join(&parts)));
    }
    let turin = cert("snp/virtee-turin-certs/vcek.der")?;
    let turin_chain = pem_certs("snp/virtee-turin-certs/cert_chain.pem")?;
    let mut parts: Vec<&[u8]> = vec![&turin];
    parts.extend(turin_chain.iter().map(Vec::as_slice));
    out.push(("virtee-turin-chain".to_owned(), join(&parts)));
    for file in [
        "trustee-milan/vcek-invalid-legacy.der",
        "trustee-milan/vcek-invalid-new.der",
    ] {
        let der = cert(&format!("snp/{file}"))?;
        out.push((file.replace('/', "-"), join(&[&der])));
    }
    let amd = testdata().join("amd");
    let mut files: Vec<_> = std::fs::read_dir(&amd)
        .map_err(ctx("listing the AMD certificates"))?
        .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
        .filter(|n| n.ends_with(".pem"))
        .collect();
    files.sort();
    for file in files {
        let certs = pem_certs(&format!("amd/{file}"))?;
        let parts: Vec<&[u8]> = certs.iter().map(Vec::as_slice).collect();
        out.push((format!("amd-{file}"), join(&parts)));
    }
    Ok(out)
}

/// The synthetic AmdSev-layout image, and one without the kernel-hashes section.
pub fn ovmf() -> Vec<Seed> {
    let full = SyntheticOvmf::amd_sev();
    let mut plain = full.clone();
    plain
        .sections
        .retain(|s| s.2 != confidant_testkit::ovmf::SNP_KERNEL_HASHES);
    vec![
        ("amd-sev".to_owned(), full.build()),
        ("no-kernel-hashes".to_owned(), plain.build()),
    ]
}

//! Strict DER with openssl as the peer: every real certificate verification meets (AMD VCEKs and
//! VLEK of the shared test data, the pinned ASK/ASVK/ARK, the development PKI) is re-encoded with
//! one BER liberty or DER violation at a time. `der_strict::check_certificate` must refuse every
//! variant, and in particular every variant `openssl x509` refuses to parse; both accept the
//! originals. openssl itself accepts several of the variants (indefinite and non-minimal lengths,
//! constructed strings, trailing bytes, `BOOLEAN 01`): those are what a lenient parser would turn
//! into a second evidence digest for the same certificate.
#![allow(
    clippy::unwrap_used,
    reason = "test support code: a panic is a test failure"
)]

use std::process::Command;

use confidant_attestation::der_strict::check_certificate;

/// A TLV tree, enough to re-encode a certificate with one element changed.
#[derive(Debug, Clone)]
enum Node {
    Primitive(u8, Vec<u8>),
    Constructed(u8, Vec<Node>),
}

fn length(der: &[u8], i: usize) -> (usize, usize) {
    match der[i + 1] {
        l if l < 0x80 => (2, usize::from(l)),
        l => {
            let n = usize::from(l & 0x7f);
            let len = der[i + 2..i + 2 + n]
                .iter()
                .fold(0usize, |a, b| (a << 8) | usize::from(*b));
            (2 + n, len)
        }
    }
}

fn parse(der: &[u8]) -> Vec<Node> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < der.len() {
        let tag = der[i];
        let (hl, len) = length(der, i);
        let content = &der[i + hl..i + hl + len];
        out.push(if tag & 0x20 != 0 {
            Node::Constructed(tag, parse(content))
        } else {
            Node::Primitive(tag, content.to_vec())
        });
        i += hl + len;
    }
    out
}

fn encode_len(n: usize) -> Vec<u8> {
    if n < 0x80 {
        return vec![n as u8];
    }
    let bytes: Vec<u8> = n
        .to_be_bytes()
        .iter()
        .copied()
        .skip_while(|b| *b == 0)
        .collect();
    let mut out = vec![0x80 | bytes.len() as u8];
    out.extend(bytes);
    out
}

fn encode(n: &Node) -> Vec<u8> {
    let (tag, body) = match n {
        Node::Primitive(t, c) => (*t, c.clone()),
        Node::Constructed(t, children) => (*t, children.iter().flat_map(encode).collect()),
    };
    let mut out = vec![tag];
    out.extend(encode_len(body.len()));
    out.extend(body);
    out
}

fn children(n: &mut Node) -> &mut Vec<Node> {
    match n {
        Node::Constructed(_, c) => c,
        Node::Primitive(..) => panic!("not constructed"),
    }
}

/// Certificate → TBSCertificate.
fn tbs(cert: &mut Node) -> &mut Vec<Node> {
    children(&mut children(cert)[0])
}

/// The first extension's SEQUENCE { extnID, [critical], extnValue }.
fn first_extension(cert: &mut Node) -> &mut Vec<Node> {
    let exts = tbs(cert)
        .iter_mut()
        .find(|n| matches!(n, Node::Constructed(0xa3, _)))
        .expect("extensions");
    let list = &mut children(exts)[0];
    children(&mut children(list)[0])
}

type Mutation = (&'static str, fn(&[u8]) -> Vec<u8>);

fn mutations() -> Vec<Mutation> {
    fn tree(der: &[u8]) -> Node {
        parse(der).remove(0)
    }
    vec![
        ("outer length not minimal", |d| {
            let (hl, len) = length(d, 0);
            let mut out = vec![0x30, 0x80 | (hl - 1) as u8, 0];
            out.extend_from_slice(&len.to_be_bytes()[8 - (hl - 2)..]);
            out.extend_from_slice(&d[hl..]);
            out
        }),
        ("indefinite outer length", |d| {
            let (hl, _) = length(d, 0);
            let mut out = vec![0x30, 0x80];
            out.extend_from_slice(&d[hl..]);
            out.extend_from_slice(&[0, 0]);
            out
        }),
        ("trailing byte", |d| [d, &[0]].concat()),
        ("serial with a leading zero", |d| {
            let mut c = tree(d);
            let serial = tbs(&mut c)
                .iter_mut()
                .find(|n| matches!(n, Node::Primitive(0x02, _)))
                .unwrap();
            if let Node::Primitive(_, v) = serial {
                v.insert(0, 0);
            }
            encode(&c)
        }),
        ("extra element in TBSCertificate", |d| {
            let mut c = tree(d);
            tbs(&mut c).push(Node::Primitive(0x05, vec![]));
            encode(&c)
        }),
        ("signature BIT STRING with 8 unused bits", |d| {
            let mut c = tree(d);
            if let Node::Primitive(_, v) = &mut children(&mut c)[2] {
                v[0] = 8;
            }
            encode(&c)
        }),
        (
            "outer signatureAlgorithm differs from the signed one",
            |d| {
                let mut c = tree(d);
                children(&mut c)[1] = Node::Constructed(
                    0x30,
                    vec![
                        // sha256WithRSAEncryption, NULL
                        Node::Primitive(0x06, hex::decode("2a864886f70d01010b").unwrap()),
                        Node::Primitive(0x05, vec![]),
                    ],
                );
                encode(&c)
            },
        ),
        ("UTCTime without seconds", |d| {
            let mut c = tree(d);
            let validity = tbs(&mut c)
                .iter_mut()
                .find(|n| matches!(n, Node::Constructed(0x30, v) if matches!(v.first(), Some(Node::Primitive(0x17 | 0x18, _)))))
                .unwrap();
            if let Node::Primitive(tag, v) = &mut children(validity)[0] {
                let keep = if *tag == 0x17 { 10 } else { 12 };
                v.truncate(keep);
                v.push(b'Z');
            }
            encode(&c)
        }),
        ("constructed OCTET STRING", |d| {
            let mut c = tree(d);
            let ext = first_extension(&mut c);
            let value = ext.pop().unwrap();
            ext.push(Node::Constructed(0x24, vec![value]));
            encode(&c)
        }),
        ("BOOLEAN encoded as 01", |d| {
            let mut c = tree(d);
            first_extension(&mut c).insert(1, Node::Primitive(0x01, vec![0x01]));
            encode(&c)
        }),
        ("OBJECT IDENTIFIER with a padded sub-identifier", |d| {
            let mut c = tree(d);
            if let Node::Constructed(_, alg) = &mut children(&mut c)[1]
                && let Node::Primitive(_, oid) = &mut alg[0]
            {
                oid.insert(0, 0x80);
            }
            encode(&c)
        }),
    ]
}

fn openssl_parses(der: &[u8], dir: &std::path::Path) -> bool {
    let path = dir.join("cert.der");
    std::fs::write(&path, der).unwrap();
    Command::new("openssl")
        .args(["x509", "-inform", "DER", "-noout", "-in"])
        .arg(&path)
        .output()
        .expect("openssl (scripts/setup.sh installs it)")
        .status
        .success()
}

fn pem_certs(rel: &str) -> Vec<Vec<u8>> {
    pem::parse_many(confidant_testkit::read_testdata(rel))
        .unwrap()
        .into_iter()
        .map(|p| p.into_contents())
        .collect()
}

fn certificates() -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for rel in [
        "snp/virtee-milan/vcek.der",
        "snp/trustee-milan/vcek.der",
        "snp/trustee-vlek/vlek.der",
        "snp/virtee-turin-certs/vcek.der",
    ] {
        out.push((rel.to_string(), confidant_testkit::read_testdata(rel)));
    }
    for rel in [
        "snp/azure-genoa/vcek.pem",
        "snp/azure-milan/vcek-and-chain.pem",
        "amd/milan_ask_ark_asvk.pem",
        "amd/genoa_ask_ark_asvk.pem",
        "amd/turin_ask_ark_asvk.pem",
    ] {
        for (i, der) in pem_certs(rel).into_iter().enumerate() {
            out.push((format!("{rel}#{i}"), der));
        }
    }
    let dev = confidant_testkit::dev_pki();
    for f in ["ark.der", "ask.der", "vcek.der"] {
        out.push((format!("dev-pki/{f}"), std::fs::read(dev.join(f)).unwrap()));
    }
    out
}

#[test]
fn every_variant_openssl_refuses_is_refused_and_so_is_every_other_ber_variant() {
    let dir = tempfile::tempdir().unwrap();
    let certs = certificates();
    assert!(certs.len() >= 15);
    let mut openssl_refused = std::collections::BTreeMap::<&str, usize>::new();
    for (name, der) in &certs {
        // Positive control: the originals parse everywhere.
        assert!(openssl_parses(der, dir.path()), "openssl refuses {name}");
        check_certificate(der).unwrap_or_else(|e| panic!("{name}: {e}"));
        for (what, mutate) in mutations() {
            let variant = mutate(der);
            assert_ne!(&variant, der, "{name}: {what} changed nothing");
            let theirs = openssl_parses(&variant, dir.path());
            let ours = check_certificate(&variant);
            assert!(
                ours.is_err(),
                "{name}: {what} passed the strict check (openssl parses it: {theirs})"
            );
            if !theirs {
                *openssl_refused.entry(what).or_default() += 1;
            }
        }
    }
    // The peer is not vacuous: these variants openssl refuses on every certificate.
    for what in [
        "serial with a leading zero",
        "extra element in TBSCertificate",
        "signature BIT STRING with 8 unused bits",
        "OBJECT IDENTIFIER with a padded sub-identifier",
    ] {
        assert_eq!(
            openssl_refused.get(what).copied(),
            Some(certs.len()),
            "{what}: {openssl_refused:?}"
        );
    }
}

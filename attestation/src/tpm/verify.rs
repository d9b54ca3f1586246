//! [`verify_quote`]: the checks, in order.

use std::collections::BTreeMap;

use super::constants::TPM_ALG_SHA256;
use super::public::sha256;
use super::{
    BootImageEvents, EventLog, EventLogError, TpmError, TpmTrustAnchors, TpmsAttest, TpmtPublic,
    TpmtSignature, VerifiedTpmQuote,
};
use crate::evidence::TpmEvidence;

/// Verifies a TPM quote against the enrolled attestation keys. See the module documentation for
/// the checks; the binding (`extraData`) is checked afterwards by
/// [`crate::verify::VerifiedEvidence::bind`].
pub fn verify_quote(
    ev: &TpmEvidence,
    anchors: &TpmTrustAnchors,
) -> Result<VerifiedTpmQuote, TpmError> {
    // 1. Structure: every part parses exactly.
    let attest = TpmsAttest::parse_quote(&ev.quote)?;
    let signature = TpmtSignature::parse(&ev.signature)?;
    let ak = TpmtPublic::parse(&ev.ak_public)?;

    // 2. The key: enrolled, and one the TPM only signs its own structures with.
    let (ak_fingerprint, ak_anchor) = anchors
        .trusts(&ak, &ev.ak_public)
        .ok_or(TpmError::UntrustedAk)?;
    if !ak.is_restricted_signing() {
        return Err(TpmError::AkNotRestrictedSigning {
            attributes: ak.object_attributes,
        });
    }

    // 3. The signature, over the bytes received.
    signature.verify(&ak, &ev.quote)?;

    // 4. The PCRs: the selection is exactly the supplied set, and the digest matches.
    let pcrs = supplied_pcrs(&ev.pcrs)?;
    let mut selected = Vec::new();
    for bank in &attest.quote.pcr_select {
        if bank.pcrs.is_empty() {
            continue;
        }
        if bank.hash != TPM_ALG_SHA256 {
            return Err(TpmError::UnsupportedAlgorithm {
                what: "PCR bank",
                alg: bank.hash,
            });
        }
        selected.extend(bank.pcrs.iter().copied());
    }
    let unique: std::collections::BTreeSet<u8> = selected.iter().copied().collect();
    if unique.len() != selected.len() || !unique.iter().eq(pcrs.keys()) {
        return Err(TpmError::PcrSelectionMismatch);
    }
    let values = selected
        .iter()
        .map(|index| pcrs.get(index).ok_or(TpmError::PcrSelectionMismatch))
        .collect::<Result<Vec<_>, _>>()?;
    if pcr_digest(values).as_slice() != attest.quote.pcr_digest.as_slice() {
        return Err(TpmError::PcrDigestMismatch);
    }

    // 5. The event log, if any: it must replay to every quoted PCR.
    let boot = match &ev.event_log {
        None => None,
        Some(log) => Some(replay_event_log(log, &pcrs)?),
    };

    Ok(VerifiedTpmQuote {
        qualifying_data: attest.extra_data,
        pcrs,
        ak_fingerprint,
        ak_anchor,
        clock_info: attest.clock_info,
        firmware_version: attest.firmware_version,
        boot,
    })
}

/// The event-log step of [`verify_quote`]: parses an untrusted event log, requires its SHA-256 replay to equal every quoted PCR (a
/// quoted PCR the log never extends must be zero), and returns its boot-image facts.
pub fn replay_event_log(
    log: &[u8],
    quoted: &BTreeMap<u8, [u8; 32]>,
) -> Result<BootImageEvents, TpmError> {
    let log = EventLog::parse(log).map_err(TpmError::EventLog)?;
    log.replay_matches(quoted).map_err(|e| match e {
        EventLogError::PcrMismatch { pcr, .. } => TpmError::EventLogReplay { pcr, detail: e },
        other => TpmError::EventLog(other),
    })?;
    log.boot_image().map_err(TpmError::EventLog)
}

fn supplied_pcrs(
    pcrs: &BTreeMap<u8, serde_bytes::ByteBuf>,
) -> Result<BTreeMap<u8, [u8; 32]>, TpmError> {
    pcrs.iter()
        .map(|(index, value)| {
            let v: [u8; 32] =
                value
                    .as_slice()
                    .try_into()
                    .map_err(|_| TpmError::PcrValueLength {
                        index: *index,
                        len: value.len(),
                    })?;
            Ok((*index, v))
        })
        .collect()
}

/// SHA-256 of the concatenated values, in the given order: the `pcrDigest` a TPM computes.
fn pcr_digest<'a>(values: impl IntoIterator<Item = &'a [u8; 32]>) -> [u8; 32] {
    let concat: Vec<u8> = values.into_iter().flatten().copied().collect();
    sha256(&concat)
}

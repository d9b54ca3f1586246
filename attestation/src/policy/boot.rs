//! VM boot-image appraisal: the model's `tpm_boot` reference images against the boot-image facts
//! of a replayed TCG event log ([`BootImageEvents`]). Pure functions, unit-tested on the real OVMF
//! log in `attestation/tests/data/ovmf-boot/`.
//!
//! An image matches when the log's PCR 4 `EV_EFI_BOOT_SERVICES_APPLICATION` digests are exactly
//! `[kernel_authenticode_sha256]` and its PCR 9 events are exactly two `EV_EVENT_TAG` events: the
//! Linux EFI stub's `LOADED_IMAGE::LoadOptions` event with digest SHA-256(UTF-16LE(`cmdline` +
//! NUL)), then its `Linux initrd` event with digest `initrd_sha256`.

use serde::Serialize;

use super::PolicyError;
use crate::tpm::BootImageEvents;
use crate::tpm::eventlog::{TAG_INITRD, TAG_LOAD_OPTIONS, load_options_digest};

/// One `[[models."<id>".tpm_boot]]` entry: a VM boot image the model accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootImageRef {
    /// A label for results and logs.
    pub name: Option<String>,
    /// Authenticode SHA-256 of the kernel (what `pesign -h` or `sbverify` print).
    pub kernel_authenticode_sha256: [u8; 32],
    /// SHA-256 of the initrd file.
    pub initrd_sha256: [u8; 32],
    /// The command line exactly as the kernel's EFI stub receives it (for QEMU `-kernel`, OVMF
    /// passes `"<-append text> initrd=<name>"`).
    pub cmdline: String,
}

impl BootImageRef {
    /// The digest the EFI stub logs for this command line.
    pub fn load_options_sha256(&self) -> [u8; 32] {
        load_options_digest(&self.cmdline)
    }

    /// What results say about the image that matched.
    pub fn matched(&self) -> MatchedBootImage {
        MatchedBootImage {
            name: self.name.clone(),
            kernel_authenticode_sha256: hex::encode(self.kernel_authenticode_sha256),
            initrd_sha256: hex::encode(self.initrd_sha256),
            cmdline: self.cmdline.clone(),
        }
    }
}

/// The policy boot image a TPM appraisal matched (see [`super::Appraisal::boot_image`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MatchedBootImage {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub kernel_authenticode_sha256: String,
    pub initrd_sha256: String,
    pub cmdline: String,
}

fn refuse(reason: String) -> PolicyError {
    PolicyError::BootImageNotAllowed { reason }
}

/// Whether `events` are exactly `reference`'s boot. The refusal names the event that differs.
pub fn check_boot_image(
    events: &BootImageEvents,
    reference: &BootImageRef,
) -> Result<(), PolicyError> {
    match events.pcr4_applications.as_slice() {
        [kernel] if *kernel == reference.kernel_authenticode_sha256 => {}
        [kernel] => {
            return Err(refuse(format!(
                "PCR 4 kernel (EFI application) digest {} is not the reference {}",
                hex::encode(kernel),
                hex::encode(reference.kernel_authenticode_sha256)
            )));
        }
        apps => {
            return Err(refuse(format!(
                "PCR 4 has {} EFI application events, not exactly the kernel",
                apps.len()
            )));
        }
    }
    let [cmdline, initrd] = events.pcr9.as_slice() else {
        return Err(refuse(format!(
            "PCR 9 has {} events, not exactly the command line and the initrd",
            events.pcr9.len()
        )));
    };
    let expected = [
        (
            cmdline,
            TAG_LOAD_OPTIONS,
            "command line (LOADED_IMAGE::LoadOptions)",
            reference.load_options_sha256(),
        ),
        (
            initrd,
            TAG_INITRD,
            "initrd (Linux initrd)",
            reference.initrd_sha256,
        ),
    ];
    for (event, tag, what, digest) in expected {
        if event.tagged.as_ref().map(|t| t.tag) != Some(tag) {
            return Err(refuse(format!(
                "PCR 9 event {} is not the {what} tagged event {tag:#010x}",
                event.index
            )));
        }
        if event.sha256 != digest {
            return Err(refuse(format!(
                "PCR 9 {what} event digest {} is not the reference {}",
                hex::encode(event.sha256),
                hex::encode(digest)
            )));
        }
    }
    Ok(())
}

/// The first of `references` that `events` match. Without an event log the answer is
/// [`PolicyError::NoEventLog`]; when none matches, the refusal is the one for the entry whose
/// kernel matched (or the first entry).
pub fn match_boot_image<'a>(
    events: Option<&BootImageEvents>,
    references: &'a [BootImageRef],
) -> Result<&'a BootImageRef, PolicyError> {
    let events = events.ok_or(PolicyError::NoEventLog)?;
    let mut first_error = None;
    for reference in references {
        match check_boot_image(events, reference) {
            Ok(()) => return Ok(reference),
            Err(e) => {
                let kernel_matched =
                    events.pcr4_applications == [reference.kernel_authenticode_sha256];
                let better = match &first_error {
                    None => true,
                    Some((_, had_kernel)) => kernel_matched && !had_kernel,
                };
                if better {
                    first_error = Some((e, kernel_matched));
                }
            }
        }
    }
    Err(first_error.map_or_else(
        || refuse("the model lists no boot image".to_string()),
        |(e, _)| e,
    ))
}

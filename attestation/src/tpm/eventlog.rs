//! TCG PC Client crypto-agile event log: a bounded decoder of untrusted bytes, SHA-256 replay, and
//! the boot-image facts a VM's measured boot records (TCG PC Client Platform Firmware Profile
//! Specification, "PFP", version 1.05).
//!
//! The log is what Linux exposes at `/sys/kernel/security/tpm0/binary_bios_measurements`:
//!
//! 1. one event in the SHA-1 `TCG_PCClientPCREvent` format (PFP §10.2.1), `EV_NO_ACTION`, holding
//!    the `TCG_EfiSpecIDEvent` (PFP §10.4.5.1) with signature `"Spec ID Event03\0"`, which declares
//!    the digest algorithms and sizes every later event carries;
//! 2. then `TCG_PCR_EVENT2` records (PFP §10.2.2): `pcrIndex` u32, `eventType` u32,
//!    `TPML_DIGEST_VALUES` (count u32, then `(hashAlg u16, digest[size])` with the sizes from the
//!    Spec ID event), `eventSize` u32, `event[eventSize]`.
//!
//! Integers are little-endian (PFP §10.2, the event structures), unlike TPM marshalling. The decoder caps the total size, the event count and each event's size; requires
//! every record to carry exactly the declared algorithms; and refuses a short final record
//! (trailing bytes) by naming its offset. It never panics.
//!
//! Replay ([`EventLog::replay_sha256`]) extends each PCR from zero with the SHA-256 digests, skipping
//! `EV_NO_ACTION` events (PFP §10.4.1, Table 9: informational, never extended), with PCR 0 starting
//! at the locality a `StartupLocality` event names (PFP §10.4.5.3).

use std::collections::BTreeMap;

use serde::Serialize;
use sha2::{Digest, Sha256};

use super::constants::TPM_ALG_SHA256;

/// Largest log accepted (1 MiB; a VM boot log is a few KiB, a bare-metal one some tens).
pub const MAX_EVENT_LOG: usize = 1024 * 1024;
/// Most events accepted, the Spec ID event included.
pub const MAX_EVENTS: usize = 4096;
/// Largest `eventSize` accepted for one event.
pub const MAX_EVENT_DATA: usize = 64 * 1024;
/// Most digest algorithms a Spec ID event may declare (`HASH_COUNT`, TPM 2.0 Part 2 §10.9.7 allows
/// a handful; 16 is generous).
pub const MAX_ALGORITHMS: usize = 16;
/// Largest digest size a Spec ID event may declare (`TPMU_HA`, TPM 2.0 Part 2 §10.3.1).
pub const MAX_DIGEST_SIZE: usize = 64;
/// Highest PCR index of a PC Client platform (PFP §3.3.3, PCR usage: 24 PCRs, 0..=23).
pub const MAX_PCR_INDEX: u32 = 23;

// Event types (PFP §10.4.1, Table 9).
/// `EV_NO_ACTION`: informational, never extended.
pub const EV_NO_ACTION: u32 = 0x0000_0003;
/// `EV_SEPARATOR`.
pub const EV_SEPARATOR: u32 = 0x0000_0004;
/// `EV_EVENT_TAG`: a `TCG_PCClientTaggedEvent` (PFP §10.4.2.1).
pub const EV_EVENT_TAG: u32 = 0x0000_0006;
/// `EV_EFI_BOOT_SERVICES_APPLICATION`: the Authenticode digest of a loaded UEFI application.
pub const EV_EFI_BOOT_SERVICES_APPLICATION: u32 = 0x8000_0003;
/// `EV_EFI_ACTION`.
pub const EV_EFI_ACTION: u32 = 0x8000_0007;

/// Linux EFI stub tag for the image's load options (the kernel command line), data
/// `"LOADED_IMAGE::LoadOptions\0"`; digest SHA-256 of the UTF-16LE options with their NUL.
pub const TAG_LOAD_OPTIONS: u32 = 0x8F3B_22ED;
/// Linux EFI stub tag for the initrd, data `"Linux initrd\0"`; digest SHA-256 of the initrd.
pub const TAG_INITRD: u32 = 0x8F3B_22EC;

/// `TCG_EfiSpecIDEvent.signature` (PFP §10.4.5.1).
const SPEC_ID_SIGNATURE: &[u8; 16] = b"Spec ID Event03\0";
/// `TCG_EfiStartupLocalityEvent.Signature` (PFP §10.4.5.3).
const STARTUP_LOCALITY_SIGNATURE: &[u8; 16] = b"StartupLocality\0";
/// SHA-1 digest size of the first (`TCG_PCClientPCREvent`) record.
const SHA1_SIZE: usize = 20;

/// Why an event log was refused. Each parse error names the event number (0 is the Spec ID
/// event) and the byte offset where the offending record starts.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventLogError {
    #[error("the event log is {len} bytes, over the {MAX_EVENT_LOG}-byte limit")]
    TooLarge { len: usize },
    #[error("the event log is empty")]
    Empty,
    #[error("event {event} at offset {offset} is truncated ({what})")]
    Truncated {
        event: usize,
        offset: usize,
        what: &'static str,
    },
    #[error("the first event is not a valid Spec ID Event03: {reason}")]
    BadSpecId { reason: &'static str },
    #[error("more than {MAX_EVENTS} events (event {event} at offset {offset})")]
    TooManyEvents { event: usize, offset: usize },
    #[error("event {event} at offset {offset} has eventSize {size}, over the limit")]
    EventTooLarge {
        event: usize,
        offset: usize,
        size: u32,
    },
    #[error(
        "event {event} at offset {offset} carries {count} digests, not the {expected} declared"
    )]
    DigestCount {
        event: usize,
        offset: usize,
        count: u32,
        expected: usize,
    },
    #[error(
        "event {event} at offset {offset} carries algorithm {alg:#06x}, not declared (or twice)"
    )]
    UnexpectedAlgorithm {
        event: usize,
        offset: usize,
        alg: u16,
    },
    #[error("event {event} at offset {offset} names PCR {pcr}, above 23")]
    PcrIndex {
        event: usize,
        offset: usize,
        pcr: u32,
    },
    #[error("event {event} at offset {offset} is a malformed or misplaced StartupLocality event")]
    BadStartupLocality { event: usize, offset: usize },
    #[error("event {event} (PCR 9 EV_EVENT_TAG) is not a well-formed TCG_PCClientTaggedEvent")]
    BadTaggedEvent { event: usize },
    #[error("replaying the event log gives PCR {pcr} = {replayed}, but the quote has {quoted}")]
    PcrMismatch {
        pcr: u8,
        replayed: String,
        quoted: String,
    },
}

/// One `TCG_EfiSpecIDEvent` (PFP §10.4.5.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpecIdEvent {
    pub platform_class: u32,
    pub spec_version_minor: u8,
    pub spec_version_major: u8,
    pub spec_errata: u8,
    pub uintn_size: u8,
    /// `digestSizes[]`: `(algorithmId, digestSize)` in declared order.
    pub algorithms: Vec<(u16, u16)>,
    pub vendor_info: Vec<u8>,
}

/// One `TCG_PCR_EVENT2` record (PFP §10.2.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// Position in the log (the Spec ID event is 0, so the first record is 1).
    pub index: usize,
    pub pcr: u8,
    pub event_type: u32,
    /// `(hashAlg, digest)` in the order the record carries them.
    pub digests: Vec<(u16, Vec<u8>)>,
    /// The event data (`event[eventSize]`).
    pub data: Vec<u8>,
}

impl Event {
    /// The SHA-256 digest, if the record carries one.
    pub fn sha256(&self) -> Option<[u8; 32]> {
        self.digests
            .iter()
            .find(|(alg, _)| *alg == TPM_ALG_SHA256)
            .and_then(|(_, d)| <[u8; 32]>::try_from(d.as_slice()).ok())
    }
}

/// A parsed event log. Only [`EventLog::parse`] makes one; it always declares SHA-256.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventLog {
    spec_id: SpecIdEvent,
    events: Vec<Event>,
    startup_locality: Option<u8>,
}

/// Little-endian cursor over the log, with the absolute offset for errors.
struct Le<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Le<'a> {
    fn take(
        &mut self,
        n: usize,
        event: usize,
        start: usize,
        what: &'static str,
    ) -> Result<&'a [u8], EventLogError> {
        let end = self.pos.checked_add(n).filter(|e| *e <= self.bytes.len());
        let Some(end) = end else {
            return Err(EventLogError::Truncated {
                event,
                offset: start,
                what,
            });
        };
        let out = self
            .bytes
            .get(self.pos..end)
            .ok_or(EventLogError::Truncated {
                event,
                offset: start,
                what,
            })?;
        self.pos = end;
        Ok(out)
    }

    fn u32(
        &mut self,
        event: usize,
        start: usize,
        what: &'static str,
    ) -> Result<u32, EventLogError> {
        let b = self.take(4, event, start, what)?;
        let mut a = [0u8; 4];
        a.copy_from_slice(b);
        Ok(u32::from_le_bytes(a))
    }

    fn u16(
        &mut self,
        event: usize,
        start: usize,
        what: &'static str,
    ) -> Result<u16, EventLogError> {
        let b = self.take(2, event, start, what)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }

    fn u8(&mut self, event: usize, start: usize, what: &'static str) -> Result<u8, EventLogError> {
        Ok(self.take(1, event, start, what)?[0])
    }

    fn at_end(&self) -> bool {
        self.pos >= self.bytes.len()
    }
}

impl EventLog {
    /// Decodes a crypto-agile event log. See the module documentation for what is checked.
    pub fn parse(bytes: &[u8]) -> Result<EventLog, EventLogError> {
        if bytes.len() > MAX_EVENT_LOG {
            return Err(EventLogError::TooLarge { len: bytes.len() });
        }
        if bytes.is_empty() {
            return Err(EventLogError::Empty);
        }
        let mut r = Le { bytes, pos: 0 };
        let spec_id = parse_spec_id(&mut r)?;

        let mut events = Vec::new();
        let mut startup_locality = None;
        let mut pcr0_extended = false;
        let mut index = 1;
        while !r.at_end() {
            let start = r.pos;
            if index >= MAX_EVENTS {
                return Err(EventLogError::TooManyEvents {
                    event: index,
                    offset: start,
                });
            }
            let event = parse_event2(&mut r, &spec_id, index, start)?;
            if event.event_type == EV_NO_ACTION
                && event.data.starts_with(STARTUP_LOCALITY_SIGNATURE)
            {
                // PFP §10.4.5.3: PCR 0, before anything is extended into PCR 0, at most once,
                // signature then one byte of locality.
                let ok = event.pcr == 0
                    && !pcr0_extended
                    && startup_locality.is_none()
                    && event.data.len() == STARTUP_LOCALITY_SIGNATURE.len() + 1;
                if !ok {
                    return Err(EventLogError::BadStartupLocality {
                        event: index,
                        offset: start,
                    });
                }
                startup_locality = event.data.last().copied();
            }
            if event.pcr == 0 && event.event_type != EV_NO_ACTION {
                pcr0_extended = true;
            }
            events.push(event);
            index += 1;
        }
        Ok(EventLog {
            spec_id,
            events,
            startup_locality,
        })
    }

    /// The Spec ID event.
    pub fn spec_id(&self) -> &SpecIdEvent {
        &self.spec_id
    }

    /// The `TCG_PCR_EVENT2` records, in log order (the Spec ID event is not among them).
    pub fn events(&self) -> &[Event] {
        &self.events
    }

    /// The locality a `StartupLocality` event names, if the log has one.
    pub fn startup_locality(&self) -> Option<u8> {
        self.startup_locality
    }

    /// The SHA-256 bank as the log says it should be: each PCR that has at least one extended
    /// event, extended from its reset value (all zeros; PCR 0 ends in the startup locality).
    /// `EV_NO_ACTION` events are skipped.
    pub fn replay_sha256(&self) -> BTreeMap<u8, [u8; 32]> {
        let mut pcrs: BTreeMap<u8, [u8; 32]> = BTreeMap::new();
        for e in &self.events {
            if e.event_type == EV_NO_ACTION {
                continue;
            }
            // parse() guarantees every record carries a 32-byte SHA-256 digest.
            let Some(digest) = e.sha256() else { continue };
            let pcr = pcrs.entry(e.pcr).or_insert_with(|| self.reset_value(e.pcr));
            let mut h = Sha256::new();
            h.update(*pcr);
            h.update(digest);
            pcr.copy_from_slice(&h.finalize());
        }
        pcrs
    }

    fn reset_value(&self, pcr: u8) -> [u8; 32] {
        let mut v = [0u8; 32];
        if pcr == 0 {
            v[31] = self.startup_locality.unwrap_or(0);
        }
        v
    }

    /// Refuses unless every quoted PCR equals its replayed value; a quoted PCR the log never
    /// extends must hold its reset value (zeros). The error names the first PCR that differs.
    pub fn replay_matches(&self, quoted: &BTreeMap<u8, [u8; 32]>) -> Result<(), EventLogError> {
        let replayed = self.replay_sha256();
        for (pcr, value) in quoted {
            let expected = replayed
                .get(pcr)
                .copied()
                .unwrap_or_else(|| self.reset_value(*pcr));
            if expected != *value {
                return Err(EventLogError::PcrMismatch {
                    pcr: *pcr,
                    replayed: hex::encode(expected),
                    quoted: hex::encode(value),
                });
            }
        }
        Ok(())
    }

    /// The SHA-256 digests of the PCR 4 `EV_EFI_BOOT_SERVICES_APPLICATION` events, in order:
    /// the Authenticode digests of the UEFI applications the firmware started (for a direct
    /// kernel boot, the kernel).
    pub fn pcr4_applications(&self) -> Vec<[u8; 32]> {
        self.events
            .iter()
            .filter(|e| e.pcr == 4 && e.event_type == EV_EFI_BOOT_SERVICES_APPLICATION)
            .filter_map(Event::sha256)
            .collect()
    }

    /// Every PCR 9 event in order, `EV_EVENT_TAG` ones decoded as `TCG_PCClientTaggedEvent`
    /// (PFP §10.4.2.1: `taggedEventID` u32, `taggedEventDataSize` u32, data, nothing after).
    pub fn pcr9_events(&self) -> Result<Vec<Pcr9Event>, EventLogError> {
        self.events
            .iter()
            .filter(|e| e.pcr == 9)
            .map(|e| {
                let tagged = if e.event_type == EV_EVENT_TAG {
                    Some(
                        parse_tagged(&e.data)
                            .ok_or(EventLogError::BadTaggedEvent { event: e.index })?,
                    )
                } else {
                    None
                };
                Ok(Pcr9Event {
                    index: e.index,
                    event_type: e.event_type,
                    sha256: e.sha256().unwrap_or([0; 32]),
                    tagged,
                })
            })
            .collect()
    }

    /// The boot-image facts: PCR 4 application digests and the PCR 9 events.
    pub fn boot_image(&self) -> Result<BootImageEvents, EventLogError> {
        Ok(BootImageEvents {
            pcr4_applications: self.pcr4_applications(),
            pcr9: self.pcr9_events()?,
        })
    }
}

/// A `TCG_PCClientTaggedEvent` (PFP §10.4.2.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaggedEvent {
    pub tag: u32,
    pub data: Vec<u8>,
}

/// One PCR 9 event (where the Linux EFI stub measures the command line and the initrd).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pcr9Event {
    /// Position in the log.
    pub index: usize,
    pub event_type: u32,
    pub sha256: [u8; 32],
    /// The decoded tagged event, for `EV_EVENT_TAG`.
    pub tagged: Option<TaggedEvent>,
}

/// What a replayed event log says about the VM's boot image (kernel, command line, initrd).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootImageEvents {
    /// PCR 4 `EV_EFI_BOOT_SERVICES_APPLICATION` SHA-256 digests, in order.
    pub pcr4_applications: Vec<[u8; 32]>,
    /// Every PCR 9 event, in order.
    pub pcr9: Vec<Pcr9Event>,
}

impl BootImageEvents {
    /// The digest of the first PCR 9 event tagged [`TAG_LOAD_OPTIONS`].
    pub fn load_options_sha256(&self) -> Option<[u8; 32]> {
        self.tagged_digest(TAG_LOAD_OPTIONS)
    }

    /// The digest of the first PCR 9 event tagged [`TAG_INITRD`].
    pub fn initrd_sha256(&self) -> Option<[u8; 32]> {
        self.tagged_digest(TAG_INITRD)
    }

    fn tagged_digest(&self, tag: u32) -> Option<[u8; 32]> {
        self.pcr9
            .iter()
            .find(|e| e.tagged.as_ref().is_some_and(|t| t.tag == tag))
            .map(|e| e.sha256)
    }

    /// Printable, serialisable form.
    pub fn claims(&self) -> BootImageClaims {
        BootImageClaims {
            pcr4_applications: self.pcr4_applications.iter().map(hex::encode).collect(),
            load_options_sha256: self.load_options_sha256().map(hex::encode),
            initrd_sha256: self.initrd_sha256().map(hex::encode),
        }
    }
}

/// Boot-image facts from a replayed event log, as printed and carried in claims.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BootImageClaims {
    /// PCR 4 application (kernel) Authenticode SHA-256 digests, hex, in order.
    pub pcr4_applications: Vec<String>,
    /// PCR 9 `LOADED_IMAGE::LoadOptions` digest: SHA-256 of the UTF-16LE command line with NUL.
    pub load_options_sha256: Option<String>,
    /// PCR 9 `Linux initrd` digest: SHA-256 of the initrd.
    pub initrd_sha256: Option<String>,
}

/// SHA-256 of `text` + NUL as UTF-16LE: the digest the Linux EFI stub logs for its load options.
pub fn load_options_digest(text: &str) -> [u8; 32] {
    let mut h = Sha256::new();
    for unit in text.encode_utf16().chain(std::iter::once(0)) {
        h.update(unit.to_le_bytes());
    }
    h.finalize().into()
}

fn parse_tagged(data: &[u8]) -> Option<TaggedEvent> {
    let tag = u32::from_le_bytes(data.get(0..4)?.try_into().ok()?);
    let size = u32::from_le_bytes(data.get(4..8)?.try_into().ok()?);
    let size = usize::try_from(size).ok()?;
    let rest = data.get(8..)?;
    (rest.len() == size).then(|| TaggedEvent {
        tag,
        data: rest.to_vec(),
    })
}

/// The first record: `TCG_PCClientPCREvent` (PFP §10.2.1) with a `TCG_EfiSpecIDEvent`
/// (PFP §10.4.5.1).
fn parse_spec_id(r: &mut Le<'_>) -> Result<SpecIdEvent, EventLogError> {
    let bad = |reason| EventLogError::BadSpecId { reason };
    let pcr = r.u32(0, 0, "pcrIndex")?;
    let event_type = r.u32(0, 0, "eventType")?;
    let digest = r.take(SHA1_SIZE, 0, 0, "digest")?;
    let size = r.u32(0, 0, "eventDataSize")?;
    if pcr != 0 || event_type != EV_NO_ACTION {
        return Err(bad("not an EV_NO_ACTION event in PCR 0"));
    }
    if digest.iter().any(|b| *b != 0) {
        return Err(bad("its SHA-1 digest is not zero"));
    }
    let size = usize::try_from(size)
        .ok()
        .filter(|s| *s <= MAX_EVENT_DATA)
        .ok_or(EventLogError::EventTooLarge {
            event: 0,
            offset: 0,
            size,
        })?;
    let data = r.take(size, 0, 0, "event data")?;
    let mut d = Le {
        bytes: data,
        pos: 0,
    };
    let trunc = |_| bad("its event data is truncated");
    let signature = d.take(16, 0, 0, "signature").map_err(trunc)?;
    if signature != SPEC_ID_SIGNATURE {
        return Err(bad("signature is not \"Spec ID Event03\""));
    }
    let platform_class = d.u32(0, 0, "platformClass").map_err(trunc)?;
    let spec_version_minor = d.u8(0, 0, "specVersionMinor").map_err(trunc)?;
    let spec_version_major = d.u8(0, 0, "specVersionMajor").map_err(trunc)?;
    let spec_errata = d.u8(0, 0, "specErrata").map_err(trunc)?;
    let uintn_size = d.u8(0, 0, "uintnSize").map_err(trunc)?;
    if spec_version_major != 2 {
        return Err(bad("specVersionMajor is not 2"));
    }
    if uintn_size != 1 && uintn_size != 2 {
        return Err(bad("uintnSize is not 1 or 2"));
    }
    let count = d.u32(0, 0, "numberOfAlgorithms").map_err(trunc)?;
    let count = usize::try_from(count)
        .ok()
        .filter(|c| (1..=MAX_ALGORITHMS).contains(c))
        .ok_or(bad("numberOfAlgorithms is 0 or too large"))?;
    let mut algorithms: Vec<(u16, u16)> = Vec::with_capacity(count);
    for _ in 0..count {
        let alg = d.u16(0, 0, "algorithmId").map_err(trunc)?;
        let size = d.u16(0, 0, "digestSize").map_err(trunc)?;
        if size == 0 || usize::from(size) > MAX_DIGEST_SIZE {
            return Err(bad("a digestSize is 0 or over 64"));
        }
        if algorithms.iter().any(|(a, _)| *a == alg) {
            return Err(bad("an algorithm is declared twice"));
        }
        if alg == TPM_ALG_SHA256 && size != 32 {
            return Err(bad("SHA-256 is declared with a size other than 32"));
        }
        algorithms.push((alg, size));
    }
    if !algorithms.iter().any(|(a, _)| *a == TPM_ALG_SHA256) {
        return Err(bad("no SHA-256 bank is declared"));
    }
    let vendor_size = d.u8(0, 0, "vendorInfoSize").map_err(trunc)?;
    let vendor_info = d
        .take(usize::from(vendor_size), 0, 0, "vendorInfo")
        .map_err(trunc)?
        .to_vec();
    if !d.at_end() {
        return Err(bad("bytes follow vendorInfo"));
    }
    Ok(SpecIdEvent {
        platform_class,
        spec_version_minor,
        spec_version_major,
        spec_errata,
        uintn_size,
        algorithms,
        vendor_info,
    })
}

/// One `TCG_PCR_EVENT2` (PFP §10.2.2) starting at `start`.
fn parse_event2(
    r: &mut Le<'_>,
    spec: &SpecIdEvent,
    index: usize,
    start: usize,
) -> Result<Event, EventLogError> {
    let pcr = r.u32(index, start, "pcrIndex")?;
    let event_type = r.u32(index, start, "eventType")?;
    if pcr > MAX_PCR_INDEX {
        return Err(EventLogError::PcrIndex {
            event: index,
            offset: start,
            pcr,
        });
    }
    let count = r.u32(index, start, "TPML_DIGEST_VALUES.count")?;
    if usize::try_from(count).ok() != Some(spec.algorithms.len()) {
        return Err(EventLogError::DigestCount {
            event: index,
            offset: start,
            count,
            expected: spec.algorithms.len(),
        });
    }
    let mut digests: Vec<(u16, Vec<u8>)> = Vec::with_capacity(spec.algorithms.len());
    for _ in 0..spec.algorithms.len() {
        let alg = r.u16(index, start, "hashAlg")?;
        let size = spec
            .algorithms
            .iter()
            .find(|(a, _)| *a == alg)
            .map(|(_, s)| usize::from(*s))
            .filter(|_| digests.iter().all(|(a, _)| *a != alg))
            .ok_or(EventLogError::UnexpectedAlgorithm {
                event: index,
                offset: start,
                alg,
            })?;
        digests.push((alg, r.take(size, index, start, "digest")?.to_vec()));
    }
    let size = r.u32(index, start, "eventSize")?;
    let len = usize::try_from(size)
        .ok()
        .filter(|s| *s <= MAX_EVENT_DATA)
        .ok_or(EventLogError::EventTooLarge {
            event: index,
            offset: start,
            size,
        })?;
    let data = r.take(len, index, start, "event data")?.to_vec();
    Ok(Event {
        index,
        pcr: u8::try_from(pcr).map_err(|_| EventLogError::PcrIndex {
            event: index,
            offset: start,
            pcr,
        })?,
        event_type,
        digests,
        data,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn load_options_digest_is_utf16le_with_nul() {
        assert_eq!(
            hex::encode(load_options_digest("console=ttyS0 quiet initrd=initrd")),
            "6791447f65301cd17d9cda83bad8f4aa38f69a3257c2ba8315262e9325c78e6d"
        );
    }

    #[test]
    fn tagged_event_must_be_exact() {
        let mut d = TAG_INITRD.to_le_bytes().to_vec();
        d.extend(2u32.to_le_bytes());
        d.extend([1, 2]);
        assert_eq!(parse_tagged(&d).map(|t| t.tag), Some(TAG_INITRD));
        d.push(0);
        assert_eq!(parse_tagged(&d), None);
        assert_eq!(parse_tagged(&d[..7]), None);
    }
}

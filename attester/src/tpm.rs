//! TPM 2.0 quotes through `tss-esapi` (any TCTI: `swtpm:host=…,port=…`, `device:/dev/tpmrm0`).
//!
//! The attestation key is created under the TCG default RSA endorsement key (EK Credential Profile
//! template L-1), exactly as `tpm2_createak` does it: a restricted, fixedTPM signing key
//! (ECDSA P-256/SHA-256 by default, RSASSA-2048/SHA-256 on request). Its public and private
//! blobs can be kept ([`AkBlob`]) and loaded again later so the enrolled key stays the same.
//!
//! The quote's `TPMS_ATTEST` and `TPMT_SIGNATURE` are returned marshalled. `tss-esapi` 7 hands the
//! TPM's response back as parsed structures, so the bytes are libtss2-mu's marshalling of what the
//! TPM returned; for a well-formed response that is byte-for-byte what the TPM signed, and if it
//! ever were not, the signature check in the verifier would fail (closed, never open).

use std::collections::BTreeMap;
use std::convert::TryFrom;
use std::str::FromStr;

use confidant_attestation::evidence::TpmEvidence;
use confidant_attestation::tpm::{TpmsAttest, TpmtPublic};
use tss_esapi::Context;
use tss_esapi::abstraction::{AsymmetricAlgorithmSelection, ak, ek};
use tss_esapi::attributes::SessionAttributesBuilder;
use tss_esapi::constants::SessionType;
use tss_esapi::handles::{AuthHandle, KeyHandle, ObjectHandle, PcrHandle, SessionHandle};
use tss_esapi::interface_types::algorithm::{
    AsymmetricAlgorithm, HashingAlgorithm, SignatureSchemeAlgorithm,
};
use tss_esapi::interface_types::key_bits::RsaKeyBits;
use tss_esapi::interface_types::session_handles::{AuthSession, PolicySession};
use tss_esapi::structures::{
    Data, Digest, DigestValues, EncryptedSecret, IdObject, PcrSelectionList, PcrSlot, Private,
    Public, SignatureScheme, SymmetricDefinition,
};
use tss_esapi::tcti_ldr::TctiNameConf;
use tss_esapi::traits::{Marshall, UnMarshall};
use zeroize::Zeroizing;

use crate::error::AttesterError;

/// Highest PCR index accepted (PC-client TPMs implement PCRs 0..=23).
const MAX_PCR: u8 = 23;
/// Attempts at a quote whose PCRs match the values read just before.
const QUOTE_ATTEMPTS: u32 = 3;

/// The attestation key's algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AkAlgorithm {
    /// ECC NIST P-256, ECDSA with SHA-256.
    #[default]
    EccP256,
    /// RSA 2048, RSASSA-PKCS1-v1_5 with SHA-256.
    Rsa2048,
}

/// An attestation key's blobs as `TPM2_Create` returned them: the marshalled `TPMT_PUBLIC` and the
/// `TPM2B_PRIVATE` buffer (encrypted by the TPM under the EK; useless elsewhere).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AkBlob {
    pub public: Vec<u8>,
    pub private: Vec<u8>,
}

/// The TPM's RSA-2048 endorsement key (TCG default template L-1) and its certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EkCertificate {
    /// The EK certificate, DER, as stored in NV index `0x01c00002` (untrusted until a verifier
    /// chains it to an EK CA).
    pub certificate: Vec<u8>,
    /// The EK's marshalled `TPMT_PUBLIC`, as `TPM2_CreatePrimary` returned it.
    pub public: Vec<u8>,
}

/// A connection to a TPM with a loaded attestation key.
pub struct TpmAttester {
    ctx: Context,
    ak: KeyHandle,
    blob: AkBlob,
}

impl std::fmt::Debug for TpmAttester {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TpmAttester")
            .field("ak_public", &hex::encode(&self.blob.public))
            .finish_non_exhaustive()
    }
}

fn tpm(op: &'static str) -> impl FnOnce(tss_esapi::Error) -> AttesterError {
    move |source| AttesterError::Tpm { op, source }
}

impl TpmAttester {
    /// Connects and creates a fresh ECC P-256 attestation key.
    pub fn connect(tcti: &str) -> Result<Self, AttesterError> {
        Self::create(tcti, AkAlgorithm::EccP256)
    }

    /// Connects and creates a fresh attestation key of the given algorithm.
    pub fn create(tcti: &str, alg: AkAlgorithm) -> Result<Self, AttesterError> {
        let mut ctx = open(tcti)?;
        let ek = ek::create_ek_object(&mut ctx, AsymmetricAlgorithm::Rsa, None)
            .map_err(tpm("CreatePrimary(EK)"))?;
        let (sign_alg, hash) = match alg {
            AkAlgorithm::EccP256 => (SignatureSchemeAlgorithm::EcDsa, HashingAlgorithm::Sha256),
            AkAlgorithm::Rsa2048 => (SignatureSchemeAlgorithm::RsaSsa, HashingAlgorithm::Sha256),
        };
        let created =
            ak::create_ak(&mut ctx, ek, hash, sign_alg, None, None).map_err(tpm("Create(AK)"))?;
        let blob = AkBlob {
            public: created.out_public.marshall().map_err(tpm("marshal AK"))?,
            private: created.out_private.value().to_vec(),
        };
        let ak = ak::load_ak(&mut ctx, ek, None, created.out_private, created.out_public)
            .map_err(tpm("Load(AK)"))?;
        ctx.flush_context(ek.into())
            .map_err(tpm("FlushContext(EK)"))?;
        Ok(TpmAttester { ctx, ak, blob })
    }

    /// Connects and loads an attestation key created earlier on the same TPM.
    pub fn load(tcti: &str, blob: &AkBlob) -> Result<Self, AttesterError> {
        let mut ctx = open(tcti)?;
        let public = Public::unmarshall(&blob.public).map_err(tpm("unmarshal AK"))?;
        let private = Private::try_from(blob.private.clone()).map_err(tpm("AK private blob"))?;
        let ek = ek::create_ek_object(&mut ctx, AsymmetricAlgorithm::Rsa, None)
            .map_err(tpm("CreatePrimary(EK)"))?;
        let ak = ak::load_ak(&mut ctx, ek, None, private, public).map_err(tpm("Load(AK)"))?;
        ctx.flush_context(ek.into())
            .map_err(tpm("FlushContext(EK)"))?;
        Ok(TpmAttester {
            ctx,
            ak,
            blob: blob.clone(),
        })
    }

    /// The AK's blobs, to [`Self::load`] it again.
    pub fn ak_blob(&self) -> &AkBlob {
        &self.blob
    }

    /// The AK's marshalled `TPMT_PUBLIC` (what [`TpmEvidence::ak_public`] carries).
    pub fn ak_public_tpmt(&self) -> Vec<u8> {
        self.blob.public.clone()
    }

    /// The AK's DER SubjectPublicKeyInfo (what a verifier enrolls).
    pub fn ak_spki_der(&self) -> Result<Vec<u8>, AttesterError> {
        Ok(TpmtPublic::parse(&self.blob.public)?.spki_der())
    }

    /// Reads the RSA-2048 EK certificate from NV index `0x01c00002` and the EK's `TPMT_PUBLIC`
    /// (recreated from the default template, so it is the key the certificate certifies).
    pub fn ek_certificate(&mut self) -> Result<EkCertificate, AttesterError> {
        let certificate = ek::retrieve_ek_pubcert(
            &mut self.ctx,
            AsymmetricAlgorithmSelection::Rsa(RsaKeyBits::Rsa2048),
        )
        .map_err(tpm("NV_Read(EK certificate)"))?;
        let ek = ek::create_ek_object(&mut self.ctx, AsymmetricAlgorithm::Rsa, None)
            .map_err(tpm("CreatePrimary(EK)"))?;
        let public = self
            .ctx
            .execute_without_session(|ctx| ctx.read_public(ek))
            .map_err(tpm("ReadPublic(EK)"));
        let flushed = self
            .ctx
            .flush_context(ek.into())
            .map_err(tpm("FlushContext(EK)"));
        let (public, _, _) = public?;
        flushed?;
        Ok(EkCertificate {
            certificate,
            public: public.marshall().map_err(tpm("marshal EK"))?,
        })
    }

    /// `TPM2_ActivateCredential` with this AK as `activateHandle` and the default RSA EK as
    /// `keyHandle`: recovers the secret a verifier wrapped with
    /// `confidant_attestation::tpm::credential::make_credential` for this AK's name. The TPM
    /// refuses (an error, never a wrong secret) if the credential was made for another key or
    /// EK, or was altered.
    ///
    /// `credential_blob` is the marshalled `TPM2B_ID_OBJECT` and `encrypted_secret` the
    /// `TPM2B_ENCRYPTED_SECRET`, both with their 16-bit size. The EK's authPolicy (template L-1)
    /// is `PolicySecret(TPM_RH_ENDORSEMENT)`, satisfied here with the endorsement hierarchy's
    /// empty auth, as `tpm2_activatecredential` does for the default EK.
    pub fn activate_credential(
        &mut self,
        credential_blob: &[u8],
        encrypted_secret: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, AttesterError> {
        let blob = IdObject::try_from(tpm2b_contents(credential_blob, "TPM2B_ID_OBJECT")?.to_vec())
            .map_err(tpm("credential blob"))?;
        let secret = EncryptedSecret::try_from(
            tpm2b_contents(encrypted_secret, "TPM2B_ENCRYPTED_SECRET")?.to_vec(),
        )
        .map_err(tpm("encrypted secret"))?;
        let ek = ek::create_ek_object(&mut self.ctx, AsymmetricAlgorithm::Rsa, None)
            .map_err(tpm("CreatePrimary(EK)"))?;
        let result = self.activate_with_ek(ek, blob, secret);
        let flushed = self
            .ctx
            .flush_context(ek.into())
            .map_err(tpm("FlushContext(EK)"));
        let digest = result?;
        flushed?;
        Ok(Zeroizing::new(digest.value().to_vec()))
    }

    fn activate_with_ek(
        &mut self,
        ek: KeyHandle,
        blob: IdObject,
        secret: EncryptedSecret,
    ) -> Result<Digest, AttesterError> {
        let policy = self
            .ctx
            .start_auth_session(
                None,
                None,
                None,
                SessionType::Policy,
                SymmetricDefinition::AES_128_CFB,
                HashingAlgorithm::Sha256,
            )
            .map_err(tpm("StartAuthSession(policy)"))?
            .ok_or(AttesterError::Crypto("no policy session"))?;
        let (attributes, mask) = SessionAttributesBuilder::new().build();
        let result = (|| {
            self.ctx
                .tr_sess_set_attributes(policy, attributes, mask)
                .map_err(tpm("TRSess_SetAttributes"))?;
            let policy_session = PolicySession::try_from(policy).map_err(tpm("policy session"))?;
            self.ctx
                .execute_with_session(Some(AuthSession::Password), |ctx| {
                    ctx.policy_secret(
                        policy_session,
                        AuthHandle::Endorsement,
                        Default::default(),
                        Default::default(),
                        Default::default(),
                        None,
                    )
                })
                .map_err(tpm("PolicySecret(endorsement)"))?;
            let ak = self.ak;
            self.ctx
                .execute_with_sessions((Some(AuthSession::Password), Some(policy), None), |ctx| {
                    ctx.activate_credential(ak, ek, blob, secret)
                })
                .map_err(tpm("ActivateCredential"))
        })();
        // A policy session is flushed by the TPM once used successfully; flush it on failure.
        if result.is_err() {
            let _ = self
                .ctx
                .flush_context(ObjectHandle::from(SessionHandle::from(policy)));
        }
        result
    }

    /// Measures `data` into a PCR: extends the SHA-256 bank with SHA-256(`data`).
    pub fn extend_pcr(&mut self, index: u8, data: &[u8]) -> Result<(), AttesterError> {
        let handle = pcr_handle(index)?;
        let digest = ring::digest::digest(&ring::digest::SHA256, data);
        let mut values = DigestValues::new();
        values.set(
            HashingAlgorithm::Sha256,
            Digest::try_from(digest.as_ref()).map_err(tpm("digest"))?,
        );
        self.ctx
            .execute_with_nullauth_session(|ctx| ctx.pcr_extend(handle, values))
            .map_err(tpm("PCR_Extend"))
    }

    /// Reads SHA-256 PCR values.
    pub fn read_pcrs(&mut self, pcrs: &[u8]) -> Result<BTreeMap<u8, [u8; 32]>, AttesterError> {
        let mut out = BTreeMap::new();
        for &index in pcrs {
            let selection = selection(&[index])?;
            let (_, _, digests) = self
                .ctx
                .execute_without_session(|ctx| ctx.pcr_read(selection))
                .map_err(tpm("PCR_Read"))?;
            let value: [u8; 32] = digests
                .value()
                .first()
                .and_then(|d| d.value().try_into().ok())
                .ok_or(AttesterError::InvalidPcr(index))?;
            out.insert(index, value);
        }
        Ok(out)
    }

    /// Quotes the SHA-256 values of `pcrs` with `qualifying_data` as `extraData`, and returns
    /// the evidence with the PCR values the quote covers.
    pub fn quote(
        &mut self,
        qualifying_data: &[u8],
        pcrs: &[u8],
    ) -> Result<TpmEvidence, AttesterError> {
        if qualifying_data.len() > 64 {
            return Err(AttesterError::QualifyingDataTooLong(qualifying_data.len()));
        }
        let data = Data::try_from(qualifying_data.to_vec()).map_err(tpm("qualifying data"))?;
        for _ in 0..QUOTE_ATTEMPTS {
            let values = self.read_pcrs(pcrs)?;
            let selection = selection(pcrs)?;
            let ak = self.ak;
            let data = data.clone();
            let (attest, signature) = self
                .ctx
                .execute_with_nullauth_session(|ctx| {
                    ctx.quote(ak, data, SignatureScheme::Null, selection)
                })
                .map_err(tpm("Quote"))?;
            let quote = attest.marshall().map_err(tpm("marshal TPMS_ATTEST"))?;
            let signature = signature
                .marshall()
                .map_err(tpm("marshal TPMT_SIGNATURE"))?;
            // The values read must be the ones quoted (a PCR may be extended in between).
            let parsed = TpmsAttest::parse_quote(&quote)?;
            let concat: Vec<u8> = values.values().flatten().copied().collect();
            let digest = ring::digest::digest(&ring::digest::SHA256, &concat);
            if digest.as_ref() != parsed.quote.pcr_digest.as_slice() {
                continue;
            }
            return Ok(TpmEvidence {
                quote,
                signature,
                ak_public: self.blob.public.clone(),
                pcrs: values
                    .into_iter()
                    .map(|(i, v)| (i, serde_bytes::ByteBuf::from(v.to_vec())))
                    .collect(),
                event_log: None,
            });
        }
        Err(AttesterError::PcrsUnstable(QUOTE_ATTEMPTS))
    }
}

/// The contents of a marshalled `TPM2B_*` (16-bit size, then exactly that many bytes).
fn tpm2b_contents<'a>(bytes: &'a [u8], what: &'static str) -> Result<&'a [u8], AttesterError> {
    use confidant_attestation::tpm::TpmError;
    let (size, rest) = bytes
        .split_first_chunk::<2>()
        .ok_or(TpmError::Truncated { what })?;
    if usize::from(u16::from_be_bytes(*size)) != rest.len() {
        return Err(TpmError::Malformed { what }.into());
    }
    Ok(rest)
}

fn open(tcti: &str) -> Result<Context, AttesterError> {
    let conf =
        TctiNameConf::from_str(tcti).map_err(|_| AttesterError::InvalidTcti(tcti.to_string()))?;
    Context::new(conf).map_err(tpm("connect"))
}

fn pcr_handle(index: u8) -> Result<PcrHandle, AttesterError> {
    if index > MAX_PCR {
        return Err(AttesterError::InvalidPcr(index));
    }
    PcrHandle::try_from(u32::from(index)).map_err(|_| AttesterError::InvalidPcr(index))
}

fn selection(pcrs: &[u8]) -> Result<PcrSelectionList, AttesterError> {
    let mut slots = Vec::with_capacity(pcrs.len());
    for &index in pcrs {
        if index > MAX_PCR {
            return Err(AttesterError::InvalidPcr(index));
        }
        slots.push(PcrSlot::try_from(1u32 << index).map_err(|_| AttesterError::InvalidPcr(index))?);
    }
    PcrSelectionList::builder()
        .with_selection(HashingAlgorithm::Sha256, &slots)
        .build()
        .map_err(tpm("PCR selection"))
}

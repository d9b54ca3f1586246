//! Evidence producers, one per TEE, behind one type chosen by configuration.
//!
//! All calls block (device ioctls, TPM commands, signing): call them from a blocking thread.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::mpsc;

use confidant_attestation::binding::Binding;
use confidant_attestation::evidence::{Evidence, TpmEvidence};
use confidant_attester::error::AttesterError;
use confidant_attester::snp_device::DeviceSnp;
use confidant_attester::snp_sim::SimulatedSnp;
use confidant_attester::tpm::{AkBlob, TpmAttester};
use zeroize::Zeroizing;

use crate::config::{AkTrust, TeeConfig};

/// Why evidence could not be produced.
#[derive(Debug, thiserror::Error)]
pub enum TeeError {
    #[error("attester: {0}")]
    Attester(#[from] AttesterError),
    #[error("reading {path}: {source}")]
    Io {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("the TPM worker thread is gone")]
    WorkerGone,
    #[error("credential activation needs a TPM")]
    NotTpm,
}

/// A configured evidence producer.
#[derive(Debug)]
pub enum Tee {
    /// Simulated SEV-SNP; the launch measurement is the SHA-384 of the running executable.
    Sim {
        sim: Box<SimulatedSnp>,
        measurement: [u8; 48],
    },
    /// SEV-SNP hardware.
    Snp(DeviceSnp),
    /// TPM 2.0 (its ESAPI context is not `Send`, so it lives on its own thread).
    Tpm(TpmWorker),
}

impl Tee {
    /// Opens the TEE named by the configuration.
    pub fn open(config: &TeeConfig) -> Result<Self, TeeError> {
        match config {
            TeeConfig::Sim { dev_pki } => {
                let sim = SimulatedSnp::from_dir(dev_pki)?;
                let measurement = executable_measurement()?;
                tracing::warn!(
                    measurement = %hex::encode(measurement),
                    "SIMULATED SEV-SNP attester (development only): launch measurement is the \
                     SHA-384 of this executable"
                );
                Ok(Tee::Sim {
                    sim: Box::new(sim),
                    measurement,
                })
            }
            TeeConfig::Snp { vmpl, signer_cert } => {
                let mut dev = DeviceSnp::open()?.with_vmpl(*vmpl);
                if let Some(path) = signer_cert {
                    dev = dev.with_signer_cert(read(path)?);
                }
                Ok(Tee::Snp(dev))
            }
            TeeConfig::Tpm {
                tcti,
                pcrs,
                ak_dir,
                event_log,
                ak_trust,
            } => Ok(Tee::Tpm(TpmWorker::start(
                tcti.clone(),
                pcrs.clone(),
                ak_dir,
                event_log.clone(),
                *ak_trust,
            )?)),
        }
    }

    /// The simulated TEE's launch measurement; `None` on hardware (the hardware computes it).
    pub fn sim_measurement(&self) -> Option<&[u8; 48]> {
        match self {
            Tee::Sim { measurement, .. } => Some(measurement),
            _ => None,
        }
    }

    /// Short name for logs and metrics.
    pub fn name(&self) -> &'static str {
        match self {
            Tee::Sim { .. } => "sim",
            Tee::Snp(_) => "snp",
            Tee::Tpm(_) => "tpm",
        }
    }

    /// Evidence carrying `binding` (SNP `report_data`, or the TPM `extraData` prefix).
    pub fn evidence<I>(&self, binding: &Binding<I>) -> Result<Evidence, TeeError> {
        match self {
            Tee::Sim { sim, measurement } => Ok(Evidence::SevSnp(
                sim.attest(binding.as_bytes(), measurement)?,
            )),
            Tee::Snp(dev) => Ok(Evidence::SevSnp(dev.attest(binding.as_bytes())?)),
            Tee::Tpm(worker) => Ok(Evidence::Tpm(
                worker.quote(binding.tpm_qualifying_data().to_vec())?,
            )),
        }
    }
}

impl Tee {
    /// What `POST /v1/attest/credential` needs, when the AK is to be trusted through the EK
    /// (`ak_trust = "ek"`) and the TPM holds an EK certificate; `None` otherwise (the AK must
    /// be enrolled).
    pub fn ek_activation(&self) -> Result<Option<EkActivation>, TeeError> {
        match self {
            Tee::Tpm(worker) if worker.ak_trust == AkTrust::Ek => worker.ek_activation(),
            _ => Ok(None),
        }
    }

    /// `TPM2_ActivateCredential` with this TPM's EK and AK: the secret the verifier wrapped.
    pub fn activate_credential(
        &self,
        credential_blob: Vec<u8>,
        encrypted_secret: Vec<u8>,
    ) -> Result<Zeroizing<Vec<u8>>, TeeError> {
        match self {
            Tee::Tpm(worker) => worker.activate(credential_blob, encrypted_secret),
            _ => Err(TeeError::NotTpm),
        }
    }
}

impl Tee {
    /// Runs `job` on the TEE's own long-lived thread, if it has one (the TPM worker), and
    /// returns its result; `None` when there is no such thread. For confining that thread too
    /// when the process locks itself down (`crate::lockdown`).
    pub fn on_worker_thread<T: Send + 'static>(
        &self,
        job: impl FnOnce() -> T + Send + 'static,
    ) -> Option<T> {
        match self {
            Tee::Tpm(worker) => worker.on_thread(job),
            _ => None,
        }
    }
}

/// The TPM's EK certificate, EK public and AK public (marshalled `TPMT_PUBLIC`s).
#[derive(Debug, Clone)]
pub struct EkActivation {
    pub ek_cert: Vec<u8>,
    pub ek_public: Vec<u8>,
    pub ak_public: Vec<u8>,
}

fn read(path: &Path) -> Result<Vec<u8>, TeeError> {
    std::fs::read(path).map_err(|source| TeeError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// SHA-384 of the running executable: the simulated launch measurement.
pub fn executable_measurement() -> Result<[u8; 48], TeeError> {
    let exe = std::env::current_exe().map_err(|source| TeeError::Io {
        path: "/proc/self/exe".into(),
        source,
    })?;
    let bytes = read(&exe)?;
    let d = ring::digest::digest(&ring::digest::SHA384, &bytes);
    let mut out = [0u8; 48];
    out.copy_from_slice(d.as_ref());
    Ok(out)
}

type Reply<T> = mpsc::Sender<Result<T, TeeError>>;

/// Work for the TPM thread.
enum Job {
    Quote(Vec<u8>, Reply<TpmEvidence>),
    EkActivation(Reply<Option<EkActivation>>),
    Activate(Vec<u8>, Vec<u8>, Reply<Zeroizing<Vec<u8>>>),
    /// Anything else to run on the TPM thread (see [`Tee::on_worker_thread`]).
    Run(Box<dyn FnOnce() + Send>),
}

/// A thread owning the TPM connection.
#[derive(Debug)]
pub struct TpmWorker {
    jobs: Mutex<mpsc::Sender<Job>>,
    ak_trust: AkTrust,
}

impl TpmWorker {
    fn start(
        tcti: String,
        pcrs: Vec<u8>,
        ak_dir: &Path,
        event_log: Option<PathBuf>,
        ak_trust: AkTrust,
    ) -> Result<Self, TeeError> {
        let ak_dir = ak_dir.to_path_buf();
        let (jobs, rx) = mpsc::channel::<Job>();
        let (ready_tx, ready_rx) = mpsc::channel::<Result<(), TeeError>>();
        std::thread::Builder::new()
            .name("tpm".into())
            .spawn(move || {
                let mut attester = match open_tpm(&tcti, &ak_dir) {
                    Ok(a) => {
                        let _ = ready_tx.send(Ok(()));
                        a
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                while let Ok(job) = rx.recv() {
                    match job {
                        Job::Quote(data, reply) => {
                            let _ = reply.send(quote_with_log(
                                &mut attester,
                                &data,
                                &pcrs,
                                event_log.as_deref(),
                            ));
                        }
                        Job::EkActivation(reply) => {
                            let _ = reply.send(ek_activation(&mut attester));
                        }
                        Job::Run(job) => job(),
                        Job::Activate(blob, secret, reply) => {
                            let _ = reply.send(
                                attester
                                    .activate_credential(&blob, &secret)
                                    .map_err(TeeError::from),
                            );
                        }
                    }
                }
            })
            .map_err(|source| TeeError::Io {
                path: "<tpm thread>".into(),
                source,
            })?;
        ready_rx.recv().map_err(|_| TeeError::WorkerGone)??;
        Ok(Self {
            jobs: Mutex::new(jobs),
            ak_trust,
        })
    }

    fn run<T>(&self, job: impl FnOnce(Reply<T>) -> Job) -> Result<T, TeeError> {
        let (tx, rx) = mpsc::channel();
        self.jobs
            .lock()
            .map_err(|_| TeeError::WorkerGone)?
            .send(job(tx))
            .map_err(|_| TeeError::WorkerGone)?;
        rx.recv().map_err(|_| TeeError::WorkerGone)?
    }

    fn on_thread<T: Send + 'static>(&self, job: impl FnOnce() -> T + Send + 'static) -> Option<T> {
        let (tx, rx) = mpsc::channel();
        let run = Job::Run(Box::new(move || {
            let _ = tx.send(job());
        }));
        self.jobs.lock().ok()?.send(run).ok()?;
        rx.recv().ok()
    }

    fn quote(&self, qualifying_data: Vec<u8>) -> Result<TpmEvidence, TeeError> {
        self.run(|tx| Job::Quote(qualifying_data, tx))
    }

    fn ek_activation(&self) -> Result<Option<EkActivation>, TeeError> {
        self.run(Job::EkActivation)
    }

    fn activate(
        &self,
        credential_blob: Vec<u8>,
        encrypted_secret: Vec<u8>,
    ) -> Result<Zeroizing<Vec<u8>>, TeeError> {
        self.run(|tx| Job::Activate(credential_blob, encrypted_secret, tx))
    }
}

/// The EK certificate and publics, or `None` (with a warning) when the TPM has no EK
/// certificate: the AK must then be enrolled in the policy.
fn ek_activation(attester: &mut TpmAttester) -> Result<Option<EkActivation>, TeeError> {
    match attester.ek_certificate() {
        Ok(ek) => Ok(Some(EkActivation {
            ek_cert: ek.certificate,
            ek_public: ek.public,
            ak_public: attester.ak_public_tpmt(),
        })),
        Err(e) => {
            tracing::warn!(
                error = %e,
                "ak_trust = \"ek\" but the TPM has no usable EK certificate: attesting without \
                 credential activation (the policy must enroll the AK)"
            );
            Ok(None)
        }
    }
}

/// One quote, carrying the event log when one is configured. The log is read after the quote: a
/// measurement extended in between makes the verifier's replay differ from the quoted PCRs, so the
/// evidence is refused rather than wrongly accepted.
fn quote_with_log(
    attester: &mut TpmAttester,
    data: &[u8],
    pcrs: &[u8],
    event_log: Option<&Path>,
) -> Result<TpmEvidence, TeeError> {
    let mut evidence = attester.quote(data, pcrs)?;
    if let Some(path) = event_log {
        evidence.event_log = Some(serde_bytes::ByteBuf::from(read(path)?));
    }
    Ok(evidence)
}

/// Loads the AK kept in `ak_dir`, or creates one and keeps it there.
fn open_tpm(tcti: &str, ak_dir: &Path) -> Result<TpmAttester, TeeError> {
    let (pub_path, priv_path) = (ak_dir.join("ak.pub"), ak_dir.join("ak.priv"));
    let attester = if pub_path.is_file() && priv_path.is_file() {
        let blob = AkBlob {
            public: read(&pub_path)?,
            private: read(&priv_path)?,
        };
        TpmAttester::load(tcti, &blob)?
    } else {
        let a = TpmAttester::connect(tcti)?;
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| TeeError::Io { path, source }
        };
        std::fs::create_dir_all(ak_dir).map_err(io(ak_dir))?;
        std::fs::write(&pub_path, &a.ak_blob().public).map_err(io(&pub_path))?;
        // TPM2B_PRIVATE is encrypted by the TPM under its EK: useless on any other TPM.
        std::fs::write(&priv_path, &a.ak_blob().private).map_err(io(&priv_path))?;
        a
    };
    let spki = attester.ak_spki_der()?;
    tracing::info!(
        ak_spki_sha256 = %hex::encode(crate::keys::sha256(&spki)),
        "TPM attestation key ready (with ak_trust = \"enrolled\" the verifier's policy must enroll \
         this fingerprint)"
    );
    Ok(attester)
}

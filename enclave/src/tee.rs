//! Evidence producers, one per TEE, behind one type chosen by configuration.
//!
//! All calls block (device ioctls, TPM commands, signing): call them from a blocking thread.

use std::path::Path;
use std::sync::Mutex;
use std::sync::mpsc;

use confidant_attestation::binding::Binding;
use confidant_attestation::evidence::{Evidence, TpmEvidence};
use confidant_attester::error::AttesterError;
use confidant_attester::snp_device::DeviceSnp;
use confidant_attester::snp_sim::SimulatedSnp;
use confidant_attester::tpm::{AkBlob, TpmAttester};

use crate::config::TeeConfig;

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
            TeeConfig::Tpm { tcti, pcrs, ak_dir } => Ok(Tee::Tpm(TpmWorker::start(
                tcti.clone(),
                pcrs.clone(),
                ak_dir,
            )?)),
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
    pub fn evidence(&self, binding: &Binding) -> Result<Evidence, TeeError> {
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

type QuoteReply = mpsc::Sender<Result<TpmEvidence, AttesterError>>;

/// A thread owning the TPM connection.
#[derive(Debug)]
pub struct TpmWorker {
    jobs: Mutex<mpsc::Sender<(Vec<u8>, QuoteReply)>>,
}

impl TpmWorker {
    fn start(tcti: String, pcrs: Vec<u8>, ak_dir: &Path) -> Result<Self, TeeError> {
        let ak_dir = ak_dir.to_path_buf();
        let (jobs, rx) = mpsc::channel::<(Vec<u8>, QuoteReply)>();
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
                while let Ok((data, reply)) = rx.recv() {
                    let _ = reply.send(attester.quote(&data, &pcrs));
                }
            })
            .map_err(|source| TeeError::Io {
                path: "<tpm thread>".into(),
                source,
            })?;
        ready_rx.recv().map_err(|_| TeeError::WorkerGone)??;
        Ok(Self {
            jobs: Mutex::new(jobs),
        })
    }

    fn quote(&self, qualifying_data: Vec<u8>) -> Result<TpmEvidence, TeeError> {
        let (tx, rx) = mpsc::channel();
        self.jobs
            .lock()
            .map_err(|_| TeeError::WorkerGone)?
            .send((qualifying_data, tx))
            .map_err(|_| TeeError::WorkerGone)?;
        Ok(rx.recv().map_err(|_| TeeError::WorkerGone)??)
    }
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
        "TPM attestation key ready (the verifier's policy must enroll this fingerprint)"
    );
    Ok(attester)
}

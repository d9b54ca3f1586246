//! The enclave as a measured VM, from real parts: `confidant vm build` makes the image from
//! Debian's cloud kernel and a reproducible initramfs, `confidant vm measure` computes its PCR 4
//! and PCR 9 before boot, and QEMU (TCG) boots it with OVMF and a swtpm vTPM whose EK certificate
//! chains to a CA private to this test. The verifier trusts only that EK CA and the measured
//! image; the guest's AK is accepted through credential activation.
//!
//! One test function, so the slow parts (image, verifier) are made once and the boots run one
//! after another on this 2-core machine:
//! 1. the image boots, attests, receives the key, unseals, and answers over attested TLS;
//!    the PCRs read inside the guest equal `vm measure`'s;
//! 2. the same image with another kernel command line is refused, naming the PCR 9 event;
//! 3. an image whose initrd differs in one byte is refused, naming the initrd event.

// Test code: a fixture that cannot be built is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use confidant_e2e::vm::{GUEST_VERIFIER_ADDR, GUEST_VERIFIER_PORT, Vm, VmSpec};
use confidant_e2e::{MODEL_ID, Service, bins, sealed_model};
use confidant_wire::routes;

const APPEND: &str = "console=ttyS0 quiet";
const MEMORY_MIB: u32 = 2048;
const KEY_ID_VM: &str = confidant_e2e::KEY_ID;

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The guest's enclave configuration (paths inside the image).
fn guest_config() -> String {
    format!(
        r#"model_id = "{MODEL_ID}"
sealed_model = "/var/lib/confidant/model.sealed"

[verifier]
url = "https://{GUEST_VERIFIER_ADDR}:{GUEST_VERIFIER_PORT}"
tls_ca = "/etc/confidant/verifier-tls.pem"
token = {{ file = "/etc/confidant/enclave.jwt" }}
result_audience = "{aud}"
timeout_secs = 60

[tee]
kind = "tpm"
tcti = "device:/dev/tpmrm0"
pcrs = [4, 9]
ak_dir = "/tmp/confidant-ak"
ak_trust = "ek"
event_log = "/sys/kernel/security/tpm0/binary_bios_measurements"

[server]
listen = "0.0.0.0:8443"
dns_names = ["localhost"]
ip_addresses = ["127.0.0.1"]

[auth]
issuer = "confidant-dev-issuer"
audience = "confidant-enclave"
verification_keys = {{ file = "/etc/confidant/jwt-verify.jwk" }}

[boot]
retry_initial_ms = 1000
retry_max_ms = 4000
"#,
        aud = confidant_e2e::RESULT_AUDIENCE
    )
}

/// `confidant vm build` into `out`.
fn build_image(out: &Path, vdir: &Path, config: &Path, sealed: &Path) {
    let bins = bins();
    // The image carries the enclave without its debug sections (smaller initrd, same code).
    let enclave = out.with_extension("enclave");
    run(Command::new("strip")
        .arg("-o")
        .arg(&enclave)
        .arg(&bins.enclave));
    let include = |src: PathBuf, dest: &str| format!("{}={dest}", src.display());
    run(Command::new(&bins.cli)
        .args(["vm", "build", "--out"])
        .arg(out)
        .arg("--enclave")
        .arg(&enclave)
        .arg("--config")
        .arg(config)
        .arg("--sealed-model")
        .arg(sealed)
        .arg("--include")
        .arg(include(
            vdir.join("tls-cert.pem"),
            "/etc/confidant/verifier-tls.pem",
        ))
        .arg("--include")
        .arg(include(
            vdir.join("tokens/enclave.jwt"),
            "/etc/confidant/enclave.jwt",
        ))
        .arg("--include")
        .arg(include(
            vdir.join("secrets/jwt-verify.jwk"),
            "/etc/confidant/jwt-verify.jwk",
        ))
        .args(["--append", APPEND, "--memory-mib"])
        .arg(MEMORY_MIB.to_string()));
}

/// `confidant vm measure --json`.
fn measure(image: &Path) -> serde_json::Value {
    let out = run(Command::new(&bins().cli)
        .args(["vm", "measure"])
        .arg(image)
        .arg("--json"));
    serde_json::from_str(&out).unwrap()
}

/// `confidant vm measure --policy --model-id`.
fn measure_policy(image: &Path) -> String {
    run(Command::new(&bins().cli)
        .args(["vm", "measure"])
        .arg(image)
        .args(["--policy", "--model-id", MODEL_ID]))
}

/// The hex of `key` in `vm measure --json` output.
fn hex_field(measured: &serde_json::Value, key: &str) -> String {
    measured[key]
        .as_str()
        .unwrap_or_else(|| panic!("vm measure --json has no {key}: {measured}"))
        .to_owned()
}

/// The verifier policy: the private EK CA, the model, and the image's reference values from
/// `vm measure --policy` (computed before boot).
fn policy(ek_ca_pems: &[String], model_digest: &[u8; 32], fragment: &str) -> String {
    let cas = ek_ca_pems
        .iter()
        .map(|p| serde_json::to_string(p).unwrap())
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        r#"id = "vm"
version = 1
revoked_measurements = []

[trust]
amd_products = ["milan", "genoa", "turin"]
tpm_aks_spki_sha256 = []
tpm_ek_ca_certs = [{cas}]

[models."{MODEL_ID}"]
digest = "{digest}"
snp_measurements = []
tls_names = ["localhost", "127.0.0.1"]

{fragment}
"#,
        digest = hex::encode(model_digest)
    )
}

/// PCR composite of PCR 4 and 9 (what results carry as a TPM measurement).
fn composite(pcr4: &str, pcr9: &str) -> [u8; 32] {
    let mut pcrs = std::collections::BTreeMap::new();
    pcrs.insert(4u8, confidant_e2e::hex_array::<32>(pcr4));
    pcrs.insert(9u8, confidant_e2e::hex_array::<32>(pcr9));
    confidant_attestation::policy::pcr_composite(&pcrs)
}

/// Boots `image` with `append` on the TPM in `tpm_state` (a fresh swtpm process each boot).
fn boot(
    image: &Path,
    append: &str,
    tpm_state: &Path,
    verifier_port: u16,
) -> (Vm, confidant_testkit::swtpm::SwtpmChardev) {
    let sock = tpm_state.with_extension("sock");
    let _ = std::fs::remove_file(&sock);
    let tpm = confidant_testkit::swtpm::SwtpmChardev::start(tpm_state, &sock).unwrap();
    let vm = Vm::boot(&VmSpec {
        image: image.to_path_buf(),
        append: append.to_owned(),
        memory_mib: MEMORY_MIB,
        tpm_socket: sock,
        verifier_port,
    });
    (vm, tpm)
}

/// Waits until the verifier logs a refusal whose fields contain `needle`; returns the line.
fn wait_refusal(verifier: &mut Service, needle: &str) -> String {
    verifier.wait_for(Duration::from_secs(420), |line| {
        (line.contains("refus") && line.contains(needle)).then(|| line.to_owned())
    })
}

#[test]
fn measured_vm_boots_attests_serves_and_only_that_image_gets_the_key() {
    let t0 = Instant::now();
    let bins = bins();
    let model = sealed_model();
    let dir = tempfile::tempdir().unwrap();
    let vdir = dir.path().join("verifier");
    run(Command::new(&bins.verifier).arg("init").arg(&vdir).args([
        "--listen",
        "127.0.0.1:0",
        "--tls-name",
        GUEST_VERIFIER_ADDR,
    ]));

    let config = dir.path().join("enclave.toml");
    std::fs::write(&config, guest_config()).unwrap();
    let image = dir.path().join("image");
    build_image(&image, &vdir, &config, &model.path);
    let measured = measure(&image);
    let (pcr4, pcr9) = (hex_field(&measured, "pcr4"), hex_field(&measured, "pcr9"));
    let fragment = measure_policy(&image);
    eprintln!("[vm] image built and measured after {:?}", t0.elapsed());

    // Building again from the same inputs gives the same initramfs, byte for byte.
    let again = dir.path().join("image-again");
    build_image(&again, &vdir, &config, &model.path);
    assert!(
        std::fs::read(image.join("initrd.cpio")).unwrap()
            == std::fs::read(again.join("initrd.cpio")).unwrap(),
        "vm build is not reproducible"
    );
    // An image whose initrd differs in one byte and not in length (one digit of the enclave's
    // config): QEMU writes the initrd's size and address into the kernel's setup header, so PCR 4
    // follows the initrd's length, but not its bytes.
    let changed = dir.path().join("image-changed");
    let changed_config = dir.path().join("enclave-changed.toml");
    let config_text = guest_config();
    assert!(config_text.contains("retry_initial_ms = 1000\n"));
    std::fs::write(
        &changed_config,
        config_text.replacen("retry_initial_ms = 1000\n", "retry_initial_ms = 1001\n", 1),
    )
    .unwrap();
    build_image(&changed, &vdir, &changed_config, &model.path);
    let changed_measured = measure(&changed);
    assert_ne!(hex_field(&changed_measured, "pcr9"), pcr9);
    assert_eq!(
        hex_field(&changed_measured, "pcr4"),
        pcr4.clone(),
        "PCR 4 covers the kernel (and the initrd's length), not the initrd's bytes"
    );
    let _ = std::fs::remove_dir_all(&again);

    let tpm_dir = dir.path().join("tpm");
    std::fs::create_dir_all(&tpm_dir).unwrap();
    let ek_ca = confidant_testkit::swtpm::manufacture_with_ek_ca(&tpm_dir).unwrap();
    let ek_pems: Vec<String> = [&ek_ca.issuer_cert_pem, &ek_ca.root_cert_pem]
        .iter()
        .map(|p| std::fs::read_to_string(p).unwrap())
        .collect();
    let policy_text = policy(&ek_pems, &model.digest, &fragment);
    std::fs::write(vdir.join("policy.toml"), &policy_text).unwrap();
    let mut cmd = Command::new(&bins.verifier);
    cmd.arg("serve")
        .arg("--config")
        .arg(vdir.join("verifier.toml"))
        .args(["--log-format", "json"]);
    let mut verifier = Service::spawn("confidant-verifier", cmd);
    let verifier_addr =
        verifier.wait_for_logged_addr("confidant-verifier listening", Duration::from_secs(30));
    let admin_addr = verifier.wait_for_logged_addr(
        "confidant-verifier admin listening",
        Duration::from_secs(30),
    );
    run(Command::new(&bins.cli)
        .args(["model", "register", "--verifier"])
        .arg(format!("https://{admin_addr}"))
        .arg("--ca")
        .arg(vdir.join("tls-cert.pem"))
        .arg("--token-file")
        .arg(vdir.join("tokens/admin.jwt"))
        .arg("--key-file")
        .arg(&model.key_path)
        .args(["--key-id", KEY_ID_VM, "--model-id", MODEL_ID, "--digest"])
        .arg(hex::encode(model.digest)));

    // 1. The measured image boots, attests from inside, unseals and serves.
    let (mut vm, tpm) = boot(&image, APPEND, &ek_ca.state_dir, verifier_addr.port());
    let in_guest = vm.wait_for_line("confidant-vm: pcr4=", Duration::from_secs(300));
    assert!(
        in_guest.contains(&format!("pcr4={pcr4}")) && in_guest.contains(&format!("pcr9={pcr9}")),
        "PCRs read inside the guest ({in_guest}) differ from vm measure ({pcr4}, {pcr9})"
    );
    let boot_t = Instant::now();
    vm.wait_serving(Duration::from_secs(600));
    eprintln!(
        "[vm] guest enclave serving {:?} after the PCR line",
        boot_t.elapsed()
    );
    let accepted = verifier.wait_for(Duration::from_secs(5), |l| {
        l.contains("attestation accepted").then(|| l.to_owned())
    });
    eprintln!("[vm] verifier: {accepted}");

    let ca = std::fs::read(vdir.join("ca.pem")).unwrap();
    let keys = confidant_e2e::https::blocking_request(
        verifier_addr,
        &std::fs::read(vdir.join("tls-cert.pem")).unwrap(),
        "GET",
        routes::verifier::KEYS,
        None,
        None,
    );
    let keys: serde_json::Value = serde_json::from_slice(&keys.body).unwrap();
    let result_key = keys["keys"][0].to_string();
    let client = confidant_client::Client::builder(format!("https://{}", vm.enclave_addr))
        .verifier_ca(&ca)
        .result_key(confidant_client::ResultVerifier::from_jwk(&result_key).unwrap())
        // The client checks the result against the verifier's own policy, with the same code.
        .policy(confidant_client::Policy::from_toml(&policy_text).unwrap())
        .mode(confidant_client::Mode::Passport)
        .fresh(true)
        .bearer_token(confidant_client::BearerToken::new(
            String::from_utf8(std::fs::read(vdir.join("tokens/client.jwt")).unwrap())
                .unwrap()
                .trim()
                .to_owned(),
        ))
        .connect_timeout(Duration::from_secs(60))
        .request_timeout(Duration::from_secs(900))
        .build()
        .unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let gen_t = Instant::now();
    let answer = rt.block_on(async {
        let mut conn = client.connect().await.unwrap();
        assert_eq!(
            conn.claims().result.measurement,
            composite(&pcr4, &pcr9).to_vec(),
            "the result's measurement is the composite of the PCRs vm measure computed"
        );
        let request = confidant_wire::openai::CompletionRequest {
            model: MODEL_ID.to_owned(),
            prompt: "The capital of France is".to_owned(),
            max_tokens: Some(2),
            temperature: Some(0.0),
            top_p: None,
            seed: None,
            stop: None,
            stream: None,
            stream_options: None,
            n: None,
        };
        let reply = conn.complete(request).await.unwrap();
        reply.choices[0].text.clone()
    });
    eprintln!(
        "[vm] completion {answer:?} over attested TLS in {:?} (TCG)",
        gen_t.elapsed()
    );
    assert!(answer.contains("Paris"), "unexpected answer {answer:?}");
    drop(vm);
    drop(tpm);

    // 2. The same image with another command line: another PCR 9, refused, the event named.
    let (vm, tpm) = boot(
        &image,
        "console=ttyS0 quiet loglevel=4",
        &ek_ca.state_dir,
        verifier_addr.port(),
    );
    let line = wait_refusal(&mut verifier, "LoadOptions) event digest");
    eprintln!("[vm] other command line refused: {line}");
    drop(vm);
    drop(tpm);

    // 3. One byte more in the initrd: refused, the initrd event named.
    let (vm, tpm) = boot(&changed, APPEND, &ek_ca.state_dir, verifier_addr.port());
    let line = wait_refusal(&mut verifier, "initrd (Linux initrd) event digest");
    eprintln!("[vm] changed initrd refused: {line}");
    drop(vm);
    drop(tpm);
    eprintln!("[vm] done after {:?}", t0.elapsed());
}

//! Leases end to end, through the real binary and a real vendor service: a policy with a
//! one-second lease; provision, run, renew; after a device or model version is revoked through
//! the admin API and the lease has passed, `omg run` is refused with the lease message and
//! `omg renew` is refused with the service's reason, leaving the sealed blob as it was. With an
//! offline grace, a run past the renewal time works and warns.

mod support;

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::Value;
use support::{Server, TempDir, clip, ok, omg, vendor_keygen};

const ADMIN_TOKEN: &str = "lease-test-admin-token";

fn err(out: Output) -> String {
    assert!(!out.status.success(), "{out:?}");
    String::from_utf8(out.stderr).unwrap()
}

fn json(s: &str) -> Value {
    serde_json::from_str(s.lines().next().unwrap()).unwrap()
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A device provisioned through a running service whose policy has `lease` (TOML lines).
struct Setup {
    dir: TempDir,
    home: PathBuf,
    package: PathBuf,
    _server: Server,
    url: String,
    ueid: String,
    version: u64,
    /// The licence's lease as `omg provision --json` reported it.
    provisioned: Value,
}

fn setup(tag: &str, lease: &str) -> Setup {
    let dir = TempDir::new(tag);
    let home = dir.path("home");
    let keys = vendor_keygen(&dir);
    let info = json(&ok(omg(&home, &["device", "init", "--json"])));
    let measurement = info["enclave_measurement"].as_str().unwrap();
    let ueid = info["ueid"].as_str().unwrap().to_string();
    let policy = dir.path("policy.toml");
    std::fs::write(
        &policy,
        format!(
            "allowed_measurements = [\"{measurement}\"]\nmax_devices = 1\n\
             not_after = 4102444800\n{lease}"
        ),
    )
    .unwrap();
    let db = dir.path("vendor.sqlite");
    let package = dir.path("ms.omgpkg");
    let packaged = json(&ok(support::vendor_package(
        &home,
        "micro_speech",
        &policy,
        &db,
        &keys,
        &package,
        &["--json"],
    )));
    support::enroll(&home, &db);
    let token = dir.path("admin.token");
    std::fs::write(&token, ADMIN_TOKEN).unwrap();
    let server = Server::start(&db, &keys, &["--admin-token-file", token.to_str().unwrap()]);
    let url = format!("http://{}", server.addr);
    let provisioned = json(&ok(omg(
        &home,
        &[
            "provision",
            package.to_str().unwrap(),
            "--server",
            &url,
            "--vendor-key",
            keys.join("vendor.pub").to_str().unwrap(),
            "--json",
        ],
    )));
    Setup {
        dir,
        home,
        package,
        _server: server,
        url,
        ueid,
        version: packaged["version"].as_u64().unwrap(),
        provisioned,
    }
}

impl Setup {
    fn run(&self) -> Output {
        omg(
            &self.home,
            &[
                "run",
                self.package.to_str().unwrap(),
                "--wav",
                &clip("yes_en-us"),
                "--json",
            ],
        )
    }

    fn renew(&self) -> Output {
        omg(
            &self.home,
            &[
                "renew",
                self.package.to_str().unwrap(),
                "--server",
                &self.url,
                "--json",
            ],
        )
    }

    /// Runs the clip and expects the keyword. A one-second lease may end before a slow
    /// machine's run starts: then (and only then) renew and try again, a few times.
    fn run_works(&self) {
        for _ in 0..3 {
            let out = self.run();
            if out.status.success() {
                assert_eq!(json(&ok(out))["label"], "yes");
                return;
            }
            let stderr = err(out);
            assert!(stderr.contains("lease ended"), "{stderr}");
            ok(self.renew());
        }
        panic!("three runs in a row started after their one-second lease");
    }

    fn admin(&self, path: &str, body: Value) {
        let response = ureq::post(&format!("{}{path}", self.url))
            .header("Authorization", &format!("Bearer {ADMIN_TOKEN}"))
            .send_json(body)
            .unwrap();
        assert!(response.status().is_success(), "{path}: {response:?}");
    }

    fn sealed(&self) -> PathBuf {
        PathBuf::from(self.provisioned["sealed"].as_str().unwrap())
    }

    /// Waits (a few seconds at most) until the newest lease on the device has passed: until the
    /// system time is past `lease_until` of `renewed` (or of the provisioning).
    fn wait_past_lease(&self, renewed: Option<&Value>) {
        let lease_until = renewed.unwrap_or(&self.provisioned)["lease_until"]
            .as_u64()
            .unwrap();
        assert!(lease_until <= now() + 2, "lease until {lease_until}");
        while now() <= lease_until {
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// After a revocation and the lease: the run is refused with the lease message, the
    /// renewal with `reason`, and the sealed blob is unchanged.
    fn revoked_device_stops(&self, renewed: Option<&Value>, reason: &str) {
        self.wait_past_lease(renewed);
        let refused = err(self.run());
        assert!(
            refused.contains("lease ended") && refused.contains("omg renew"),
            "{refused}"
        );
        let blob = std::fs::read(self.sealed()).unwrap();
        let renewal = err(self.renew());
        assert!(
            renewal.contains(reason) && renewal.contains("unchanged"),
            "{renewal}"
        );
        assert_eq!(std::fs::read(self.sealed()).unwrap(), blob);
        let still = err(self.run());
        assert!(still.contains("lease ended"), "{still}");
    }
}

fn assert_one_second_lease(lease: &Value) {
    let renew_after = lease["renew_after"].as_u64().unwrap();
    let lease_until = lease["lease_until"].as_u64().unwrap();
    // Grace 0: the lease ends when the renewal is due, one second after the activation.
    assert_eq!(renew_after, lease_until, "{lease}");
    assert!(lease_until <= now() + 1, "{lease}");
}

/// Revoke the device: once its lease has passed it runs no more and gets no renewal. Before
/// that, a renewal of the device (not revoked) works and the run works again.
#[test]
fn a_revoked_device_stops_when_its_lease_ends() {
    let s = setup("lease-device", "lease_seconds = 1\n");
    assert_one_second_lease(&s.provisioned);
    s.run_works();
    let renewed = json(&ok(s.renew()));
    assert_one_second_lease(&renewed);
    assert_eq!(renewed["sealed"], s.provisioned["sealed"]);
    s.run_works();
    s.admin("/v1/revoke/device", serde_json::json!({"ueid": s.ueid}));
    s.revoked_device_stops(Some(&renewed), "device_revoked");
}

/// Revoke the model version: the same, with the service's `model_version_revoked`.
#[test]
fn a_revoked_model_version_stops_when_its_lease_ends() {
    let s = setup("lease-model", "lease_seconds = 1\n");
    s.run_works();
    s.admin(
        "/v1/revoke/model",
        serde_json::json!({"model_id": "micro_speech", "version": s.version}),
    );
    s.revoked_device_stops(None, "model_version_revoked");
}

/// With an offline grace, a run past the renewal time still works and warns on stderr; a
/// renewal for a package never provisioned here is refused before any request.
#[test]
fn past_the_renewal_time_a_run_warns() {
    let s = setup(
        "lease-grace",
        "lease_seconds = 1\noffline_grace_seconds = 600\n",
    );
    let renew_after = s.provisioned["renew_after"].as_u64().unwrap();
    assert_eq!(
        s.provisioned["lease_until"].as_u64().unwrap(),
        renew_after + 600
    );
    while now() <= renew_after {
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = s.run();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(json(&ok(out))["label"], "yes");
    assert!(
        stderr.contains("due for renewal") && stderr.contains("omg renew"),
        "{stderr}"
    );
    let home2 = s.dir.path("home2");
    ok(omg(&home2, &["device", "init"]));
    let never = err(omg(
        &home2,
        &[
            "renew",
            s.package.to_str().unwrap(),
            "--server",
            &s.url,
            "--vendor-key",
            Path::new(&s.dir.path("keys"))
                .join("vendor.pub")
                .to_str()
                .unwrap(),
        ],
    ));
    assert!(never.contains("omg provision"), "{never}");
}
